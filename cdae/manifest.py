"""The sha256 manifest (``MANIFEST.json``) of a folder of shipped checkpoints: reading it, and
the checksum it records for a file. Kept apart from :mod:`cdae.pretrained` so that checkpoint
loading can consult it without importing the inference API."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from cdae.paths import pretrained_dir

MANIFEST = "MANIFEST.json"


def read_manifest(folder: str | os.PathLike | None = None) -> dict[str, Any]:
    """``{file name: entry}`` from ``folder/MANIFEST.json`` (empty when there is none)."""
    path = Path(folder or pretrained_dir()) / MANIFEST
    if not path.exists():
        return {}
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path} is not a readable manifest ({exc}); restore it with `git "
                         f"checkout -- {path.name}` in its folder, or delete it") from exc
    if not isinstance(manifest, dict):
        raise ValueError(f"{path} holds a JSON {type(manifest).__name__}, not the manifest's "
                         "{file: entry} mapping; restore it with `git checkout`")
    return manifest


def manifest_sha256(path: str | os.PathLike) -> str | None:
    """The sha256 that a ``MANIFEST.json`` beside ``path`` records for it, or None."""
    path = Path(path)
    try:
        entry = read_manifest(path.parent).get(path.name)
    except (OSError, ValueError):  # an unreadable manifest vouches for nothing
        return None
    return entry.get("sha256") if isinstance(entry, dict) else None


__all__ = ["MANIFEST", "manifest_sha256", "read_manifest"]

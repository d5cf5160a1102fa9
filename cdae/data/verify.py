"""Checking a dataset folder that the user names (``root=...``, ``data.root``, ``--data``).

A folder written by cdae carries a ``MANIFEST.sha256``: it is verified, and a folder whose files
differ from it (an edited CSV row, a truncated image file) is refused, since its labels, and the
label normaliser fitted on them, would silently change. A folder without a manifest is checked
against the published checksums of the Deep SCM Morpho-MNIST files
(:data:`cdae.data.deepscm.CHECKSUMS`) when it is meant to hold them; anything else is used with
a warning that it could not be verified. A ``folder`` dataset (your own images and labels) is
verified against a ``MANIFEST.sha256`` beside its labels when it has one (``sha256sum``'s format:
``<sha256>  <path>`` per line), and used as it is otherwise.
"""

from __future__ import annotations

import contextlib
import json
import warnings
from pathlib import Path

from cdae.data.deepscm import CHECKSUMS
from cdae.files import checksum

MANIFEST = "MANIFEST.sha256"
_REGENERATE = {"morphomnist": "Regenerate it with `python -m cdae data morphomnist --out {folder}"
                              "{arguments} --overwrite`",
               "pendulum": "Regenerate it with `python -m cdae data pendulum --out {folder}"
                           "{arguments} --overwrite`",
               "folder": "Restore the original files"}
#: The generator arguments a folder records (args.json / dataset.json), as command-line flags.
_FLAGS = {"seed": "--seed", "limit": "--limit", "draws_per_digit": "--draws-per-digit",
          "shadow_noise_sd": "--shadow-noise-sd"}


def regenerate_hint(kind: str, folder: Path) -> str:
    """How to rebuild ``folder`` with the arguments it was generated with (as far as it says)."""
    recorded: dict = {}
    for name in ("args.json", "dataset.json"):
        with contextlib.suppress(OSError, ValueError):
            recorded = json.loads((folder / name).read_text())
            break
    arguments = "".join(f" {flag} {recorded[key]}" for key, flag in _FLAGS.items()
                        if recorded.get(key) is not None)
    return _REGENERATE[kind].format(folder=folder, arguments=arguments)


class DatasetIntegrityError(ValueError):
    """A dataset folder whose files differ from its manifest or from their known checksums."""


def check_dataset_root(kind: str, folder: str | Path, split_files: list[str],
                       deepscm: bool = False) -> None:
    """Verify ``folder`` (a ``"morphomnist"``, ``"pendulum"`` or ``"folder"`` dataset) before it
    is read.

    Args:
        kind: which generator wrote it; says how to regenerate it.
        folder: the dataset folder.
        split_files: the names of the files the split to be read uses (for the md5 check of a
            folder without a manifest).
        deepscm: the folder is meant to hold the published Deep SCM files: compare their
            checksums.

    Raises:
        DatasetIntegrityError: the manifest or a known md5 does not match.
    """
    folder = Path(folder)
    if (folder / MANIFEST).is_file():
        problems = _manifest_problems(kind, folder)
        if problems:
            fix = regenerate_hint(kind, folder)
            raise DatasetIntegrityError(
                f"the dataset at {folder} does not match its {MANIFEST}: {'; '.join(problems)}. "
                f"It was edited or corrupted after it was written. {fix}, or, to use the edited "
                f"files on purpose, delete {folder / MANIFEST}"
            )
        return
    if kind == "folder":
        return  # your own data: nothing to compare it with
    known = [name for name in split_files if deepscm and name in CHECKSUMS]
    changed = [name for name in known if checksum(folder / name, CHECKSUMS[name][0])
               != CHECKSUMS[name][1]]
    if changed:
        raise DatasetIntegrityError(
            f"{', '.join(changed)} in {folder} differ from the published Deep SCM Morpho-MNIST "
            "files (their checksums): the copy is corrupt or was edited. Download it again "
            f"(`python -m cdae data deepscm --out {folder}`), or read your own files in this "
            "layout as dataset 'morphomnist' (root=...), unverified."
        )
    unverified = sorted(set(split_files) - set(known))
    if unverified or not split_files:
        which = f" and no known checksums for {unverified}" if unverified else ""
        warnings.warn(f"{folder} has no {MANIFEST}{which}, so its files could not be verified; "
                      "they are used as they are", stacklevel=4)


def _manifest_problems(kind: str, folder: Path) -> list[str]:
    if kind == "folder":
        from cdae.data.cache import verify_manifest

        return verify_manifest(folder)
    if kind == "pendulum":
        from cdae.data.pendulum import verify_dataset

        return verify_dataset(folder)
    from cdae.data.morphomnist import verify_manifest

    return verify_manifest(folder)

"""The protocol of every generated dataset's folder: built whole or not at all, checksummed,
verified before use, and regenerated (with a warning that says why) when it does not verify.

A dataset folder holds its files, an info file (JSON) of the arguments that generated it, and
``MANIFEST.sha256`` (``sha256sum -c`` format) over every other file. A generator:

    check_replaceable(out, "Pendulum", belongs, markers)    # never replace someone else's folder
    with building(out) as tmp:                              # a hidden sibling folder
        ...write the files and the info file into tmp...
    # on success the manifest is written and tmp swapped in for out; on an error or Ctrl-C
    # tmp is removed and out is left as it was

and its loader is ``load_or_build(root, title, problems, build)``: under a lock (one generator at
a time), the folder as is when ``problems(root)`` (usually :func:`verify_manifest` plus
:func:`info_mismatch`) finds nothing, else ``build(root)``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from cdae.files import atomic_write_bytes, exclusive_lock, file_digest

logger = logging.getLogger(__name__)

MANIFEST = "MANIFEST.sha256"


# ============================================================================ building
def check_replaceable(out: Path, title: str, belongs: Callable[[str], bool],
                      markers: Sequence[str], overwrite: bool = True) -> None:
    """Raise unless ``out`` may be replaced by a new ``title`` dataset: it is absent, empty, or a
    dataset folder (one of ``markers`` present, every top-level name ``belongs``), and then only
    with ``overwrite`` (else ``FileExistsError``)."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out} is a file; give a folder for the dataset")
    if not out.is_dir() or not any(out.iterdir()):
        return
    foreign = sorted(p.name for p in out.iterdir() if not belongs(p.name))
    if foreign or not any((out / name).exists() for name in markers):
        what = (f"it holds {foreign[:5]}, which are not part of a {title} dataset" if foreign
                else f"it has none of {list(markers)}")
        raise ValueError(f"{out} is not a {title} dataset folder: {what}. The whole folder is "
                         "replaced on generation, so choose an empty or new folder.")
    if not overwrite:
        raise FileExistsError(f"{out} already holds a {title} dataset; pass overwrite=True "
                              "(--overwrite) to replace it, or use load_or_generate() to reuse "
                              "it")


@contextlib.contextmanager
def building(out: Path) -> Iterator[Path]:
    """Yield a temporary folder beside ``out``; when the block succeeds, write its manifest,
    give it ordinary permissions (the umask's) and swap it in for ``out``. When the block raises,
    the temporary folder is removed and ``out`` is untouched."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        yield tmp
        write_manifest(tmp)
        _open_permissions(tmp)
        _swap_in(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _open_permissions(folder: Path) -> None:
    """``mkdtemp`` makes a private (0700) folder; give it and its contents the umask's modes."""
    umask = os.umask(0)
    os.umask(umask)
    for path in [folder, *folder.rglob("*")]:
        os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~umask)


def _swap_in(tmp: Path, out: Path) -> None:
    """Rename the finished ``tmp`` onto ``out``; an old ``out`` is moved aside, then removed."""
    if not out.exists():
        os.replace(tmp, out)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
    os.replace(out, old / out.name)
    os.replace(tmp, out)
    shutil.rmtree(old, ignore_errors=True)


def write_info(folder: Path, name: str, info: Mapping[str, Any]) -> None:
    """Write the generation arguments ``info`` as ``folder/name`` (sorted JSON, atomically)."""
    text = json.dumps(info, indent=2, sort_keys=True) + "\n"
    atomic_write_bytes(folder / name, text.encode())


# ============================================================================ the manifest
def write_manifest(folder: str | os.PathLike) -> Path:
    """Write ``MANIFEST.sha256`` over every other file under ``folder`` (relative paths, sorted;
    hidden files skipped)."""
    folder = Path(folder)
    paths = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                   if p.is_file() and p.name != MANIFEST
                   and not any(part.startswith(".") for part in p.relative_to(folder).parts))
    text = "".join(f"{file_digest(folder / path)}  {path}\n" for path in paths)
    atomic_write_bytes(folder / MANIFEST, text.encode())
    return folder / MANIFEST


def verify_manifest(folder: str | os.PathLike, required: Iterable[str] = (),
                    watched: Iterable[str] = ()) -> list[str]:
    """Problems with a dataset folder (empty list: complete and intact).

    Reports a missing or malformed manifest, ``required`` paths it does not list, listed files
    that are missing or whose sha256 differs, and files matching a ``watched`` glob (e.g.
    ``"train/*.png"``) that it does not list.
    """
    folder = Path(folder)
    manifest = folder / MANIFEST
    if not manifest.is_file():
        return [f"{manifest} is missing"]
    listed = {}
    for number, line in enumerate(manifest.read_text().splitlines(), start=1):
        digest, _, path = line.partition("  ")
        if len(digest) != 64 or not path:
            return [f"{manifest} line {number} is not '<sha256>  <path>': {line[:80]!r}"]
        listed[path] = digest
    problems = [f"{path} is not in the manifest" for path in sorted(set(required) - set(listed))]
    for path, digest in sorted(listed.items()):
        file = folder / path
        if not file.is_file():
            problems.append(f"missing {path}")
        elif file_digest(file) != digest:
            problems.append(f"sha256 mismatch for {path}")
    for pattern in watched:
        extra = {p.relative_to(folder).as_posix() for p in folder.glob(pattern)} - set(listed)
        problems += [f"unlisted file {path}" for path in sorted(extra)]
    return problems


def info_mismatch(folder: Path, name: str, wanted: Mapping[str, Any]) -> list[str]:
    """How the generation arguments stored in ``folder/name`` differ from ``wanted``."""
    try:
        stored = json.loads((folder / name).read_text())
    except (OSError, ValueError) as exc:
        return [f"{name} is unreadable ({exc})"]
    return [f"it was generated with {key}={stored.get(key)!r}, {value!r} was asked for"
            for key, value in wanted.items() if stored.get(key) != value]


# ============================================================================ the cache
def load_or_build(root: Path, title: str, problems: Callable[[Path], list[str]],
                  build: Callable[[Path], Path]) -> Path:
    """``root`` if ``problems(root)`` is empty, else ``build(root)`` (with a ``UserWarning``
    naming the first problem when a folder was there). One process at a time: the others wait
    for the lock, then find the finished folder."""
    with exclusive_lock(root.parent / f".{root.name}.lock"):
        if not root.exists() or (root.is_dir() and not any(root.iterdir())):
            logger.info("no %s dataset at %s; generating it", title, root)
            return build(root)
        found = problems(root)
        if found:
            more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
            warnings.warn(f"the {title} cache at {root} cannot be used ({found[0]}{more}); "
                          "regenerating it", stacklevel=3)
            return build(root)
    return root

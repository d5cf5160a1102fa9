"""Safe file writing and checksums: nothing half-written is ever left under its final name."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path


class ChecksumError(ValueError):
    """A file (downloaded or shipped) does not have the checksum it must have."""


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path``.

    If the block raises, the temporary file is removed and ``path`` is left untouched, so a
    crash or Ctrl-C never leaves a truncated file under the final name.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        tmp.chmod(0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


@contextlib.contextmanager
def exclusive_lock(path: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive lock on the file ``path`` (created if needed) for the block.

    Processes that build the same cache (e.g. parallel test workers, two notebooks) take turns:
    the second one waits, then finds the finished cache. Where ``fcntl`` is missing (Windows)
    the block runs unlocked.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    lock = Path(path)
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def file_digest(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """Hex digest of a file's bytes (``"sha256"`` or ``"md5"``), read in 1 MiB chunks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def git_blob_sha1(path: str | os.PathLike) -> str:
    """Git's object id of a file: sha1 of ``b"blob <size>\\0"`` followed by its bytes."""
    size = os.path.getsize(path)
    digest = hashlib.sha1(f"blob {size}\0".encode())
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def checksum(path: str | os.PathLike, algorithm: str) -> str:
    """Hex digest of a file by ``"md5"``, ``"sha256"`` or ``"git-blob"`` (:func:`git_blob_sha1`)."""
    return git_blob_sha1(path) if algorithm == "git-blob" else file_digest(path, algorithm)


def download_verified(urls: Sequence[str], target: str | os.PathLike, algorithm: str,
                      expected: str, timeout_s: float = 60.0) -> Path:
    """Download the first of ``urls`` whose bytes have checksum ``expected`` to ``target``.

    Atomic: a failed, interrupted or mismatching download leaves nothing under ``target``.
    Raises :class:`ChecksumError` listing what each URL gave when none succeeds.
    """
    target, errors = Path(target), []
    for url in urls:
        try:
            with atomic_path(target) as tmp:
                with urllib.request.urlopen(url, timeout=timeout_s) as response, \
                        open(tmp, "wb") as out:
                    while chunk := response.read(1 << 20):
                        out.write(chunk)
                actual = checksum(tmp, algorithm)
                if actual != expected:
                    raise ChecksumError(f"{algorithm} of {url} is {actual}, expected {expected}")
            return target
        except (urllib.error.URLError, OSError, ChecksumError) as exc:
            errors.append(f"  - {url}: {exc}")
    raise ChecksumError(f"could not download a valid {target.name}; no partial file was kept. "
                        "Tried:\n" + "\n".join(errors))

"""Safe file writing and checksums: nothing half-written is ever left under its final name."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any


class ChecksumError(ValueError):
    """A file (downloaded or shipped) does not have the checksum it must have."""


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path``.

    If the block raises, the temporary file is removed and ``path`` is left untouched, so a
    crash or Ctrl-C never leaves a truncated file under the final name. A full disk, or another
    failure to write, is re-raised as an ``OSError`` that names ``path`` (:func:`write_error`).
    """
    final = Path(path)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    except OSError as exc:
        raise write_error(final, exc) from exc
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        tmp.chmod(0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp, final)
    except OSError as exc:
        if exc.errno not in WRITE_ERRORS or getattr(exc, "names_its_file", False):
            raise  # not a write failure, or already reported by an inner atomic write
        raise write_error(final, exc) from exc
    finally:
        tmp.unlink(missing_ok=True)


#: errno values that mean "the data could not be written", whatever the file.
WRITE_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EIO)


def write_error(path: Path, exc: OSError) -> OSError:
    """An ``OSError`` of the same kind whose message names ``path`` and the way out."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        free = shutil.disk_usage(path.parent).free / 1e6 if path.parent.exists() else 0.0
        reason = (f"no space left on the device to write {path} ({free:.0f} MB free in "
                  f"{path.parent})")
        remedy = "Free some space, then try again (training: --resume)"
    else:
        reason = f"could not write {path}: {exc.strerror or exc}"
        remedy = "Choose a folder you can write to"
    error = type(exc)(exc.errno, f"{reason}; the previous {path.name}, if any, is untouched. "
                                 f"{remedy}.")
    error.names_its_file = True
    return error


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files (``.<name>.<random>.tmp``) that :func:`atomic_path` leaves in
    ``folder`` when its process is killed mid-write; returns what was removed. Call it only
    where no other process is writing into ``folder``."""
    folder = Path(folder)
    stale = sorted(p for p in folder.glob(".*.tmp") if p.is_file()) if folder.is_dir() else []
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def check_writable(path: str | os.PathLike, what: str = "output",
                   reserve: int = 1 << 20) -> None:
    """Raise ``OSError`` naming ``path`` unless a file can be written there; tested by writing
    ``reserve`` bytes (1 MiB) to a temporary file beside it and removing it, so a long
    computation never ends unable to save (an empty file is created even on a full disk)."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, f"{what} {path} is a folder; give a file name")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.",
                                         suffix=".tmp") as probe:
            probe.write(bytes(reserve))
            probe.flush()
            os.fsync(probe.fileno())
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise write_error(path, exc) from exc
        raise OSError(exc.errno, f"cannot write {what} {path} ({exc.strerror or exc}); choose "
                                 "another path") from exc


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


class FolderLockedError(OSError):
    """Another process holds the folder's lock (e.g. it is training into it)."""


class FolderLock:
    """An exclusive, non-blocking lock on a folder, so that two writers never share it.

    The lock is ``flock`` on ``<folder>/.lock``, which holds the owner's process id and
    command line; the operating system releases it when the owner exits, however it ends, so a
    killed run never leaves a stale lock. :meth:`acquire` is idempotent. Where ``fcntl`` is
    missing (Windows) nothing is locked.
    """

    def __init__(self, folder: str | os.PathLike, what: str = "folder") -> None:
        self.folder, self.what = Path(folder), what
        self._handle: Any = None

    @property
    def held(self) -> bool:
        return self._handle is not None

    def acquire(self) -> FolderLock:
        """Take the lock, or raise :class:`FolderLockedError` naming the process holding it."""
        if self.held:
            return self
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows
            return self
        self.folder.mkdir(parents=True, exist_ok=True)
        handle = open(self.folder / ".lock", "a+")  # noqa: SIM115 (closed in release())
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "another process"
            handle.close()
            raise FolderLockedError(
                f"the {self.what} {self.folder} is in use by {owner}; wait for it to finish or "
                "stop it, or choose another folder") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"process {os.getpid()} ({' '.join(sys.argv)[:200]})\n")
        handle.flush()
        self._handle = handle
        return self

    def release(self) -> None:
        if self._handle is not None:
            self._handle.close()  # closing the file releases the flock
            self._handle = None


def file_digest(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """Hex digest of a file's bytes (``"sha256"`` or ``"md5"``), read in 1 MiB chunks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_shipped_file(path: str | os.PathLike, expected_sha256: str | None, what: str) -> Path:
    """Raise :class:`ChecksumError` unless the file that ships in the repository at ``path`` has
    sha256 ``expected_sha256``; the message says how to restore it. Returns ``path``."""
    path = Path(path)
    actual = file_digest(path) if path.exists() else "missing"
    if actual != expected_sha256:
        state = "missing" if actual == "missing" else "damaged"
        raise ChecksumError(f"the shipped {what} {path} is {state} (sha256 {actual[:12]}, the "
                            f"manifest says {str(expected_sha256)[:12]}); restore it with "
                            f"`git checkout -- {path}`. Nothing was regenerated over it.")
    return path


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


#: A download's temporary file untouched this long was left by a killed process (a live one
#: writes a chunk every second or so).
STALE_DOWNLOAD_S = 600.0


def _remove_stale_downloads(target: Path) -> None:
    """Delete temporary files of earlier downloads of ``target`` that a kill left behind."""
    if not target.parent.is_dir():
        return
    now = time.time()
    for path in target.parent.glob(f".{target.name}.*.tmp"):
        with contextlib.suppress(OSError):
            if now - path.stat().st_mtime > STALE_DOWNLOAD_S:
                path.unlink()


def download_verified(urls: Sequence[str], target: str | os.PathLike, algorithm: str,
                      expected: str, timeout_s: float = 60.0) -> Path:
    """Download the first of ``urls`` whose bytes have checksum ``expected`` to ``target``.

    Atomic: a failed, interrupted or mismatching download leaves nothing under ``target``.
    Raises :class:`ChecksumError` listing what each URL gave when none succeeds.
    """
    target, errors = Path(target), []
    _remove_stale_downloads(target)
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

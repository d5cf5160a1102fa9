"""Atomic writes keep the old file on failure; the cache lock serialises concurrent builders."""

import multiprocessing
import os
import time

import pytest

from cdae.files import atomic_path, atomic_write_bytes, exclusive_lock, file_digest


def test_atomic_path_keeps_the_old_file_when_the_writer_fails(tmp_path):
    target = tmp_path / "data.bin"
    atomic_write_bytes(target, b"old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"half-writ")
        raise RuntimeError("crash")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["data.bin"]


def test_atomic_files_get_normal_permissions(tmp_path):
    target = tmp_path / "x"
    atomic_write_bytes(target, b"1")
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask
    assert file_digest(target, "md5") == "c4ca4238a0b923820dcc509a6f75849b"


def _hold_lock_and_record(lock, log, tag):
    with exclusive_lock(lock):
        with open(log, "a") as handle:
            handle.write(f"{tag} in\n")
        time.sleep(0.3)
        with open(log, "a") as handle:
            handle.write(f"{tag} out\n")


def test_exclusive_lock_serialises_processes(tmp_path):
    lock, log = tmp_path / ".cache.lock", tmp_path / "log.txt"
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_hold_lock_and_record, args=(lock, log, tag))
               for tag in "ab"]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    events = [line.split() for line in log.read_text().splitlines()]
    # each process's "in" is directly followed by its own "out": no interleaving
    assert [e[1] for e in events] == ["in", "out", "in", "out"]
    assert events[0][0] == events[1][0] != events[2][0] == events[3][0]

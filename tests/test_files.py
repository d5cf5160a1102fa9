"""Atomic writes keep the old file on failure; the cache lock serialises concurrent builders."""

import errno
import multiprocessing
import os
import tempfile
import time

import pytest
import torch

from cdae.checkpoint import save_checkpoint
from cdae.cli import main
from cdae.files import (
    atomic_path,
    atomic_write_bytes,
    check_writable,
    exclusive_lock,
    file_digest,
)


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


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux)")
def test_a_full_disk_is_reported_naming_the_file_and_the_old_one_survives(tmp_path, monkeypatch):
    target = tmp_path / "last.pt"
    save_checkpoint({"step": 1, "w": torch.ones(3)}, target)
    before = target.read_bytes()
    real_mkstemp = tempfile.mkstemp

    def full_disk_tmp(*args, **kwargs):  # the temporary file lives on a full device
        fd, name = real_mkstemp(*args, **kwargs)
        os.close(fd)
        os.unlink(name)
        os.symlink("/dev/full", name)
        return os.open(name, os.O_WRONLY), name

    monkeypatch.setattr(tempfile, "mkstemp", full_disk_tmp)
    with pytest.raises(OSError, match=f"no space left on the device to write {target}"):
        save_checkpoint({"step": 2, "w": torch.zeros(1000)}, target)
    monkeypatch.undo()
    assert target.read_bytes() == before and list(tmp_path.glob(".*.tmp")) == []


def test_check_writable_refuses_folders_and_impossible_paths_before_any_work(tmp_path, capsys):
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(IsADirectoryError, match="is a folder"):
        check_writable(tmp_path)
    with pytest.raises(OSError, match="cannot write"):
        check_writable(tmp_path / "a_file" / "report.json")
    check_writable(tmp_path / "new" / "report.json")
    assert list((tmp_path / "new").iterdir()) == []
    # evaluate checks its --json path before it even reads the checkpoint
    assert main(["evaluate", str(tmp_path / "missing.pt"), "--json",
                 str(tmp_path / "a_file" / "report.json")]) == 2
    assert "cannot write --json file" in capsys.readouterr().err


def test_a_full_disk_is_found_before_the_work_not_after(tmp_path, monkeypatch):
    def no_space(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)  # the probe's bytes do not fit
    with pytest.raises(OSError, match=r"no space left on the device to write .*report.json"):
        check_writable(tmp_path / "report.json", "--json file")
    assert list(tmp_path.iterdir()) == []  # the probe is gone


def test_a_log_row_that_does_not_fit_is_cut_off_and_the_message_names_the_file(tmp_path,
                                                                              monkeypatch):
    from cdae.train import runlog

    log = runlog.RunLog(tmp_path / "log.csv")
    log.write({"step": 1, "loss": 0.5})
    real_write = os.write

    def half_then_full(fd, data):
        real_write(fd, data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(runlog.os, "write", half_then_full)
    with pytest.raises(OSError, match=r"no space left on the device to write .*log.csv"):
        log.write({"step": 2, "loss": 0.4})
    monkeypatch.undo()
    log.close()  # no second error from closing
    lines = (tmp_path / "log.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in lines] == ["step", "1"]  # no half row

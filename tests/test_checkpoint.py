"""Checkpoints: atomic writes survive a crash; corrupt, altered and foreign files are refused;
export never overwrites without being asked."""

from __future__ import annotations

import errno
import random
import shutil
import warnings

import numpy as np
import pytest
import torch
from corrupt import flip_tensor_bytes
from test_train import tiny_config, tiny_dataset

from cdae import pretrained
from cdae.checkpoint import (
    CheckpointError,
    check_compatible,
    load_checkpoint,
    load_model,
    save_checkpoint,
)
from cdae.cli import main
from cdae.config import ExperimentConfig
from cdae.counterfactual import CounterfactualModel
from cdae.files import file_digest, write_error
from cdae.pretrained import export_checkpoint, load_pretrained, pretrained_path, read_manifest
from cdae.train import Trainer, train
from cdae.train.rng import capture_rng, restore_rng


@pytest.fixture
def run(tmp_path):
    """A 2-step run in tmp_path / "run"; returns its checkpoint."""
    return train(tiny_config(steps=2, checkpoint_every=1, keep_every=1), tmp_path / "run",
                 dataset=tiny_dataset(), progress=False)


def test_a_crash_while_saving_leaves_the_previous_checkpoint_intact(run, monkeypatch):
    before = load_checkpoint(run)
    real_save = torch.save

    def crash_halfway(obj, handle, *args, **kwargs):
        real_save(obj, handle, *args, **kwargs)
        handle.truncate(handle.tell() // 2)  # half the bytes reached the disk, then the crash
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash_halfway)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint({**before, "step": 99}, run)
    monkeypatch.undo()
    after = load_checkpoint(run)
    assert after["step"] == before["step"] == 2
    assert list(run.parent.glob("*.tmp")) == []  # no temporary file left behind
    torch.testing.assert_close(after["model"], before["model"])


def test_a_truncated_checkpoint_is_reported_as_corrupt_with_the_alternatives(run):
    data = run.read_bytes()
    run.write_bytes(data[: len(data) // 3])
    with pytest.raises(CheckpointError, match="corrupt or truncated") as error:
        load_checkpoint(run)
    assert "step_0000001.pt" in str(error.value)  # an earlier checkpoint is suggested
    with pytest.raises(CheckpointError, match="corrupt"):
        load_model(run)
    with pytest.raises(CheckpointError, match="corrupt"):  # resuming from it says so too
        Trainer(tiny_config(steps=2), run.parent, resume=True, dataset=tiny_dataset())


def test_garbage_foreign_and_unsafe_files_are_refused(tmp_path):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(garbage)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(2)}, foreign)
    with pytest.raises(CheckpointError, match="not a cdae checkpoint"):
        load_checkpoint(foreign)
    unsafe = tmp_path / "unsafe.pt"
    torch.save({"format": "cdae-checkpoint", "payload": ValueError("x")}, unsafe)
    with pytest.raises(CheckpointError, match="not written by cdae"):
        load_checkpoint(unsafe)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")


def test_a_checkpoint_of_another_format_version_is_refused(run):
    state = load_checkpoint(run)
    save_checkpoint(state, run)
    raw = torch.load(run, weights_only=True)
    raw["version"] = 999
    torch.save(raw, run)
    with pytest.raises(CheckpointError, match="format version 999"):
        load_checkpoint(run)


def test_resuming_with_another_model_or_graph_names_the_differing_fields(run):
    spec = tiny_config(steps=4).to_dict()
    spec["model"]["base_channels"] = 16
    spec["graph"] = {"nodes": ["thickness", "intensity", "digit"], "edges": [],
                     "categorical": {"digit": 10}}
    with pytest.raises(CheckpointError) as error:
        Trainer(ExperimentConfig.from_dict(spec), run.parent, resume=True,
                dataset=tiny_dataset())
    message = str(error.value)
    assert "model.base_channels: checkpoint 8, config 16" in message
    assert "graph.edges: checkpoint [['thickness', 'intensity']], config []" in message
    # train settings may change on resume (e.g. more steps): no error
    state = load_checkpoint(run)
    check_compatible(state, tiny_config(steps=10, lr=1e-4).to_dict(), state["graph"], run)


def test_random_states_round_trip_through_a_weights_only_checkpoint(tmp_path):
    generator = torch.Generator().manual_seed(5)
    state = capture_rng({"g": generator})
    save_checkpoint({"rng": state}, tmp_path / "rng.pt")

    def draw() -> tuple:
        numpy_draw = np.random.rand()  # noqa: NPY002 (the global state is under test)
        return random.random(), numpy_draw, torch.rand(1), torch.rand(1, generator=generator)

    expected = draw()
    restore_rng(torch.load(tmp_path / "rng.pt", weights_only=True)["rng"], {"g": generator})
    again = draw()
    assert again[:2] == expected[:2]
    assert torch.equal(again[2], expected[2]) and torch.equal(again[3], expected[3])


def test_load_model_gives_the_ema_or_the_raw_weights(run):
    state = load_checkpoint(run)
    ema_model = load_model(run).model
    raw_model = load_model(run, ema=False).model
    name = "unet.stem.weight"
    torch.testing.assert_close(ema_model.state_dict()[name], state["ema"]["model"][name])
    torch.testing.assert_close(raw_model.state_dict()[name], state["model"][name])
    assert not torch.equal(state["ema"]["model"][name], state["model"][name])


# ---------------------------------------------------------------------------- content checksum
def test_flipped_bytes_in_tensor_data_are_refused_by_every_loader(run, capsys):
    flip_tensor_bytes(run)
    with pytest.raises(CheckpointError, match="fails its content checksum") as error:
        load_checkpoint(run)
    message = str(error.value)
    assert str(run) in message and "step_0000001.pt" in message  # names an earlier one
    with pytest.raises(CheckpointError, match="content checksum"):
        load_model(run)
    with pytest.raises(CheckpointError, match="content checksum"):
        CounterfactualModel.from_checkpoint(run)
    with pytest.raises(CheckpointError, match="content checksum"):  # resume does not train on
        Trainer(tiny_config(steps=4), run.parent, resume=True, dataset=tiny_dataset())
    assert main(["evaluate", str(run), "--n", "2", "--steps", "1"]) == 2
    assert "content checksum" in capsys.readouterr().err


def test_the_earlier_checkpoint_hint_lists_only_loadable_files(run):
    (run.parent / "notes.pt").write_bytes(b"not a checkpoint")
    earlier = run.parent / "step_0000001.pt"
    earlier.write_bytes(earlier.read_bytes()[:500])
    run.write_bytes(run.read_bytes()[:1000])
    with pytest.raises(CheckpointError) as error:
        load_checkpoint(run)
    hint = str(error.value).split("Try an earlier checkpoint")[1]
    assert "step_0000002.pt" in hint
    assert "step_0000001.pt" not in hint and "notes.pt" not in hint


def test_a_checkpoint_without_a_checksum_loads_with_a_warning(run, tmp_path):
    state = load_checkpoint(run)
    old = tmp_path / "old.pt"  # as written before checksums existed
    torch.save({"format": "cdae-checkpoint", "version": 1, **state}, old)
    with pytest.warns(UserWarning, match="contents cannot be verified"):
        loaded = load_checkpoint(old)
    assert loaded["step"] == state["step"]
    torch.testing.assert_close(loaded["model"], state["model"], rtol=0, atol=0)
    with warnings.catch_warnings():  # a checksummed one loads silently
        warnings.simplefilter("error")
        load_checkpoint(run)


def test_the_shipped_checkpoint_loads_bit_exactly_and_an_altered_copy_is_refused(tmp_path):
    shipped = pretrained_path("morphomnist_small")
    raw = torch.load(shipped, weights_only=True)
    with warnings.catch_warnings():  # its manifest vouches for it: no warning
        warnings.simplefilter("error")
        cf = load_pretrained("morphomnist_small")
    for name, tensor in cf.model.state_dict().items():
        assert torch.equal(tensor, raw["ema"]["model"][name]), name
    folder = tmp_path / "pretrained"
    shutil.copytree(shipped.parent, folder)
    flip_tensor_bytes(folder / shipped.name)
    with pytest.raises(CheckpointError, match="git checkout"):
        CounterfactualModel.from_checkpoint(folder / shipped.name)
    lone = tmp_path / "copy.pt"  # an intact copy away from its manifest is still recognised
    shutil.copyfile(shipped, lone)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        CounterfactualModel.from_checkpoint(lone)
    flip_tensor_bytes(lone)  # the shipped file carries its content checksum: an altered copy
    with pytest.raises(CheckpointError, match="fails its content checksum"):
        CounterfactualModel.from_checkpoint(lone)


# ---------------------------------------------------------------------------- export
def test_export_never_overwrites_its_source_or_another_file_without_force(run, capsys):
    before = run.read_bytes()
    assert main(["export", str(run), str(run)]) == 2
    assert "onto itself" in capsys.readouterr().err
    with pytest.raises(ValueError, match="onto itself"):
        export_checkpoint(run, run, force=True)
    assert run.read_bytes() == before
    target = run.parent / "small.pt"
    entry = export_checkpoint(run, target)
    assert read_manifest(run.parent)["small.pt"]["sha256"] == entry["sha256"]
    manifest = (run.parent / "MANIFEST.json").read_bytes()
    assert main(["export", str(run.parent / "step_0000001.pt"), str(target)]) == 2
    assert "--force" in capsys.readouterr().err
    assert (run.parent / "MANIFEST.json").read_bytes() == manifest
    assert load_checkpoint(target)["step"] == 2
    assert main(["export", str(run.parent / "step_0000001.pt"), str(target), "--force"]) == 0
    assert load_checkpoint(target)["step"] == 1
    assert read_manifest(run.parent)["small.pt"]["sha256"] == file_digest(target)


def test_resume_from_an_exported_checkpoint_says_what_the_file_is(run, tmp_path, capsys):
    folder = tmp_path / "from_export"
    folder.mkdir()
    export_checkpoint(run, folder / "last.pt")
    before = (folder / "last.pt").read_bytes()
    with pytest.raises(FileExistsError, match=r"exported \(inference-only\).*step 2"):
        Trainer(tiny_config(steps=4), folder, resume=True, dataset=tiny_dataset())
    assert (folder / "last.pt").read_bytes() == before
    Trainer(tiny_config(steps=4), run.parent, resume=True, dataset=tiny_dataset(),
            progress=False).fit()  # the run's own last.pt resumes


def test_a_failed_manifest_write_leaves_checkpoint_and_manifest_as_they_were(run, monkeypatch):
    target = run.parent / "small.pt"
    export_checkpoint(run, target)
    checkpoint, manifest = target.read_bytes(), (run.parent / "MANIFEST.json").read_bytes()

    def full_disk(path, data):
        raise write_error(path, OSError(errno.ENOSPC, "No space left on device"))

    monkeypatch.setattr(pretrained, "atomic_write_bytes", full_disk)
    with pytest.raises(OSError, match="no space left on the device to write .*MANIFEST.json"):
        export_checkpoint(run.parent / "step_0000001.pt", target, force=True)
    assert target.read_bytes() == checkpoint
    assert (run.parent / "MANIFEST.json").read_bytes() == manifest
    assert sorted(p.name for p in run.parent.glob(".*.tmp")) == []


def test_a_full_disk_during_export_names_the_target_not_the_staging_file(run, monkeypatch):
    target = run.parent / "small.pt"
    real_save = torch.save

    def half_then_full(obj, handle, *args, **kwargs):
        real_save(obj, handle, *args, **kwargs)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", half_then_full)
    named = r"no space left on the device to write \S*run/small.pt "
    with pytest.raises(OSError, match=named) as info:
        export_checkpoint(run, target)
    assert ".tmp" not in str(info.value)
    monkeypatch.undo()
    assert not target.exists() and sorted(p.name for p in run.parent.glob(".*.tmp")) == []


def test_a_run_saved_before_checksums_resumes_with_a_warning_and_saves_a_checksum(run):
    state = load_checkpoint(run)
    torch.save({"format": "cdae-checkpoint", "version": 1, **state}, run)  # an older cdae's
    with pytest.warns(UserWarning, match="cannot be verified"):
        trainer = Trainer(tiny_config(steps=3, checkpoint_every=1), run.parent, resume=True,
                          dataset=tiny_dataset(), progress=False)
    assert trainer.step == 2
    trainer.fit()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_checkpoint(run)["step"] == 3
    assert "checksum" in torch.load(run, weights_only=True)

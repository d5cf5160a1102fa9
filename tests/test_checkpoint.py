"""Checkpoints: atomic writes survive a crash, corrupt files and foreign configs are refused."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from test_train import tiny_config, tiny_dataset

from cdae.checkpoint import (
    CheckpointError,
    check_compatible,
    load_checkpoint,
    load_model,
    save_checkpoint,
)
from cdae.config import ExperimentConfig
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

    def crash_halfway(obj, path, *args, **kwargs):
        real_save(obj, path, *args, **kwargs)
        with open(path, "r+b") as handle:  # half the bytes reached the disk, then the crash
            handle.truncate(handle.seek(0, 2) // 2)
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

"""Training: loss falls and the log is written, exact resume, NaN stop, Ctrl-C, configs, CLI."""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from PIL import Image

from cdae.checkpoint import load_checkpoint, load_model
from cdae.cli import main
from cdae.config import ConfigError, ExperimentConfig, load_config
from cdae.data.datasets import CausalImageDataset
from cdae.graph import CausalGraph
from cdae.train import (
    RunExistsError,
    Trainer,
    TrainingDiverged,
    TrainingInterrupted,
    train,
    train_from_config,
)
from cdae.train.batches import BatchOrder
from cdae.train.optim import lr_at

TINY_MODEL = {
    "image_size": 16, "in_channels": 1, "latent_dim": 2, "encoder_channels": [8, 16],
    "base_channels": 8, "channel_mult": [1, 2], "num_res_blocks": 1,
    "attention_resolutions": [8], "attention_heads": 2, "mechanism_hidden": 8,
    "timesteps": 100, "gamma": 0.1, "dropout": 0.0,
}


def tiny_dataset(n: int = 48, seed: int = 0) -> CausalImageDataset:
    """Morpho-MNIST-like toy data: a bright square whose size is 'thickness' and whose grey
    level is 'intensity' (a noisy function of thickness), plus a 'digit' class."""
    rng = np.random.default_rng(seed)
    thickness = rng.uniform(1.0, 5.0, n)
    intensity = 80 + 30 * thickness + rng.normal(0, 5, n)
    images = np.zeros((n, 16, 16), dtype=np.uint8)
    for i, (t, v) in enumerate(zip(thickness, intensity, strict=True)):
        half = int(round(t))
        images[i, 8 - half:8 + half, 8 - half:8 + half] = int(np.clip(v, 0, 255))
    labels = pd.DataFrame({"thickness": thickness, "intensity": intensity,
                           "digit": rng.integers(0, 10, n)})
    return CausalImageDataset(images, labels, CausalGraph.preset("morphomnist"))


def tiny_config(**train: Any) -> ExperimentConfig:
    settings = {"batch_size": 8, "steps": 6, "warmup": 2, "lr": 1e-3, "log_every": 1,
                "checkpoint_every": 3, "threads": 1, "device": "cpu", **train}
    return ExperimentConfig.from_dict({"name": "tiny", "model": dict(TINY_MODEL),
                                       "train": settings})


def read_log(run: Path) -> list[dict[str, str]]:
    with open(run / "log.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def weights(checkpoint: Path) -> dict[str, torch.Tensor]:
    state = load_checkpoint(checkpoint)
    return {**{f"model.{k}": v for k, v in state["model"].items()},
            **{f"ema.{k}": v for k, v in state["ema"]["model"].items()}}


# ---------------------------------------------------------------------------- training runs
@pytest.mark.slow
def test_a_short_run_lowers_the_loss_and_writes_log_and_checkpoint(tmp_path):
    config = tiny_config(steps=40, log_every=10, checkpoint_every=20, lr=3e-3, warmup=5)
    checkpoint = train(config, tmp_path, dataset=tiny_dataset(), progress=False)
    rows = read_log(tmp_path)
    assert [int(r["step"]) for r in rows] == [10, 20, 30, 40]
    mse = [float(r["mse"]) for r in rows]
    assert all(math.isfinite(float(r["loss"])) for r in rows)
    assert mse[-1] < 0.8 * mse[0], mse  # the denoiser learns something in 40 steps
    assert load_checkpoint(checkpoint)["step"] == 40
    assert (tmp_path / "config.yaml").is_file()
    assert float(rows[0]["images_per_s"]) > 0 and float(rows[-1]["elapsed_s"]) > 0
    # each module's gradient norm before clipping is logged
    assert all(0 < float(r[k]) < math.inf for r in rows for k in ("grad_decoder", "grad_latent"))


@pytest.mark.slow
def test_resume_repeats_the_uninterrupted_run_exactly(tmp_path):
    config, data = tiny_config(steps=6), tiny_dataset()
    straight = train(config, tmp_path / "straight", dataset=data, progress=False)
    Trainer(config, tmp_path / "split", dataset=data, progress=False).fit(until=3)
    assert load_checkpoint(tmp_path / "split" / "last.pt")["step"] == 3
    resumed = train(config, tmp_path / "split", resume=True, dataset=data, progress=False)

    loss_a = [float(r["loss"]) for r in read_log(tmp_path / "straight")]
    loss_b = [float(r["loss"]) for r in read_log(tmp_path / "split")]
    assert len(loss_a) == len(loss_b) == 6  # the resumed log has no duplicated rows
    np.testing.assert_allclose(loss_b, loss_a, rtol=1e-6, atol=1e-7)
    wa, wb = weights(straight), weights(resumed)
    for name in wa:
        torch.testing.assert_close(wb[name], wa[name], rtol=1e-6, atol=1e-7, msg=name)
    opt_a, opt_b = (load_checkpoint(p)["optimizer"]["state"] for p in (straight, resumed))
    torch.testing.assert_close(opt_b, opt_a, rtol=1e-6, atol=1e-7)


def test_an_existing_run_is_not_overwritten_without_resume(tmp_path):
    train(tiny_config(steps=2), tmp_path, dataset=tiny_dataset(), progress=False)
    with pytest.raises(RunExistsError, match="resume"):
        train(tiny_config(steps=2), tmp_path, dataset=tiny_dataset(), progress=False)


def test_nan_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    data = tiny_dataset()
    trainer = Trainer(tiny_config(steps=8, log_every=4), tmp_path, dataset=data, progress=False)
    original = trainer.model.loss

    def poisoned(x, y, diffusion, step, **kwargs):
        out = original(x, y, diffusion, step, **kwargs)
        if step == 4:  # the 5th optimiser step
            out["loss"] = out["loss"] * float("nan")
        return out

    monkeypatch.setattr(trainer.model, "loss", poisoned)
    with pytest.raises(TrainingDiverged) as error:
        trainer.fit()
    message = str(error.value)
    assert "step 5" in message and str(tmp_path / "last.pt") in message
    assert "(step 3) is intact" in message
    state = load_checkpoint(tmp_path / "last.pt")
    assert state["step"] == 3
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


def test_ctrl_c_finishes_the_step_saves_and_says_where_to_resume(tmp_path, monkeypatch):
    trainer = Trainer(tiny_config(steps=50, checkpoint_every=100), tmp_path,
                      dataset=tiny_dataset(), progress=False)
    original = trainer.model.loss

    def interrupting(x, y, diffusion, step, **kwargs):
        if step == 2:
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C in the middle of step 3
        return original(x, y, diffusion, step, **kwargs)

    monkeypatch.setattr(trainer.model, "loss", interrupting)
    with pytest.raises(TrainingInterrupted, match="interrupted at step 3.*--resume"):
        trainer.fit()
    checkpoint = tmp_path / "last.pt"
    assert load_checkpoint(checkpoint)["step"] == 3  # the step in flight was completed, then saved
    resumed = Trainer(tiny_config(steps=4, checkpoint_every=100), tmp_path, resume=True,
                      dataset=tiny_dataset(), progress=False)
    assert resumed.step == 3


def test_ctrl_c_in_the_command_line_exits_130(tmp_path, monkeypatch, capsys):
    write_folder_dataset(tmp_path / "data")
    spec = tiny_config(steps=50, checkpoint_every=100).to_dict()
    spec["data"] = {"name": "folder", "root": str(tmp_path / "data"), "split": "train"}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(spec))
    original = Trainer.train_step

    def interrupting(self, micro_batches):
        if self.step == 1:
            os.kill(os.getpid(), signal.SIGINT)
        return original(self, micro_batches)

    monkeypatch.setattr(Trainer, "train_step", interrupting)
    assert main(["train", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "run")]) == 130
    err = capsys.readouterr().err
    assert "interrupted at step 2" in err and "resume with --resume" in err
    assert load_checkpoint(tmp_path / "run" / "last.pt")["step"] == 2

    def twice(self, micro_batches):  # a second Ctrl-C aborts at once, without saving
        if self.step == 1:
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)
        return original(self, micro_batches)

    monkeypatch.setattr(Trainer, "train_step", twice)
    assert main(["train", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "aborted")]) == 130
    assert "without saving" in capsys.readouterr().err
    assert not (tmp_path / "aborted" / "last.pt").exists()


def test_temporary_files_of_a_killed_save_are_removed_at_the_next_start(tmp_path, capsys):
    train(tiny_config(steps=2), tmp_path, dataset=tiny_dataset(), progress=False)
    killed = subprocess.run([sys.executable, "-c", (
        "import os, signal\n"
        "from cdae.files import atomic_path\n"
        f"with atomic_path({str(tmp_path / 'last.pt')!r}) as tmp:\n"
        "    tmp.write_bytes(b'half a checkpoint')\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n")], env={**os.environ}, check=False)
    assert killed.returncode == -signal.SIGKILL
    assert len(list(tmp_path.glob(".last.pt.*.tmp"))) == 1
    Trainer(tiny_config(steps=4), tmp_path, resume=True, dataset=tiny_dataset(), progress=False)
    assert list(tmp_path.glob("*.tmp")) == []
    assert "removed 1 temporary file(s)" in capsys.readouterr().out


def test_run_folder_and_device_mistakes_are_messages(tmp_path, capsys):
    write_folder_dataset(tmp_path / "data")
    spec = tiny_config(steps=1).to_dict()
    spec["data"] = {"name": "folder", "root": str(tmp_path / "data"), "split": "train"}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(spec))
    (tmp_path / "taken").write_text("a file")
    assert main(["train", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "taken")]) == 2
    assert "run folder" in capsys.readouterr().err
    assert main(["train", str(tmp_path / "c.yaml"), "--device", "tpu9",
                 "--out", str(tmp_path / "run")]) == 2
    assert "unknown device 'tpu9'" in capsys.readouterr().err
    shipped = Path(__file__).parents[1] / "data" / "pretrained" / "morphomnist_small.pt"
    assert main(["evaluate", str(shipped), "--device", "tpu9"]) == 2
    assert "unknown device 'tpu9'" in capsys.readouterr().err


class PlainDataset(torch.utils.data.Dataset):
    """Any map-style dataset with ``graph``, ``normalizer`` and ``image_shape``: no in-memory
    fast path, so batches go through a DataLoader."""

    def __init__(self, inner: CausalImageDataset) -> None:
        self.inner = inner
        self.graph, self.normalizer, self.image_shape = inner.graph, inner.normalizer, (1, 16, 16)

    def __len__(self) -> int:
        return len(self.inner)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.inner[index]


def test_a_plain_dataset_through_a_dataloader_trains_like_the_in_memory_path(tmp_path):
    config = tiny_config(steps=3, num_workers=0)
    fast = train(config, tmp_path / "fast", dataset=tiny_dataset(), progress=False)
    plain = train(config, tmp_path / "plain", dataset=PlainDataset(tiny_dataset()),
                  progress=False)
    loss_fast = [float(r["loss"]) for r in read_log(tmp_path / "fast")]
    loss_plain = [float(r["loss"]) for r in read_log(tmp_path / "plain")]
    np.testing.assert_allclose(loss_plain, loss_fast, rtol=1e-6)
    torch.testing.assert_close(weights(plain), weights(fast))


@pytest.mark.parametrize("mode", ["split", "random_drop"])
def test_weak_supervision_hides_the_requested_share_of_labels(tmp_path, mode):
    config = ExperimentConfig.from_dict({
        **tiny_config().to_dict(),
        "data": {"name": "morphomnist", "labelled_fraction": 0.25, "weak_supervision": mode},
    })
    data = tiny_dataset(n=400)
    if mode == "split":
        data.labelled_mask = np.arange(400) % 4 == 0  # as build_dataset(labelled_fraction=...)
    trainer = Trainer(config, tmp_path, dataset=data, progress=False)
    seen = []
    for step, micro in zip(range(8), trainer.batches(0, 8), strict=False):
        trainer.step = step
        (_, _, indices), = micro
        rows = trainer._labelled_rows(indices, trainer._reseed(0))
        seen.append(rows)
        if mode == "split":
            assert torch.equal(rows, torch.as_tensor(indices % 4 == 0))
    share = torch.cat(seen).float().mean().item()
    assert 0.05 < share < 0.5, share
    trainer.step = 0
    assert load_checkpoint(trainer.fit(until=2))["step"] == 2


# ---------------------------------------------------------------------------- pieces
def test_batch_order_is_a_seeded_permutation_per_epoch_and_ranks_split_the_batch():
    order = BatchOrder(n=20, global_batch=4, seed=3)
    epoch0 = torch.cat([order.global_indices(s) for s in range(5)])
    epoch1 = torch.cat([order.global_indices(s) for s in range(5, 10)])
    assert sorted(epoch0.tolist()) == list(range(20)) == sorted(epoch1.tolist())
    assert not torch.equal(epoch0, epoch1)
    assert torch.equal(BatchOrder(20, 4, seed=3).global_indices(7), order.global_indices(7))
    ranks = [BatchOrder(20, 4, 3, rank=r, world_size=2).indices(7) for r in range(2)]
    assert torch.equal(torch.cat(ranks), order.global_indices(7))
    with pytest.raises(ValueError, match="divisible"):
        BatchOrder(20, 5, 0, world_size=2)
    with pytest.raises(ValueError, match="fewer than one batch"):
        BatchOrder(3, 4, 0)


def test_learning_rate_warms_up_then_follows_the_schedule():
    constant = tiny_config(lr=1e-3, warmup=4, steps=100).train
    assert [lr_at(s, constant) for s in (0, 1, 3, 50)] == pytest.approx(
        [2.5e-4, 5e-4, 1e-3, 1e-3])
    cosine = tiny_config(lr=1e-3, warmup=0, steps=100, lr_schedule="cosine",
                         final_lr_ratio=0.1).train
    assert lr_at(0, cosine) == pytest.approx(1e-3)
    assert lr_at(50, cosine) == pytest.approx(1e-3 * (0.1 + 0.9 * 0.5))
    assert lr_at(100, cosine) == pytest.approx(1e-4)


def test_ema_moves_towards_the_weights_with_the_warmed_up_decay():
    from cdae.ema import EMA

    model = torch.nn.Linear(2, 1)
    ema = EMA(model, decay=0.9)
    start = ema.shadow.weight.clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.update(model)  # d = min(0.9, 2/11)
    d = 2 / 11
    torch.testing.assert_close(ema.shadow.weight, d * start + (1 - d) * model.weight)


# ---------------------------------------------------------------------------- config errors
def test_unknown_config_keys_are_named_with_the_valid_ones(tmp_path):
    spec = tiny_config().to_dict()
    spec["train"]["learning_rate"] = 0.1
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(spec))
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['learning_rate'\] in train.*lr"):
        load_config(path)
    spec = tiny_config().to_dict()
    spec["model"]["base_channel"] = 8
    with pytest.raises(ConfigError, match="base_channel.*base_channels"):
        ExperimentConfig.from_dict(spec)
    with pytest.raises(ConfigError, match="valid keys"):
        ExperimentConfig.from_dict({"trian": {}})


def test_config_values_are_type_checked_and_yaml_exponents_read_as_numbers(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("data: {name: morphomnist}\ntrain:\n  lr: 1e-4\n  betas: [0.9, 0.99]\n"
                    "model:\n  image_size: 16\n  channel_mult: [1, 2]\n"
                    "  attention_resolutions: [8]\n")
    config = load_config(path)
    assert config.train.lr == 1e-4 and config.train.betas == (0.9, 0.99)
    assert config.name == "c"
    with pytest.raises(ConfigError, match="train.batch_size must be an integer"):
        ExperimentConfig.from_dict({"train": {"batch_size": "many"}})
    with pytest.raises(ConfigError, match="train.amp must be one of"):
        ExperimentConfig.from_dict({"train": {"amp": "fp8"}})
    with pytest.raises(ConfigError, match="labelled_fraction"):
        ExperimentConfig.from_dict({"data": {"labelled_fraction": 0}})
    round_trip = ExperimentConfig.from_dict(config.to_dict())
    assert round_trip.to_dict() == config.to_dict()


@pytest.mark.parametrize(("text", "problem"), [
    ("", "is empty"), ("# nothing yet\n", "is empty"), ("- data\n- model\n", "holds a YAML list"),
    ("train: {steps: 10}\n", "has no data, model section"),
])
def test_an_empty_or_partial_config_file_is_refused_naming_the_sections(tmp_path, text, problem):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=f"{problem}.*needs the sections data, model, train"):
        load_config(path)


def test_a_config_path_that_is_a_folder_says_so(tmp_path, capsys):
    with pytest.raises(ConfigError, match="is a folder"):
        load_config(tmp_path)
    assert main(["train", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err


def test_a_graph_that_does_not_match_the_dataset_variables_is_an_error(tmp_path):
    spec = tiny_config().to_dict()
    with pytest.raises(ConfigError, match="cycle"):
        ExperimentConfig.from_dict({**spec, "graph": {"edges": [["a", "b"], ["b", "a"]]}})
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['edge'\] in graph"):
        ExperimentConfig.from_dict({**spec, "graph": {"edge": [["a", "b"]]}})
    spec["graph"] = {"nodes": ["thickness", "intensity"], "edges": [["thickness", "intensity"]]}
    with pytest.raises(ConfigError, match=r"graph has variables \['thickness', 'intensity'\]"):
        Trainer(ExperimentConfig.from_dict(spec), tmp_path, dataset=tiny_dataset())
    spec["graph"] = {"nodes": ["thickness", "intensity", "digit"], "edges": [],
                     "categorical": {"digit": 10}}  # same variables, other edges: allowed
    trainer = Trainer(ExperimentConfig.from_dict(spec), tmp_path, dataset=tiny_dataset())
    assert trainer.graph.edges == []


def test_an_image_shape_that_does_not_match_the_model_is_an_error(tmp_path):
    spec = tiny_config().to_dict()
    spec["model"].update(image_size=32, attention_resolutions=[16])
    with pytest.raises(ConfigError, match=r"model takes images \(1, 32, 32\).*\(1, 16, 16\)"):
        Trainer(ExperimentConfig.from_dict(spec), tmp_path, dataset=tiny_dataset())


# ---------------------------------------------------------------------------- CLI function
def write_folder_dataset(root: Path, n: int = 24) -> None:
    """A 'folder' dataset (PNG files + labels.csv + graph.json): the bring-your-own-data path."""
    data = tiny_dataset(n)
    (root / "train").mkdir(parents=True)
    names = []
    for i, image in enumerate(data.images_uint8[:, 0].numpy()):
        names.append(f"{i}.png")
        Image.fromarray(image).save(root / "train" / names[-1])
    labels = data.labels_natural.assign(file=names)
    labels.to_csv(root / "train" / "labels.csv", index=False)
    (root / "graph.json").write_text(json.dumps(CausalGraph.preset("morphomnist").to_dict()))


def test_train_from_config_runs_a_yaml_experiment_end_to_end(tmp_path):
    write_folder_dataset(tmp_path / "data")
    spec = tiny_config(steps=50).to_dict()
    spec["data"] = {"name": "folder", "root": str(tmp_path / "data"), "split": "train"}
    config_path = tmp_path / "tiny_folder.yaml"
    config_path.write_text(yaml.safe_dump(spec))

    checkpoint = train_from_config(config_path, steps=2, out=tmp_path / "run", device="cpu")
    assert checkpoint == tmp_path / "run" / "last.pt"
    assert [int(r["step"]) for r in read_log(tmp_path / "run")] == [1, 2]
    model, diffusion, normalizer, graph, config = load_model(checkpoint)
    assert graph == CausalGraph.preset("morphomnist") and config.train.steps == 2
    assert normalizer.variables == graph.nodes and not model.training
    x = torch.zeros(2, 1, 16, 16)
    assert model.eps(x, torch.tensor([1, 50]), None).shape == x.shape
    assert diffusion.timesteps == 100


def test_a_second_writer_on_a_run_folder_is_refused_and_its_files_are_left_alone(tmp_path,
                                                                                capsys):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from cdae.files import FolderLock; "
         "lock = FolderLock(sys.argv[1]).acquire(); print('held', flush=True); time.sleep(60)",
         str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        in_flight = tmp_path / ".last.pt.abc123.tmp"  # the running process's save in progress
        in_flight.write_bytes(b"partial")
        config = tmp_path / "tiny.yaml"
        config.write_text(yaml.safe_dump(tiny_config().to_dict()))
        for extra in ([], ["--resume"]):
            assert main(["train", str(config), "--out", str(tmp_path), *extra]) == 2
            err = capsys.readouterr().err
            assert f"in use by process {holder.pid}" in err and "choose another" in err, err
        assert in_flight.read_bytes() == b"partial"  # not taken for a killed save's leftover
    finally:
        holder.kill()
        holder.wait()
    # the holder is gone (killed: the OS released its lock), so the folder is free again
    Trainer(tiny_config(steps=1), tmp_path, dataset=tiny_dataset(), progress=False).fit()
    assert not in_flight.exists()

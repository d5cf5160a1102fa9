"""The training loop: AdamW + EMA, bf16 autocast on GPUs, atomic checkpoints, exact resume, DDP.

Every random draw of step s is a pure function of (seed, s, shard): the batch order
(:class:`~cdae.train.batches.BatchOrder`), and the generator handed to ``model.loss`` (times,
noise, u, drop masks) plus the global torch RNG (dropout), both re-seeded per micro-batch
("shard" = rank · accumulate + micro-batch). So a resumed run repeats the uninterrupted one
step for step, and W processes train exactly like one process with ``accumulate = W``.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from tqdm.auto import tqdm

from cdae.checkpoint import (
    check_compatible,
    config_differences,
    load_checkpoint,
    save_checkpoint,
)
from cdae.config import ConfigError, ExperimentConfig, save_config
from cdae.ema import EMA
from cdae.files import FolderLock, atomic_path, remove_stale_temporaries
from cdae.models import build_model_and_diffusion
from cdae.train.batches import EPOCH_STRIDE, BatchOrder
from cdae.train.build import build_training_dataset, check_dataset
from cdae.train.data import StepBatches
from cdae.train.interrupt import deferred_interrupt
from cdae.train.optim import (
    GRAD_GROUPS,
    clip_gradients,
    gradient_groups,
    lr_at,
    make_optimizer,
    set_lr,
)
from cdae.train.rng import capture_rng, restore_rng
from cdae.train.runlog import RunLog
from cdae.train.runtime import (
    Runtime,
    init_distributed,
    pick_amp,
    seed_everything,
    set_threads,
)

LOSS_TERMS = ("loss", "mse", "kl_u", "kl_z", "mech", "gamma")
#: logged per report: the loss terms, then each gradient group's norm before clipping
METRICS = LOSS_TERMS + tuple(f"grad_{g}" for g in GRAD_GROUPS)
_SHARDS_PER_STEP = 4096  # room for rank · accumulate + micro-batch in the per-shard seeds


class TrainingDiverged(RuntimeError):
    """The loss or the weights became NaN/inf; the message names the step and the checkpoint."""


class RunExistsError(FileExistsError):
    """The output folder already holds a run and ``resume`` was not asked for."""


class TrainingInterrupted(Exception):
    """Ctrl-C stopped training after the step in flight; its checkpoint was saved."""

    def __init__(self, step: int, checkpoint: Path) -> None:
        super().__init__(f"interrupted at step {step}; checkpoint {checkpoint} saved; resume "
                         "with --resume (resume=True)")
        self.step, self.checkpoint = step, checkpoint


class _LossModule(nn.Module):
    """Calls ``model.loss`` through ``forward`` so DistributedDataParallel syncs its gradients."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, y: torch.Tensor, diffusion: nn.Module, step: int,
                labelled: torch.Tensor | None,
                generator: torch.Generator) -> dict[str, torch.Tensor]:
        return self.model.loss(x, y, diffusion, step, labelled=labelled, generator=generator)


class Trainer:
    """Trains ``config``'s model on its dataset, writing ``last.pt`` and ``log.csv`` to ``out_dir``.

    Args:
        config: the experiment.
        out_dir: run folder (checkpoints, ``log.csv``, ``config.yaml``).
        resume: continue from ``out_dir/last.pt`` if present (else start fresh). Without it an
            existing checkpoint there is an error, so a run is never overwritten by accident.
        device: overrides ``config.train.device`` (``"auto"``, ``"cpu"``, ``"cuda"``, ...).
        dataset: a ready dataset to use instead of building ``config.data``.
        progress: show a tqdm bar (main process only).
    """

    def __init__(self, config: ExperimentConfig, out_dir: str | Path, *, resume: bool = False,
                 device: str | None = None, dataset: Any = None, progress: bool = True) -> None:
        self.config, self.out_dir, self.progress = config, Path(out_dir), progress
        if self.out_dir.exists() and not self.out_dir.is_dir():
            raise NotADirectoryError(f"the run folder {self.out_dir} is a file; give a folder "
                                     "(--out) to hold last.pt, log.csv and config.yaml")
        tc = config.train
        rank, world, dev = init_distributed(device or tc.device)
        set_threads(tc.threads, world)
        self.runtime = Runtime(dev, rank, world, pick_amp(tc.amp, dev), bool(tc.channels_last))
        # one writer per run folder: a second run or --resume on it is refused, naming the first
        self._lock = FolderLock(self.out_dir, "run folder")
        if self.runtime.is_main:
            self._lock.acquire()
        try:
            self._setup(resume, dataset)
        except BaseException:
            self._lock.release()  # a run that cannot start holds nothing
            raise

    def _setup(self, resume: bool, dataset: Any) -> None:
        """The rest of ``__init__``, under the run folder's lock."""
        config, tc = self.config, self.config.train
        rank, world, dev = self.runtime.rank, self.runtime.world_size, self.runtime.device
        state = self._existing_checkpoint(resume)
        self.dataset = dataset if dataset is not None else build_training_dataset(
            config, _normalizer(state))
        self.graph = check_dataset(config, self.dataset)
        self.model_config = config.model
        seed_everything(tc.seed)  # the initial weights
        model, diffusion = build_model_and_diffusion(self.graph, self.model_config,
                                                     config.model_kind)
        if self.runtime.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model.to(dev)
        self.diffusion = diffusion.to(dev)
        self.ema = EMA(self.model, tc.ema_decay)
        self.optimizer = make_optimizer(self.model, tc, dev)
        self._grad_groups = gradient_groups(self.model)
        self.step, self.elapsed, self._saved_step = 0, 0.0, -1
        self._last_tick = time.perf_counter()
        if state is not None:
            self._load_state(state)
        self.order = BatchOrder(len(self.dataset), tc.batch_size, tc.seed, rank, world, dev)
        if (tc.batch_size // world) % tc.accumulate:
            raise ConfigError(f"train.batch_size {tc.batch_size} / {world} processes must be "
                              f"divisible by train.accumulate {tc.accumulate}")
        self.batches = StepBatches(self.dataset, self.order, dev, tc.accumulate,
                                   self.runtime.channels_last, tc.num_workers)
        self.labelled = self._labelled_mask()
        self.generator = torch.Generator(dev)
        self._loss_fn = self._wrap_model()

    # ------------------------------------------------------------------ public
    @property
    def checkpoint_path(self) -> Path:
        return self.out_dir / "last.pt"

    def fit(self, until: int | None = None) -> Path:
        """Train up to ``config.train.steps`` (or stop early after step ``until``); returns the
        checkpoint. Ctrl-C finishes the current step, saves and raises
        :class:`TrainingInterrupted`."""
        tc, main = self.config.train, self.runtime.is_main
        target = tc.steps if until is None else min(until, tc.steps)
        if main:
            self._lock.acquire()
            self.out_dir.mkdir(parents=True, exist_ok=True)
            save_config(self.config, self.out_dir / "config.yaml")
        log = RunLog(self.out_dir / "log.csv", keep_up_to=self.step) if main else None
        bar = tqdm(total=target, initial=self.step, unit="step", desc=self.config.name,
                   disable=not (self.progress and main), dynamic_ncols=True,
                   mininterval=0.1 if sys.stderr.isatty() else 30.0)  # sparse in log files
        meter = _Meter(self.runtime.device)
        stopped, self._last_tick = False, time.perf_counter()
        try:
            with deferred_interrupt("Ctrl-C: finishing this step, then saving a checkpoint "
                                    "(press again to abort without saving)") as flag:
                for micro_batches in self.batches(self.step, target):
                    meter.add(self.train_step(micro_batches), self.step)
                    bar.update()
                    at_log = self.step % tc.log_every == 0 or self.step == target
                    stopped = self._stop_requested(flag.requested, at_log)
                    if at_log or stopped:
                        self._report(meter, log, bar)
                    if self.step % tc.checkpoint_every == 0 or stopped:
                        self.save(meter)
                    if stopped:
                        break
            if self._saved_step != self.step:
                self.save(meter)
        finally:
            bar.close()
            if log is not None:
                log.close()
            self._lock.release()
        if stopped:
            raise TrainingInterrupted(self.step, self.checkpoint_path)
        return self.checkpoint_path

    def save(self, meter: _Meter | None = None) -> Path:
        """Write ``last.pt`` (and ``step_N.pt`` every ``keep_every`` steps) after checking that
        neither the losses since the last check nor the weights are NaN/inf."""
        if meter is not None:
            self._raise_if_diverged(meter.first_bad_step(self.runtime))
        self._check_weights()
        self._tick()
        if self.runtime.is_main:
            save_checkpoint(self.state_dict(), self.checkpoint_path)
            keep = self.config.train.keep_every
            if keep and self.step % keep == 0:
                with atomic_path(self.out_dir / f"step_{self.step:07d}.pt") as tmp:
                    shutil.copyfile(self.checkpoint_path, tmp)
        self._saved_step = self.step
        return self.checkpoint_path

    def state_dict(self) -> dict[str, Any]:
        """Everything a checkpoint holds (see :mod:`cdae.checkpoint`)."""
        tc = self.config.train
        return {
            "step": self.step,
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "lr_schedule": {"schedule": tc.lr_schedule, "next_lr": lr_at(self.step, tc)},
            "rng": capture_rng({}),
            "data_order": {"seed": tc.seed, "global_batch": tc.batch_size, "next_step": self.step},
            "config": self.config.to_dict(),
            "graph": self.graph.to_dict(),
            "normalizer": self.dataset.normalizer.to_dict(),
            "model_config": self.model_config.to_dict(),
            "model_kind": self.config.model_kind,
            "elapsed_s": self.elapsed,
            "world_size": self.runtime.world_size,
            "torch_version": str(torch.__version__),
        }

    # ------------------------------------------------------------------ one step
    def train_step(self, micro_batches: list) -> torch.Tensor:
        """One optimiser step over one step's micro-batches (from ``self.batches``); returns the
        mean of METRICS over them, a tensor on the device (no GPU sync)."""
        tc, rt = self.config.train, self.runtime
        set_lr(self.optimizer, lr_at(self.step, tc))
        total = torch.zeros(len(METRICS), device=rt.device)
        for a, (x, y, indices) in enumerate(micro_batches):
            generator = self._reseed(rt.rank * tc.accumulate + a)
            labelled = self._labelled_rows(indices, generator)
            last = a == len(micro_batches) - 1
            sync = (self._loss_fn.no_sync() if rt.distributed and not last
                    else contextlib.nullcontext())
            with sync:
                with rt.autocast():
                    out = self._loss_fn(x, y, self.diffusion, self.step, labelled, generator)
                (out["loss"] / len(micro_batches)).backward()
            terms = torch.stack([out[k].detach().float() for k in LOSS_TERMS])
            total[:len(LOSS_TERMS)] += terms / len(micro_batches)
        total[len(LOSS_TERMS):] = clip_gradients(self._grad_groups, tc.grad_clip,
                                                 tc.grad_clip_by)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.ema.update(self.model)
        self.step += 1
        return total

    def _reseed(self, shard: int) -> torch.Generator:
        """Seed the loss's generator and the global RNG (dropout) from (seed, step, shard)."""
        base = (self.config.train.seed * EPOCH_STRIDE + self.step) * _SHARDS_PER_STEP + shard
        base = (2 * base) % 2**63
        torch.manual_seed(base + 1)
        return self.generator.manual_seed(base)

    def _labelled_rows(self, indices: torch.Tensor,
                       generator: torch.Generator) -> torch.Tensor | None:
        """(b,) bool labelled flags of a micro-batch, or None when every sample is labelled."""
        data = self.config.data
        if self.labelled is not None:
            return self.labelled[indices.to(self.labelled.device)].to(self.runtime.device)
        if data.labelled_fraction < 1.0 and data.weak_supervision == "random_drop":
            draw = torch.rand(len(indices), generator=generator, device=generator.device)
            return (draw < data.labelled_fraction).to(self.runtime.device)
        return None

    # ------------------------------------------------------------------ setup helpers
    def _existing_checkpoint(self, resume: bool) -> dict[str, Any] | None:
        path = self.checkpoint_path
        if self.runtime.is_main:
            stale = remove_stale_temporaries(self.out_dir)
            if stale:
                print(f"removed {len(stale)} temporary file(s) left in {self.out_dir} by a save "
                      f"that was killed: {', '.join(p.name for p in stale)}", flush=True)
        if not path.exists():
            if resume and self.runtime.is_main:
                print(f"no checkpoint in {self.out_dir}; starting from step 0", flush=True)
            return None
        if not resume:
            raise RunExistsError(
                f"{self.out_dir} already holds a run ({path.name}); pass resume=True (--resume) "
                "to continue it, or choose another output folder"
            )
        state = load_checkpoint(path)
        if "exported_from_step" in state or "optimizer" not in state:
            raise RunExistsError(
                f"{path} is an exported (inference-only) checkpoint, made by `cdae export` from "
                f"step {state.get('exported_from_step', state.get('step', '?'))}: it has the "
                "averaged weights but no optimiser state, so training cannot resume from it. "
                "Resume from the run's own last.pt, or train into another folder (--out)")
        changed = config_differences(state["config"].get("train"),
                                     self.config.to_dict()["train"], "train")
        if changed and self.runtime.is_main:
            print(f"resuming {path} with changed training settings: {'; '.join(changed)}")
        return state

    def _load_state(self, state: dict[str, Any]) -> None:
        check_compatible(state, self.config.to_dict(), self.graph.to_dict(), self.checkpoint_path)
        if self.dataset.normalizer.to_dict() != state["normalizer"]:
            raise ConfigError(
                "the dataset's label normaliser differs from the checkpoint's, so labels would "
                "change meaning mid-training; resume on the same data (did it change on disk?)"
            )
        self.model.load_state_dict(state["model"])
        self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        restore_rng(state["rng"], {})
        self.step = self._saved_step = int(state["step"])
        self.elapsed = float(state.get("elapsed_s", 0.0))

    def _labelled_mask(self) -> torch.Tensor | None:
        """Fixed labelled flags (N,) from the dataset (weak supervision ``split``), or None."""
        mask = getattr(self.dataset, "labelled_mask", None)
        data = self.config.data
        if data.labelled_fraction < 1.0 and data.weak_supervision == "split" and mask is None:
            raise ConfigError("data.weak_supervision 'split' needs a dataset with a "
                              "labelled_mask (a CausalImageDataset)")
        if mask is None or bool(torch.as_tensor(mask).all()):
            return None
        return torch.as_tensor(mask, dtype=torch.bool, device=self.runtime.device)

    def _wrap_model(self) -> nn.Module:
        """The loss module: compiled (``train.compile``) and DDP-wrapped when distributed."""
        if self.config.train.compile:
            targets = [getattr(self.model, n) for n in ("unet", "encoder")
                       if isinstance(getattr(self.model, n, None), nn.Module)]
            for module in targets or [self.model]:
                module.compile()
        loss_module = _LossModule(self.model)
        if not self.runtime.distributed:
            return loss_module
        device_ids = [self.runtime.device.index] if self.runtime.device.type == "cuda" else None
        # every parameter takes part in every loss (the null token through torch.where too), so
        # DDP need not search the graph for unused ones each step
        return nn.parallel.DistributedDataParallel(loss_module, device_ids=device_ids)

    # ------------------------------------------------------------------ checks and reports
    def _stop_requested(self, requested: bool, at_log: bool) -> bool:
        """Ctrl-C seen; in a distributed run agreed on by all ranks at log steps."""
        if not self.runtime.distributed:
            return requested
        if not at_log:
            return False
        flag = torch.tensor([float(requested)], device=self.runtime.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())

    def _report(self, meter: _Meter, log: RunLog | None, bar: tqdm) -> None:
        """Average the metrics since the last report (over ranks too), log them, check NaN."""
        means, steps = meter.means(self.runtime)
        self._raise_if_diverged(meter.first_bad_step(self.runtime))
        self._tick()
        seconds = time.perf_counter() - meter.started
        images_per_s = steps * self.config.train.batch_size / max(seconds, 1e-9)
        row = dict(zip(METRICS, means, strict=True))
        row.update(step=self.step, lr=lr_at(self.step - 1, self.config.train),
                   images_per_s=images_per_s, elapsed_s=self.elapsed)
        if log is not None:
            log.write(row)
        bar.set_postfix(loss=f"{row['loss']:.4f}", img_s=f"{images_per_s:.0f}")
        meter.reset()

    def _tick(self) -> None:
        """Add the seconds since the last tick to the run's elapsed training time."""
        now = time.perf_counter()
        self.elapsed += now - self._last_tick
        self._last_tick = now

    def _raise_if_diverged(self, bad_step: int | None) -> None:
        if bad_step is None:
            return
        raise TrainingDiverged(
            f"the loss became NaN or infinite at step {bad_step}; training stopped. "
            f"{self._last_good()} Lower train.lr (now {self.config.train.lr:g}), keep "
            "train.grad_clip on, or check the data, then resume."
        )

    def _check_weights(self) -> None:
        tensors = [p.detach() for p in self.model.parameters()]
        tensors += [p for p in self.ema.shadow.parameters()]
        if not bool(torch.stack(torch._foreach_norm(tensors)).isfinite().all()):
            raise TrainingDiverged(
                f"the weights became NaN or infinite by step {self.step} (an exploding "
                f"gradient?); nothing was saved. {self._last_good()} Lower train.lr or set "
                "train.grad_clip, then resume."
            )

    def _last_good(self) -> str:
        if self._saved_step >= 0 and self.checkpoint_path.exists():
            return (f"The last good checkpoint {self.checkpoint_path} (step {self._saved_step}) "
                    "is intact.")
        return "No checkpoint had been written yet."


class _Meter:
    """Sums of the METRICS since the last report, and the first step with a non-finite loss,
    kept on the device so that training never waits for the GPU between reports."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.bad = torch.tensor(-1, device=device)
        self.reset()

    def reset(self) -> None:
        self.sums = torch.zeros(len(METRICS), device=self.device)
        self.count, self.started = 0, time.perf_counter()

    def add(self, metrics: torch.Tensor, step: int) -> None:
        self.sums += metrics
        self.count += 1
        first = (self.bad < 0) & ~torch.isfinite(metrics[0])
        self.bad.masked_fill_(first, step)  # a Python scalar: no host-to-device copy, no sync

    def means(self, runtime: Runtime) -> tuple[list[float], int]:
        sums = self.sums.clone()
        if runtime.distributed:
            dist.all_reduce(sums)
            sums /= runtime.world_size
        return (sums / max(self.count, 1)).tolist(), self.count

    def first_bad_step(self, runtime: Runtime) -> int | None:
        """The first step whose loss was NaN/inf (the earliest over all ranks), or None."""
        bad = self.bad.float()
        if runtime.distributed:  # earliest step = max of -step; "none" (-1) as -inf
            key = (-bad).masked_fill(bad < 0, float("-inf"))
            dist.all_reduce(key, op=dist.ReduceOp.MAX)
            bad = (-key).masked_fill(torch.isinf(key), -1.0)
        value = int(bad.item())
        return None if value < 0 else value


def _normalizer(state: dict[str, Any] | None) -> Any:
    if state is None:
        return None
    from cdae.data.datasets import LabelNormalizer

    return LabelNormalizer.from_dict(state["normalizer"])


__all__ = ["RunExistsError", "Trainer", "TrainingDiverged", "TrainingInterrupted"]

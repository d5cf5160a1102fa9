"""Where and how training runs: device, CPU threads, mixed precision, seeds, torchrun/DDP."""

from __future__ import annotations

import contextlib
import os
import random
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Runtime:
    """The process's device and place in a (possibly one-process) distributed run."""

    device: torch.device
    rank: int = 0
    world_size: int = 1
    amp_dtype: torch.dtype | None = None
    channels_last: bool = False

    @property
    def is_main(self) -> bool:
        """Only the main process (rank 0) writes checkpoints, logs and progress bars."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def autocast(self) -> contextlib.AbstractContextManager:
        """bf16 autocast when ``amp_dtype`` is set, else a no-op."""
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)


def pick_device(name: str = "auto") -> torch.device:
    """``"auto"``: CUDA if present, else Apple MPS, else CPU; otherwise ``torch.device(name)``."""
    if name != "auto":
        try:
            device = torch.device(name)
        except (RuntimeError, TypeError) as exc:
            raise ValueError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps"
                             ) from exc
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {name!r} was asked for but CUDA is not available; "
                             "use device: auto or cpu")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def pick_amp(amp: str, device: torch.device) -> torch.dtype | None:
    """``"auto"``: bf16 on a CUDA device that supports it, else full precision."""
    if amp == "off":
        return None
    if amp == "bf16":
        return torch.bfloat16
    supported = device.type == "cuda" and torch.cuda.is_bf16_supported()
    return torch.bfloat16 if supported else None


def set_threads(threads: int, world_size: int = 1) -> int:
    """Intra-op CPU threads: ``threads`` if > 0; else ``OMP_NUM_THREADS`` if set; else this
    process's share of the cores. Returns the number set."""
    if threads <= 0:
        env = os.environ.get("OMP_NUM_THREADS", "")
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        threads = int(env) if env.isdigit() else max(1, (cores or 1) // world_size)
    torch.set_num_threads(threads)
    return threads


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices) for reproducible initialisation."""
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 (libraries may still use the global RNG)
    torch.manual_seed(seed)


def init_distributed(device_name: str) -> tuple[int, int, torch.device]:
    """Join the process group that ``torchrun`` describes in the environment, if any.

    Returns ``(rank, world_size, device)``: NCCL and ``cuda:LOCAL_RANK`` on GPUs, gloo on CPU.
    Without ``WORLD_SIZE`` > 1 this is a plain single-process run.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    device = pick_device(device_name)
    if world_size <= 1:
        return 0, 1, device
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return rank, world_size, device


def shutdown_distributed() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()

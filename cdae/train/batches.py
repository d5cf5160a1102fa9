"""Deterministic, resumable batch order: the batch of global step s is a pure function of
(seed, s), so resuming needs no sampler state and every world size sees the same global batch.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler

#: A prime that keeps the seeds of different base seeds apart: epoch e's permutation is seeded
#: with ``seed * EPOCH_STRIDE + e``, the trainer's step s with ``seed * EPOCH_STRIDE + s``.
EPOCH_STRIDE = 1_000_003


class BatchOrder:
    """Global step -> indices of that step's samples.

    Epoch e visits the dataset in the order ``randperm(n)`` drawn from a generator seeded with
    ``seed * EPOCH_STRIDE + e``; it holds ``n // global_batch`` steps (the remainder is dropped,
    a different remainder each epoch). Step s's global batch is the slice
    ``perm[k·B : (k+1)·B]``, k = s mod steps_per_epoch; rank r of W takes the r-th contiguous
    chunk of B / W indices (what ``DistributedSampler`` would give, in a resumable form).

    Args:
        n: dataset size.
        global_batch: B, the batch summed over all ranks.
        seed: base seed.
        rank, world_size: this process's place in a distributed run.
        device: where :meth:`indices` returns its indices; the permutation is copied there
            once per epoch, so a step on a GPU needs no host-to-device copy (no sync).
    """

    def __init__(self, n: int, global_batch: int, seed: int, rank: int = 0,
                 world_size: int = 1, device: torch.device | str = "cpu") -> None:
        if global_batch % world_size:
            raise ValueError(f"train.batch_size {global_batch} must be divisible by the number of "
                             f"processes {world_size} (it is the global batch)")
        if n < global_batch:
            raise ValueError(f"the dataset has {n} samples, fewer than one batch of "
                             f"{global_batch}; lower train.batch_size or use more data")
        self.n, self.global_batch, self.seed = n, global_batch, seed
        self.rank, self.world_size = rank, world_size
        self.steps_per_epoch = n // global_batch
        self.device = torch.device(device)
        self._epoch, self._perm = -1, torch.empty(0, dtype=torch.long)
        self._perm_on_device = self._perm

    def permutation(self, epoch: int) -> torch.Tensor:
        """Epoch ``epoch``'s visiting order (n,) long, on the CPU."""
        if epoch != self._epoch:
            generator = torch.Generator().manual_seed(self.seed * EPOCH_STRIDE + epoch)
            self._epoch, self._perm = epoch, torch.randperm(self.n, generator=generator)
            self._perm_on_device = self._perm.to(self.device)
        return self._perm

    def global_indices(self, step: int, on_device: bool = False) -> torch.Tensor:
        """Indices (B,) of the whole batch of ``step`` (on the CPU, or on ``device``)."""
        epoch, k = divmod(step, self.steps_per_epoch)
        perm = self.permutation(epoch)
        perm = self._perm_on_device if on_device else perm
        return perm[k * self.global_batch:(k + 1) * self.global_batch]

    def indices(self, step: int, on_device: bool = False) -> torch.Tensor:
        """This rank's share (B / W,) of the batch of ``step``."""
        per_rank = self.global_batch // self.world_size
        batch = self.global_indices(step, on_device)
        return batch[self.rank * per_rank:(self.rank + 1) * per_rank]


class StepBatchSampler(Sampler[list[int]]):
    """``batch_sampler`` for a ``DataLoader``: yields this rank's indices for steps
    ``start, start + 1, ..., stop - 1``."""

    def __init__(self, order: BatchOrder, start: int, stop: int) -> None:
        self.order, self.start, self.stop = order, start, stop

    def __iter__(self) -> Iterator[list[int]]:
        for step in range(self.start, self.stop):
            yield self.order.indices(step).tolist()

    def __len__(self) -> int:
        return max(0, self.stop - self.start)


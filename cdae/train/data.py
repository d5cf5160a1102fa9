"""Batches on the training device, in the deterministic order of :class:`BatchOrder`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader

from cdae.train.batches import BatchOrder, StepBatchSampler

#: Datasets up to this size (uint8 bytes) are copied to the GPU once and indexed there.
GPU_RESIDENT_BYTES = 2 << 30

#: One micro-batch: images (b, C, H, W) in [-1, 1], labels (b, n_vars), dataset indices (b,).
Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


class StepBatches:
    """Yields, for each step, this rank's micro-batches on ``device``.

    Fast path (a :class:`~cdae.data.datasets.CausalImageDataset`): the uint8 images stay in
    memory (on the GPU when they fit) and a batch is one ``index_select`` plus
    ``x = p / 127.5 − 1``, no per-sample Python. Any other map-style dataset goes through a
    ``DataLoader`` with ``num_workers`` workers fed by the same index order.

    Args:
        dataset: items ``(image (C, H, W) in [-1, 1], labels (n_vars,), ...)``.
        order: the batch order (global step -> this rank's indices).
        device: where batches go.
        accumulate: micro-batches per step (the rank's batch is split into this many).
        channels_last: put images in channels-last memory layout.
        num_workers: ``DataLoader`` workers for the general path.
    """

    def __init__(self, dataset: Any, order: BatchOrder, device: torch.device, accumulate: int = 1,
                 channels_last: bool = False, num_workers: int = 0) -> None:
        self.dataset, self.order, self.device = dataset, order, device
        self.accumulate, self.num_workers = accumulate, num_workers
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.images: torch.Tensor | None = None
        self.labels: torch.Tensor | None = None
        self.on_device = False  # images, labels and indices all live on the training device
        if hasattr(dataset, "images_uint8") and hasattr(dataset, "tensors"):
            images = dataset.images_uint8  # (N, C, H, W) uint8
            resident = device.type != "cpu" and images.numel() <= GPU_RESIDENT_BYTES
            self.images = images.to(device) if resident else images
            self.on_device = self.images.device == device
            self.labels = dataset.tensors()[1].to(self.images.device)

    def __call__(self, start: int, stop: int) -> Iterator[list[Batch]]:
        """Micro-batch lists for steps ``start, ..., stop − 1``."""
        if self.images is not None:
            for step in range(start, stop):
                yield self._split(*self._gather(self.order.indices(step, self.on_device)))
            return
        loader = DataLoader(self.dataset, batch_sampler=StepBatchSampler(self.order, start, stop),
                            num_workers=self.num_workers, pin_memory=self.device.type == "cuda")
        for step, (x, y, *_) in enumerate(loader, start):
            indices = self.order.indices(step)
            yield self._split(self._to_device(x), y.to(self.device, non_blocking=True), indices)

    def _gather(self, indices: torch.Tensor) -> Batch:
        where = indices.to(self.images.device)  # a no-op when on_device
        x = self.images.index_select(0, where).to(self.device, non_blocking=True)
        x = self._to_device(x.float() / 127.5 - 1.0)  # uint8 p -> [-1, 1]: x = p / 127.5 - 1
        return x, self.labels.index_select(0, where).to(self.device), indices

    def _to_device(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(self.device, non_blocking=True).contiguous(memory_format=self.memory_format)

    def _split(self, x: torch.Tensor, y: torch.Tensor, indices: torch.Tensor) -> list[Batch]:
        if self.accumulate == 1:
            return [(x, y, indices)]
        return list(zip(x.chunk(self.accumulate), y.chunk(self.accumulate),
                        indices.chunk(self.accumulate), strict=True))

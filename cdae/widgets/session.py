"""The state and computation behind the interactive widgets, free of any widget code.

An :class:`ExplorerSession` holds a counterfactual model, a dataset to pick images from and an
optional :class:`~cdae.widgets.readers.Reader`. Its :meth:`~ExplorerSession.update` makes one
counterfactual of one image: the abduction (encoding and DDIM inversion, or the noise jump) is
cached per (image, inversion steps, abduction), so moving a slider costs one DDIM decode, and
every update reports where its time went. The inversion may use more steps than the decoding:
it is paid once per image, and a fine inversion decoded on a coarser grid of the same ODE is
much closer to the fine result than a coarse inversion is (``benchmarks/bench_widgets.py``).

    >>> session = ExplorerSession(cf, test_set, reader)
    >>> out = session.update(index=0, do={"thickness": 3.5}, steps=20)
    >>> out.counterfactual["intensity"], out.seconds
"""

from __future__ import annotations

import numbers
import time
import warnings
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from cdae.counterfactual import ABDUCTIONS, Abduction, CounterfactualModel
from cdae.data.images import to_unit_range
from cdae.widgets.readers import Reader

#: Default DDIM steps of an update's decoding and of the (cached) inversion; chosen with
#: ``benchmarks/bench_widgets.py`` (the README has its numbers).
DEFAULT_STEPS = 25
DEFAULT_INVERSION_STEPS = 50


@dataclass(frozen=True)
class Update:
    """One counterfactual of dataset image ``index``.

    ``factual_image`` / ``image``: (1, C, H, W) in [-1, 1]. ``factual`` / ``counterfactual``:
    the values the model's latents encode before / after ``do`` (natural units, one entry per
    variable), so non-intervened descendants show the value their mechanism propagated.
    ``measured`` / ``measured_factual``: what the reader reads off the counterfactual / factual
    image (None without a reader). ``seconds``: time per phase (``abduction`` 0 when cached,
    ``decode``, ``measure``, ``total``); ``notes``: warnings raised on the way, as text.
    """

    index: int
    do: dict[str, float]
    factual_image: Tensor
    image: Tensor
    factual: pd.Series
    counterfactual: pd.Series
    measured: pd.Series | None
    measured_factual: pd.Series | None
    seconds: dict[str, float]
    abduction_cached: bool
    notes: list[str] = field(default_factory=list)


def check_steps(value: Any, name: str) -> int:
    """``value`` if it is a whole number of DDIM steps (at least 1), else ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a whole number of DDIM steps, at least 1; got "
                         f"{value!r}")
    return int(value)


class ExplorerSession:
    """Counterfactuals of single dataset images under changing do(), with cached abductions.

    Args:
        cf_model: a :class:`~cdae.counterfactual.CounterfactualModel`.
        dataset: a :class:`~cdae.data.datasets.CausalImageDataset` over the model's variables,
            built with the model's normaliser (e.g. the test split).
        reader: reads the counterfactual's attributes (e.g. :func:`default_reader`); optional.
        cache_size: abductions kept (least recently used dropped first).
        seed: seeds the noise jump of image i with ``seed + i`` (so it is repeatable).
    """

    def __init__(self, cf_model: CounterfactualModel, dataset: Any, reader: Reader | None = None,
                 cache_size: int = 32, seed: int = 0) -> None:
        if list(dataset.variables) != list(cf_model.graph.nodes):
            raise ValueError(f"the dataset's variables {list(dataset.variables)} differ from the "
                             f"model's {cf_model.graph.nodes}; build the dataset with the model's "
                             "graph and normaliser (build_dataset(..., normalizer=cf.normalizer))")
        expected = tuple(cf_model.model.config.image_shape)
        if tuple(dataset.image_shape) != expected:
            raise ValueError(f"the dataset's images are {tuple(dataset.image_shape)} but the "
                             f"model takes {expected}; build the dataset with the model's "
                             "channels and size")
        if len(dataset) == 0:
            raise ValueError("the dataset is empty; give at least one image to explore")
        self.cf = cf_model
        self.dataset = dataset
        self.reader = reader
        self.graph = cf_model.graph
        self.seed = seed
        self.cache_size = cache_size
        self._abductions: OrderedDict[tuple[int, int, str], Abduction] = OrderedDict()
        self._measured_factual: dict[int, pd.Series] = {}
        self.ranges = {name: self._range(name) for name in self.graph.nodes
                       if not self.graph.is_categorical(name)}

    # ------------------------------------------------------------------ values
    def _range(self, name: str) -> tuple[float, float]:
        """The dataset's range of ``name`` within what the model accepts (``accepted_range``)."""
        values = self.dataset.labels_natural[name].to_numpy(dtype=np.float64)
        low, high, _ = self.cf.accepted_range(name)
        return max(float(values.min()), low), min(float(values.max()), high)

    def check_value(self, name: str, value: Any) -> float:
        """A do() value for ``name`` parsed from a number or text, or ``ValueError`` saying why
        not: unknown variable, not a number, outside the range, not a class index."""
        if name not in self.graph.nodes:
            raise ValueError(f"unknown variable {name!r}; the model's variables are "
                             f"{self.graph.nodes}")
        try:
            number = float(str(value).strip()) if isinstance(value, str) else float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{name}: {value!r} is not a number") from None
        if not np.isfinite(number):
            raise ValueError(f"{name}: {value!r} is not a finite number")
        if self.graph.is_categorical(name):
            n_classes = self.graph.categorical[name]
            if number != round(number) or not 0 <= number < n_classes:
                raise ValueError(f"{name}: {value!r} is not a class index in 0..{n_classes - 1}")
            return float(round(number))
        low, high = self.ranges[name]
        if not low <= number <= high:
            raise ValueError(f"{name}: {number:g} is outside the training range "
                             f"[{low:.4g}, {high:.4g}]")
        return number

    # ------------------------------------------------------------------ images
    def image(self, index: int) -> Tensor:
        """Dataset image ``index`` as (1, C, H, W) in [-1, 1]."""
        if not 0 <= int(index) < len(self.dataset):
            raise ValueError(f"image index {index} is outside the dataset's "
                             f"0..{len(self.dataset) - 1}")
        return to_unit_range(self.dataset.images_uint8[int(index) : int(index) + 1])

    def matching(self, variable: str | None = None, selection: Any = None) -> np.ndarray:
        """Dataset positions whose label of ``variable`` equals class ``selection``
        (categorical) or lies in the range ``selection = (low, high)``; all without a variable."""
        if variable is None:
            return np.arange(len(self.dataset))
        labels = self.dataset.labels_natural[variable].to_numpy(dtype=np.float64)
        if self.graph.is_categorical(variable):
            keep = labels == float(selection)
            wanted = f"{variable} = {selection}"
        else:
            low, high = selection
            keep = (labels >= low) & (labels <= high)
            wanted = f"{variable} in [{low:.4g}, {high:.4g}]"
        found = np.flatnonzero(keep)
        if found.size == 0:
            raise ValueError(f"no image of the dataset has {wanted}; widen the filter")
        return found

    # ------------------------------------------------------------------ counterfactuals
    def abduct(self, index: int, steps: int, abduction: str = "inversion",
               guidance: float = 1.0) -> tuple[Abduction, bool]:
        """The cached abduction of image ``index`` (computed on first use; ``steps`` DDIM
        inversion steps with guidance weight ``guidance``, both unused by the noise jump) and
        whether it was cached already."""
        if abduction not in ABDUCTIONS:
            raise ValueError(f"abduction must be one of {ABDUCTIONS}, got {abduction!r}")
        inverted = abduction == "inversion"
        key = (int(index), int(steps) if inverted else 0, float(guidance) if inverted else 1.0,
               abduction)
        if key in self._abductions:
            self._abductions.move_to_end(key)
            return self._abductions[key], True
        generator = torch.Generator().manual_seed(self.seed + int(index))
        labels = self.dataset.labels_normalized[int(index) : int(index) + 1]
        with torch.inference_mode():
            found = self.cf.abduct(self.image(index), steps, abduction, labels=labels,
                                   generator=generator, guidance=guidance)
        self._abductions[key] = found
        while len(self._abductions) > self.cache_size:
            self._abductions.popitem(last=False)
        return found, False

    def clear_cache(self) -> None:
        """Forget every cached abduction (e.g. to time a first update again)."""
        self._abductions.clear()

    def update(self, index: int, do: Mapping[str, Any], steps: int = DEFAULT_STEPS,
               abduction: str = "inversion", guidance: float = 1.0,
               inversion_steps: int | None = DEFAULT_INVERSION_STEPS) -> Update:
        """The counterfactual of image ``index`` under ``do`` (natural units; checked with
        :meth:`check_value`), decoded with ``steps`` DDIM steps and guidance weight ``guidance``
        (1: plain conditional decoding) from an inversion of ``inversion_steps`` steps (None:
        ``steps``)."""
        do = {name: self.check_value(name, value) for name, value in do.items()}
        check_steps(steps, "steps")
        inversion_steps = steps if inversion_steps is None else check_steps(inversion_steps,
                                                                            "inversion_steps")
        started = time.perf_counter()
        abducted, cached = self.abduct(index, inversion_steps, abduction, guidance)
        after_abduction = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught, torch.inference_mode():
            warnings.simplefilter("always")
            result = self.cf.predict(abducted, do, guidance=guidance, steps=steps)
        after_decode = time.perf_counter()
        measured = measured_factual = None
        if self.reader is not None:
            measured = self.reader(result.images).iloc[0]
            measured_factual = self._measure_factual(index)
        done = time.perf_counter()
        seconds = {"abduction": after_abduction - started, "decode": after_decode - after_abduction,
                   "measure": done - after_decode, "total": done - started}
        return Update(index=int(index), do=do, factual_image=self.image(index),
                      image=result.images.cpu(), factual=result.factual.iloc[0],
                      counterfactual=result.counterfactual.iloc[0], measured=measured,
                      measured_factual=measured_factual, seconds=seconds,
                      abduction_cached=cached, notes=[str(w.message) for w in caught])

    def _measure_factual(self, index: int) -> pd.Series:
        if index not in self._measured_factual:
            self._measured_factual[index] = self.reader(self.image(index)).iloc[0]
        return self._measured_factual[index]

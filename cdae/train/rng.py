"""The random states an exact resume needs, captured into and restored from a checkpoint."""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch


def capture_rng(generators: Mapping[str, torch.Generator]) -> dict[str, Any]:
    """All random states needed for an exact resume, in ``weights_only``-loadable form."""
    version, mt_state, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()  # noqa: NPY002 (global)
    state = {
        "python": [version, list(mt_state), gauss],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "generators": {name: g.get_state() for name, g in generators.items()},
    }
    return state


def restore_rng(state: Mapping[str, Any], generators: Mapping[str, torch.Generator]) -> None:
    """Inverse of :func:`capture_rng`."""
    version, mt_state, gauss = state["python"]
    random.setstate((version, tuple(mt_state), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    global_state = (kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached)
    np.random.set_state(global_state)  # noqa: NPY002 (the legacy global state is what is saved)
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    for name, generator in generators.items():
        generator.set_state(state["generators"][name].to("cpu"))

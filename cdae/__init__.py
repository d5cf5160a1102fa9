"""cdae: Causal Diffusion Autoencoders (CausalDiffAE) as a small, readable PyTorch library.

The names a user needs first are here:

    >>> import cdae
    >>> cf = cdae.load_pretrained("morphomnist_small")       # a CounterfactualModel
    >>> test = cdae.build_dataset("morphomnist", "test", normalizer=cf.normalizer)
    >>> out = cf.counterfactual(test.tensors()[0][:8], do={"thickness": 3.5})
    >>> g = cdae.CausalGraph(edges=[("thickness", "intensity")])

They are imported on first use (PEP 562 ``__getattr__``), so ``import cdae`` stays light: it
loads neither torch nor the trainer, the evaluation or matplotlib. Everything else lives in its
module: ``cdae.models``, ``cdae.diffusion``, ``cdae.train``, ``cdae.evaluate``, ...
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cdae.counterfactual import CounterfactualModel
    from cdae.data.datasets import build_dataset
    from cdae.graph import CausalGraph
    from cdae.pretrained import load_pretrained

__version__ = "0.1.0"

#: Top-level name -> the module that defines it.
_LAZY = {
    "CausalGraph": "cdae.graph",
    "CounterfactualModel": "cdae.counterfactual",
    "build_dataset": "cdae.data.datasets",
    "load_pretrained": "cdae.pretrained",
}

__all__ = ["CausalGraph", "CounterfactualModel", "__version__", "build_dataset",
           "load_pretrained"]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'cdae' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(__all__)

"""Anti-causal predictors: small CNNs that read the causal variables back from an image.

They are trained on real images and then applied to counterfactuals to measure effectiveness
(does the image show the intervened value?), the way the paper and the counterfactual benchmark
do. One shared :class:`ConvTrunk` feeds one head per variable: a linear regressor for a
continuous variable (trained on the standardised value (y - shift) / scale, reported in natural
units), a linear classifier for a categorical one (trained with cross-entropy, reported as the
class index). The same trunk gives the features of :class:`cdae.evaluate.realism.FeatureNet`.

Images: ``uint8`` (N, H, W) / (N, H, W, C) on 0-255 or float (N, C, H, W) in [-1, 1]
(see :func:`cdae.data.images.to_model_input`).
"""

from __future__ import annotations

import os
import pickle
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from cdae.checkpoint import CHECKSUM, content_digest
from cdae.data.images import to_model_input
from cdae.files import atomic_path
from cdae.graph import CausalGraph


@dataclass(frozen=True)
class TrunkConfig:
    """Shape of the conv trunk: ``channels`` input channels, ``width`` base conv width,
    ``feature_dim`` size of the penultimate (feature) layer."""

    channels: int = 1
    width: int = 16
    feature_dim: int = 128


class ConvTrunk(nn.Module):
    """(N, C, H, W) in [-1, 1] -> (N, feature_dim) features.

    conv3x3(C->w) -> conv4x4/2(w->2w) -> conv4x4/2(2w->4w) -> adaptive avg-pool 4x4
    -> linear(16*4w -> feature_dim), SiLU after each layer. Works for any H, W >= 4.
    """

    def __init__(self, config: TrunkConfig) -> None:
        super().__init__()
        w = config.width
        self.convs = nn.Sequential(
            nn.Conv2d(config.channels, w, 3, padding=1), nn.SiLU(),
            nn.Conv2d(w, 2 * w, 4, stride=2, padding=1), nn.SiLU(),  # H/2
            nn.Conv2d(2 * w, 4 * w, 4, stride=2, padding=1), nn.SiLU(),  # H/4
            nn.AdaptiveAvgPool2d(4),
        )
        self.project = nn.Sequential(nn.Linear(16 * 4 * w, config.feature_dim), nn.SiLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(self.convs(x).flatten(1))


class MultiHeadNet(nn.Module):
    """Trunk + one linear head per variable: ``{name: (N, 1) or (N, n_classes)}``."""

    def __init__(self, config: TrunkConfig, graph: CausalGraph) -> None:
        super().__init__()
        self.trunk = ConvTrunk(config)
        self.heads = nn.ModuleDict({
            name: nn.Linear(config.feature_dim, graph.categorical.get(name, 1))
            for name in graph.nodes
        })

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.trunk(x)
        return {name: head(features) for name, head in self.heads.items()}


class AntiCausalPredictor:
    """Predicts every variable of ``graph`` from an image; see the module docstring.

    ``shift``/``scale``: per continuous variable, y_natural = shift + scale * head output.
    """

    def __init__(self, net: MultiHeadNet, config: TrunkConfig, graph: CausalGraph,
                 shift: dict[str, float], scale: dict[str, float]) -> None:
        self.net, self.config, self.graph = net.eval(), config, graph
        self.shift, self.scale = dict(shift), dict(scale)

    @torch.no_grad()
    def predict(self, images: np.ndarray | torch.Tensor, batch_size: int = 500) -> pd.DataFrame:
        """(N, ...) images -> DataFrame (N rows, one column per variable) in natural units;
        categorical columns hold the most probable class index."""
        outputs: dict[str, list[np.ndarray]] = {name: [] for name in self.graph.nodes}
        for batch in self._batches(images, batch_size):
            for name, out in self.net(batch).items():
                if self.graph.is_categorical(name):
                    outputs[name].append(out.argmax(dim=1).numpy())
                else:
                    outputs[name].append(self.shift[name] + self.scale[name] * out[:, 0].numpy())
        return pd.DataFrame({name: np.concatenate(v) for name, v in outputs.items()})

    @torch.no_grad()
    def features(self, images: np.ndarray | torch.Tensor, batch_size: int = 500) -> np.ndarray:
        """Penultimate-layer features (N, feature_dim) as float64."""
        chunks = [self.net.trunk(batch).double().numpy()
                  for batch in self._batches(images, batch_size)]
        return np.concatenate(chunks)

    def _batches(self, images: np.ndarray | torch.Tensor, batch_size: int):
        x = to_model_input(images)
        if x.shape[1] != self.config.channels:
            raise ValueError(f"the predictor was trained on {self.config.channels}-channel "
                             f"images but got {x.shape[1]} channels (shape {tuple(x.shape)})")
        return torch.split(x, batch_size)

    def save(self, path: str | os.PathLike) -> None:
        """Write weights, settings and their checksum to ``path`` atomically (a torch file)."""
        state = {"net": self.net.state_dict(), "config": vars(self.config),
                 "graph": self.graph.to_dict(), "shift": self.shift, "scale": self.scale}
        state[CHECKSUM] = content_digest(state)
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            torch.save(state, handle)

    @classmethod
    def load(cls, path: str | os.PathLike) -> AntiCausalPredictor:
        """Inverse of :meth:`save`; ``ValueError`` if the content checksum differs (a file
        saved before checksums existed loads with a warning)."""
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except (pickle.UnpicklingError, EOFError, RuntimeError) as exc:
            # never retry with weights_only=False: a foreign file may carry code
            raise ValueError(f"{path} is not an evaluator saved by cdae ({type(exc).__name__}); "
                             "delete it to retrain") from None
        if not isinstance(state, dict):
            raise ValueError(f"{path} is not an evaluator saved by cdae (it holds a "
                             f"{type(state).__name__}); delete it to retrain")
        recorded = state.pop(CHECKSUM, None)
        if recorded is None:
            warnings.warn(f"{path} carries no content checksum (saved by an older cdae), so its "
                          "weights cannot be verified; delete it to retrain", stacklevel=2)
        elif content_digest(state) != recorded:
            raise ValueError(f"{path} fails its content checksum: its bytes changed after it "
                             "was saved; delete it to retrain")
        config, graph = TrunkConfig(**state["config"]), CausalGraph.from_dict(state["graph"])
        net = MultiHeadNet(config, graph)
        net.load_state_dict(state["net"])
        return cls(net, config, graph, state["shift"], state["scale"])


def train_predictor(
    images: np.ndarray | torch.Tensor,
    labels: pd.DataFrame,
    graph: CausalGraph,
    steps: int = 300,
    batch_size: int = 64,
    lr: float = 2e-3,
    seed: int = 0,
    progress: bool = True,
    config: TrunkConfig | None = None,
) -> AntiCausalPredictor:
    """Fit an :class:`AntiCausalPredictor` on real ``images`` and their ``labels`` (natural units,
    one column per node of ``graph``; extra columns are ignored).

    Loss = sum over continuous v of MSE((y_v - shift_v) / scale_v, head_v)
         + sum over categorical v of cross-entropy(head_v, y_v); Adam, ``steps`` minibatches.
    """
    x = to_model_input(images)
    targets = _label_tensors(labels, graph, len(x))
    config = config or TrunkConfig(channels=x.shape[1])
    if config.channels != x.shape[1]:
        raise ValueError(f"config.channels={config.channels} but the images have "
                         f"{x.shape[1]} channels (shape {tuple(x.shape)})")
    shift = {n: float(t.mean()) for n, t in targets.items() if not graph.is_categorical(n)}
    scale = {n: max(float(t.std()), 1e-8) for n, t in targets.items()
             if not graph.is_categorical(n)}
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        net = MultiHeadNet(config, graph)
    optimiser = torch.optim.Adam(net.parameters(), lr=lr)
    net.train()
    for _ in tqdm(range(steps), disable=not progress, desc="anti-causal predictor"):
        idx = torch.randint(len(x), (min(batch_size, len(x)),), generator=generator)
        outputs = net(x[idx])
        loss = sum(
            F.cross_entropy(out, targets[name][idx].long()) if graph.is_categorical(name)
            else F.mse_loss(out[:, 0], (targets[name][idx] - shift[name]) / scale[name])
            for name, out in outputs.items()
        )
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return AntiCausalPredictor(net, config, graph, shift, scale)


def _label_tensors(labels: pd.DataFrame, graph: CausalGraph, n: int) -> dict[str, torch.Tensor]:
    """Check ``labels`` against ``graph`` and return one float tensor (N,) per node."""
    missing = [name for name in graph.nodes if name not in labels.columns]
    if missing:
        raise ValueError(f"labels lack the columns {missing} of the graph's nodes {graph.nodes}; "
                         f"they have {list(labels.columns)}")
    if len(labels) != n:
        raise ValueError(f"{n} images but {len(labels)} label rows; they must match one to one")
    out = {}
    for name in graph.nodes:
        values = labels[name].to_numpy(dtype=np.float64)
        if not np.isfinite(values).all():
            raise ValueError(f"labels[{name!r}] contains NaN or inf; drop or fill those rows")
        k = graph.categorical.get(name)
        if k is not None and not (np.all(values == np.round(values))
                                  and values.min() >= 0 and values.max() < k):
            raise ValueError(f"labels[{name!r}] must hold class indices 0..{k - 1}")
        out[name] = torch.tensor(values, dtype=torch.float32)
    return out

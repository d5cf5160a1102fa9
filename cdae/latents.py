"""Looking inside a trained model's latent space (notebook 06).

A CausalDiffAE encodes an image x into exogenous noise u = mu(x) and causal latents z = SCM(u),
each (N, n·d): one block of d dims per variable of the graph, in ``graph.nodes`` order, with
z_i = f_i(z_pa(i)) + u_i (roots: z_i = u_i). This module collects those codes for a dataset,
moves one block at a time (an intervention that propagates, or a bare edit that does not),
reads the mechanism the causal layer learned, and projects codes to 2-D.

    >>> codes = collect_latents(cf, test_set, n=2000)              # u, z, true labels
    >>> walk = traverse(cf, x, "thickness", [1, 2, 3, 4, 5], steps=50)
    >>> walk.images.shape                                           # (B, 5, C, H, W)
    >>> curve = mechanism_response(cf, codes.u, codes.z, "thickness", "intensity", grid)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from cdae.data.images import to_unit_range
from cdae.graph import CausalGraph


class Latents(NamedTuple):
    """Codes of N images: ``u`` and ``z`` (N, n·d) on the CPU; ``labels`` the true labels in
    natural units (N rows, graph node order; categorical ones as class indices)."""

    u: Tensor
    z: Tensor
    labels: pd.DataFrame


@dataclass(frozen=True)
class Traversal:
    """Output of :func:`traverse`. ``images`` (B, V, C, H, W) in [-1, 1]: image b decoded with
    value v; ``values`` (V,) the requested values (natural units); ``labels`` one row per (b, v):
    columns ``sample, value`` and every variable as read off the edited z (natural units)."""

    images: Tensor
    values: np.ndarray
    labels: pd.DataFrame


def _require_encoder(cf_model: Any) -> None:
    if not cf_model.has_encoder:
        raise ValueError("this model has no encoder (label-conditional DDIM), so it has no latent "
                         "space to inspect; load a causal_diffae or diffae checkpoint")


def _check_variable(cf_model: Any, name: str) -> None:
    if name not in cf_model.graph.nodes:
        raise ValueError(f"unknown variable {name!r}; the model's variables are "
                         f"{cf_model.graph.nodes}")


# ---------------------------------------------------------------------- codes of a dataset
@torch.no_grad()
def collect_latents(cf_model: Any, dataset: Any, n: int | None = None,
                    batch_size: int = 256) -> Latents:
    """Encode the first ``n`` images (all by default) of a :class:`CausalImageDataset` in
    batches: u = mu(x), z = SCM(u), each (n, n_vars·d), with the true labels in natural units."""
    _require_encoder(cf_model)
    if list(dataset.variables) != list(cf_model.graph.nodes):
        raise ValueError(f"the dataset's variables {list(dataset.variables)} differ from the "
                         f"model's {cf_model.graph.nodes}; build the dataset with the model's "
                         "graph (build_dataset(..., graph=cf.graph))")
    n = len(dataset) if n is None else n
    if not 1 <= n <= len(dataset):
        raise ValueError(f"n={n} must be between 1 and the dataset's {len(dataset)} samples")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    us, zs = [], []
    for start in range(0, n, batch_size):
        x = to_unit_range(dataset.images_uint8[start : min(start + batch_size, n)])  # [-1, 1]
        u, z = cf_model.encode(x)
        us.append(u.cpu())
        zs.append(z.cpu())
    labels = dataset.labels_natural[list(dataset.variables)].iloc[:n].reset_index(drop=True)
    return Latents(torch.cat(us), torch.cat(zs), labels)


@torch.no_grad()
def block_signal_to_noise(cf_model: Any, dataset: Any, n: int = 512, batch_size: int = 256,
                          seed: int = 0) -> pd.DataFrame:
    """What the decoder sees of each latent block: the signal-to-noise of q(u|x) per block.

    For ``n`` images (a seeded random subset: datasets stored in grid order, like Pendulum's,
    would otherwise show one corner of the grid), per block i (mean over its d dims):
    ``posterior_sd`` = E_x[sigma(x)], the noise of a sample of q(u_i|x);
    ``spread_u`` = sd across images of mu_i(x), the signal u_i carries;
    ``spread_z`` = sd across images of z_i = f_i(z_pa(i)) + mu_i(x);
    ``snr`` = spread_u / posterior_sd. A block with snr near 0 is noise to a decoder trained
    on samples of q(u|x) (the paper's objective drives sigma to 1), so that decoder learns to
    ignore it; an informative block has snr well above 1. ``decoder_snr`` = snr / sqrt(s) is
    what the decoder sees when it is fed u = mu + sqrt(s)·sigma·eps
    (``config.decoder_variance_scale`` s; equal to snr for s = 1, the paper's objective).
    One row per variable, graph order.
    """
    _require_encoder(cf_model)
    if not 1 <= n <= len(dataset):
        raise ValueError(f"n={n} must be between 1 and the dataset's {len(dataset)} samples")
    chosen = torch.as_tensor(np.random.default_rng(seed).permutation(len(dataset))[:n])
    mus, sds, zs = [], [], []
    for start in range(0, n, batch_size):
        x = to_unit_range(dataset.images_uint8[chosen[start : start + batch_size]])
        x = x.to(cf_model.device)
        mu, logvar = cf_model.model.encode(x)
        mus.append(mu.cpu())
        sds.append((0.5 * logvar).exp().cpu())
        zs.append(cf_model.model.causal(mu).cpu())
    mu, sd, z = torch.cat(mus), torch.cat(sds), torch.cat(zs)
    d = cf_model.model.config.latent_dim
    shrink = cf_model.model.config.decoder_variance_scale ** 0.5
    rows = []
    for i, name in enumerate(cf_model.graph.nodes):
        block = slice(i * d, (i + 1) * d)
        posterior_sd = sd[:, block].mean().item()
        spread_u = mu[:, block].std(dim=0).mean().item()
        rows.append({"variable": name, "posterior_sd": posterior_sd, "spread_u": spread_u,
                     "spread_z": z[:, block].std(dim=0).mean().item(),
                     "snr": spread_u / posterior_sd,
                     "decoder_snr": spread_u / (shrink * posterior_sd)})
    return pd.DataFrame(rows)


def dimension_names(graph: CausalGraph, d: int) -> list[str]:
    """Names of the n·d latent dims, block by block: ``["thickness[0]", ..., "digit[d-1]"]``."""
    return [f"{name}[{k}]" for name in graph.nodes for k in range(d)]


# ---------------------------------------------------------------------- moving one block
def set_block(cf_model: Any, z: Tensor, name: str, value: Any) -> Tensor:
    """z (B, n·d) with block ``name`` replaced by the block that means ``value`` (natural units;
    scalar or (B,)) and *nothing else changed*: children keep their old latents, so this is a
    bare edit, not do(), whenever ``name`` has children."""
    _require_encoder(cf_model)
    _check_variable(cf_model, name)
    label = cf_model.to_label_space(name, value)  # natural -> label space (class index)
    block = cf_model.model.encode_value(name, label).to(z)  # (1 or B, d)
    out = z.clone()
    out[:, cf_model.model.causal.block_slice(name)] = block
    return out


@torch.no_grad()
def traverse(cf_model: Any, x: Tensor, variable: str, values: Sequence[float] | np.ndarray,
             steps: int = 50, propagate: bool = True, x_T: Tensor | None = None) -> Traversal:
    """Decode every image of ``x`` (B, C, H, W) with ``variable`` set to each of ``values``.

    Abduction once: u, z = encode(x), x_T = DDIM inversion of x under the factual z (or the
    ``x_T`` given, to share one inversion between traversals). Then for each value v:
    ``propagate=True``: z_v = do(variable = v), descendants recomputed z_j = f_j(z_pa(j)) + u_j;
    ``propagate=False``: z_v = :func:`set_block` (children keep their factual latents).
    All B·V images are decoded from x_T in one DDIM batch of ``steps`` steps.
    """
    _require_encoder(cf_model)
    _check_variable(cf_model, variable)
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    if values.size == 0:
        raise ValueError("values is empty; give at least one value to traverse")
    u, z = cf_model.encode(x)
    if x_T is None:
        x_T = cf_model.abduct_noise(x, z, steps)
    elif x_T.shape != x.shape:
        raise ValueError(f"x_T has shape {tuple(x_T.shape)} but x has {tuple(x.shape)}; pass the "
                         "inversion of these very images")
    edits = [cf_model.intervene(u, z, {variable: v}) if propagate
             else set_block(cf_model, z, variable, v) for v in values]
    z_all = torch.stack(edits, dim=1).flatten(0, 1)  # (B·V, n·d), image-major
    x_rep = x_T.to(cf_model.device).repeat_interleave(len(values), dim=0)  # (B·V, C, H, W)
    images = cf_model.decode(x_rep, z_all, steps).cpu()
    labels = cf_model.to_frame(cf_model.read_labels(z_all))
    labels.insert(0, "value", np.tile(values, len(x)))
    labels.insert(0, "sample", np.repeat(np.arange(len(x)), len(values)))
    return Traversal(images.unflatten(0, (len(x), len(values))), values, labels)


# ---------------------------------------------------------------------- learned mechanisms
@torch.no_grad()
def mechanism_response(cf_model: Any, u: Tensor, z: Tensor, cause: str, effect: str,
                       values: Sequence[float] | np.ndarray) -> pd.DataFrame:
    """The model's interventional distribution of ``effect`` under do(``cause`` = v).

    For each v, every row's latents are intervened on (its own u kept) and the effect's value is
    read off the counterfactual z in natural units; over the N rows this estimates
    E_u[effect | do(cause = v)] = E_u[decode(f_effect(...) + u_effect)]. An effect that is not a
    descendant of the cause keeps its factual values, so its curve is flat.

    Returns columns ``value, mean, sd, q05, q95`` (one row per v).
    """
    _require_encoder(cf_model)
    for name in (cause, effect):
        _check_variable(cf_model, name)
    rows = []
    for v in np.asarray(values, dtype=np.float64).reshape(-1):
        z_cf = cf_model.intervene(u.to(cf_model.device), z.to(cf_model.device), {cause: v})
        read = cf_model.to_frame(cf_model.read_labels(z_cf))[effect].to_numpy()
        rows.append((v, read.mean(), read.std(), *np.quantile(read, [0.05, 0.95])))
    return pd.DataFrame(rows, columns=["value", "mean", "sd", "q05", "q95"])


# ---------------------------------------------------------------------- embeddings
def pca(codes: np.ndarray | Tensor, k: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Principal components of codes (N, D) by SVD of the centred matrix X - mean = U S V^T.

    Returns the scores U_k S_k (N, k) (coordinates on the first k axes) and the explained
    variance ratios s_i² / sum_j s_j² (k,), largest first.
    """
    x = np.asarray(codes.detach().cpu() if isinstance(codes, Tensor) else codes, np.float64)
    if x.ndim != 2 or not 1 <= k <= min(x.shape):
        raise ValueError(f"pca needs codes (N, D) and 1 <= k <= min(N, D); got shape {x.shape} "
                         f"and k={k}")
    centred = x - x.mean(axis=0)
    left, s, _ = np.linalg.svd(centred, full_matrices=False)
    ratio = s**2 / max(float((s**2).sum()), 1e-12)
    return left[:, :k] * s[:k], ratio[:k]

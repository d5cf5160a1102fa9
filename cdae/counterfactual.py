"""Counterfactual generation in natural units: Pearl's abduction, action and prediction.

    >>> cf = CounterfactualModel.from_checkpoint("data/pretrained/morphomnist_small.pt")
    >>> out = cf.counterfactual(x, do={"thickness": 3.5}, steps=50)
    >>> out.images            # (B, C, H, W) in [-1, 1]
    >>> out.counterfactual    # DataFrame: thickness 3.5, intensity as the mechanism predicts, digit
    >>> kept = cf.abduct(x, steps=50)                       # abduction once ...
    >>> many = [cf.predict(kept, {"thickness": t}) for t in (1.5, 2.5, 3.5)]  # ... many do()s

1. **Abduction**: u = mu(x), z = SCM(u); x_T by deterministic DDIM inversion of x conditioned on
   the factual z (keeps the image's style), or the released code's noise jump
   (``abduction="noise"``: x_T = q_sample(x, T-1), style carried by z alone).
2. **Action**: the intervened blocks are set to the value that means the requested natural-unit
   value; descendants are recomputed with their own u; non-descendants are untouched.
3. **Prediction**: DDIM decoding of x_T under the counterfactual z, optionally with
   classifier-free guidance eps = w · eps(z) + (1 - w) · eps(null).

Values outside the training range: a requested value outside the range of the training data,
widened by ``RANGE_MARGIN`` (10 %) of its width on each side, raises ``ValueError``;
``clamp=True`` clamps it to that range with a warning instead. A value that the mechanisms
propagate outside it gets a warning (an extrapolation). Models whose label normaliser predates
recorded training ranges use mean ± ``max_sigma`` training sds instead. Categorical values must
be a class index in [0, n_classes).
"""

from __future__ import annotations

import math
import numbers
import os
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from cdae.data.images import check_model_range
from cdae.diffusion import GaussianDiffusion, guided_eps_fn
from cdae.graph import CausalGraph

if TYPE_CHECKING:
    from cdae.data.labels import LabelNormalizer

ABDUCTIONS = ("inversion", "noise")


@dataclass(frozen=True)
class Abduction:
    """What abduction infers from a batch of images, reusable for any number of interventions.

    ``u`` and ``z`` (B, n·d) are the exogenous noise and causal latents (``u`` is None and ``z``
    the labels for the label-conditional baseline); ``x_T`` (B, C, H, W) the noise image from
    ``abduction`` ("inversion" or "noise") with ``steps`` DDIM steps, inverted with the
    classifier-free guidance weight ``guidance`` (None: the plain conditional eps).
    """

    u: Tensor | None
    z: Tensor
    x_T: Tensor
    steps: int
    abduction: str
    guidance: float | None = None


@dataclass
class CounterfactualResult:
    """Output of :meth:`CounterfactualModel.counterfactual`.

    ``images`` (B, C, H, W) in [-1, 1]; ``factual`` and ``counterfactual`` are DataFrames in
    natural units of the values the model's latents encode before and after the intervention
    (categorical variables as class indices); ``do`` is the intervention as asked.
    """

    images: Tensor
    factual: pd.DataFrame
    counterfactual: pd.DataFrame
    do: dict[str, Any]


#: do() accepts values up to this fraction of the training range's width beyond either end.
RANGE_MARGIN = 0.1


class CounterfactualModel:
    """A trained model bundled with its diffusion schedule and label normaliser.

    Args:
        model: a :class:`~cdae.models.CausalDiffAE`, ``DiffAE`` or ``LabelConditionalDDIM``.
        diffusion: the model's :class:`~cdae.diffusion.GaussianDiffusion`.
        normalizer: the training set's ``LabelNormalizer`` (natural units <-> label space).
        max_sigma: for a normaliser without a recorded training range only: interventions
            further than this many training sds from the mean are refused, descendants that the
            mechanisms carry further are kept, with a warning (:meth:`intervene`).
    """

    def __init__(self, model: nn.Module, diffusion: GaussianDiffusion, normalizer: LabelNormalizer,
                 max_sigma: float = 4.0) -> None:
        self.model = model.eval()
        self.diffusion = diffusion
        self.normalizer = normalizer
        self.graph: CausalGraph = model.graph
        self.max_sigma = max_sigma
        normalizer.check_graph(self.graph)

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, device: str | torch.device = "cpu",
                        ema: bool = True) -> CounterfactualModel:
        """Load a checkpoint written by ``python -m cdae train`` (EMA weights by default)."""
        from cdae.checkpoint import load_model

        loaded = load_model(path, ema=ema, device=device)
        return cls(loaded.model, loaded.diffusion, loaded.normalizer)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def has_encoder(self) -> bool:
        return hasattr(self.model, "latents")

    # ------------------------------------------------------------------ units
    def accepted_range(self, name: str) -> tuple[float, float, str]:
        """(low, high, how it was set) in natural units: the values of continuous ``name`` that
        do() accepts and that descendants may reach without a warning."""
        recorded = self.normalizer.value_range(name)
        if recorded is not None:
            low, high = recorded
            pad = RANGE_MARGIN * (high - low)
            return (low - pad, high + pad, f"the training data's [{low:.4g}, {high:.4g}] ± "
                    f"{RANGE_MARGIN:.0%} of its width")
        low, high = (float(self.normalizer.denormalize_value(name, s * self.max_sigma))
                     for s in (-1.0, 1.0))
        return low, high, f"mean ± {self.max_sigma} sd of the training data"

    def to_label_space(self, name: str, value: float | Tensor | np.ndarray, clamp: bool = False,
                       ) -> Tensor:
        """A natural-unit value (scalar or (B,)) of ``name`` -> normalised label / class index."""
        if name not in self.graph.nodes:
            raise ValueError(f"unknown variable {name!r} in do(); the model's variables are "
                             f"{self.graph.nodes}")
        array = np.asarray(value.cpu() if isinstance(value, Tensor) else value, dtype=np.float64)
        if not np.all(np.isfinite(array)):
            raise ValueError(f"do({name}=...) got a non-finite value {value!r}")
        if self.graph.is_categorical(name):
            n_classes = self.graph.categorical[name]
            if np.any(array != np.round(array)) or array.min() < 0 or array.max() >= n_classes:
                raise ValueError(f"do({name}=...) needs a class index in [0, {n_classes}), "
                                 f"got {value!r}")
            return torch.as_tensor(array, dtype=torch.float32, device=self.device)
        low, high, how = self.accepted_range(name)
        if np.any((array < low) | (array > high)):
            message = (f"do({name}={value!r}) is outside the range the model was trained on: "
                       f"[{low:.4g}, {high:.4g}] ({how})")
            if not clamp:
                raise ValueError(message + "; pass clamp=True to clamp it to that range")
            warnings.warn(message + "; clamped", stacklevel=3)
            array = np.clip(array, low, high)
        normed = np.asarray(self.normalizer.normalize_value(name, array), dtype=np.float64)
        return torch.as_tensor(normed, dtype=torch.float32, device=self.device)

    def to_frame(self, labels: Tensor) -> pd.DataFrame:
        """(B, n) label-space values -> DataFrame in natural units (graph node order)."""
        natural = self.normalizer.denormalize(labels.detach().cpu().numpy().astype(np.float64))
        frame = pd.DataFrame(natural, columns=self.graph.nodes)
        for name in self.graph.categorical:
            frame[name] = frame[name].round().astype(int)
        return frame

    # ------------------------------------------------------------------ the three steps
    def _check_images(self, x: Tensor) -> Tensor:
        """``x`` (B, C, H, W) of the model's shape, float in [-1, 1] (see
        :func:`~cdae.data.images.check_model_range`), on the model's device as float32."""
        if not isinstance(x, Tensor) or x.ndim != 4:
            raise ValueError("images must be a (B, C, H, W) float tensor in [-1, 1]; got "
                             f"{type(x).__name__} of shape {getattr(x, 'shape', None)}")
        self.model.config.check_images(x, "x")
        check_model_range(x, "x")
        return x.to(self.device, torch.float32)

    @torch.no_grad()
    def encode(self, x: Tensor, labels: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Abduction of the latents: (u, z), each (B, n·d). For the label-conditional baseline
        (no encoder) ``labels`` (B, n) in label space are required and u is None."""
        return self._encode(self._check_images(x), labels)

    def _encode(self, x: Tensor, labels: Tensor | None) -> tuple[Tensor, Tensor]:
        if self.has_encoder:
            return self.model.latents(x)
        if labels is None:
            raise ValueError("this model has no encoder (label-conditional DDIM): pass the factual "
                             "labels (B, n), normalised, as `labels=`")
        return None, labels.to(self.device, torch.float32)

    def _eps_fn(self, z: Tensor, guidance: float | None) -> Callable[[Tensor, Tensor], Tensor]:
        _check_guidance(guidance)
        cond = self.model.label_features(z) if not self.has_encoder else z
        if guidance is None:
            return lambda x_t, t: self.model.eps(x_t, t, cond)
        return guided_eps_fn(self.model.eps, cond, self.model.null_token, guidance)

    @torch.no_grad()
    def abduct_noise(self, x: Tensor, z: Tensor, steps: int = 50, abduction: str = "inversion",
                     generator: torch.Generator | None = None, inversion_iters: int = 0,
                     guidance: float | None = None) -> Tensor:
        """x_T (B, C, H, W) from x: DDIM inversion conditioned on the factual z, or noise jump.

        The inversion runs the ODE that decoding with the same ``guidance`` runs backwards, so
        the null intervention gives the image back under any guidance weight.
        """
        if abduction not in ABDUCTIONS:
            raise ValueError(f"abduction must be one of {ABDUCTIONS}, got {abduction!r}")
        if abduction == "noise":
            return self.diffusion.noise_jump(x, generator=generator)
        return self.diffusion.ddim_invert(self._eps_fn(z, guidance), x, steps=steps,
                                          fixed_point_iters=inversion_iters)

    def intervene(self, u: Tensor | None, z: Tensor, do: Mapping[str, Any],
                  clamp: bool = False) -> Tensor:
        """Action: the counterfactual z (B, n·d) (or labels, for the label baseline).

        Continuous descendants of the intervened variables that the mechanisms move outside
        :meth:`accepted_range` get one ``UserWarning`` per call, naming each with its value and
        the training range.
        """
        values = {name: self.to_label_space(name, value, clamp)
                  for name, value in _check_do(do).items()}
        for name, value in values.items():
            if value.ndim > 1 or value.numel() not in (1, len(z)):
                raise ValueError(f"do({name}=...) got {value.numel()} values for {len(z)} "
                                 "images; give one value for all images or one per image")
        if not self.has_encoder:
            z = z.clone()
            for name, value in values.items():
                z[:, self.graph.index(name)] = value
            return z
        z_cf = self.model.intervene(u, z, values)
        descendants = {d for name in do for d in self.graph.descendants(name)} - set(do)
        with torch.no_grad():
            before, after = self.read_labels(z).cpu(), self.read_labels(z_cf).cpu()
        problems = []
        for name in sorted(descendants, key=self.graph.nodes.index):
            if self.graph.is_categorical(name):
                continue
            j = self.graph.index(name)
            low, high, how = self.accepted_range(name)
            natural = torch.as_tensor(self.normalizer.denormalize_value(name, after[:, j]))
            far = ((natural < low) | (natural > high)) & (after[:, j] != before[:, j])
            if not bool(far.any()):
                continue
            extreme = natural[far]
            worst = float(extreme[(extreme - (low + high) / 2).abs().argmax()])
            problems.append(f"{name} = {worst:.4g} in {int(far.sum())} of {len(far)} images "
                            f"(trained on [{low:.4g}, {high:.4g}]: {how})")
        if problems:
            warnings.warn(f"do({', '.join(do)}) propagates values outside the range the model "
                          f"was trained on: {'; '.join(problems)}; images with these values are "
                          "extrapolations", stacklevel=2)
        return z_cf

    def read_labels(self, z: Tensor) -> Tensor:
        """The label-space values (B, n) a latent z encodes (labels themselves for the baseline)."""
        return self.model.decode_labels(z) if self.has_encoder else z

    @torch.no_grad()
    def decode(self, x_T: Tensor, z: Tensor, steps: int = 50, guidance: float | None = None,
               eta: float = 0.0, generator: torch.Generator | None = None,
               clip_x0: bool = False) -> Tensor:
        """Prediction: DDIM decoding of x_T (B, C, H, W) under z; returns images in [-1, 1].

        ``clip_x0`` clips each step's estimate of the clean image to [-1, 1]: it stabilises
        sampling from pure noise, but decoding an inverted x_T is exact only without it.
        """
        for name, tensor in (("x_T", x_T), ("z", z)):
            if not bool(torch.isfinite(tensor).all()):
                raise ValueError(f"decode() got {name} with NaN or infinite values; every image "
                                 f"decoded from it would be NaN. Check where {name} came from")
        out = self.diffusion.ddim_sample(self._eps_fn(z, guidance), x_T, steps=steps, eta=eta,
                                         generator=generator, clip_x0=clip_x0)
        return out.clamp(-1.0, 1.0)

    # ------------------------------------------------------------------ user-facing
    @torch.no_grad()
    def abduct(self, x: Tensor, steps: int = 50, abduction: str = "inversion",
               labels: Tensor | None = None, generator: torch.Generator | None = None,
               inversion_iters: int = 0, guidance: float | None = None) -> Abduction:
        """Abduction of images ``x`` (B, C, H, W): u, z = encode(x) and x_T by
        :meth:`abduct_noise` (inverted with the guidance weight that :meth:`predict` will decode
        with); pass the result to :meth:`predict` for each intervention."""
        x = self._check_images(x)
        _check_guidance(guidance)
        u, z = self._encode(x, labels)
        x_T = self.abduct_noise(x, z, steps, abduction, generator, inversion_iters, guidance)
        return Abduction(u=u, z=z, x_T=x_T, steps=steps, abduction=abduction, guidance=guidance)

    @torch.no_grad()
    def predict(self, abducted: Abduction, do: Mapping[str, Any], guidance: float | None = None,
                clamp: bool = False, steps: int | None = None) -> CounterfactualResult:
        """Action and prediction from an :class:`Abduction`: the counterfactual z under ``do``,
        decoded from the abducted x_T with ``steps`` DDIM steps and guidance weight ``guidance``
        (default for both: the abduction's).

        Decoding an inversion with other steps or another guidance weight than it was made
        with follows another ODE (or the same one on another grid), so the null intervention
        no longer gives the image back exactly; the noise jump has no such coupling.
        """
        z_cf = self.intervene(abducted.u, abducted.z, do, clamp)
        return self._prediction(abducted, z_cf, do,
                                abducted.guidance if guidance is None else guidance,
                                abducted.steps if steps is None else steps)

    def _prediction(self, abducted: Abduction, z_cf: Tensor, do: Mapping[str, Any],
                    guidance: float | None, steps: int) -> CounterfactualResult:
        """Decode ``abducted.x_T`` under the counterfactual ``z_cf`` and wrap the result."""
        # the noise jump starts from (almost) pure noise: clip as when sampling
        images = self.decode(abducted.x_T, z_cf, steps, guidance,
                             clip_x0=abducted.abduction == "noise")
        return CounterfactualResult(images=images,
                                    factual=self.to_frame(self.read_labels(abducted.z)),
                                    counterfactual=self.to_frame(self.read_labels(z_cf)),
                                    do=dict(do))

    @torch.no_grad()
    def counterfactual(self, x: Tensor, do: Mapping[str, Any], steps: int = 50,
                       abduction: str = "inversion", guidance: float | None = None,
                       labels: Tensor | None = None, clamp: bool = False,
                       generator: torch.Generator | None = None,
                       inversion_iters: int = 0) -> CounterfactualResult:
        """Counterfactual images of a batch ``x`` (B, C, H, W) under ``do`` in natural units:
        :meth:`abduct` then :meth:`predict`, with ``do`` checked before the inversion.

        Args:
            do: ``{variable: value}``, a scalar or a (B,) sequence per variable; several
                variables at once are allowed. An empty dict is the null intervention.
            steps: DDIM steps for inversion and for decoding.
            abduction: ``"inversion"`` (deterministic, keeps style) or ``"noise"`` (released code).
            guidance: classifier-free guidance weight w (None: plain conditional decoding); the
                inversion uses the same weight, so ``do={}`` reconstructs under it. From about
                w = 3 the plain guided inversion can diverge on some images (its error growing
                with steps); ``inversion_iters=2`` makes it converge.
            labels: factual labels in label space, only for the label-conditional baseline.
            clamp: clamp out-of-range values (with a warning) instead of raising.
            generator: for ``abduction="noise"``; inversion and decoding are deterministic.
            inversion_iters: fixed-point refinements per inversion step (more exact, slower).
        """
        x = self._check_images(x)
        _check_guidance(guidance)  # a bad guidance or do() is refused before the inversion
        u, z = self._encode(x, labels)
        z_cf = self.intervene(u, z, do, clamp)
        x_T = self.abduct_noise(x, z, steps, abduction, generator, inversion_iters, guidance)
        return self._prediction(Abduction(u=u, z=z, x_T=x_T, steps=steps, abduction=abduction,
                                          guidance=guidance), z_cf, do, guidance, steps)

    @torch.no_grad()
    def reconstruct(self, x: Tensor, steps: int = 50, abduction: str = "inversion",
                    labels: Tensor | None = None,
                    generator: torch.Generator | None = None) -> Tensor:
        """Encode and decode ``x`` with no intervention (the null intervention)."""
        return self.counterfactual(x, {}, steps=steps, abduction=abduction, labels=labels,
                                   generator=generator).images

    @torch.no_grad()
    def sample(self, n: int, do: Mapping[str, Any] | None = None, steps: int = 50,
               guidance: float | None = None, generator: torch.Generator | None = None,
               clip_x0: bool = True) -> CounterfactualResult:
        """Generate ``n`` new images from the latent SCM: u ~ N(0, I), categorical roots drawn
        uniformly (their class code set), z = SCM(u) with ``do`` applied, x_T ~ N(0, I), DDIM.

        Only for models with an encoder; the label baseline samples through :meth:`decode`.
        """
        if not self.has_encoder:
            raise ValueError("sample() needs a latent SCM; for the label-conditional baseline call "
                             "decode(torch.randn(...), labels)")
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
            raise ValueError(f"sample(n) needs a positive whole number of images, got {n!r}")
        _check_guidance(guidance)
        do = dict(_check_do(do or {}))
        for name, n_classes in self.graph.categorical.items():
            if name not in do and not self.graph.parents(name):
                do[name] = torch.randint(n_classes, (n,), generator=generator).float()
        u = torch.randn(n, self.model.cond_dim, generator=generator).to(self.device)
        z = self.intervene(u, self.model.causal(u), do)
        x_T = torch.randn((n, *self.model.config.image_shape), generator=generator)
        images = self.decode(x_T.to(self.device), z, steps, guidance, clip_x0=clip_x0)
        labels = self.to_frame(self.read_labels(z))
        return CounterfactualResult(images=images, factual=labels, counterfactual=labels, do=do)


def _check_guidance(guidance: Any) -> None:
    if guidance is not None and not (isinstance(guidance, numbers.Real)
                                     and math.isfinite(guidance)):
        raise ValueError(f"guidance must be a finite number (the weight w of classifier-free "
                         f"guidance) or None, got {guidance!r}")


def _check_do(do: Any) -> Mapping[str, Any]:
    """``do`` itself if it is a mapping {variable: value}; otherwise a ValueError saying so."""
    if not isinstance(do, Mapping):
        raise ValueError(f"do must be a dict {{variable: value}}, e.g. {{'thickness': 3.5}} ({{}} "
                         f"for no intervention), got {type(do).__name__} {do!r:.60}")
    return do

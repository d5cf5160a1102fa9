"""One dataclass holds every size and choice of a model: a new dataset is a new config, never an
edit of library code. The number of causal variables ``n`` comes from the ``CausalGraph``; the
config only says how wide each variable's latent block is (``latent_dim`` = d).

    >>> cfg = ModelConfig.small(image_size=28, in_channels=1)
    >>> ModelConfig.from_dict(cfg.to_dict()) == cfg
    True
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from dataclasses import replace as _replace
from typing import Any

import torch

from cdae.schema import from_mapping

MECHANISMS = ("nonlinear", "released", "linear")
CATEGORICAL_MODES = ("block", "embedding")
NULL_TOKENS = ("learned", "zero")
PRIORS = ("label_aligned", "standard")
KL_REDUCTIONS = ("sum", "mean")
CONDITIONINGS = ("embedding", "adagn")


@dataclass(frozen=True)
class ModelConfig:
    """Sizes and choices of CausalDiffAE and its baselines.

    Images are (in_channels, image_size, image_size); u and z live in R^(n*latent_dim).
    """

    # images
    image_size: int = 28
    in_channels: int = 1
    # encoder q(u | x)
    latent_dim: int = 4  # d: latent dims per causal variable
    encoder_channels: tuple[int, ...] = (32, 64, 128)  # one stride-2 conv per entry
    encoder_pool: int = 4  # adaptive average pool to (pool, pool) before the linear head
    # UNet eps_theta(x_t, t, z)
    base_channels: int = 32
    channel_mult: tuple[int, ...] = (1, 2, 2)  # one level per entry; 28 -> 14 -> 7
    num_res_blocks: int = 1
    attention_resolutions: tuple[int, ...] = (7,)  # feature-map sizes that get self-attention
    attention_heads: int = 4
    dropout: float = 0.0
    conditioning: str = "embedding"  # embedding (z added to the time embedding) | adagn (Diff-AE)
    # causal layer (latent SCM)
    mechanism: str = "nonlinear"  # nonlinear (paper) | released (authors' code) | linear
    mechanism_hidden: int = 32
    categorical_mode: str = "block"  # block (fixed class codes) | embedding (learned codes)
    class_code_scale: float = 3.0  # norm of a fixed class code in "block" mode
    # classifier-free conditioning
    null_token: str = "learned"  # learned | zero; width n*d, derived from the graph
    cfg_drop_prob: float = 0.1  # chance of replacing z by the null token (released code: 0.5)
    # objective
    prior: str = "label_aligned"  # p(z_i | y_i) = N(y_i 1, I), or standard N(0, I)
    gamma: float = 1.0  # final KL weight (released code: 1.0)
    gamma_warmup_steps: int = 0  # linear anneal 0 -> gamma (released code: 50,000 steps)
    kl_u_on_roots: bool = False  # the paper's formula read literally; see losses.latent_kl
    label_prior_variance: float = 1.0  # v in p(z_i | y_i) = N(m_i(y_i), v I) (paper: 1)
    decoder_variance_scale: float = 1.0  # decoder sees u = mu + sqrt(s)·sigma·eps (released: 1e-3)
    mechanism_weight: float = 0.0  # lambda of the supervised mechanism term (paper: 0)
    kl_reduction: str = "sum"  # KL summed over latent dims (paper) | "mean" (the MSE's scale)
    # diffusion
    timesteps: int = 1000
    schedule: str = "linear"

    def __post_init__(self) -> None:
        for name in ("encoder_channels", "channel_mult", "attention_resolutions"):
            object.__setattr__(self, name, tuple(int(v) for v in getattr(self, name)))
        self._check_choices()
        self._check_sizes()

    # ------------------------------------------------------------------ presets
    @classmethod
    def small(cls, image_size: int = 28, in_channels: int = 1, **overrides: Any) -> ModelConfig:
        """A model that trains on a laptop CPU: base 32 channels, one ResBlock per level,
        attention only at the lowest resolution."""
        levels = _levels(image_size, max_levels=4)
        lowest = image_size // 2 ** (levels - 1)
        spec = dict(image_size=image_size, in_channels=in_channels, latent_dim=4,
                    encoder_channels=(32, 64, 128), base_channels=32,
                    channel_mult=(1,) + (2,) * (levels - 1), num_res_blocks=1,
                    attention_resolutions=(lowest,), gamma_warmup_steps=1000)
        return cls(**{**spec, **overrides})

    @classmethod
    def paper(cls, image_size: int = 64, in_channels: int = 3, **overrides: Any) -> ModelConfig:
        """The paper's scale: base 128 channels, three ResBlocks per level, attention at the two
        lowest resolutions (16 and 8 for 64 px), KL weight annealed over 50,000 steps."""
        levels = _levels(image_size, max_levels=4)
        lowest = image_size // 2 ** (levels - 1)
        spec = dict(image_size=image_size, in_channels=in_channels, latent_dim=32,
                    encoder_channels=(64, 128, 256, 256), base_channels=128,
                    channel_mult=(1,) + (2,) * (levels - 1), num_res_blocks=3,
                    attention_resolutions=(2 * lowest, lowest), dropout=0.1,
                    gamma_warmup_steps=50_000)
        return cls(**{**spec, **overrides})

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        """Plain-python form (tuples as lists) for YAML configs and checkpoints."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> ModelConfig:
        """Inverse of :meth:`to_dict`, by :func:`cdae.schema.from_mapping`: unknown keys are an
        error naming the valid ones, values are converted to the field types, missing keys take
        the defaults."""
        return from_mapping(cls, spec, "ModelConfig")

    def replace(self, **changes: Any) -> ModelConfig:
        """A copy with some fields changed (validated again)."""
        return _replace(self, **changes)

    # ------------------------------------------------------------------ input checks
    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of the images this model takes."""
        return (self.in_channels, self.image_size, self.image_size)

    def check_images(self, x: torch.Tensor, name: str = "x") -> None:
        """Raise ``ValueError`` unless ``x`` is a (B, C, H, W) batch of this config's shape."""
        if x.dim() != 4 or tuple(x.shape[1:]) != self.image_shape:
            raise ValueError(
                f"{name} must have shape (B, {', '.join(map(str, self.image_shape))}) for this "
                f"config (in_channels={self.in_channels}, image_size={self.image_size}), got "
                f"{tuple(x.shape)}; build the model with a config that matches the dataset's "
                "image_shape"
            )

    # ------------------------------------------------------------------ validation
    def _check_choices(self) -> None:
        choices = {"mechanism": MECHANISMS, "categorical_mode": CATEGORICAL_MODES,
                   "null_token": NULL_TOKENS, "prior": PRIORS,
                   "kl_reduction": KL_REDUCTIONS, "conditioning": CONDITIONINGS}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name}={getattr(self, name)!r} is not one of {allowed}")
        if not 0.0 <= self.cfg_drop_prob < 1.0:
            raise ValueError(f"cfg_drop_prob must be in [0, 1), got {self.cfg_drop_prob}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if not self.label_prior_variance > 0:
            raise ValueError(f"label_prior_variance must be > 0, got {self.label_prior_variance}")
        if not 0.0 < self.decoder_variance_scale <= 1.0:
            raise ValueError("decoder_variance_scale must be in (0, 1], got "
                             f"{self.decoder_variance_scale}")
        if self.mechanism_weight < 0:
            raise ValueError(f"mechanism_weight must be >= 0, got {self.mechanism_weight}")
        if self.gamma < 0 or self.gamma_warmup_steps < 0:
            raise ValueError("gamma and gamma_warmup_steps must be >= 0, got "
                             f"{self.gamma} and {self.gamma_warmup_steps}")

    def _check_sizes(self) -> None:
        positive = ("image_size", "in_channels", "latent_dim", "encoder_pool", "base_channels",
                    "num_res_blocks", "attention_heads", "mechanism_hidden", "timesteps")
        bad = {name: getattr(self, name) for name in positive if getattr(self, name) < 1}
        if bad or not self.encoder_channels or not self.channel_mult:
            raise ValueError(f"sizes must be positive and encoder_channels / channel_mult "
                             f"non-empty, got {bad or self}")
        factor = 2 ** (len(self.channel_mult) - 1)
        if self.image_size % factor:
            raise ValueError(
                f"image_size {self.image_size} is not divisible by {factor}, as the "
                f"{len(self.channel_mult)} levels of channel_mult={self.channel_mult} need; use "
                f"{_levels(self.image_size, len(self.channel_mult))} levels, e.g. (1, 2, 2) for 28"
            )
        sizes = self.resolutions
        missing = sorted(set(self.attention_resolutions) - set(sizes))
        if missing:
            raise ValueError(f"attention_resolutions {missing} are not feature-map sizes of this "
                             f"UNet; its levels have sizes {sizes}")
        for level, size in enumerate(sizes):
            width = self.base_channels * self.channel_mult[level]
            if size in self.attention_resolutions and width % self.attention_heads:
                raise ValueError(f"{width} channels at size {size} do not split into "
                                 f"attention_heads={self.attention_heads} heads")

    @property
    def resolutions(self) -> list[int]:
        """Feature-map size of each UNet level, e.g. [28, 14, 7]."""
        return [self.image_size // 2**level for level in range(len(self.channel_mult))]


def _levels(image_size: int, max_levels: int) -> int:
    """Most UNet levels (at most ``max_levels``) that halve ``image_size`` exactly and keep the
    lowest feature map at least 4 pixels wide."""
    levels = 1
    while (levels < max_levels and image_size % 2**levels == 0
           and image_size // 2**levels >= 4):
        levels += 1
    return levels

"""The encoder q(u | x) = N(mu(x), diag exp(logvar(x))) of the exogenous noise u in R^(n*d).

A stride-2 conv net (GroupNorm + SiLU), an adaptive average pool to a fixed (pool, pool) grid so
that any image size works (28, 64, 96, 128 ...), and one linear head for mu and logvar.
"""

from __future__ import annotations

import torch
from torch import nn

from cdae.models.unet import group_norm

#: log-variance range; keeps exp(logvar) finite in float32 without limiting a trained encoder.
LOGVAR_MIN, LOGVAR_MAX = -20.0, 10.0


class Encoder(nn.Module):
    """(B, C, H, W) image -> (mu, logvar), each (B, latent_width)."""

    def __init__(self, in_channels: int, widths: tuple[int, ...], latent_width: int,
                 pool: int = 4) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, widths[0], 3, padding=1)]
        prev = widths[0]
        for width in widths:  # each stage halves H and W
            layers += [nn.Conv2d(prev, width, 3, stride=2, padding=1), group_norm(width), nn.SiLU()]
            prev = width
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(pool), nn.Flatten())
        self.head = nn.Linear(prev * pool * pool, 2 * latent_width)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.head(self.features(x)).float().chunk(2, dim=-1)  # (B, n*d) each
        return mu, logvar.clamp(LOGVAR_MIN, LOGVAR_MAX)  # float32 even under autocast


def reparameterise(mu: torch.Tensor, logvar: torch.Tensor,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """A sample of q(u|x): u = mu + exp(½ logvar) · eps, eps ~ N(0, I) drawn from ``generator``."""
    source = generator.device if generator is not None else mu.device
    eps = torch.randn(mu.shape, generator=generator, device=source, dtype=mu.dtype).to(mu.device)
    return mu + (0.5 * logvar).exp() * eps

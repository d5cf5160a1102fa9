"""The noise predictor eps_theta(x_t, t, z): a DDPM-style UNet conditioned on a latent vector.

Conditioning, ``config.conditioning``:

- ``embedding`` (the released CausalDiffAE code's choice): one embedding per sample,
  emb = MLP(sinusoid(t)) + Linear(z), and every ResBlock applies it as a scale-shift GroupNorm,
  h = GN(h) * (1 + scale) + shift with (scale, shift) = Linear(SiLU(emb)). Cheap, but z and t
  share one vector, so how much a change of z moves a block depends on t.
- ``adagn`` (Diff-AE's AdaGN): z has its own path, e = MLP(z), and every ResBlock multiplies the
  time-modulated features by an affine map of it,
  h = (GN(h) * (1 + scale_t) + shift_t) * (1 + Linear(e)), the map zero-initialised so training
  starts from the unconditional network.

Shapes: x_t (B, C, H, W), t (B,) long in [0, T), cond (B, cond_dim) -> eps (B, C, H, W).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from cdae.models.config import ModelConfig


def group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with up to 32 groups of at least 4 channels each."""
    groups = math.gcd(32, channels)
    while groups > 1 and channels // groups < 4:
        groups //= 2
    return nn.GroupNorm(groups, channels)


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """Sinusoidal embedding (B,) -> (B, dim): [cos(t w_k), sin(t w_k)], w_k = P^(-k / half)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device) / half)
    angles = t.float()[:, None] * freqs[None]  # (B, half)
    emb = torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)
    return F.pad(emb, (0, dim % 2))


def zero_init(module: nn.Module) -> nn.Module:
    """Zero a layer's parameters so a residual branch starts as the identity."""
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class ResBlock(nn.Module):
    """h = x + conv(SiLU(GN(conv(SiLU(GN(x)))) * (1 + scale) + shift)), (scale, shift) from emb."""

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, dropout: float,
                 adagn: bool = False) -> None:
        super().__init__()
        self.norm1 = group_norm(in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * out_ch)
        self.cond = zero_init(nn.Linear(emb_dim, out_ch)) if adagn else None
        self.norm2 = group_norm(out_ch)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = zero_init(nn.Conv2d(out_ch, out_ch, 3, padding=1))
        self.skip = nn.Identity() if in_ch == out_ch else nn.Conv2d(in_ch, out_ch, 1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor,
                cond: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, in, H, W), emb (B, emb_dim), cond (B, emb_dim) in AdaGN mode -> (B, out, H, W)."""
        h = self.conv1(F.silu(self.norm1(x)))  # (B, out, H, W)
        scale, shift = self.emb(F.silu(emb))[:, :, None, None].chunk(2, dim=1)  # (B, out, 1, 1)
        h = self.norm2(h) * (1 + scale) + shift  # scale-shift norm
        if self.cond is not None:
            h = h * (1 + self.cond(cond)[:, :, None, None])  # AdaGN: z's own multiplicative map
        h = self.conv2(self.dropout(F.silu(h)))
        return self.skip(x) + h


class Attention(nn.Module):
    """Multi-head self-attention over the H*W positions, residual: x + proj(softmax(qk^T/√c) v)."""

    def __init__(self, channels: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm = group_norm(channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = zero_init(nn.Conv2d(channels, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        qkv = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads, h * w)
        q, k, v = qkv.transpose(-1, -2).unbind(dim=1)  # each (B, heads, HW, c/heads)
        out = F.scaled_dot_product_attention(q, k, v)
        return x + self.proj(out.transpose(-1, -2).reshape(b, c, h, w))


class Block(nn.Module):
    """A ResBlock, optionally followed by self-attention."""

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, dropout: float,
                 attention: bool, heads: int, adagn: bool = False) -> None:
        super().__init__()
        self.res = ResBlock(in_ch, out_ch, emb_dim, dropout, adagn)
        self.attn = Attention(out_ch, heads) if attention else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor,
                cond: torch.Tensor | None = None) -> torch.Tensor:
        return self.attn(self.res(x, emb, cond))


class Upsample(nn.Module):
    """Nearest-neighbour x2 then a 3x3 conv."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class NullToken(nn.Module):
    """The "no condition" vector used for unlabelled rows and classifier-free guidance.

    Its width is the model's conditioning width (n*d for the autoencoders), never a constant.
    ``learned``: a trained parameter (initialised at 0); ``zero``: a fixed zero vector.
    """

    def __init__(self, width: int, kind: str = "learned") -> None:
        super().__init__()
        if kind == "learned":
            self.token = nn.Parameter(torch.zeros(width))
        else:
            self.register_buffer("token", torch.zeros(width))

    @property
    def width(self) -> int:
        return self.token.numel()

    def expand(self, batch: int) -> torch.Tensor:
        """(batch, width) copies of the token."""
        return self.token.expand(batch, -1)

    def fill(self, z: torch.Tensor | None, batch: int) -> torch.Tensor:
        """``z`` (checked to be (batch, width)), or the token for every row when z is None."""
        if z is None:
            return self.expand(batch)
        if z.dim() != 2 or z.shape != (batch, self.width):
            raise ValueError(f"z must have shape (B, {self.width}) = ({batch}, {self.width}) for "
                             f"this model, got {tuple(z.shape)}; pass None for the null token")
        return z

    def where(self, use: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Row b is z[b] where use[b], else the token: (B,) bool, (B, width) -> (B, width)."""
        return torch.where(use[:, None], z, self.token.to(z.dtype)[None])


class UNet(nn.Module):
    """eps_theta(x_t, t, cond) with the sizes of a :class:`ModelConfig`."""

    def __init__(self, config: ModelConfig, cond_dim: int) -> None:
        super().__init__()
        ch = config.base_channels
        emb_dim = 4 * ch
        self.config = config
        self.time_mlp = nn.Sequential(nn.Linear(ch, emb_dim), nn.SiLU(),
                                      nn.Linear(emb_dim, emb_dim))
        adagn = config.conditioning == "adagn"
        if adagn:  # z's own path: e = MLP(z), used multiplicatively by every ResBlock
            self.cond_proj = nn.Sequential(nn.Linear(cond_dim, emb_dim), nn.SiLU(),
                                           nn.Linear(emb_dim, emb_dim))
        else:  # emb = time_emb + Linear(z)
            self.cond_proj = nn.Linear(cond_dim, emb_dim)
        self.adagn = adagn
        self.stem = nn.Conv2d(config.in_channels, ch, 3, padding=1)

        def block(in_ch: int, out_ch: int, size: int) -> Block:
            return Block(in_ch, out_ch, emb_dim, config.dropout,
                         size in config.attention_resolutions, config.attention_heads, adagn)

        skips = [ch]
        self.down, self.downsample = nn.ModuleList(), nn.ModuleList()
        for level, (mult, size) in enumerate(zip(config.channel_mult, config.resolutions,
                                                 strict=True)):
            blocks = nn.ModuleList()
            for _ in range(config.num_res_blocks):
                blocks.append(block(ch, config.base_channels * mult, size))
                ch = config.base_channels * mult
                skips.append(ch)
            self.down.append(blocks)
            if level < len(config.channel_mult) - 1:
                self.downsample.append(nn.Conv2d(ch, ch, 3, stride=2, padding=1))
                skips.append(ch)

        self.middle = nn.ModuleList([  # ResBlock + attention + ResBlock at the lowest size
            Block(ch, ch, emb_dim, config.dropout, True, config.attention_heads, adagn),
            Block(ch, ch, emb_dim, config.dropout, False, config.attention_heads, adagn),
        ])

        self.up, self.upsample = nn.ModuleList(), nn.ModuleList()
        for level in reversed(range(len(config.channel_mult))):
            out_ch = config.base_channels * config.channel_mult[level]
            blocks = nn.ModuleList()
            for _ in range(config.num_res_blocks + 1):
                blocks.append(block(ch + skips.pop(), out_ch, config.resolutions[level]))
                ch = out_ch
            self.up.append(blocks)
            if level > 0:
                self.upsample.append(Upsample(ch))

        self.out = nn.Sequential(group_norm(ch), nn.SiLU(),
                                 zero_init(nn.Conv2d(ch, config.in_channels, 3, padding=1)))

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W), (B,), (B, cond_dim) -> predicted noise (B, C, H, W)."""
        emb = self.time_mlp(timestep_embedding(t, self.config.base_channels))  # (B, 4 * base)
        z_emb = self.cond_proj(cond)  # (B, 4 * base)
        if not self.adagn:
            emb, z_emb = emb + z_emb, None
        h = self.stem(x)
        skips = [h]
        for level, blocks in enumerate(self.down):
            for blk in blocks:
                h = blk(h, emb, z_emb)
                skips.append(h)
            if level < len(self.downsample):
                h = self.downsample[level](h)
                skips.append(h)
        for blk in self.middle:
            h = blk(h, emb, z_emb)
        for level, blocks in enumerate(self.up):
            for blk in blocks:
                h = blk(torch.cat([h, skips.pop()], dim=1), emb, z_emb)
            if level < len(self.upsample):
                h = self.upsample[level](h)
        return self.out(h)


class ConditionalEpsModel(nn.Module):
    """What every model shares: eps_theta(x_t, t, z) = ``unet(x_t, t, z)``, with ``null``'s
    token standing in for a missing z (unlabelled rows, classifier-free guidance).

    Subclasses set ``self.config`` (:class:`ModelConfig`), ``self.unet`` (:class:`UNet`) and
    ``self.null`` (:class:`NullToken`) and say what z is.
    """

    config: ModelConfig
    unet: UNet
    null: NullToken

    @property
    def cond_dim(self) -> int:
        """Width of the conditioning vector z (and of the null token)."""
        return self.null.width

    @property
    def null_token(self) -> torch.Tensor:
        """(cond_dim,) the "no condition" vector for classifier-free guidance."""
        return self.null.token

    def eps(self, x_t: torch.Tensor, t: torch.Tensor, z: torch.Tensor | None = None,
            ) -> torch.Tensor:
        """eps_theta(x_t, t, z) (B, C, H, W); ``z=None`` conditions on the null token."""
        self.config.check_images(x_t, "x_t")
        return self.unet(x_t, t, self.null.fill(z, x_t.shape[0]))

    def num_parameters(self) -> int:
        """Trainable parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

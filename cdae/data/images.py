"""Image conventions and the conversions between them; the one place that knows them.

Two conventions:

* **storage**: ``uint8`` grey levels 0-255, (N, H, W) grey or (N, H, W, C) channels-last;
* **model**: float in [-1, 1], (N, C, H, W) channels-first, ``x = p / 127.5 - 1`` and back
  ``p = (x + 1) * 127.5`` (clipped to [0, 255], as when an image is saved).

Preparing a dataset (strict: storage images in, one layout): :func:`images_to_nchw`,
:func:`convert_channels`, :func:`resize_images`, :func:`to_unit_range`.
Evaluating (lenient: either convention in, layout detected): :func:`to_pixels`,
:func:`to_model_input`. A 4-D array whose axis 1 has 1, 3 or 4 entries is read as
(N, C, H, W), else as (N, H, W, C). Float images on 0-1 cannot be told apart from [-1, 1] ones;
convert them first (x * 2 - 1).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

_CHANNEL_COUNTS = (1, 3, 4)


# ---------------------------------------------------------------------------- scale


def to_unit_range(images: torch.Tensor) -> torch.Tensor:
    """Pixels on 0-255 -> [-1, 1]: x = p / 127.5 - 1. uint8 becomes float32; a float tensor
    keeps its dtype."""
    pixels = images if images.is_floating_point() else images.float()
    return pixels / 127.5 - 1.0


def from_unit_range(images: np.ndarray) -> np.ndarray:
    """Float [-1, 1] -> pixels on 0-255, same float dtype: p = clip((x + 1) * 127.5, 0, 255)."""
    return np.clip((images + 1.0) * 127.5, 0.0, 255.0)


def check_model_range(x: torch.Tensor, name: str = "x") -> None:
    """Refuse model inputs (B, C, H, W) that are not float images in [-1, 1], saying how to
    convert them: integer or bool dtypes, NaN/inf, values beyond ±1.5 (0-255 grey levels).
    A batch with no pixel below 0 (0-1 intensities, whose black would be read as mid-grey)
    gets a warning with the conversion."""
    if not (x.is_floating_point() or x.is_complex()):
        raise ValueError(f"{name} is a {x.dtype} tensor; the model takes float images in "
                         "[-1, 1]: convert grey levels 0-255 with x.float() / 127.5 - 1 "
                         "(cdae.data.images.to_unit_range)")
    if x.is_complex():
        raise ValueError(f"{name} is complex ({x.dtype}); the model takes real images in [-1, 1]")
    if x.numel() == 0:
        return
    finite = torch.isfinite(x)
    if not bool(finite.all()):
        bad = (~finite).flatten(1).any(1).nonzero().flatten().tolist()
        raise ValueError(f"{name} holds {int((~finite).sum())} NaN or infinite values (in "
                         f"images {bad[:10]}); the model needs finite images in [-1, 1]")
    low, high = (float(v) for v in torch.aminmax(x.detach()))
    if high > 1.5 or low < -1.5:
        hint = ("they look like grey levels 0-255: convert with x / 127.5 - 1 "
                "(cdae.data.images.to_unit_range)" if low >= 0 and high <= 255
                else "rescale them to [-1, 1]")
        raise ValueError(f"{name} lies in [{low:.4g}, {high:.4g}], not in the model's range "
                         f"[-1, 1]; {hint}")
    if low >= 0 and high > 0:
        warnings.warn(f"{name} lies in [{low:.3g}, {high:.3g}]: no pixel is below 0, which is "
                      "mid-grey in the model's range [-1, 1]; if these are 0-1 intensities, "
                      "convert with x * 2 - 1", stacklevel=3)


def to_numpy(images: Any) -> np.ndarray:
    """A torch tensor (any device, detached) or array-like as a numpy array."""
    if isinstance(images, torch.Tensor):
        return images.detach().cpu().numpy()
    return np.asarray(images)


# ---------------------------------------------------------------------------- datasets


def images_to_nchw(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 (N, H, W) or (N, H, W, C) -> uint8 tensor (N, C, H, W), C in 1..4."""
    tensor = torch.as_tensor(np.asarray(images)) if not torch.is_tensor(images) else images
    if tensor.dtype != torch.uint8:
        raise ValueError(
            f"images must be uint8 in 0-255, got {tensor.dtype}; if they are floats in [0, 1] "
            "convert with (x * 255).round().astype(np.uint8)"
        )
    if tensor.ndim == 3:
        tensor = tensor[..., None]
    if tensor.ndim != 4 or tensor.shape[-1] not in (1, 2, 3, 4):
        hint = (" (this looks channels-first; pass (N, H, W, C))"
                if tensor.ndim == 4 and tensor.shape[1] in (1, 3, 4) else "")
        raise ValueError(
            f"images must have shape (N, H, W) or (N, H, W, C) with C <= 4, got "
            f"{tuple(tensor.shape)}{hint}"
        )
    return tensor.permute(0, 3, 1, 2).contiguous()


def convert_channels(images: torch.Tensor, channels: int | None) -> torch.Tensor:
    """uint8 (N, C, H, W) -> (N, channels, H, W).

    RGBA -> RGB drops alpha (as PIL's ``convert("RGB")``); RGB/RGBA -> grey is the ITU-R 601
    luma L = 0.299 R + 0.587 G + 0.114 B; grey -> RGB repeats the channel.
    """
    have = images.shape[1]
    if channels is None or channels == have:
        return images
    if have == 4 and channels == 3:
        return images[:, :3].contiguous()
    if have in (3, 4) and channels == 1:
        weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
        luma = (images[:, :3].float() * weights).sum(dim=1, keepdim=True)  # L = w . (R, G, B)
        return luma.round().clamp(0, 255).to(torch.uint8)
    if have == 1 and channels == 3:
        return images.repeat(1, 3, 1, 1)
    raise ValueError(
        f"cannot convert {have}-channel images to channels={channels}; supported: RGBA->3 "
        "(drops alpha), RGB/RGBA->1 (luma), 1->3 (repeat), or channels=None to keep them"
    )


def resize_images(
    images: torch.Tensor, size: int | Sequence[int] | None, chunk: int = 512
) -> torch.Tensor:
    """uint8 (N, C, H, W) -> (N, C, size, size) (or ``size=(h, w)``), bilinear, anti-aliased,
    in chunks of ``chunk`` images to bound memory."""
    if size is None:
        return images
    target = (int(size), int(size)) if np.isscalar(size) else tuple(int(s) for s in size)
    if len(target) != 2 or min(target) < 1:
        raise ValueError(f"size must be a positive int or (height, width), got {size!r}")
    if tuple(images.shape[2:]) == target:
        return images
    out = torch.empty((images.shape[0], images.shape[1], *target), dtype=torch.uint8)
    for start in range(0, images.shape[0], chunk):
        block = images[start : start + chunk].float()
        block = F.interpolate(block, size=target, mode="bilinear", align_corners=False,
                              antialias=True)
        out[start : start + chunk] = block.round().clamp(0, 255).to(torch.uint8)
    return out


# ---------------------------------------------------------------------------- evaluation


def _channels_first(x: np.ndarray) -> np.ndarray:
    """(N, H, W) -> (N, 1, H, W); (N, H, W, C) -> (N, C, H, W); (N, C, H, W) unchanged."""
    if x.ndim == 3:
        return x[:, None]
    if x.ndim == 4 and x.shape[1] in _CHANNEL_COUNTS:
        return x
    if x.ndim == 4 and x.shape[-1] in _CHANNEL_COUNTS:
        return np.moveaxis(x, -1, 1)
    raise ValueError(f"images must be (N, H, W), (N, H, W, C) or (N, C, H, W) with C in "
                     f"{_CHANNEL_COUNTS}, got shape {x.shape}")


def to_pixels(images: np.ndarray | torch.Tensor) -> np.ndarray:
    """Images in either convention -> float64 (N, C, H, W) on 0-255."""
    x = to_numpy(images)
    if x.dtype == np.uint8:
        return _channels_first(x).astype(np.float64)
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"images must be uint8 on 0-255 or float in [-1, 1], got {x.dtype}")
    if x.size and (np.nanmax(np.abs(x)) > 1.5 or not np.isfinite(x).all()):
        raise ValueError("float images must be finite and in [-1, 1] (found values beyond "
                         "±1.5); pass 0-255 images as uint8, or rescale with x / 127.5 - 1")
    return from_unit_range(_channels_first(x).astype(np.float64))


def to_model_input(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Images in either convention -> float32 tensor (N, C, H, W) in [-1, 1] (clipped)."""
    return to_unit_range(torch.from_numpy(to_pixels(images))).float()

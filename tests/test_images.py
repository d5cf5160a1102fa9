"""Image conventions and conversions (cdae.data.images), and the display built on them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cdae.data.images import (
    convert_channels,
    from_unit_range,
    images_to_nchw,
    resize_images,
    to_model_input,
    to_pixels,
    to_unit_range,
)
from cdae.plotting import to_display


def test_resize_keeps_constants_and_linear_ramps():
    flat = torch.full((2, 3, 96, 96), 77, dtype=torch.uint8)
    assert torch.equal(resize_images(flat, 64, chunk=1), torch.full((2, 3, 64, 64), 77,
                                                                    dtype=torch.uint8))
    # f(x) = 2x along the width: away from the borders the (symmetric) filter keeps f at the new
    # pixel centres, x_src = (j + 0.5) * 96 / 64 - 0.5
    ramp = (2 * torch.arange(96)).to(torch.uint8).expand(1, 1, 96, 96)
    small = resize_images(ramp, 64, chunk=1)
    centres = (torch.arange(64) + 0.5) * 1.5 - 0.5
    torch.testing.assert_close(small[0, 0, 10, 3:-3].float(), (2 * centres[3:-3]).round(),
                               atol=1.0, rtol=0)
    assert resize_images(ramp, (4, 8)).shape == (1, 1, 4, 8)
    with pytest.raises(ValueError, match="size"):
        resize_images(ramp, 0)


def test_channel_conversions():
    rgba = torch.tensor([255, 0, 0, 9], dtype=torch.uint8).view(1, 4, 1, 1)
    assert convert_channels(rgba, 1).item() == round(0.299 * 255)  # red's luma
    grey = torch.tensor([[[[40]]]], dtype=torch.uint8)
    assert convert_channels(grey, 3).flatten().tolist() == [40, 40, 40]
    with pytest.raises(ValueError, match="cannot convert 1-channel images to channels=4"):
        convert_channels(grey, 4)


def test_pixel_conventions():
    grey = np.zeros((2, 1, 3, 3), dtype=np.float32)  # 0.0 in [-1, 1] is mid-grey
    assert to_pixels(grey).max() == 127.5
    rgba = np.full((2, 5, 6, 4), 7, dtype=np.uint8)  # storage layout (N, H, W, C)
    assert to_pixels(rgba).shape == (2, 4, 5, 6)
    with pytest.raises(ValueError, match="uint8"):
        to_pixels(np.full((2, 3, 3), 200.0))
    with pytest.raises(ValueError, match="uint8 on 0-255 or float"):
        to_pixels(np.zeros((2, 3, 3), dtype=np.int64))
    with pytest.raises(ValueError, match="must be"):
        to_pixels(np.zeros((2, 5, 6, 7), dtype=np.uint8))


def test_unit_range_round_trip_is_exact_on_grey_levels():
    pixels = torch.arange(256, dtype=torch.uint8)
    x = to_unit_range(pixels)
    assert x.dtype == torch.float32 and x[0] == -1.0 and x[-1] == 1.0
    np.testing.assert_allclose(from_unit_range(x.double().numpy()), np.arange(256), atol=1e-4)
    assert to_unit_range(pixels.double()).dtype == torch.float64  # floats keep their precision
    np.testing.assert_array_equal(from_unit_range(np.array([-1.5, 1.5])), [0.0, 255.0])


def test_dataset_and_evaluation_paths_agree():
    rng = np.random.default_rng(0)
    storage = rng.integers(0, 256, size=(3, 5, 6, 3), dtype=np.uint8)  # (N, H, W, C)
    dataset_view = to_unit_range(images_to_nchw(storage))  # what CausalImageDataset returns
    torch.testing.assert_close(to_model_input(storage), dataset_view, atol=1e-6, rtol=0)
    np.testing.assert_array_equal(to_pixels(dataset_view).round(), to_pixels(storage))


def test_display_reads_both_conventions_alike():
    storage = np.random.default_rng(1).integers(0, 256, size=(1, 7, 8, 3), dtype=np.uint8)
    shown = to_display(storage[0])  # (H, W, C) uint8
    assert shown.shape == (7, 8, 3) and shown.min() >= 0 and shown.max() <= 1
    model = to_model_input(storage)[0]  # (C, H, W) in [-1, 1]
    np.testing.assert_allclose(to_display(model), shown, atol=1e-6)
    assert to_display(torch.zeros(1, 5, 6)).shape == (5, 6)  # grey channel squeezed

"""The shipped Pendulum model: real counterfactuals of real test scenes, read by the pixel
oracle and compared with the renderer's true counterfactual of the same scene."""

import numpy as np
import pytest

from cdae import build_dataset, load_pretrained
from cdae.data import pendulum
from cdae.data.images import convert_channels, images_to_nchw, resize_images, to_pixels
from cdae.pretrained import read_manifest


@pytest.fixture(scope="module")
def cf():
    return load_pretrained("pendulum_small")


@pytest.fixture(scope="module")
def scenes(cf):
    size = cf.model.config.image_size
    test = build_dataset("pendulum", "test", normalizer=cf.normalizer, size=size, channels=3)
    pick = np.random.default_rng(0).permutation(len(test))[:8]
    x, _ = test.tensors()
    return x[pick], test.labels_natural.iloc[pick].reset_index(drop=True)


def storage(images):
    """(N, 3, H, W) in [-1, 1] -> (N, H, W, 3) uint8, what the oracle reads."""
    return np.moveaxis(np.rint(to_pixels(images)).astype(np.uint8), 1, -1)


def test_manifest_says_how_it_was_trained():
    entry = read_manifest()["pendulum_small.pt"]
    assert entry["command"] == "python -m cdae train configs/pendulum_small.yaml"
    assert entry["seed"] == 0 and entry["bytes"] < 5_000_000


@pytest.mark.slow
def test_do_pendulum_angle_moves_the_pendulum_and_its_shadow_like_the_renderer(cf, scenes):
    x, labels = scenes
    out = cf.counterfactual(x, do={"pendulum_angle": 20.0}, steps=50)
    measured = pendulum.measure(storage(out.images))
    truth = pendulum.counterfactual(labels["pendulum_angle"].to_numpy(),
                                    labels["light_angle"].to_numpy(), {"pendulum_angle": 20.0})
    # the intervened cause moves to its new value, the other root stays (degrees)
    before = np.median(np.abs(labels["pendulum_angle"] - 20.0))
    after = np.median(np.abs(measured["pendulum_angle"] - 20.0))
    print(f"pendulum angle: {before:.1f} deg from 20 before, {after:.1f} after")
    assert after < 8.0 and after < before / 2
    assert np.median(np.abs(measured["light_angle"] - labels["light_angle"])) < 3.0
    # the effects follow the renderer's geometry for the new angle
    for effect, tolerance in (("shadow_position", 1.0), ("shadow_length", 2.0)):
        error = np.median(np.abs(measured[effect].to_numpy() - truth.labels[effect].to_numpy()))
        print(f"{effect}: median error {error:.2f} against the renderer")
        assert error < tolerance, effect
    # closer to the true counterfactual image than the factual image is
    size = x.shape[-2:]
    true_images = resize_images(convert_channels(images_to_nchw(truth.images), 3), tuple(size))
    to_truth = np.abs(to_pixels(out.images) - true_images.numpy().astype(float)).mean()
    unchanged = np.abs(to_pixels(x) - true_images.numpy().astype(float)).mean()
    assert to_truth < unchanged, (to_truth, unchanged)

"""The shipped Pendulum model: real counterfactuals of real test scenes, read by the pixel
oracle and compared with the renderer's true counterfactual of the same scene."""

import numpy as np
import pytest
import torch

from cdae import build_dataset, load_pretrained
from cdae.data import pendulum
from cdae.data.images import convert_channels, images_to_nchw, resize_images, to_pixels
from cdae.evaluate.oracles import oracle_for
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
    assert after < 2.0 and after < before / 2
    assert np.median(np.abs(measured["light_angle"] - labels["light_angle"])) < 2.0
    # the effects follow the renderer's geometry for the new angle
    for effect, tolerance in (("shadow_position", 0.5), ("shadow_length", 0.5)):
        error = np.median(np.abs(measured[effect].to_numpy() - truth.labels[effect].to_numpy()))
        print(f"{effect}: median error {error:.2f} against the renderer")
        assert error < tolerance, effect
    # closer to the true counterfactual image than the factual image is
    size = x.shape[-2:]
    true_images = resize_images(convert_channels(images_to_nchw(truth.images), 3), tuple(size))
    to_truth = np.abs(to_pixels(out.images) - true_images.numpy().astype(float)).mean()
    unchanged = np.abs(to_pixels(x) - true_images.numpy().astype(float)).mean()
    assert to_truth < unchanged, (to_truth, unchanged)


NOISY = {"size": 32, "channels": 3, "generate_kwargs": {"shadow_noise_sd": 1.0}}


def test_the_noisy_shadow_model_says_how_it_was_trained():
    entry = read_manifest()["pendulum_small_noisy_shadows.pt"]
    assert entry["command"] == "python -m cdae train configs/pendulum_small_noisy_shadows.yaml"
    assert entry["dataset"]["options"]["generate_kwargs"] == NOISY["generate_kwargs"]


@pytest.mark.slow
def test_do_shadow_length_has_support_on_noisy_shadows_and_matches_the_renderer():
    # With exogenous shadow noise a shadow longer than the geometry gives is a scene the data
    # shows, so do(shadow_length) can be learned: the shadow takes the asked length, the angles
    # that cause it stay, and the image lands nearer the renderer's counterfactual than the
    # factual scene is.
    cf = load_pretrained("pendulum_small_noisy_shadows")
    oracle = oracle_for("pendulum", options=NOISY)
    test = build_dataset("pendulum", "test", normalizer=cf.normalizer, **NOISY)
    pick = np.random.default_rng(0).permutation(len(test))[:8]
    x = test.tensors()[0][pick]
    asked = np.clip(oracle.labels["shadow_length"].to_numpy()[pick] + 2.0, None, 10.0)
    out = cf.counterfactual(x, do={"shadow_length": torch.as_tensor(asked)}, steps=50)
    measured = pendulum.measure(storage(out.images))
    factual = oracle.labels.iloc[pick].reset_index(drop=True)
    length_error = np.median(np.abs(measured["shadow_length"].to_numpy() - asked))
    moved = {k: np.median(np.abs(measured[k] - factual[k])) for k in ("pendulum_angle",
                                                                      "light_angle")}
    truth = oracle.counterfactuals(pick, {"shadow_length": asked})
    true_images = resize_images(convert_channels(images_to_nchw(truth.images), 3), (32, 32))
    to_truth = np.abs(to_pixels(out.images) - true_images.numpy().astype(float)).mean()
    unchanged = np.abs(to_pixels(x) - true_images.numpy().astype(float)).mean()
    print(f"shadow length error {length_error:.2f}, angles moved {moved}, "
          f"L1 to truth {to_truth:.2f} vs unchanged {unchanged:.2f}")
    assert length_error < 0.5  # the target, on 256 scenes; measured 0.11 on these 8
    assert max(moved.values()) < 2.0
    assert to_truth < unchanged

"""The shipped baselines (Diff-AE with label alignment, label-conditional DDIM): how they were
made, and the property that tells them apart from CausalDiffAE: they do not propagate an
intervention to its effects. (test_pretrained.py runs do(intensity) on every Morpho-MNIST model.)"""

from pathlib import Path

import numpy as np
import pytest

from cdae import build_dataset, load_pretrained
from cdae.config import load_config
from cdae.data import pendulum
from cdae.data.images import convert_channels, images_to_nchw, resize_images, to_pixels
from cdae.data.morphomnist import tutorial_root
from cdae.pretrained import read_manifest

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
MORPHO_BASELINES = ("morphomnist_small_diffae", "morphomnist_small_label_ddim")
PENDULUM_BASELINES = ("pendulum_small_diffae", "pendulum_small_label_ddim")


@pytest.mark.parametrize("name", (*MORPHO_BASELINES, *PENDULUM_BASELINES))
def test_manifest_says_how_the_baseline_was_trained(name):
    entry = read_manifest()[f"{name}.pt"]
    assert entry["command"] == f"python -m cdae train configs/{name}.yaml"
    assert entry["model_kind"] == name.rsplit("_small_", 1)[1]
    config = load_config(CONFIG_DIR / f"{name}.yaml")
    assert entry["seed"] == config.train.seed and entry["step"] == config.train.steps
    assert entry["bytes"] < 5_000_000


@pytest.fixture(scope="module")
def morpho_digits():
    cf = load_pretrained("morphomnist_small")  # the same test digits for every model
    test = build_dataset("morphomnist", "test", root=tutorial_root(smoke=True),
                         normalizer=cf.normalizer, limit=8)
    return test


@pytest.mark.parametrize("name", MORPHO_BASELINES)
def test_morpho_baseline_does_not_propagate_thickness_to_intensity(name, morpho_digits):
    cf = load_pretrained(name)
    x, y = morpho_digits.tensors()
    labels = None if cf.has_encoder else y
    out = cf.counterfactual(x[:4], do={"thickness": 4.5}, steps=2,
                            labels=None if labels is None else labels[:4])
    # a non-causal model keeps the child's value: only CausalDiffAE recomputes it
    np.testing.assert_allclose(out.counterfactual["intensity"], out.factual["intensity"],
                               atol=1e-3)


@pytest.mark.parametrize("name", PENDULUM_BASELINES)
def test_pendulum_baseline_leaves_the_shadows_where_they_were(name):
    cf = load_pretrained(name)
    scenes = build_dataset("pendulum", "test", normalizer=cf.normalizer, size=32, channels=3,
                           limit=4)
    x, y = scenes.tensors()
    out = cf.counterfactual(x, do={"pendulum_angle": 30.0}, steps=2,
                            labels=None if cf.has_encoder else y)
    np.testing.assert_allclose(out.counterfactual["pendulum_angle"], 30.0, atol=1e-3)
    for effect in ("shadow_length", "shadow_position"):  # the true SCM would move both
        np.testing.assert_allclose(out.counterfactual[effect], out.factual[effect], atol=1e-3)


@pytest.mark.slow
def test_pendulum_diffae_moves_the_pendulum_less_than_the_causal_model():
    # Without a causal layer the shadow blocks keep their factual values, and in every training
    # scene the shadow is a function of both angles: the decoder reads the old angle off them
    # too, so do(pendulum_angle) lands between the old and the new angle.
    test = build_dataset("pendulum", "test", size=32, channels=3)
    pick = np.random.default_rng(0).permutation(len(test))[:8]
    labels = test.labels_natural.iloc[pick].reset_index(drop=True)
    before = np.median(np.abs(labels["pendulum_angle"] - 20.0))
    truth = pendulum.counterfactual(labels["pendulum_angle"].to_numpy(),
                                    labels["light_angle"].to_numpy(), {"pendulum_angle": 20.0})
    true_images = resize_images(convert_channels(images_to_nchw(truth.images), 3), (32, 32))
    after, to_truth = {}, {}
    for name in ("pendulum_small_diffae", "pendulum_small"):
        cf = load_pretrained(name)
        scenes = build_dataset("pendulum", "test", normalizer=cf.normalizer, size=32, channels=3)
        out = cf.counterfactual(scenes.tensors()[0][pick], do={"pendulum_angle": 20.0}, steps=50)
        pixels = np.moveaxis(np.rint(to_pixels(out.images)).astype(np.uint8), 1, -1)
        after[name] = np.median(np.abs(pendulum.measure(pixels)["pendulum_angle"] - 20.0))
        to_truth[name] = np.abs(to_pixels(out.images) - true_images.numpy().astype(float)).mean()
        if name == "pendulum_small_diffae":  # no propagation: its shadow latents stay factual
            np.testing.assert_allclose(out.counterfactual["shadow_position"],
                                       out.factual["shadow_position"], atol=1e-3)
    print(f"median |angle - 20|: {before:.1f} before, {after}; L1 to the renderer's {to_truth}")
    assert after["pendulum_small_diffae"] < before
    assert after["pendulum_small"] < after["pendulum_small_diffae"]
    # against the renderer's true counterfactual image too
    assert to_truth["pendulum_small"] < to_truth["pendulum_small_diffae"]

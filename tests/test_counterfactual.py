"""Counterfactual API on a tiny (untrained) model: units, propagation, errors, determinism.

What a *trained* model achieves (effectiveness, round trips) is tested in test_pretrained.py.
"""

import warnings

import numpy as np
import pytest
import torch
from tiny_models import TINY, make_tiny_cf

from cdae import CausalGraph
from cdae.counterfactual import CounterfactualModel
from cdae.data.labels import LabelNormalizer
from cdae.diffusion import GaussianDiffusion
from cdae.models import ModelConfig, build_model

make = make_tiny_cf


@pytest.fixture(scope="module")
def cf_model():
    return make()


@pytest.fixture(scope="module")
def images():
    return torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(1)) * 2 - 1


def test_do_thickness_sets_it_in_natural_units_and_propagates_to_intensity(cf_model, images):
    out = cf_model.counterfactual(images, do={"thickness": 3.5}, steps=4)
    assert out.images.shape == images.shape
    assert out.images.min() >= -1 and out.images.max() <= 1
    np.testing.assert_allclose(out.counterfactual["thickness"], 3.5, atol=1e-4)
    # intensity is a child: recomputed by its mechanism, so it moves
    assert not np.allclose(out.counterfactual["intensity"], out.factual["intensity"])
    # digit is not a descendant: untouched
    assert (out.counterfactual["digit"] == out.factual["digit"]).all()


def test_non_descendants_keep_their_latents_exactly(cf_model, images):
    u, z = cf_model.encode(images)
    z_cf = cf_model.intervene(u, z, {"intensity": 200.0})
    for name in ("thickness", "digit"):
        sl = cf_model.model.causal.block_slice(name)
        assert torch.equal(z_cf[:, sl], z[:, sl])
    assert torch.allclose(cf_model.read_labels(z_cf)[:, 1],
                          cf_model.to_label_space("intensity", 200.0))


def test_several_variables_and_per_sample_values(cf_model, images):
    out = cf_model.counterfactual(images, do={"thickness": [1.5, 2.5, 3.5], "digit": 7}, steps=3)
    np.testing.assert_allclose(out.counterfactual["thickness"], [1.5, 2.5, 3.5], atol=1e-4)
    assert out.counterfactual["digit"].tolist() == [7, 7, 7]


def test_fixed_inputs_give_identical_outputs(cf_model, images):
    a = cf_model.counterfactual(images, do={"thickness": 2.0}, steps=3).images
    b = cf_model.counterfactual(images, do={"thickness": 2.0}, steps=3).images
    assert torch.equal(a, b)
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    n1 = cf_model.counterfactual(images, {}, steps=3, abduction="noise", generator=g1).images
    n2 = cf_model.counterfactual(images, {}, steps=3, abduction="noise", generator=g2).images
    assert torch.equal(n1, n2)


def test_inversion_and_noise_jump_differ(cf_model, images):
    inv = cf_model.reconstruct(images, steps=3)
    jump = cf_model.reconstruct(images, steps=3, abduction="noise",
                                generator=torch.Generator().manual_seed(0))
    assert not torch.allclose(inv, jump)


def test_bad_interventions_and_images(cf_model, images):
    with pytest.raises(ValueError, match="unknown variable 'thicknes'.*thickness"):
        cf_model.counterfactual(images, do={"thicknes": 3.0}, steps=2)
    with pytest.raises(ValueError, match="outside the range.*clamp=True"):
        cf_model.counterfactual(images, do={"thickness": 40.0}, steps=2)
    with pytest.warns(UserWarning, match="clamped"):
        out = cf_model.counterfactual(images, do={"thickness": 40.0}, steps=2, clamp=True)
    assert out.counterfactual["thickness"].max() < 40
    with pytest.raises(ValueError, match=r"class index in \[0, 10\)"):
        cf_model.counterfactual(images, do={"digit": 12}, steps=2)
    with pytest.raises(ValueError, match="abduction"):
        cf_model.counterfactual(images, do={}, steps=2, abduction="jump")
    with pytest.raises(ValueError):
        cf_model.counterfactual(torch.zeros(2, 3, 32, 32), do={}, steps=2)
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        cf_model.counterfactual(torch.zeros(28, 28), do={}, steps=2)


def test_extreme_propagated_values_warn_once_with_the_training_range(images):
    """A child that the mechanism pushes beyond max_sigma training sds is flagged, not refused."""
    steep = make()
    with torch.no_grad():  # a steep thickness -> intensity mechanism
        steep.model.causal.f[str(steep.graph.index("intensity"))][-1].weight.mul_(100)
    low, high = (steep.normalizer.denormalize_value("intensity", s * steep.max_sigma)
                 for s in (-1.0, 1.0))
    with pytest.warns(UserWarning) as record:
        out = steep.counterfactual(images, do={"thickness": 1.0}, steps=2)
    messages = [str(w.message) for w in record if "propagates" in str(w.message)]
    assert len(messages) == 1
    value = out.counterfactual["intensity"].max()
    assert value > high  # reported, not clipped
    assert f"intensity = {value:.4g} in 3 of 3 images" in messages[0]
    assert f"[{low:.4g}, {high:.4g}]" in messages[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        steep.counterfactual(images, do={"thickness": 3.0}, steps=2)  # child in range
        steep.counterfactual(images, do={"digit": 3}, steps=2)  # no descendants
        make("diffae").counterfactual(images, do={"thickness": 1.0}, steps=2)  # no propagation


def test_normalizer_from_another_graph_is_rejected():
    graph = CausalGraph.preset("pendulum")
    model = build_model(CausalGraph.preset("morphomnist"),
                        ModelConfig.small(image_size=28, **TINY))
    wrong = LabelNormalizer(graph.nodes, [0.0] * 4, [1.0] * 4)
    with pytest.raises(ValueError):
        CounterfactualModel(model, GaussianDiffusion(), wrong)


def test_sample_respects_interventions(cf_model):
    out = cf_model.sample(4, do={"thickness": 2.0, "digit": 3}, steps=3,
                          generator=torch.Generator().manual_seed(0))
    assert out.images.shape == (4, 1, 28, 28)
    np.testing.assert_allclose(out.counterfactual["thickness"], 2.0, atol=1e-4)
    assert out.counterfactual["digit"].tolist() == [3] * 4


def test_diffae_baseline_does_not_propagate():
    diffae = make("diffae")
    x = torch.zeros(2, 1, 28, 28)
    out = diffae.counterfactual(x, do={"thickness": 3.5}, steps=2)
    np.testing.assert_allclose(out.counterfactual["intensity"], out.factual["intensity"])


def test_label_baseline_needs_labels():
    label_model = make("label_ddim")
    x = torch.zeros(2, 1, 28, 28)
    with pytest.raises(ValueError, match="labels="):
        label_model.counterfactual(x, do={"thickness": 3.0}, steps=2)
    labels = torch.tensor([[0.0, 0.0, 1.0], [1.0, -1.0, 4.0]])
    out = label_model.counterfactual(x, do={"thickness": 3.0}, steps=2, labels=labels)
    np.testing.assert_allclose(out.counterfactual["thickness"], 3.0, atol=1e-5)
    assert out.counterfactual["digit"].tolist() == [1, 4]


def test_images_of_the_wrong_dtype_range_or_with_nans_are_refused_with_the_conversion(
        cf_model, images):
    grey = ((images + 1) * 127.5).round()
    with pytest.raises(ValueError, match=r"torch.uint8.*x.float\(\) / 127.5 - 1"):
        cf_model.counterfactual(grey.to(torch.uint8), do={"thickness": 3.0}, steps=2)
    with pytest.raises(ValueError, match=r"grey levels 0-255.*x / 127.5 - 1"):
        cf_model.encode(grey)
    with pytest.raises(ValueError, match=r"rescale"):
        cf_model.reconstruct(images * 4, steps=2)
    nan = images.clone()
    nan[1, 0, 3, 3] = float("nan")
    with pytest.raises(ValueError, match=r"1 NaN or infinite values \(in images \[1\]\)"):
        cf_model.counterfactual(nan, do={}, steps=2)
    with pytest.warns(UserWarning, match=r"x \* 2 - 1"):
        cf_model.encode((images + 1) / 2)  # 0-1 intensities
    with warnings.catch_warnings():  # images in [-1, 1] pass silently
        warnings.simplefilter("error")
        cf_model.encode(images)


def test_non_finite_guidance_and_malformed_do_are_refused(cf_model, images):
    with pytest.raises(ValueError, match="guidance must be a finite number"):
        cf_model.counterfactual(images, do={}, steps=2, guidance=float("nan"))
    with pytest.raises(ValueError, match="do must be a dict"):
        cf_model.counterfactual(images, do=None, steps=2)
    with pytest.raises(ValueError, match="do must be a dict"):
        cf_model.counterfactual(images, do=["thickness", 3.0], steps=2)
    with pytest.raises(ValueError, match="got 2 values for 3 images"):
        cf_model.counterfactual(images, do={"thickness": [2.0, 3.0]}, steps=2)
    with pytest.raises(ValueError, match="do must be a dict"):
        cf_model.sample(2, do=[1.0], steps=2)


def test_one_abduction_serves_many_interventions_exactly(cf_model, images):
    kept = cf_model.abduct(images, steps=3)
    for do in ({"thickness": 1.5}, {"intensity": 200.0}, {}):
        reused = cf_model.predict(kept, do)
        fresh = cf_model.counterfactual(images, do, steps=3)
        assert torch.equal(reused.images, fresh.images)
        assert reused.counterfactual.equals(fresh.counterfactual)
    # the abduction itself is not altered by predicting from it
    assert torch.equal(kept.x_T, cf_model.abduct(images, steps=3).x_T)


def test_predict_decodes_with_other_steps_and_keeps_the_noise_jump_clipping(cf_model, images):
    kept = cf_model.abduct(images, steps=4)
    coarse = cf_model.predict(kept, {"thickness": 3.0}, steps=2).images
    assert not torch.equal(coarse, cf_model.predict(kept, {"thickness": 3.0}).images)
    z_cf = cf_model.intervene(kept.u, kept.z, {"thickness": 3.0})
    assert torch.equal(coarse, cf_model.decode(kept.x_T, z_cf, 2))
    jump = cf_model.abduct(images, steps=3, abduction="noise",
                           generator=torch.Generator().manual_seed(0))
    assert torch.equal(cf_model.predict(jump, {}).images,
                       cf_model.decode(jump.x_T, jump.z, 3, clip_x0=True))


def test_bad_do_is_refused_before_the_abduction(cf_model, images, monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("abduction ran for a do() that must be refused")

    monkeypatch.setattr(cf_model, "abduct_noise", fail)
    with pytest.raises(ValueError, match="outside the range"):
        cf_model.counterfactual(images, {"thickness": 40.0}, steps=2)


def test_bad_guidance_sample_size_and_nan_noise_are_refused_before_any_work(cf_model, images,
                                                                           monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("the inversion ran for a request that must be refused")

    monkeypatch.setattr(cf_model, "abduct_noise", fail)
    with pytest.raises(ValueError, match="guidance must be a finite number"):
        cf_model.counterfactual(images, do={}, steps=2, guidance=float("nan"))
    monkeypatch.undo()
    for n in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="positive whole number of images"):
            cf_model.sample(n, steps=2)
    z = cf_model.encode(images)[1]
    x_T = torch.randn_like(images)
    x_T[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="x_T with NaN or infinite values"):
        cf_model.decode(x_T, z, steps=2)


def test_do_values_are_checked_against_the_training_range_not_the_sd_rule(images):
    """Thickness is skewed (Gamma): values real training images have lie beyond mean + 4 sd."""
    cf = make()
    old = cf.normalizer
    cf.normalizer = LabelNormalizer(old.variables, old.shift, old.scale, old.categorical,
                                    low=[0.9, 64.0, 0.0], high=[6.5, 255.0, 9.0])
    assert 2.5 + 4 * 0.6 < 5.5 < 6.5  # refused by the sd rule, inside the training range
    out = cf.counterfactual(images, {"thickness": 5.5}, steps=2)
    assert np.allclose(out.counterfactual["thickness"], 5.5, atol=1e-4)
    low, high, how = cf.accepted_range("intensity")
    assert (low, high) == pytest.approx((64.0 - 19.1, 255.0 + 19.1))
    assert "training data's [64, 255]" in how
    for name, value in (("intensity", -5.0), ("intensity", 300.0), ("thickness", 0.0)):
        with pytest.raises(ValueError, match=rf"do\({name}=.*outside the range the model was "
                                             r"trained on: \[.*training data's"):
            cf.counterfactual(images, {name: value}, steps=2)
    with pytest.warns(UserWarning, match="clamped"):
        clamped = cf.intervene(*cf.encode(images), {"intensity": 300.0}, clamp=True)
    assert cf.to_frame(cf.read_labels(clamped))["intensity"].max() == pytest.approx(
        high, abs=0.1)
    # a propagated value outside the training range is flagged as an extrapolation
    with torch.no_grad():
        cf.model.causal.f[str(cf.graph.index("intensity"))][-1].weight.mul_(100)
    flagged = r"propagates values outside.*intensity = .*\[44.9, 274.1\]"
    with pytest.warns(UserWarning, match=flagged):
        cf.intervene(*cf.encode(images), {"thickness": 1.0})
    # the range travels with the normaliser through a checkpoint
    assert LabelNormalizer.from_dict(cf.normalizer.to_dict()).value_range("thickness") == (0.9,
                                                                                           6.5)

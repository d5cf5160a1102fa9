"""Counterfactual metrics on toy images whose measurements are known exactly.

The toy world: a 12x12 image holds a filled rectangle of some ``width`` (columns) and grey
level ``intensity``, placed on the left or right ``side`` (a categorical variable). The oracle
reads those three values back from the pixels.
"""

import numpy as np
import pandas as pd
import pytest

from cdae.data.images import to_model_input
from cdae.evaluate.metrics import (
    composition,
    counterfactual_error,
    effectiveness_table,
    format_table,
    reversibility,
)


def render(width, intensity, side):
    images = np.zeros((len(width), 12, 12), dtype=np.uint8)
    for img, w, g, s in zip(images, width, intensity, side, strict=True):
        cols = slice(0, w) if s == 0 else slice(12 - w, 12)
        img[2:10, cols] = g
    return images


def oracle(images):
    on = images > 0
    cols = on.any(axis=1)
    return pd.DataFrame({
        "width": cols.sum(axis=1),
        "intensity": images.max(axis=(1, 2)).astype(float),
        "side": (~cols[:, 0]).astype(int),
    })


@pytest.fixture
def world():
    rng = np.random.default_rng(0)
    n = 40
    factual = pd.DataFrame({"width": rng.integers(2, 6, n), "intensity": rng.integers(60, 240, n),
                            "side": rng.integers(0, 2, n)})
    images = render(factual["width"], factual["intensity"], factual["side"])
    targets = factual.copy()
    targets["width"] = rng.integers(2, 6, n)  # do(width = random new value)
    return images, factual, targets


def test_oracle_reads_the_toy_world_exactly(world):
    images, factual, _ = world
    pd.testing.assert_frame_equal(oracle(images), factual, check_dtype=False)


def test_perfect_counterfactual_has_zero_error_and_offsets_are_measured_in_grey_levels(world):
    images = world[0]
    assert counterfactual_error(images, images.copy()) == {"l1": 0.0, "mse": 0.0}
    brighter = np.clip(images.astype(int) + 10, 0, 255).astype(np.uint8)
    assert counterfactual_error(brighter, images) == {"l1": 10.0, "mse": 100.0}
    # the same images as float model tensors in [-1, 1] (N, 1, H, W) score the same
    as_float = to_model_input(brighter)
    assert as_float.shape == (40, 1, 12, 12) and float(as_float.max()) <= 1.0
    assert counterfactual_error(as_float, images)["l1"] == pytest.approx(10.0, abs=1e-4)


def test_counterfactual_error_rejects_mismatched_shapes(world):
    images = world[0]
    with pytest.raises(ValueError, match="shapes"):
        counterfactual_error(images[:5], images[:4])


def test_identity_model_composes_perfectly_but_is_not_effective(world):
    images, factual, targets = world
    identity = lambda x: x
    table = composition(identity, images, cycles=(1, 10))
    assert table["cycles"].tolist() == [1, 10] and (table["value"] == 0.0).all()
    assert reversibility(identity, identity, images) == 0.0

    eff = effectiveness_table(oracle(identity(images)), targets, "width", categorical=["side"])
    eff = eff.set_index("variable")
    expected = np.abs(targets["width"] - factual["width"]).mean()
    assert expected > 0.5
    assert eff.loc["width", "value"] == pytest.approx(expected)
    assert eff.loc["intensity", "value"] == 0.0  # untouched variables stay right
    assert eff.loc["side", "metric"] == "accuracy" and eff.loc["side", "value"] == 1.0
    assert (eff["n"] == 40).all()


def test_perfect_model_is_fully_effective(world):
    _, _, targets = world
    cf = render(targets["width"], targets["intensity"], targets["side"])
    eff = effectiveness_table(oracle(cf), targets, "width", categorical=["side"])
    assert (eff.loc[eff["metric"] == "mae", "value"] == 0).all()
    assert (eff.loc[eff["metric"] == "accuracy", "value"] == 1).all()


def test_effectiveness_per_row_interventions_are_grouped(world):
    images, factual, targets = world
    which = np.where(np.arange(40) < 10, "width", "side")
    eff = effectiveness_table(oracle(images), targets, which, categorical=["side"])
    assert eff.groupby("intervened")["n"].first().to_dict() == {"width": 10, "side": 30}
    wide = format_table(eff)
    assert wide.shape == (2, 3) and list(wide.index) == ["width", "side"]


def test_drifting_model_accumulates_error_over_cycles(world):
    images = world[0]
    brighten = lambda x: np.minimum(x.astype(int) + 1, 255).astype(np.uint8)
    table = composition(brighten, images // 2, cycles=(1, 3, 10))
    assert table["value"].tolist() == [1.0, 3.0, 10.0]


def test_lossy_undo_is_not_reversible(world):
    images, factual, targets = world
    do = lambda x: render(targets["width"], factual["intensity"], factual["side"])
    undo = lambda x: render(factual["width"], factual["intensity"], factual["side"])
    assert reversibility(do, undo, images) == 0.0
    darker_undo = lambda x: undo(x) // 2
    expected = np.abs(images // 2 - images.astype(float)).mean()
    assert reversibility(do, darker_undo, images) == pytest.approx(expected)


def test_bad_inputs_give_clear_errors(world):
    images, factual, targets = world
    with pytest.raises(ValueError, match="same counterfactuals"):
        effectiveness_table(factual[:5], targets, "width")
    with pytest.raises(ValueError, match="share no column"):
        effectiveness_table(factual.rename(columns=str.upper), targets, "width")
    with pytest.raises(ValueError, match="one name per row"):
        effectiveness_table(factual, targets, ["width"] * 3)
    with pytest.raises(ValueError, match="cycles"):
        composition(lambda x: x, images, cycles=(0,))
    with pytest.raises(ValueError, match="shapes"):
        composition(lambda x: x[:, :6], images)

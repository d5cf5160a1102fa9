"""The paper reproduction's tables and settings, on small hand-made reports (the whole pipeline
runs on the shipped models in notebook 12, under nbval)."""

import dataclasses

import numpy as np
import pandas as pd
import pytest

from cdae.evaluate import EvaluationReport
from cdae.reproduce import ReproductionSettings, comparison_table, to_markdown
from cdae.reproduce.figures import weak_curves


def report(thickness_mae: float, with_dci: bool) -> EvaluationReport:
    effectiveness = pd.DataFrame({
        "measured_by": ["predictor", "oracle"], "intervened": ["thickness", "thickness"],
        "variable": ["thickness", "thickness"], "metric": ["mae", "mae"],
        "value": [thickness_mae + 0.1, thickness_mae], "value_all": [thickness_mae + 0.1,
                                                                      thickness_mae],
        "floor": [0.1, 0.02], "n": [8, 8], "unmeasured": [0, 0]})
    tables = {
        "effectiveness": effectiveness,
        "true_error": pd.DataFrame({"intervened": ["thickness"], "metric": ["l1"],
                                    "value": [thickness_mae * 10], "identity": [13.0], "n": [8]}),
        "composition": pd.DataFrame({"cycles": [1, 10], "metric": ["l1", "l1"],
                                     "value": [1.0, 7.0], "n": [4, 4]}),
    }
    if with_dci:
        tables["dci"] = pd.DataFrame({"granularity": ["block"], "metric": ["disentanglement"],
                                      "item": ["all"], "score": ["1 - entropy"], "value": [0.9]})
    return EvaluationReport(tables, {"n": 8})


def test_comparison_table_puts_models_side_by_side_with_floor_and_unchanged():
    table = comparison_table({"CausalDiffAE": report(0.13, True), "label DDIM": report(0.2, False)})
    assert list(table.columns) == ["CausalDiffAE", "label DDIM", "floor", "unchanged"]
    oracle = table.loc["do(thickness): thickness mae (oracle)"]
    assert oracle["CausalDiffAE"] == pytest.approx(0.13) and oracle["label DDIM"] == 0.2
    assert oracle["floor"] == 0.02 and np.isnan(oracle["unchanged"])
    predictor = table.loc["do(thickness): thickness mae (predictor)"]
    assert predictor["CausalDiffAE"] == pytest.approx(0.23) and predictor["floor"] == 0.1
    l1 = table.loc["do(thickness): L1 to the true counterfactual"]
    assert l1["label DDIM"] == pytest.approx(2.0) and l1["unchanged"] == 13.0
    dci = table.loc["DCI disentanglement (per block)"]
    assert dci["CausalDiffAE"] == 0.9 and np.isnan(dci["label DDIM"])  # no latents, no DCI
    assert table.loc["composition: L1 after 10 null interventions", "label DDIM"] == 7.0
    text = to_markdown(table)
    assert text.splitlines()[0].startswith("| metric | CausalDiffAE | label DDIM |")
    assert "| 0.13 | 0.2 | 0.02 |" in text


def test_comparison_table_refuses_no_reports():
    with pytest.raises(ValueError, match="at least one"):
        comparison_table({})


def test_weak_curves_read_one_panel_per_model_and_weight():
    sweep = pd.DataFrame({
        "guidance": [0.0, 1.0, 0.0, 1.0], "table": ["effectiveness"] * 4,
        "intervened": ["intensity"] * 4, "variable": ["intensity"] * 4, "off_joint": ["all"] * 4,
        "metric": ["mae"] * 4, "value": [60.0, 7.0, 61.0, 30.0],
        "model": ["100% labels", "100% labels", "10% labels", "10% labels"]})
    curves = weak_curves(sweep, "do(intensity): intensity MAE")
    assert list(curves.columns) == ["100% labels", "10% labels"]
    assert curves.loc[1.0, "10% labels"] == 30.0 and curves.loc[0.0, "100% labels"] == 60.0
    with pytest.raises(ValueError, match="no rows"):
        weak_curves(sweep, "do(thickness): thickness MAE (px)")


def test_smoke_settings_shrink_every_loop_of_the_full_ones():
    full, smoke = ReproductionSettings.full(), ReproductionSettings.smoke()
    for name in ("steps", "composition_n", "realism_n", "dci_n", "weak_n", "weak_steps",
                 "speed_n", "grid_images"):
        assert getattr(smoke, name) < getattr(full, name), name
    assert all(smoke.n[d] < full.n[d] for d in full.n)
    assert len(smoke.weak_weights) < len(full.weak_weights)
    assert dataclasses.replace(full, steps=20).steps == 20  # frozen, but replaceable

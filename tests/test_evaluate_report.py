"""The evaluation pipeline: protocols, oracles, the report of stand-in and tiny real models, CLI.

Stand-ins bracket what the report can say: a *perfect* model (its counterfactual is the
generator's true one) and an *identity* model (returns its input). Needs real MNIST digits
offline (``CDAE_MNIST_DIR``), as the Morpho-MNIST generator does.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from cdae.counterfactual import CounterfactualResult
from cdae.data.datasets import build_splits
from cdae.data.images import images_to_nchw, to_unit_range
from cdae.data.mnist import MnistNotFoundError
from cdae.data.pendulum import pendulum_labels
from cdae.evaluate.evaluators import load_or_train_evaluators
from cdae.evaluate.oracles import (
    ORACLES,
    MorphoOracle,
    PendulumOracle,
    oracle_for,
    register_oracle,
)
from cdae.evaluate.protocol import (
    benchmark_cuts,
    benchmark_values,
    fixed_values,
    protocol_values,
    random_values,
)
from cdae.evaluate.report import EvaluationReport, evaluate_model, speed_quality
from cdae.evaluate.tables import EvaluationConfig

N_IMAGES = 60  # base digits per generated split
TABLES = {
    "effectiveness": ["measured_by", "intervened", "variable", "metric", "value", "value_all",
                      "floor", "n", "unmeasured"],
    "floor": ["measured_by", "variable", "metric", "value", "value_all", "n", "unmeasured"],
    "off_joint": ["measured_by", "intervened", "off_joint", "variable", "metric", "value",
                  "value_all", "n", "unmeasured"],
    "true_error": ["intervened", "metric", "value", "identity", "n"],
    "composition": ["cycles", "metric", "value", "n"],
    "reversibility": ["intervened", "metric", "value", "n"],
    "realism": ["images", "metric", "value", "n", "n_real"],
    "dci": ["granularity", "metric", "item", "score", "value"],
    "dci_importance": ["block", "factor", "importance"],
    "interventions": ["intervened", "protocol", "n", "clipped", "min", "mean", "max", "changed",
                      "mean_abs_change"],
}


# ---------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """A small generated Causal Morpho-MNIST (60 train and 60 test images)."""
    from cdae.data.morphomnist import generate_dataset

    try:
        return generate_dataset(tmp_path_factory.mktemp("eval") / "morpho", limit=N_IMAGES,
                                workers=1, progress=False)
    except MnistNotFoundError as exc:
        pytest.skip(f"MNIST digits not available offline ({exc}); set CDAE_MNIST_DIR")


@pytest.fixture(scope="module")
def splits(root):
    return build_splits("morphomnist", root=root)


@pytest.fixture(scope="module")
def evaluators(root, tmp_path_factory):
    return load_or_train_evaluators("morphomnist", root, steps=8, progress=False,
                                    cache_dir=tmp_path_factory.mktemp("evaluators"))


class StandIn:
    """Duck-typed CounterfactualModel over the test split: finds each image's test index by its
    bytes; ``mode="perfect"`` returns the generator's true counterfactual, ``"identity"`` its
    input. ``encode`` gives z = the normalised true labels (one dimension per variable)."""

    max_sigma, has_encoder = 4.0, True

    def __init__(self, test, oracle, mode):
        self.graph, self.normalizer = test.graph, test.normalizer
        self.oracle, self.mode = oracle, mode
        self.labels = test.labels_natural[test.graph.nodes]
        self.index = {image.numpy().tobytes(): i for i, image in enumerate(test.images_uint8)}

    def _indices(self, x):
        pixels = torch.round((x + 1) * 127.5).to(torch.uint8)
        return np.array([self.index[image.numpy().tobytes()] for image in pixels])

    def counterfactual(self, x, do, steps=50, abduction="inversion", guidance=None, labels=None):
        idx = self._indices(x)
        factual = self.labels.iloc[idx].reset_index(drop=True)
        if self.mode == "identity":
            after = factual.assign(**{k: np.broadcast_to(v, len(x)) for k, v in do.items()})
            return CounterfactualResult(x.clone(), factual, after, dict(do))
        truth = self.oracle.counterfactuals(idx, do)
        images = to_unit_range(images_to_nchw(truth.images))
        for i, image in zip(idx, images_to_nchw(truth.images), strict=True):
            self.index[image.numpy().tobytes()] = i  # later passes start from these images
        return CounterfactualResult(images, factual, truth.labels, dict(do))

    def encode(self, x):
        labels = self.labels.iloc[self._indices(x)].to_numpy(np.float64)
        return None, torch.as_tensor(self.normalizer.normalize(labels), dtype=torch.float32)


def stand_in(splits, root, mode):
    return StandIn(splits["test"], oracle_for("morphomnist", root), mode)


def run(model, root, evaluators, **kwargs):
    predictors, feature_net = evaluators
    settings = dict(n=12, steps=3, variables=("thickness", "intensity"), cycles=(1, 2),
                    composition_n=6, progress=False)
    return evaluate_model(model, "morphomnist", root, EvaluationConfig(**{**settings, **kwargs}),
                          predictors=predictors, feature_net=feature_net)


@pytest.fixture(scope="module")
def identity_report(splits, root, evaluators):
    return run(stand_in(splits, root, "identity"), root, evaluators,
               variables=("thickness", "intensity", "digit"))


def value(table, **where):
    rows = table
    for column, wanted in where.items():
        rows = rows[rows[column] == wanted]
    assert len(rows) == 1, (where, rows)
    return float(rows["value"].iloc[0])


# ---------------------------------------------------------------------------- protocols
def test_benchmark_cuts_are_the_means_of_equal_width_bins():
    population = np.array([0.0, 1.0, 2.0, 9.0, 10.0])  # bins of width 5: [0, 5) and [5, 10]
    np.testing.assert_allclose(benchmark_cuts(population, 2), [1.0, 9.5])
    np.testing.assert_allclose(benchmark_cuts([0.0, 0.1, 10.0], 4), [0.05, 10.0])  # empty bins


def test_benchmark_values_lie_in_another_interval_and_are_test_values():
    population = 0.5 + np.random.default_rng(0).gamma(10, 1 / 5, size=500)
    indices = np.arange(0, 500, 3)
    values = benchmark_values(population, indices, n_bins=5, seed=1)
    cuts = benchmark_cuts(population, 5)
    assert np.isin(values, population).all()
    assert (np.searchsorted(cuts, values, side="right")
            != np.searchsorted(cuts, population[indices], side="right")).all()
    np.testing.assert_array_equal(values, benchmark_values(population, indices, 5, seed=1))
    assert not np.array_equal(values, benchmark_values(population, indices, 5, seed=2))


def test_benchmark_draws_another_class_uniformly_not_by_frequency():
    digits = np.array([0.0] * 900 + [1.0] * 50 + [2.0] * 50)  # class 0 is 18 times as common
    classes = benchmark_values(digits, np.arange(900, 950).repeat(40), categorical=True, seed=0)
    assert set(np.unique(classes)) == {0.0, 2.0}  # the image's own class (1) is never drawn
    share_of_zero = float(np.mean(classes == 0.0))
    assert 0.4 < share_of_zero < 0.6, share_of_zero  # uniform over {0, 2}; by frequency: 0.95


def test_random_values_come_from_other_test_images():
    population = np.arange(50, dtype=float)  # every value unique: own value = own image
    values = random_values(population, np.arange(50).repeat(20), seed=0)
    assert (values != np.arange(50).repeat(20)).all()
    assert set(values) == set(population)  # every other image can be drawn


def test_fixed_values_cycle_and_protocol_dispatch():
    np.testing.assert_array_equal(fixed_values([1.5, 2.5, 3.5], 7), [1.5, 2.5, 3.5] * 2 + [1.5])
    population = np.linspace(1, 5, 101)
    given = protocol_values({"thickness": [2.0]}, "thickness", population, np.arange(4))
    np.testing.assert_array_equal(given, [2.0] * 4)
    default = protocol_values("fixed", "thickness", population, np.arange(5))
    np.testing.assert_allclose(default, [1.4, 2.2, 3.0, 3.8, 4.6])  # 10..90 % quantiles


def test_protocols_reject_bad_input_with_clear_errors():
    with pytest.raises(ValueError, match="unknown protocol"):
        protocol_values("nearest", "x", np.arange(5.0), [0])
    with pytest.raises(ValueError, match="n_bins"):
        benchmark_values(np.arange(5.0), [0], n_bins=1)
    with pytest.raises(ValueError, match="one bin"):
        benchmark_values(np.ones(10), [0])
    with pytest.raises(ValueError, match="positions in the test set"):
        random_values(np.arange(5.0), [5])
    with pytest.raises(ValueError, match="at least one finite value"):
        fixed_values([], 3)


# ---------------------------------------------------------------------------- oracles
def test_morpho_oracle_reads_real_images_and_true_counterfactuals(root):
    oracle = oracle_for("morphomnist", root)
    split = oracle.split
    real = oracle.measure(split.images[:50])
    floor = (real - split.labels[["thickness", "intensity"]][:50]).abs().mean()
    assert floor["thickness"] < 0.2 and floor["intensity"] < 3.0  # px, grey levels
    truth = oracle.counterfactuals(np.arange(20), {"thickness": 3.5})
    assert np.allclose(truth.labels["thickness"], 3.5)
    assert not np.allclose(truth.labels["intensity"], split.labels["intensity"][:20])  # a child
    assert (truth.labels["digit"] == split.labels["digit"][:20]).all()
    assert abs(oracle.measure(truth.images)["thickness"] - 3.5).mean() < 0.2
    assert oracle.counterfactuals([0, 1], {"digit": 3}).images is None  # no true image


def test_pendulum_oracle_re_renders_and_measures():
    theta, phi = np.array([-20.0, 0.0, 25.0]), np.array([70.0, 100.0, 120.0])
    oracle = PendulumOracle(labels=pd.DataFrame(pendulum_labels(theta, phi)))
    truth = oracle.counterfactuals([0, 1, 2], {"pendulum_angle": 10.0})
    assert np.allclose(truth.labels["pendulum_angle"], 10.0)
    assert np.allclose(truth.labels["light_angle"], phi)
    error = (oracle.measure(truth.images) - truth.labels).abs().max()
    assert error["pendulum_angle"] < 0.5 and error["light_angle"] < 0.5


def test_off_joint_distance_is_the_mechanism_noise_in_sds_and_bins_cover_every_request():
    from cdae.data.morphomnist import MorphoSCM
    from cdae.evaluate.distance import NO_SUPPORT, bin_labels, distance_bins

    scm = MorphoSCM()
    thickness = np.array([2.5, 2.5, 1.5, 4.0, 2.0])
    noise = np.array([0.0, 0.4, -1.2, 2.7, 0.0])
    labels = pd.DataFrame({"thickness": thickness,
                           "intensity": scm.intensity_from(thickness, noise)})
    labels.loc[4, "intensity"] = 255.0  # no noise can reach the ceiling: no support
    k = MorphoOracle.off_joint(None, labels)
    np.testing.assert_allclose(k[:4], np.abs(noise[:4]) / 0.5, atol=1e-6)
    assert np.isinf(k[4])
    assert list(distance_bins(k)) == ["k < 1", "k < 1", "2 ≤ k < 3", "k ≥ 5", NO_SUPPORT]
    assert list(distance_bins(np.array([0.999, 1.0, 2.5, 4.9, np.nan]))) == [
        "k < 1", "1 ≤ k < 2", "2 ≤ k < 3", "3 ≤ k < 5", NO_SUPPORT]
    assert len(bin_labels()) == 6
    # Pendulum: shadows are the geometry of the angles (k = 0) or have no support at all
    scenes = pd.DataFrame(pendulum_labels(np.array([-20.0, 10.0]), np.array([70.0, 120.0])))
    assert list(PendulumOracle(labels=scenes).off_joint(scenes)) == [0.0, 0.0]
    scenes.loc[1, "shadow_length"] += 1.0
    assert list(PendulumOracle(labels=scenes).off_joint(scenes)) == [0.0, np.inf]


def test_oracles_are_a_registration(monkeypatch, root):
    made = MorphoOracle(split=oracle_for("morphomnist", root).split)
    monkeypatch.setitem(ORACLES, "toy", lambda folder, options: made)
    assert oracle_for("toy") is made
    assert register_oracle("toy", ORACLES["toy"]) is ORACLES["toy"]
    assert oracle_for("no_such_dataset") is None


# ---------------------------------------------------------------------------- the report
def test_report_has_every_table_with_finite_numbers(identity_report):
    assert set(identity_report.tables) == set(TABLES)
    for name, columns in TABLES.items():
        table = identity_report.tables[name]
        assert list(table.columns) == columns, name
        assert len(table) > 0, name
        numbers = table.select_dtypes("number").to_numpy(np.float64)
        assert np.isfinite(numbers).all(), name
    readers = set(identity_report.tables["effectiveness"]["measured_by"])
    assert readers == {"predictor", "oracle"}
    text = identity_report.summary()
    assert "Effectiveness" in text and "Inception" in text and "floor" in text


def test_perfect_stand_in_scores_zero_error_and_oracle_level_effectiveness(
        splits, root, evaluators, identity_report):
    report = run(stand_in(splits, root, "perfect"), root, evaluators)
    errors = report.tables["true_error"]
    assert (errors["value"] < 1e-9).all() and (errors["identity"] > 1.0).all()
    oracle = report.tables["effectiveness"].query("measured_by == 'oracle'")
    # the true counterfactual shows its targets as well as real images show their labels
    assert (abs(oracle["value"] - oracle["floor"]) < 0.1 * (1 + oracle["floor"])).all()
    # in every bin of the distance from the joint, and the bins hold every request once
    binned = report.tables["off_joint"].query("measured_by == 'oracle'")
    for name, rows in binned.groupby("intervened"):
        per_bin = rows.groupby("off_joint")["n"].first()
        assert per_bin.sum() == report.meta["n"], name
    intensity = binned.query("intervened == 'intensity' and variable == 'intensity'")
    assert (intensity["value"] < 5.0).all(), intensity
    identity = identity_report.tables["effectiveness"]
    for name in ("thickness", "intensity"):
        perfect = value(oracle, intervened=name, variable=name)
        assert perfect < 0.3 * value(identity, measured_by="oracle", intervened=name,
                                     variable=name)
    assert report.tables["reversibility"]["value"].max() < 1.0  # back to the same image
    dci = report.tables["dci"].query("granularity == 'block' and item == 'thickness'")
    assert value(dci, metric="informativeness") > 0.95  # z holds the true labels


def test_identity_stand_in_composes_perfectly_but_is_not_effective(identity_report):
    tables = identity_report.tables
    assert (tables["composition"]["value"] == 0).all()
    assert (tables["reversibility"]["value"] == 0).all()
    asked = tables["interventions"].set_index("intervened")
    assert asked.loc["thickness", "changed"] == 1.0  # benchmark: always another bin
    effect = value(tables["effectiveness"], measured_by="oracle", intervened="thickness",
                   variable="thickness")
    # the image keeps its factual thickness, so the error is the size of the change asked
    assert effect == pytest.approx(asked.loc["thickness", "mean_abs_change"], abs=0.15)
    assert effect > 0.3
    digit = value(tables["effectiveness"], measured_by="predictor", intervened="digit",
                  variable="digit")
    assert digit <= 0.3  # the predictor still reads the factual digit


def test_fixed_protocol_asks_the_oracles_values(splits, root, evaluators):
    report = run(stand_in(splits, root, "identity"), root, evaluators, protocol="fixed",
                 variables=("thickness",), n=8)
    asked = report.tables["interventions"].iloc[0]
    assert (asked["min"], asked["mean"], asked["max"]) == (1.5, 3.0, 4.5)  # 1.5 .. 4.5 twice
    assert report.meta["protocol"] == "fixed"


def test_json_round_trip(identity_report, tmp_path):
    path = identity_report.to_json(tmp_path / "report.json")
    back = EvaluationReport.from_json(path)
    assert back.meta == identity_report.meta
    for name, table in identity_report.tables.items():
        pd.testing.assert_frame_equal(back.tables[name], table, check_dtype=False)


def test_without_an_oracle_descendants_are_not_scored(monkeypatch, splits, root, evaluators):
    monkeypatch.delitem(ORACLES, "morphomnist")
    report = run(stand_in(splits, root, "identity"), root, evaluators, variables=("thickness",))
    effect = report.tables["effectiveness"]
    assert set(effect["measured_by"]) == {"predictor"}
    assert set(effect["variable"]) == {"thickness", "digit"}  # intensity, a child: unknown
    assert report.tables["true_error"].empty
    assert any("no oracle" in note for note in report.meta["notes"])


def test_bad_arguments_give_clear_errors(splits, root, evaluators):
    model = stand_in(splits, root, "identity")
    with pytest.raises(ValueError, match="not the model's variables"):
        run(model, root, evaluators, variables=("slant",))
    with pytest.raises(ValueError, match="at least 2"):
        run(model, root, evaluators, n=1)
    with pytest.raises(ValueError, match="unknown protocol"):
        run(model, root, evaluators, protocol="nearest")


def test_a_subset_of_tables_computes_only_those(splits, root):
    # no evaluators passed: the chosen tables need none, so none may be trained or loaded
    model = stand_in(splits, root, "perfect")
    settings = dict(n=12, steps=3, variables=("thickness",), composition_n=4, cycles=(1,),
                    progress=False)
    report = evaluate_model(model, "morphomnist", root,
                            EvaluationConfig(tables=("true_error", "composition"), **settings))
    assert set(report.tables) == {"true_error", "composition", "interventions"}
    assert report.meta["tables"] == ["true_error", "composition"]
    assert value(report.tables["true_error"], intervened="thickness", metric="l1") == 0.0
    only_cycles = evaluate_model(model, "morphomnist", root,
                                 EvaluationConfig(tables=("composition",), **settings))
    assert set(only_cycles.tables) == {"composition"}  # nothing intervened
    with pytest.raises(ValueError, match=r"unknown table\(s\) \['fid'\]; choose from"):
        EvaluationConfig(tables=("fid",))
    with pytest.raises(ValueError, match="unknown table"):
        EvaluationConfig(tables=())


def test_cli_refuses_an_unknown_table_before_loading(tmp_path, capsys):
    from cdae.cli import main

    missing = tmp_path / "no_such.pt"  # never opened: the table list is checked first
    assert main(["evaluate", str(missing), "--tables", "effectiveness,fid"]) == 2
    assert "unknown table(s) ['fid']" in capsys.readouterr().err


def test_evaluators_need_a_training_split(tmp_path):
    with pytest.raises(FileNotFoundError, match="predictors= and feature_net="):
        load_or_train_evaluators("deepscm_morphomnist", tmp_path, cache_dir=tmp_path)


def test_evaluators_are_cached_and_reused(root, tmp_path):
    first = load_or_train_evaluators("morphomnist", root, steps=5, progress=False,
                                     cache_dir=tmp_path)
    files = sorted(tmp_path.glob("*.pt"))
    assert len(files) == 2
    stamps = [f.stat().st_mtime_ns for f in files]
    again = load_or_train_evaluators("morphomnist", root, steps=5, progress=False,
                                     cache_dir=tmp_path)
    assert [f.stat().st_mtime_ns for f in files] == stamps  # loaded, not retrained
    images = torch.zeros(2, 1, 28, 28)
    pd.testing.assert_frame_equal(first[0].predict(images), again[0].predict(images))
    load_or_train_evaluators("morphomnist", root, steps=6, progress=False, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("*.pt"))) == 4  # other settings, other files


def test_speed_quality_rows_per_step_count(splits, root):
    table = speed_quality(stand_in(splits, root, "identity"), "morphomnist", (2, 4), root, n=6,
                          batch_size=4, progress=False)
    assert list(table["steps"]) == [2, 4]
    assert (table["seconds_per_image"] > 0).all()
    assert np.isfinite(table[["oracle_mae", "true_l1", "true_mse"]].to_numpy()).all()
    assert table["true_l1"].nunique() == 1  # the identity ignores the step count


# ---------------------------------------------------------------------------- real models
@pytest.mark.slow
def test_cli_function_evaluates_a_tiny_checkpoint(root, tmp_path, monkeypatch, capsys):
    from cdae.config import ExperimentConfig
    from cdae.evaluate import evaluators as evaluator_cache
    from cdae.evaluate.report import evaluate_cli
    from cdae.train import train

    monkeypatch.setenv("CDAE_DATA_DIR", str(tmp_path / "data"))
    for name in ("EVALUATOR_STEPS", "SMOKE_EVALUATOR_STEPS"):  # quick, untrained evaluators
        monkeypatch.setattr(evaluator_cache, name, 5)
    model = {"image_size": 28, "in_channels": 1, "latent_dim": 2, "encoder_channels": [8, 16],
             "base_channels": 8, "channel_mult": [1, 2], "num_res_blocks": 1,
             "attention_resolutions": [], "mechanism_hidden": 8, "timesteps": 100}
    config = ExperimentConfig.from_dict({
        "name": "tiny", "data": {"name": "morphomnist", "root": str(root)}, "model": model,
        "train": {"batch_size": 8, "steps": 2, "warmup": 1, "log_every": 1,
                  "checkpoint_every": 2, "threads": 1, "device": "cpu"}})
    checkpoint = train(config, tmp_path / "run", progress=False)
    out = tmp_path / "report.json"
    assert evaluate_cli(checkpoint, data=root, json_out=out, n=8, steps=3) == 0
    printed = capsys.readouterr().out
    assert "Effectiveness" in printed and str(out) in printed
    report = EvaluationReport.from_json(out)
    assert report.meta["model"] == "CausalDiffAE" and report.meta["n"] == 8
    assert report.meta["checkpoint"] == str(checkpoint)
    assert set(report.tables) == set(TABLES)
    assert math.isfinite(value(report.tables["composition"], cycles=10))


def test_unmeasurable_counterfactuals_count_as_failures_in_value_all():
    from cdae.evaluate.tables import scored
    from cdae.graph import CausalGraph

    graph = CausalGraph.preset("morphomnist")
    targets = pd.DataFrame({"thickness": [3.0, 3.0, 3.0], "intensity": [200.0, 200.0, 200.0],
                            "digit": [1, 2, 3]})
    measured = pd.DataFrame({"thickness": [3.1, 2.9, np.nan], "intensity": [190.0, 210.0, np.nan],
                             "digit": [1, 2, np.nan]})
    table = scored(measured, targets, "thickness", graph, {"thickness": 2.5, "intensity": 150.0})
    row = table.set_index("variable")
    assert row.loc["thickness", "value"] == pytest.approx(0.1)
    assert row.loc["thickness", "value_all"] == pytest.approx((0.1 + 0.1 + 0.5) / 3)
    assert row.loc["intensity", "value_all"] == pytest.approx((10 + 10 + 50) / 3)
    assert row.loc["digit", "value"] == 1.0
    assert row.loc["digit", "value_all"] == pytest.approx(2 / 3)
    assert (table["unmeasured"] == 1).all()


def test_evaluate_refuses_n_below_two_instead_of_using_the_default(capsys):
    from cdae.cli import main
    from cdae.paths import pretrained_dir

    assert main(["evaluate", str(pretrained_dir() / "morphomnist_small.pt"), "--n", "0"]) == 2
    assert "n must be at least 2 test images, got 0" in capsys.readouterr().err

"""The parts of an evaluation report: its settings (:class:`EvaluationConfig`), what every part
shares (:class:`EvaluationSetup`: the model, the test images and their ground truth), the
counterfactual runs (one per intervened variable) and one function per table.
:mod:`cdae.evaluate.report` puts them together; its module docstring describes each table.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from cdae.data.images import (
    convert_channels,
    images_to_nchw,
    resize_images,
    to_pixels,
    to_unit_range,
)
from cdae.evaluate import metrics
from cdae.evaluate.dci import dci
from cdae.evaluate.distance import bin_labels, distance_bins
from cdae.evaluate.oracles import Oracle, oracle_for
from cdae.evaluate.predictors import AntiCausalPredictor
from cdae.evaluate.protocol import DEFAULT_BINS, protocol_values
from cdae.evaluate.realism import FeatureNet, realism_table

if TYPE_CHECKING:
    from cdae.counterfactual import CounterfactualModel
    from cdae.data.datasets import CausalImageDataset
    from cdae.graph import CausalGraph

#: Encoding is one network pass per image, a counterfactual 2 x steps, so DCI encodes in batches
#: this many times the counterfactual batch.
ENCODE_BATCH_FACTOR = 4


# ============================================================================ settings and set-up
TABLES = ("effectiveness", "off_joint", "true_error", "composition", "reversibility", "realism",
          "dci")
"""The tables :func:`~cdae.evaluate.report.evaluate_model` can compute, cheapest first except
``composition`` and ``reversibility`` (the null-intervention cycles dominate the run time)."""

@dataclass(frozen=True)
class EvaluationConfig:
    """How :func:`~cdae.evaluate.report.evaluate_model` evaluates.

    Attributes:
        n: test images intervened on (a seeded random subset); at least 2.
        steps, abduction, guidance: DDIM steps, ``"inversion"`` or ``"noise"``, and the
            classifier-free guidance weight of every counterfactual.
        protocol: "benchmark", "random", "fixed" or ``{variable: values}``
            (:mod:`cdae.evaluate.protocol`); ``n_bins`` equal-width bins for "benchmark".
        seed: picks the images and the protocol's values.
        variables: the variables to intervene on (None: all of the graph's).
        batch_size: images per counterfactual call.
        cycles, composition_n: null-intervention counts, on the first ``composition_n`` images
            (the most expensive part).
        dci_n, realism_n: test images encoded for DCI; real reference images for FID/KID.
        evaluator_steps: minibatches for evaluators that must be trained (None: the default).
        progress: show progress bars.
        tables: the tables to compute, a subset of :data:`TABLES` (None: all). ``floor`` and
            ``interventions`` come with any table that intervenes.
    """

    n: int = 256
    steps: int = 50
    abduction: str = "inversion"
    guidance: float | None = None
    protocol: str | Mapping[str, Sequence[float]] = "benchmark"
    n_bins: int = DEFAULT_BINS
    seed: int = 0
    variables: Sequence[str] | None = None
    batch_size: int = 64
    cycles: Sequence[int] = (1, 10)
    composition_n: int = 32
    dci_n: int = 1000
    realism_n: int = 2000
    evaluator_steps: int | None = None
    progress: bool = True
    tables: Sequence[str] | None = None

    def __post_init__(self) -> None:
        if int(self.n) < 2:
            raise ValueError(f"n must be at least 2 test images, got {self.n}")
        if self.tables is not None:
            unknown = sorted(set(self.tables) - set(TABLES))
            if unknown or not self.tables:
                raise ValueError(f"unknown table(s) {unknown or list(self.tables)}; choose from "
                                 f"{list(TABLES)} (or None for all)")

    def wants(self, table: str) -> bool:
        """Whether ``table`` (one of :data:`TABLES`) is to be computed."""
        return self.tables is None or table in self.tables

    @property
    def protocol_name(self) -> str:
        return self.protocol if isinstance(self.protocol, str) else "fixed (given values)"


@dataclass
class EvaluationSetup:
    """What every part shares: the model, the test images and their ground truth, the settings."""

    cf_model: CounterfactualModel
    test: CausalImageDataset  # the test split, with the model's normaliser
    indices: np.ndarray  # (n,) positions of the evaluated images in the test split
    x: torch.Tensor  # (n, C, H, W) in [-1, 1]
    labels: pd.DataFrame  # (n rows) natural units, graph node order
    oracle: Oracle | None
    config: EvaluationConfig

    @property
    def graph(self) -> CausalGraph:
        return self.cf_model.graph

    def normalized(self, frame: pd.DataFrame) -> torch.Tensor:
        """Natural-unit labels (graph order) -> label space (B, n), for the label baseline."""
        values = frame[self.graph.nodes].to_numpy(dtype=np.float64)
        return torch.as_tensor(self.cf_model.normalizer.normalize(values), dtype=torch.float32)


def prepare(cf_model: CounterfactualModel, dataset_name: str,
            data_root: str | os.PathLike | None, options: Mapping[str, object] | None,
            config: EvaluationConfig) -> EvaluationSetup:
    """``config.n`` seeded random test images of ``dataset_name`` (built with the model's
    normaliser and ``options``), their labels and the dataset's oracle."""
    from cdae.data.datasets import build_dataset

    options = dict(options or {})
    test = build_dataset(dataset_name, "test", root=data_root, normalizer=cf_model.normalizer,
                         **options)
    indices = np.random.default_rng(config.seed).permutation(len(test))[: int(config.n)]
    labels = test.labels_natural.iloc[indices][cf_model.graph.nodes].reset_index(drop=True)
    x = to_unit_range(test.images_uint8[torch.as_tensor(indices)])
    oracle = oracle_for(dataset_name, data_root, options)
    return EvaluationSetup(cf_model, test, indices, x, labels, oracle, config)


def to_storage(images: torch.Tensor) -> np.ndarray:
    """Model layout (N, C, H, W) in [-1, 1] -> uint8 storage layout (N, H, W[, C])."""
    pixels = np.moveaxis(np.rint(to_pixels(images)).astype(np.uint8), 1, -1)
    return pixels[..., 0] if pixels.shape[-1] == 1 else pixels


def _model_layout(images: np.ndarray, shape: Sequence[int]) -> torch.Tensor:
    """Storage-layout uint8 images -> (N, C, H, W) in [-1, 1] as the dataset prepares them."""
    nchw = resize_images(convert_channels(images_to_nchw(images), shape[0]), tuple(shape[1:]))
    return to_unit_range(nchw)


# ============================================================================ counterfactuals
@dataclass
class Run:
    """One intervened variable: the values asked, the counterfactuals, their ground truth."""

    name: str
    values: np.ndarray  # (n,) natural units, after clipping to the model's range
    clipped: int
    images: torch.Tensor  # (n, C, H, W)
    factual: pd.DataFrame  # what the model's latents encode for the factual images
    counterfactual: pd.DataFrame  # what they encode after the intervention
    targets: pd.DataFrame  # what the counterfactual should show (NaN: unknown)
    true_images: torch.Tensor | None  # the generator's true counterfactuals
    off_joint: np.ndarray | None = None  # (n,) k of each target state (None: no oracle)


def counterfactuals(setup: EvaluationSetup, x: torch.Tensor, do: Mapping[str, np.ndarray],
                    labels: pd.DataFrame, desc: str, steps: int | None = None,
                    ) -> tuple[torch.Tensor, pd.DataFrame, pd.DataFrame]:
    """Counterfactuals of ``x`` under per-image ``do`` values, in batches: (images,
    factual frame, counterfactual frame). ``labels``: factual labels (label baseline only)."""
    images, factual, counter = [], [], []
    y = setup.normalized(labels)
    starts = range(0, len(x), setup.config.batch_size)
    for start in tqdm(starts, desc=desc, disable=not setup.config.progress, leave=False):
        part = slice(start, start + setup.config.batch_size)
        result = setup.cf_model.counterfactual(
            x[part], {k: v[part] for k, v in do.items()}, steps=steps or setup.config.steps,
            abduction=setup.config.abduction, guidance=setup.config.guidance, labels=y[part])
        images.append(result.images.detach().cpu())
        factual.append(result.factual)
        counter.append(result.counterfactual)
    return (torch.cat(images), pd.concat(factual, ignore_index=True),
            pd.concat(counter, ignore_index=True))


def clip_to_model(cf_model: CounterfactualModel, name: str,
                  values: np.ndarray) -> tuple[np.ndarray, int]:
    """Clip continuous values to what the model accepts (its ``accepted_range``, natural units);
    returns them and how many were clipped."""
    accepted = getattr(cf_model, "accepted_range", None)
    if cf_model.graph.is_categorical(name) or accepted is None:
        return values, 0
    low, high, _ = accepted(name)
    clipped = np.clip(values, low, high)
    return clipped, int((clipped != values).sum())


def targets_and_truth(setup: EvaluationSetup, name: str, values: np.ndarray,
                      notes: list[str]) -> tuple[pd.DataFrame, torch.Tensor | None]:
    """Target labels and true images from the oracle; without one (or where it cannot
    intervene), the do-value, factual non-descendants and unknown (NaN) descendants."""
    if setup.oracle is not None:
        try:
            truth = setup.oracle.counterfactuals(setup.indices, {name: values})
        except ValueError as exc:
            notes.append(f"do({name}): the oracle has no ground truth ({exc})")
        else:
            images = (None if truth.images is None
                      else _model_layout(truth.images, tuple(setup.x.shape[1:])))
            return truth.labels, images
    targets = setup.labels.copy()
    targets[name] = values
    for child in setup.graph.descendants(name):
        targets[child] = np.nan
    return targets, None


def intervention_values(setup: EvaluationSetup, name: str, seed: int) -> np.ndarray:
    """(n,) values of ``name`` that the config's protocol asks for the evaluated images, in
    natural units."""
    fixed = setup.oracle.fixed.get(name) if setup.oracle is not None else None
    population = setup.test.labels_natural[name].to_numpy(dtype=np.float64)
    return protocol_values(setup.config.protocol, name, population, setup.indices,
                           setup.graph.is_categorical(name), setup.config.n_bins, seed, fixed)


def intervene(setup: EvaluationSetup, name: str, raw: np.ndarray, notes: list[str]) -> Run:
    """do(name = raw values, clipped to the model's range) on every evaluated image."""
    values, clipped = clip_to_model(setup.cf_model, name, raw)
    targets, true_images = targets_and_truth(setup, name, values, notes)
    images, factual, counter = counterfactuals(setup, setup.x, {name: values}, setup.labels,
                                               f"do({name})")
    k = setup.oracle.off_joint(targets) if setup.oracle is not None else None
    return Run(name, values, clipped, images, factual, counter, targets, true_images, k)


# ============================================================================ the tables
def scored(measured: pd.DataFrame, targets: pd.DataFrame, intervened: str, graph: CausalGraph,
           fallback: Mapping[str, float]) -> pd.DataFrame:
    """effectiveness_table over the known targets, twice: ``value`` over the rows every reader
    could measure, ``value_all`` over all rows with the unmeasurable ones (blank or broken
    images) counted as failures: they score as if they showed ``fallback`` (the test set's mean
    of a continuous variable: no information) and as wrong for a categorical one. A model that
    blanks hard cases therefore cannot score better on ``value_all``."""
    columns = [c for c in targets.columns
               if c in measured.columns and targets[c].notna().all()]
    ok = measured[columns].notna().all(axis=1).to_numpy()
    table = metrics.effectiveness_table(measured[columns][ok].reset_index(drop=True),
                                        targets[columns][ok].reset_index(drop=True), intervened,
                                        categorical=graph.categorical)
    failed = measured[columns].copy()
    for name in columns:
        failed[name] = failed[name].fillna(-1.0 if graph.is_categorical(name)
                                           else fallback[name])
    everything = metrics.effectiveness_table(failed.reset_index(drop=True),
                                             targets[columns].reset_index(drop=True), intervened,
                                             categorical=graph.categorical)
    table = table.merge(everything[["variable", "metric", "value"]].rename(
        columns={"value": "value_all"}), on=["variable", "metric"], how="outer")
    return table.assign(unmeasured=int((~ok).sum()))


def _readers(setup: EvaluationSetup, predictor: AntiCausalPredictor | None,
             ) -> dict[str, Callable[[torch.Tensor], pd.DataFrame]]:
    """name -> function reading a (B, C, H, W) batch into a labels DataFrame."""
    readers: dict[str, Callable[[torch.Tensor], pd.DataFrame]] = {}
    if predictor is not None:
        readers["predictor"] = predictor.predict
    if setup.oracle is not None:
        readers["oracle"] = lambda images: setup.oracle.measure(to_storage(images))
    return readers


def binned_by_distance(measured: pd.DataFrame, run: Run, graph: CausalGraph,
                       fallback: Mapping[str, float]) -> pd.DataFrame:
    """:func:`scored` within each bin of the run's off-joint distance k
    (:mod:`cdae.evaluate.distance`); empty bins are left out, ``off_joint`` names the bin."""
    if run.off_joint is None:
        return pd.DataFrame()
    bins, parts = distance_bins(run.off_joint), []
    for label in bin_labels():
        rows = np.flatnonzero(bins == label)
        if len(rows):
            table = scored(measured.iloc[rows].reset_index(drop=True),
                           run.targets.iloc[rows].reset_index(drop=True), run.name, graph,
                           fallback)
            parts.append(table.assign(off_joint=label))
    return pd.concat(parts, ignore_index=True)


def effectiveness_tables(setup: EvaluationSetup, runs: list[Run],
                         predictor: AntiCausalPredictor | None,
                         ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(effectiveness with a floor column, floor, effectiveness in bins of the off-joint
    distance k) for every reader."""
    tables, floors, by_distance = [], [], []
    fallback = setup.labels.mean(numeric_only=True).to_dict()
    for reader, read in _readers(setup, predictor).items():
        floor = scored(read(setup.x), setup.labels, "none", setup.graph, fallback)
        floors.append(floor.drop(columns="intervened").assign(measured_by=reader))
        for run in runs:
            measured = read(run.images)
            table = scored(measured, run.targets, run.name, setup.graph, fallback)
            tables.append(table.assign(measured_by=reader))
            by_distance.append(binned_by_distance(measured, run, setup.graph, fallback)
                               .assign(measured_by=reader))
    floor = pd.concat(floors, ignore_index=True)
    effect = pd.concat(tables, ignore_index=True).merge(
        floor[["measured_by", "variable", "metric", "value"]].rename(columns={"value": "floor"}),
        on=["measured_by", "variable", "metric"], how="left")
    first = ["measured_by", "intervened", "variable", "metric", "value", "value_all", "floor"]
    binned = pd.concat(by_distance, ignore_index=True)
    if not binned.empty:
        binned = binned[["measured_by", "intervened", "off_joint", "variable", "metric", "value",
                         "value_all", "n", "unmeasured"]]
    return (effect[first + ["n", "unmeasured"]],
            floor[["measured_by", "variable", "metric", "value", "value_all", "n", "unmeasured"]],
            binned)


def true_error_table(setup: EvaluationSetup, runs: list[Run]) -> pd.DataFrame:
    """L1 / MSE (0-255) of the model's and the identity's images against the true ones."""
    rows = []
    for run in (r for r in runs if r.true_images is not None):
        model = metrics.counterfactual_error(run.images, run.true_images)
        identity = metrics.counterfactual_error(setup.x, run.true_images)
        rows += [(run.name, metric, model[metric], identity[metric], len(setup.x))
                 for metric in ("l1", "mse")]
    return pd.DataFrame(rows, columns=["intervened", "metric", "value", "identity", "n"])


def composition_table(setup: EvaluationSetup) -> pd.DataFrame:
    """L1 (0-255) of the first ``config.composition_n`` images after each count of null
    interventions in ``config.cycles``."""
    cycles, n = setup.config.cycles, setup.config.composition_n
    x, labels = setup.x[:n], setup.labels.iloc[:n]
    count = iter(range(1, max(cycles) + 1))

    def null(images: torch.Tensor) -> torch.Tensor:
        return counterfactuals(setup, images, {}, labels, f"null cycle {next(count)}")[0]

    return metrics.composition(null, x, cycles).assign(n=len(x))


def reversibility_table(setup: EvaluationSetup, runs: list[Run]) -> pd.DataFrame:
    """L1 (0-255) of do(v), then do(the value the latents encoded for the factual image)."""
    rows = []
    for run in runs:
        original, _ = clip_to_model(setup.cf_model, run.name, run.factual[run.name].to_numpy())

        def undo(images: torch.Tensor, run: Run = run, original: np.ndarray = original):
            return counterfactuals(setup, images, {run.name: original}, run.counterfactual,
                                   f"undo do({run.name})")[0]

        l1 = metrics.reversibility(lambda _, run=run: run.images, undo, setup.x)
        rows.append((run.name, "l1", l1, len(setup.x)))
    return pd.DataFrame(rows, columns=["intervened", "metric", "value", "n"])


def realism_of_runs(setup: EvaluationSetup, runs: list[Run],
                    feature_net: FeatureNet) -> pd.DataFrame:
    """FID/KID of each do(v), of all counterfactuals, and of the evaluated real images (the
    floor), against up to ``config.realism_n`` other real test images."""
    n_real = setup.config.realism_n
    others = np.setdiff1d(np.arange(len(setup.test)), setup.indices)
    reference = others[:n_real] if len(others) >= 2 else np.arange(len(setup.test))
    real = to_unit_range(setup.test.images_uint8[torch.as_tensor(reference)])
    generated = {f"do({run.name})": run.images for run in runs}
    generated["all counterfactuals"] = torch.cat([run.images for run in runs])
    generated["real test images (floor)"] = setup.x
    table = realism_table(feature_net, real, generated).rename(columns={"model": "images"})
    sizes = {name: len(images) for name, images in generated.items()}
    return table.assign(n=table["images"].map(sizes), n_real=len(reference))


def dci_tables(setup: EvaluationSetup) -> tuple[pd.DataFrame, pd.DataFrame]:
    """DCI of z (from ``cf_model.encode``) against the true labels of ``config.dci_n`` seeded
    random test images."""
    seed, batch = setup.config.seed, ENCODE_BATCH_FACTOR * setup.config.batch_size
    chosen = np.random.default_rng(seed).permutation(len(setup.test))[:setup.config.dci_n]
    images = to_unit_range(setup.test.images_uint8[torch.as_tensor(chosen)])
    z = torch.cat([setup.cf_model.encode(part)[1].detach().cpu()
                   for part in torch.split(images, batch)]).double().numpy()
    factors = setup.test.labels_natural.iloc[chosen][setup.graph.nodes].reset_index(drop=True)
    categorical = list(setup.graph.categorical)
    block = z.shape[1] // len(setup.graph.nodes)
    per_dim = dci(z, factors, categorical=categorical, seed=seed)
    per_block = dci(z, factors, block_size=block, categorical=categorical, seed=seed,
                    code_names=setup.graph.nodes)
    table = pd.concat([per_dim.to_frame().assign(granularity="dimension"),
                       per_block.to_frame().assign(granularity="block")], ignore_index=True)
    importance = per_block.importance.rename_axis("block").reset_index().melt(
        id_vars="block", var_name="factor", value_name="importance")
    return table[["granularity", "metric", "item", "score", "value"]], importance


def interventions_table(setup: EvaluationSetup, runs: list[Run]) -> pd.DataFrame:
    """What each run asked for: count, clipped count, range, share and size of changes."""
    protocol, rows = setup.config.protocol_name, []
    for run in runs:
        factual = setup.labels[run.name].to_numpy(dtype=np.float64)
        rows.append((run.name, protocol, len(run.values), run.clipped, run.values.min(),
                     run.values.mean(), run.values.max(), np.mean(run.values != factual),
                     np.mean(np.abs(run.values - factual))))
    return pd.DataFrame(rows, columns=["intervened", "protocol", "n", "clipped", "min", "mean",
                                       "max", "changed", "mean_abs_change"])

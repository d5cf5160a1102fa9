"""Evaluate a counterfactual model on its dataset's test split: every metric of DESIGN sec. 4.

    >>> cf = CounterfactualModel.from_checkpoint("runs/morphomnist_small/last.pt")
    >>> report = evaluate_model(cf, "morphomnist", n=256)
    >>> print(report.summary())
    >>> report.to_json("eval.json")

``n`` test images (a seeded random subset) are each intervened on, one variable at a time, with
values from a protocol (:mod:`cdae.evaluate.protocol`). Tables (tidy DataFrames in
``report.tables``):

* ``effectiveness``: per intervened x measured variable, MAE (natural units) or accuracy of what
  the counterfactual shows against its target (the do-value, descendants as the true SCM sets
  them, the rest factual), read by anti-causal predictors trained on real training images
  (``measured_by="predictor"``) and by the dataset's oracle (``"oracle"``, e.g. morphometry).
  ``floor``: the same reader on the real test images against their labels: what an ideal
  generator would score. ``floor`` is also its own table.
* ``true_error``: L1 / MSE (0-255) against the generator's true counterfactual; ``identity`` is
  the error of returning the factual image unchanged.
* ``composition``: L1 (0-255) after 1 and 10 null interventions.
* ``reversibility``: L1 (0-255) of do(v) followed by do(original value). The original value is
  the one the model's own latents encode for the factual image (``CounterfactualResult.factual``),
  so the score isolates the model's round trip from its encoder's label error.
* ``realism``: FID / KID of the counterfactuals against other real test images, in the space of
  a :class:`~cdae.evaluate.realism.FeatureNet` trained here (Inception-v3 weights cannot be
  downloaded offline; numbers compare models scored with the same feature net only).
* ``dci`` / ``dci_importance``: DCI of the model's z against the true labels, per dimension and
  per latent block.
* ``interventions``: the values each protocol asked for.

Values beyond the model's range (``max_sigma`` training sds) are clipped to it, and counted.
Predictors and feature net are cached under ``data_dir()/"evaluators"/<dataset>/``.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
from cdae.evaluate.dci import dci
from cdae.evaluate.metrics import (
    composition,
    counterfactual_error,
    effectiveness_table,
    format_table,
    reversibility,
)
from cdae.evaluate.oracles import Oracle, oracle_for
from cdae.evaluate.predictors import AntiCausalPredictor, TrunkConfig, train_predictor
from cdae.evaluate.protocol import DEFAULT_BINS, protocol_values
from cdae.evaluate.realism import FeatureNet, realism_table, train_feature_net
from cdae.files import atomic_write_bytes
from cdae.paths import data_dir, smoke_mode

INCEPTION_NOTE = ("FID/KID use a FeatureNet trained by this project on the real training images: "
                  "Inception-v3 weights cannot be downloaded offline. Compare only models scored "
                  "with the same feature net and sample sizes.")
REVERSIBILITY_NOTE = ("reversibility: do(v) then do(v = the value the model's latents encode "
                      "for the factual image).")


# ============================================================================ the report
@dataclass
class EvaluationReport:
    """``tables``: name -> tidy DataFrame (see the module docstring); ``meta``: settings,
    timings and notes (plain JSON types)."""

    tables: dict[str, pd.DataFrame]
    meta: dict[str, Any] = field(default_factory=dict)

    def to_json(self, path: str | os.PathLike) -> Path:
        """Write ``{"meta": ..., "tables": {name: {"columns", "data"}}}`` atomically."""
        payload = {"meta": self.meta, "tables": {
            name: json.loads(df.to_json(orient="split", index=False, double_precision=15))
            for name, df in self.tables.items()}}
        atomic_write_bytes(path, (json.dumps(payload, indent=1) + "\n").encode())
        return Path(path)

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> EvaluationReport:
        """Inverse of :meth:`to_json` (nulls come back as NaN)."""
        payload = json.loads(Path(path).read_text())
        tables = {name: pd.DataFrame(t["data"], columns=t["columns"]).fillna(np.nan)
                  for name, t in payload["tables"].items()}
        return cls(tables, payload["meta"])

    def summary(self, decimals: int = 3) -> str:
        """A short markdown summary: the headline table of each part."""
        m = self.meta
        lines = [f"## {m.get('model', 'model')} on {m.get('dataset')}: n={m.get('n')}, "
                 f"{m.get('steps')} DDIM steps, abduction={m.get('abduction')}, "
                 f"protocol={m.get('protocol')}", ""]
        for title, table in self._headline_tables():
            lines += [f"### {title}", _markdown(table.round(decimals)), ""]
        lines += [f"- {note}" for note in m.get("notes", [])]
        return "\n".join(lines)

    def _headline_tables(self) -> list[tuple[str, pd.DataFrame]]:
        t, out = self.tables, []
        if "effectiveness" in t:
            floor = t["floor"].assign(intervened="(real images: floor)")
            wide = format_table(pd.concat([t["effectiveness"], floor]),
                                rows=["measured_by", "intervened"])
            out.append(("Effectiveness (MAE in natural units / accuracy)", wide))
        simple = [("true_error", "Error against the true counterfactual (0-255)"),
                  ("composition", "Composition: L1 after k null interventions (0-255)"),
                  ("reversibility", "Reversibility: L1 of do(v), then do(original) (0-255)")]
        out += [(title, t[name]) for name, title in simple if name in t and not t[name].empty]
        if "realism" in t:
            out.append(("Realism (project FeatureNet)",
                        format_table(t["realism"], rows="images", columns="metric")))
        if "dci" in t:
            overall = t["dci"][t["dci"]["item"] == "all"]
            out.append(("DCI of z", format_table(overall, rows="granularity", columns="metric")))
        return out


def _markdown(df: pd.DataFrame) -> str:
    """A pipe table; a MultiIndex is flattened with spaces."""
    df = df.reset_index() if not isinstance(df.index, pd.RangeIndex) else df
    names = [" ".join(map(str, c)).strip() if isinstance(c, tuple) else str(c)
             for c in df.columns]
    rows = [" | ".join(names), " | ".join("---" for _ in names)]
    rows += [" | ".join("" if pd.isna(v) else str(v) for v in row)
             for row in df.itertuples(index=False)]
    return "\n".join(f"| {row} |" for row in rows)


# ============================================================================ set-up
@dataclass
class _Setup:
    """What every part shares: the model, the test images and their ground truth."""

    cf_model: Any
    test: Any  # CausalImageDataset (test split, the model's normaliser)
    indices: np.ndarray  # (n,) positions of the evaluated images in the test split
    x: torch.Tensor  # (n, C, H, W) in [-1, 1]
    labels: pd.DataFrame  # (n rows) natural units, graph node order
    oracle: Oracle | None
    steps: int
    abduction: str
    guidance: float | None
    batch_size: int
    progress: bool

    @property
    def graph(self) -> Any:
        return self.cf_model.graph

    def normalized(self, frame: pd.DataFrame) -> torch.Tensor:
        """Natural-unit labels (graph order) -> label space (B, n), for the label baseline."""
        values = frame[self.graph.nodes].to_numpy(dtype=np.float64)
        return torch.as_tensor(self.cf_model.normalizer.normalize(values), dtype=torch.float32)


def _prepare(cf_model: Any, dataset_name: str, data_root: str | os.PathLike | None, n: int,
             seed: int, options: Mapping[str, Any] | None, **run: Any) -> _Setup:
    from cdae.data.datasets import build_dataset

    if int(n) < 2:
        raise ValueError(f"n must be at least 2 test images, got {n}")
    options = dict(options or {})
    test = build_dataset(dataset_name, "test", root=data_root, normalizer=cf_model.normalizer,
                         **options)
    indices = np.random.default_rng(seed).permutation(len(test))[: int(n)]
    labels = test.labels_natural.iloc[indices][cf_model.graph.nodes].reset_index(drop=True)
    x = to_unit_range(test.images_uint8[torch.as_tensor(indices)])
    oracle = oracle_for(dataset_name, data_root, options)
    return _Setup(cf_model, test, indices, x, labels, oracle, **run)


def _storage(images: torch.Tensor) -> np.ndarray:
    """Model layout (N, C, H, W) in [-1, 1] -> uint8 storage layout (N, H, W[, C])."""
    pixels = np.moveaxis(np.rint(to_pixels(images)).astype(np.uint8), 1, -1)
    return pixels[..., 0] if pixels.shape[-1] == 1 else pixels


def _model_layout(images: np.ndarray, shape: Sequence[int]) -> torch.Tensor:
    """Storage-layout uint8 images -> (N, C, H, W) in [-1, 1] as the dataset prepares them."""
    nchw = resize_images(convert_channels(images_to_nchw(images), shape[0]), tuple(shape[1:]))
    return to_unit_range(nchw)


# ============================================================================ counterfactuals
@dataclass
class _Run:
    """One intervened variable: the values asked, the counterfactuals, their ground truth."""

    name: str
    values: np.ndarray  # (n,) natural units, after clipping to the model's range
    clipped: int
    images: torch.Tensor  # (n, C, H, W)
    factual: pd.DataFrame  # what the model's latents encode for the factual images
    counterfactual: pd.DataFrame  # what they encode after the intervention
    targets: pd.DataFrame  # what the counterfactual should show (NaN: unknown)
    true_images: torch.Tensor | None  # the generator's true counterfactuals


def _counterfactuals(s: _Setup, x: torch.Tensor, do: Mapping[str, np.ndarray],
                     labels: pd.DataFrame, desc: str, steps: int | None = None,
                     ) -> tuple[torch.Tensor, pd.DataFrame, pd.DataFrame]:
    """Counterfactuals of ``x`` under per-image ``do`` values, in batches: (images,
    factual frame, counterfactual frame). ``labels``: factual labels (label baseline only)."""
    images, factual, counter = [], [], []
    y = s.normalized(labels)
    starts = range(0, len(x), s.batch_size)
    for start in tqdm(starts, desc=desc, disable=not s.progress, leave=False):
        part = slice(start, start + s.batch_size)
        result = s.cf_model.counterfactual(
            x[part], {k: v[part] for k, v in do.items()}, steps=steps or s.steps,
            abduction=s.abduction, guidance=s.guidance, labels=y[part])
        images.append(result.images.detach().cpu())
        factual.append(result.factual)
        counter.append(result.counterfactual)
    return (torch.cat(images), pd.concat(factual, ignore_index=True),
            pd.concat(counter, ignore_index=True))


def _clip_to_model(cf_model: Any, name: str, values: np.ndarray) -> tuple[np.ndarray, int]:
    """Clip continuous values to mean ± max_sigma training sds (what the model accepts)."""
    if cf_model.graph.is_categorical(name):
        return values, 0
    bound = 0.999 * getattr(cf_model, "max_sigma", np.inf)
    normed = np.asarray(cf_model.normalizer.normalize_value(name, values), dtype=np.float64)
    clipped = np.clip(normed, -bound, bound)
    natural = np.asarray(cf_model.normalizer.denormalize_value(name, clipped), dtype=np.float64)
    return np.where(clipped == normed, values, natural), int((clipped != normed).sum())


def _targets(s: _Setup, name: str, values: np.ndarray,
             notes: list[str]) -> tuple[pd.DataFrame, torch.Tensor | None]:
    """Target labels and true images from the oracle; without one (or where it cannot
    intervene), the do-value, factual non-descendants and unknown (NaN) descendants."""
    if s.oracle is not None:
        try:
            truth = s.oracle.counterfactuals(s.indices, {name: values})
        except ValueError as exc:
            notes.append(f"do({name}): the oracle has no ground truth ({exc})")
        else:
            images = (None if truth.images is None
                      else _model_layout(truth.images, tuple(s.x.shape[1:])))
            return truth.labels, images
    targets = s.labels.copy()
    targets[name] = values
    for child in s.graph.descendants(name):
        targets[child] = np.nan
    return targets, None


def _intervene(s: _Setup, name: str, raw: np.ndarray, notes: list[str]) -> _Run:
    values, clipped = _clip_to_model(s.cf_model, name, raw)
    targets, true_images = _targets(s, name, values, notes)
    images, factual, counter = _counterfactuals(s, s.x, {name: values}, s.labels, f"do({name})")
    return _Run(name, values, clipped, images, factual, counter, targets, true_images)


# ============================================================================ the parts
def _scored(measured: pd.DataFrame, targets: pd.DataFrame, intervened: str, graph: Any,
            ) -> pd.DataFrame:
    """effectiveness_table over the rows every reader could measure and the known targets."""
    columns = [c for c in targets.columns
               if c in measured.columns and targets[c].notna().all()]
    ok = measured[columns].notna().all(axis=1).to_numpy()
    table = effectiveness_table(measured[columns][ok].reset_index(drop=True),
                                targets[columns][ok].reset_index(drop=True), intervened,
                                categorical=graph.categorical)
    return table.assign(unmeasured=int((~ok).sum()))


def _readers(s: _Setup, predictor: AntiCausalPredictor | None) -> dict[str, Any]:
    readers: dict[str, Any] = {}
    if predictor is not None:
        readers["predictor"] = predictor.predict
    if s.oracle is not None:
        readers["oracle"] = lambda images: s.oracle.measure(_storage(images))
    return readers


def _effectiveness(s: _Setup, runs: list[_Run], predictor: AntiCausalPredictor | None,
                   ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(effectiveness with a floor column, floor) for every reader."""
    tables, floors = [], []
    for reader, read in _readers(s, predictor).items():
        floor = _scored(read(s.x), s.labels, "none", s.graph).drop(columns="intervened")
        floors.append(floor.assign(measured_by=reader))
        for run in runs:
            table = _scored(read(run.images), run.targets, run.name, s.graph)
            tables.append(table.assign(measured_by=reader))
    floor = pd.concat(floors, ignore_index=True)
    effect = pd.concat(tables, ignore_index=True).merge(
        floor[["measured_by", "variable", "metric", "value"]].rename(columns={"value": "floor"}),
        on=["measured_by", "variable", "metric"], how="left")
    first = ["measured_by", "intervened", "variable", "metric", "value", "floor"]
    return effect[first + ["n", "unmeasured"]], floor[["measured_by", "variable", "metric",
                                                        "value", "n", "unmeasured"]]


def _true_error(s: _Setup, runs: list[_Run]) -> pd.DataFrame:
    rows = []
    for run in (r for r in runs if r.true_images is not None):
        model = counterfactual_error(run.images, run.true_images)
        identity = counterfactual_error(s.x, run.true_images)
        rows += [(run.name, metric, model[metric], identity[metric], len(s.x))
                 for metric in ("l1", "mse")]
    return pd.DataFrame(rows, columns=["intervened", "metric", "value", "identity", "n"])


def _composition(s: _Setup, cycles: Sequence[int], n: int) -> pd.DataFrame:
    x, labels = s.x[:n], s.labels.iloc[:n]
    count = iter(range(1, max(cycles) + 1))

    def null(images: torch.Tensor) -> torch.Tensor:
        return _counterfactuals(s, images, {}, labels, f"null cycle {next(count)}")[0]

    return composition(null, x, cycles).assign(n=len(x))


def _reversibility(s: _Setup, runs: list[_Run]) -> pd.DataFrame:
    rows = []
    for run in runs:
        original, _ = _clip_to_model(s.cf_model, run.name, run.factual[run.name].to_numpy())

        def undo(images: torch.Tensor, run: _Run = run, original: np.ndarray = original):
            return _counterfactuals(s, images, {run.name: original}, run.counterfactual,
                                    f"undo do({run.name})")[0]

        l1 = reversibility(lambda _, run=run: run.images, undo, s.x)
        rows.append((run.name, "l1", l1, len(s.x)))
    return pd.DataFrame(rows, columns=["intervened", "metric", "value", "n"])


def _realism(s: _Setup, runs: list[_Run], feature_net: FeatureNet, n_real: int) -> pd.DataFrame:
    """FID/KID of each do(v), of all counterfactuals, and of the evaluated real images (the
    floor), against up to ``n_real`` other real test images."""
    others = np.setdiff1d(np.arange(len(s.test)), s.indices)
    reference = others[:n_real] if len(others) >= 2 else np.arange(len(s.test))
    real = to_unit_range(s.test.images_uint8[torch.as_tensor(reference)])
    generated = {f"do({run.name})": run.images for run in runs}
    generated["all counterfactuals"] = torch.cat([run.images for run in runs])
    generated["real test images (floor)"] = s.x
    table = realism_table(feature_net, real, generated).rename(columns={"model": "images"})
    sizes = {name: len(images) for name, images in generated.items()}
    return table.assign(n=table["images"].map(sizes), n_real=len(reference))


def _dci_tables(s: _Setup, n: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """DCI of z (from ``cf_model.encode``) against the true labels of ``n`` test images."""
    chosen = np.random.default_rng(seed).permutation(len(s.test))[:n]
    images = to_unit_range(s.test.images_uint8[torch.as_tensor(chosen)])
    z = torch.cat([s.cf_model.encode(batch)[1].detach().cpu()
                   for batch in torch.split(images, 4 * s.batch_size)]).double().numpy()
    factors = s.test.labels_natural.iloc[chosen][s.graph.nodes].reset_index(drop=True)
    categorical = list(s.graph.categorical)
    block = z.shape[1] // len(s.graph.nodes)
    per_dim = dci(z, factors, categorical=categorical, seed=seed)
    per_block = dci(z, factors, block_size=block, categorical=categorical, seed=seed,
                    code_names=s.graph.nodes)
    table = pd.concat([per_dim.to_frame().assign(granularity="dimension"),
                       per_block.to_frame().assign(granularity="block")], ignore_index=True)
    importance = per_block.importance.rename_axis("block").reset_index().melt(
        id_vars="block", var_name="factor", value_name="importance")
    return table[["granularity", "metric", "item", "score", "value"]], importance


def _interventions_table(s: _Setup, runs: list[_Run], protocol: str) -> pd.DataFrame:
    rows = []
    for run in runs:
        factual = s.labels[run.name].to_numpy(dtype=np.float64)
        rows.append((run.name, protocol, len(run.values), run.clipped, run.values.min(),
                     run.values.mean(), run.values.max(), np.mean(run.values != factual),
                     np.mean(np.abs(run.values - factual))))
    return pd.DataFrame(rows, columns=["intervened", "protocol", "n", "clipped", "min", "mean",
                                       "max", "changed", "mean_abs_change"])


# ============================================================================ evaluators
#: Minibatches (of 64) for the anti-causal predictor and the feature net, and in smoke mode.
EVALUATOR_STEPS = 1500
SMOKE_EVALUATOR_STEPS = 100
_EVALUATOR_VERSION = 1


def _cache_key(kind: str, dataset_name: str, train: Any, steps: int, seed: int) -> str:
    """sha256 of the training settings, the training images and their labels."""
    spec = {"kind": kind, "dataset": dataset_name, "steps": steps, "seed": seed,
            "batch_size": 64, "trunk": vars(TrunkConfig(channels=train.image_shape[0])),
            "graph": train.graph.to_dict(), "version": _EVALUATOR_VERSION}
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode())
    digest.update(train.images_uint8.numpy().tobytes())
    digest.update(train.labels_natural[train.graph.nodes].to_numpy(np.float64).tobytes())
    return digest.hexdigest()[:16]


def _load_or_train(kind: str, dataset_name: str, train: Any, steps: int, seed: int,
                   progress: bool, cache_dir: Path) -> AntiCausalPredictor:
    """An evaluator network from the cache, or trained on ``train`` and cached (atomically)."""
    path = cache_dir / f"{kind}-{_cache_key(kind, dataset_name, train, steps, seed)}.pt"
    if path.exists():
        try:
            return AntiCausalPredictor.load(path)
        except (OSError, RuntimeError, KeyError, ValueError) as exc:
            warnings.warn(f"cannot read the cached {kind} {path} ({exc}); retraining it",
                          RuntimeWarning, stacklevel=3)
    labels = train.labels_natural[train.graph.nodes]
    if kind == "predictor":
        net = train_predictor(train.images_uint8, labels, train.graph, steps=steps, seed=seed,
                              progress=progress)
    else:  # the feature net: the same kind of network, another seed
        net = train_feature_net(train.images_uint8, labels, train.graph.categorical,
                                steps=steps, seed=seed + 1, progress=progress).predictor
    net.save(path)
    return net


def load_or_train_evaluators(
    dataset_name: str, data_root: str | os.PathLike | None = None,
    dataset_options: Mapping[str, Any] | None = None, steps: int | None = None, seed: int = 0,
    progress: bool = True, cache_dir: str | os.PathLike | None = None,
) -> tuple[AntiCausalPredictor, FeatureNet]:
    """The anti-causal predictor and the FeatureNet of a dataset, trained on its real training
    split (``steps`` minibatches, default :data:`EVALUATOR_STEPS`) and cached under
    ``cache_dir`` (default ``data_dir()/"evaluators"/<dataset>``), keyed by a hash of the
    settings and the training data, so repeated evaluations reuse them."""
    from cdae.data.datasets import build_dataset

    steps = steps or (SMOKE_EVALUATOR_STEPS if smoke_mode() else EVALUATOR_STEPS)
    try:
        train = build_dataset(dataset_name, "train", root=data_root, **dict(dataset_options or {}))
    except FileNotFoundError as exc:
        raise FileNotFoundError(
            f"the evaluators are trained on {dataset_name!r}'s training split, which is missing "
            f"({exc}). Pass predictors= and feature_net= trained elsewhere, e.g. "
            "load_or_train_evaluators('morphomnist') for the Deep SCM test set") from exc
    folder = Path(cache_dir) if cache_dir is not None else data_dir() / "evaluators" / dataset_name
    predictor = _load_or_train("predictor", dataset_name, train, steps, seed, progress, folder)
    features = _load_or_train("feature_net", dataset_name, train, steps, seed, progress, folder)
    return predictor, FeatureNet(features)


# ============================================================================ entry points
def _variables(variables: Sequence[str] | None, graph: Any) -> list[str]:
    chosen = list(graph.nodes if variables is None else variables)
    unknown = [v for v in chosen if v not in graph.nodes]
    if unknown or not chosen:
        raise ValueError(f"variables {unknown or chosen} are not the model's variables "
                         f"{graph.nodes}; pass some of those (or None for all)")
    return chosen


def _values(s: _Setup, protocol: Any, name: str, n_bins: int, seed: int) -> np.ndarray:
    fixed = s.oracle.fixed.get(name) if s.oracle is not None else None
    population = s.test.labels_natural[name].to_numpy(dtype=np.float64)
    return protocol_values(protocol, name, population, s.indices, s.graph.is_categorical(name),
                           n_bins, seed, fixed)


def evaluate_model(
    cf_model: Any, dataset_name: str, data_root: str | os.PathLike | None = None, n: int = 256,
    steps: int = 50, abduction: str = "inversion",
    protocol: str | Mapping[str, Sequence[float]] = "benchmark", seed: int = 0,
    predictors: AntiCausalPredictor | None = None, feature_net: FeatureNet | None = None,
    progress: bool = True, *, variables: Sequence[str] | None = None,
    dataset_options: Mapping[str, Any] | None = None, batch_size: int = 64,
    n_bins: int = DEFAULT_BINS, guidance: float | None = None, cycles: Sequence[int] = (1, 10),
    composition_n: int = 32, dci_n: int = 1000, realism_n: int = 2000,
    evaluator_steps: int | None = None, meta: Mapping[str, Any] | None = None,
) -> EvaluationReport:
    """Evaluate ``cf_model`` (a :class:`~cdae.counterfactual.CounterfactualModel`) on ``n``
    test images of ``dataset_name``; see the module docstring for the tables.

    Args:
        protocol: "benchmark", "random", "fixed" or ``{variable: values}``
            (:mod:`cdae.evaluate.protocol`); ``n_bins`` quantile bins for "benchmark".
        predictors, feature_net: reuse evaluators; missing ones come from
            :func:`load_or_train_evaluators` (``evaluator_steps`` minibatches, cached).
        variables: the variables to intervene on (default: all of the graph's).
        dataset_options: ``build_dataset`` keywords of the model's config (size, channels...).
        composition_n: images for the composition cycles (the most expensive part).
        dci_n, realism_n: test images encoded for DCI; real reference images for FID/KID.
    """
    started = time.perf_counter()
    s = _prepare(cf_model, dataset_name, data_root, n, seed, dataset_options, steps=steps,
                 abduction=abduction, guidance=guidance, batch_size=batch_size, progress=progress)
    names = _variables(variables, s.graph)
    if predictors is None or feature_net is None:
        trained = load_or_train_evaluators(dataset_name, data_root, dataset_options,
                                           evaluator_steps, seed, progress)
        predictors, feature_net = predictors or trained[0], feature_net or trained[1]
    notes = [INCEPTION_NOTE, REVERSIBILITY_NOTE]
    runs = [_intervene(s, name, _values(s, protocol, name, n_bins, seed + k), notes)
            for k, name in enumerate(names)]
    tables: dict[str, pd.DataFrame] = {}
    tables["effectiveness"], tables["floor"] = _effectiveness(s, runs, predictors)
    tables["true_error"] = _true_error(s, runs)
    tables["composition"] = _composition(s, cycles, min(composition_n, len(s.x)))
    tables["reversibility"] = _reversibility(s, runs)
    tables["realism"] = _realism(s, runs, feature_net, realism_n)
    if getattr(cf_model, "has_encoder", True):
        tables["dci"], tables["dci_importance"] = _dci_tables(s, min(dci_n, len(s.test)), seed)
    else:
        notes.append("DCI skipped: the model has no encoder (label-conditional DDIM)")
    protocol_name = protocol if isinstance(protocol, str) else "fixed (given values)"
    tables["interventions"] = _interventions_table(s, runs, protocol_name)
    if tables["true_error"].empty:
        notes.append("no true counterfactual images for these interventions: the dataset's "
                     "generator cannot make them, so true_error is empty")
    if s.oracle is None:
        notes.append(f"{dataset_name!r} has no oracle: no true counterfactuals, and targets of "
                     "descendants of the intervened variable are unknown (not scored)")
    info = {"model": type(getattr(cf_model, "model", cf_model)).__name__,
            "dataset": dataset_name, "data_root": None if data_root is None else str(data_root),
            "n": len(s.x), "steps": steps, "abduction": abduction, "protocol": protocol_name,
            "n_bins": n_bins, "seed": seed, "guidance": guidance, "variables": names,
            "cycles": list(cycles), "seconds": round(time.perf_counter() - started, 1),
            "notes": notes, **dict(meta or {})}
    return EvaluationReport(tables, info)


def speed_quality(
    cf_model: Any, dataset_name: str, steps_list: Sequence[int] = (10, 20, 50, 100, 250),
    data_root: str | os.PathLike | None = None, n: int = 16, variable: str | None = None,
    protocol: str = "benchmark", abduction: str = "inversion", seed: int = 0,
    batch_size: int = 16, dataset_options: Mapping[str, Any] | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Seconds per counterfactual and quality versus DDIM steps, on ``n`` test images with one
    intervened ``variable`` (default: the first continuous one).

    Columns: steps, seconds_per_image, seconds_per_batch (batches of ``batch_size``),
    intervened, oracle_mae (of the intervened variable), true_l1, true_mse (0-255); quality
    columns are NaN where the dataset has no oracle / true counterfactuals.
    """
    s = _prepare(cf_model, dataset_name, data_root, n, seed, dataset_options, steps=0,
                 abduction=abduction, guidance=None, batch_size=batch_size, progress=progress)
    name = variable or next(v for v in s.graph.nodes if not s.graph.is_categorical(v))
    values, _ = _clip_to_model(cf_model, name, _values(s, protocol, name, DEFAULT_BINS, seed))
    targets, true_images = _targets(s, name, values, [])
    rows = []
    for steps in steps_list:
        started = time.perf_counter()
        images = _counterfactuals(s, s.x, {name: values}, s.labels, f"{steps} steps", steps)[0]
        seconds = time.perf_counter() - started
        row = {"steps": steps, "seconds_per_image": seconds / len(s.x),
               "seconds_per_batch": seconds / -(-len(s.x) // batch_size), "intervened": name,
               "oracle_mae": np.nan, "true_l1": np.nan, "true_mse": np.nan}
        if s.oracle is not None and name in s.oracle.measured:
            scored = _scored(s.oracle.measure(_storage(images)), targets, name, s.graph)
            row["oracle_mae"] = float(scored.loc[scored["variable"] == name, "value"].iloc[0])
        if true_images is not None:
            error = counterfactual_error(images, true_images)
            row["true_l1"], row["true_mse"] = error["l1"], error["mse"]
        rows.append(row)
    return pd.DataFrame(rows)


def evaluate_cli(checkpoint: str | os.PathLike, data: str | os.PathLike | None = None,
                 json_out: str | os.PathLike | None = None, n: int | None = None,
                 steps: int = 50, protocol: str = "benchmark", device: str | None = None) -> int:
    """``python -m cdae evaluate CHECKPOINT [--data DIR] [--json OUT] [--n N] [--steps S]
    [--protocol P] [--device D]``: evaluate a checkpoint on its config's dataset (test split
    read from ``data``, default the config's ``data.root`` or the dataset's cache), print the
    summary, optionally write the JSON report. ``n`` defaults to 256 (16 in smoke mode)."""
    from cdae.counterfactual import CounterfactualModel
    from cdae.train import load_model

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    loaded = load_model(checkpoint, device=device)
    cf_model = CounterfactualModel(loaded.model, loaded.diffusion, loaded.normalizer)
    report = evaluate_model(
        cf_model, loaded.config.data.name, data if data is not None else loaded.config.data.root,
        n=n or (16 if smoke_mode() else 256), steps=steps, protocol=protocol,
        dataset_options=loaded.config.data.options, meta={"checkpoint": str(checkpoint)})
    print(report.summary())
    if json_out is not None:
        print(f"wrote {report.to_json(json_out)}")
    return 0

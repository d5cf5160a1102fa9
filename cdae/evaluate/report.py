"""Evaluate a counterfactual model on its dataset's test split: effectiveness, the error against
the true counterfactual, composition, reversibility, realism and disentanglement.

    >>> cf = CounterfactualModel.from_checkpoint("runs/morphomnist_small/last.pt")
    >>> report = evaluate_model(cf, "morphomnist", config=EvaluationConfig(n=256))
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
* ``off_joint``: the effectiveness table again, in bins of k, how many noise sds of the
  dataset's own mechanisms the true counterfactual's state lies from the training joint
  (:mod:`cdae.evaluate.distance`; ``no support``: a state the training data never shows, e.g. a
  Pendulum shadow that is not the geometry of its angles). Computed with ``effectiveness``
  where the dataset has an oracle.
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

``EvaluationConfig(tables=...)`` (``--tables`` on the command line) computes a subset; the
composition and reversibility cycles take most of the time.

Values beyond the range the model accepts (``CounterfactualModel.accepted_range``) are clipped to
it, and counted.
Predictors and feature net are cached under ``data_dir()/"evaluators"/<dataset>/``
(:mod:`cdae.evaluate.evaluators`); each table is computed in :mod:`cdae.evaluate.tables`.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from cdae.evaluate import tables
from cdae.evaluate.evaluators import load_or_train_evaluators
from cdae.evaluate.metrics import counterfactual_error, format_table
from cdae.evaluate.predictors import AntiCausalPredictor
from cdae.evaluate.realism import FeatureNet
from cdae.evaluate.tables import EvaluationConfig
from cdae.files import atomic_write_bytes, check_writable
from cdae.paths import smoke_mode

if TYPE_CHECKING:
    from cdae.counterfactual import CounterfactualModel
    from cdae.graph import CausalGraph

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
                 f"guidance={m.get('guidance')}, protocol={m.get('protocol')}", ""]
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
        if "off_joint" in t:
            binned = t["off_joint"]
            binned = binned[binned["measured_by"] == binned["measured_by"].iloc[-1]]
            wide = format_table(binned, rows=["intervened", "off_joint"])
            wide[("n", "requests")] = binned.groupby(["intervened", "off_joint"],
                                                     sort=False)["n"].first()
            out.append((f"By distance from the training joint (k noise sds; "
                        f"{binned['measured_by'].iloc[-1]})", wide))
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


# ============================================================================ entry points
def _variables(variables: Sequence[str] | None, graph: CausalGraph) -> list[str]:
    chosen = list(graph.nodes if variables is None else variables)
    unknown = [v for v in chosen if v not in graph.nodes]
    if unknown or not chosen:
        raise ValueError(f"variables {unknown or chosen} are not the model's variables "
                         f"{graph.nodes}; pass some of those (or None for all)")
    return chosen


def evaluate_model(
    cf_model: CounterfactualModel, dataset_name: str,
    data_root: str | os.PathLike | None = None, config: EvaluationConfig | None = None, *,
    dataset_options: Mapping[str, Any] | None = None,
    predictors: AntiCausalPredictor | None = None, feature_net: FeatureNet | None = None,
    meta: Mapping[str, Any] | None = None,
) -> EvaluationReport:
    """Evaluate ``cf_model`` on test images of ``dataset_name`` as ``config`` says (default
    :class:`EvaluationConfig()`); see the module docstring for the tables.

    Args:
        dataset_options: ``build_dataset`` keywords of the model's config (size, channels...).
        predictors, feature_net: reuse evaluators; missing ones come from
            :func:`load_or_train_evaluators` (``config.evaluator_steps`` minibatches, cached).
        meta: extra entries for ``report.meta``.
    """
    config = config or EvaluationConfig()
    started = time.perf_counter()
    setup = tables.prepare(cf_model, dataset_name, data_root, dataset_options, config)
    names = _variables(config.variables, setup.graph)
    wants = config.wants
    notes = [REVERSIBILITY_NOTE] if wants("reversibility") else []
    if wants("realism"):
        notes.insert(0, INCEPTION_NOTE)
    needs_runs = any(wants(t) for t in ("effectiveness", "off_joint", "true_error",
                                        "reversibility", "realism"))
    runs = [tables.intervene(setup, name, tables.intervention_values(setup, name, config.seed + k),
                             notes)
            for k, name in enumerate(names)] if needs_runs else []
    if wants("effectiveness") or wants("off_joint") or wants("realism"):
        if predictors is None or feature_net is None:
            trained = load_or_train_evaluators(dataset_name, data_root, dataset_options,
                                               config.evaluator_steps, config.seed,
                                               config.progress)
            predictors, feature_net = predictors or trained[0], feature_net or trained[1]
    out: dict[str, pd.DataFrame] = {}
    if wants("effectiveness") or wants("off_joint"):
        effect, floor, binned = tables.effectiveness_tables(setup, runs, predictors)
        if wants("effectiveness"):
            out["effectiveness"], out["floor"] = effect, floor
        if wants("off_joint") and not binned.empty:
            out["off_joint"] = binned
    if wants("true_error"):
        out["true_error"] = tables.true_error_table(setup, runs)
    if wants("composition"):
        out["composition"] = tables.composition_table(setup)
    if wants("reversibility"):
        out["reversibility"] = tables.reversibility_table(setup, runs)
    if wants("realism"):
        out["realism"] = tables.realism_of_runs(setup, runs, feature_net)
    if wants("dci") and getattr(cf_model, "has_encoder", True):
        out["dci"], out["dci_importance"] = tables.dci_tables(setup)
    elif wants("dci"):
        notes.append("DCI skipped: the model has no encoder (label-conditional DDIM)")
    if runs:
        out["interventions"] = tables.interventions_table(setup, runs)
    if "true_error" in out and out["true_error"].empty:
        notes.append("no true counterfactual images for these interventions: the dataset's "
                     "generator cannot make them, so true_error is empty")
    if setup.oracle is None:
        notes.append(f"{dataset_name!r} has no oracle: no true counterfactuals, and targets of "
                     "descendants of the intervened variable are unknown (not scored)")
    info = {"model": type(getattr(cf_model, "model", cf_model)).__name__,
            "dataset": dataset_name, "data_root": None if data_root is None else str(data_root),
            "n": len(setup.x), "steps": config.steps, "abduction": config.abduction,
            "protocol": config.protocol_name, "n_bins": config.n_bins, "seed": config.seed,
            "guidance": config.guidance, "variables": names, "cycles": list(config.cycles),
            "tables": list(config.tables) if config.tables is not None else list(tables.TABLES),
            "seconds": round(time.perf_counter() - started, 1), "notes": notes,
            **dict(meta or {})}
    return EvaluationReport(out, info)


def speed_quality(
    cf_model: CounterfactualModel, dataset_name: str,
    steps_list: Sequence[int] = (10, 20, 50, 100, 250),
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
    config = EvaluationConfig(n=n, protocol=protocol, abduction=abduction, seed=seed,
                              batch_size=batch_size, progress=progress)
    setup = tables.prepare(cf_model, dataset_name, data_root, dataset_options, config)
    name = variable or next(v for v in setup.graph.nodes if not setup.graph.is_categorical(v))
    asked = tables.intervention_values(setup, name, seed)
    values, _ = tables.clip_to_model(cf_model, name, asked)
    targets, true_images = tables.targets_and_truth(setup, name, values, [])
    rows = []
    for steps in steps_list:
        started = time.perf_counter()
        images = tables.counterfactuals(setup, setup.x, {name: values}, setup.labels,
                                        f"{steps} steps", steps)[0]
        seconds = time.perf_counter() - started
        row = {"steps": steps, "seconds_per_image": seconds / len(setup.x),
               "seconds_per_batch": seconds / -(-len(setup.x) // batch_size), "intervened": name,
               "oracle_mae": np.nan, "true_l1": np.nan, "true_mse": np.nan}
        if setup.oracle is not None and name in setup.oracle.measured:
            measured = setup.oracle.measure(tables.to_storage(images))
            scored = tables.scored(measured, targets, name, setup.graph,
                                   setup.labels.mean(numeric_only=True).to_dict())
            # unmeasurable (blank) counterfactuals count as failures
            row["oracle_mae"] = float(scored.loc[scored["variable"] == name, "value_all"].iloc[0])
        if true_images is not None:
            error = counterfactual_error(images, true_images)
            row["true_l1"], row["true_mse"] = error["l1"], error["mse"]
        rows.append(row)
    return pd.DataFrame(rows)


def evaluate_cli(checkpoint: str | os.PathLike, data: str | os.PathLike | None = None,
                 json_out: str | os.PathLike | None = None, n: int | None = None,
                 steps: int = 50, protocol: str = "benchmark", device: str | None = None,
                 tables_wanted: Sequence[str] | None = None,
                 guidance: float | None = None) -> int:
    """``python -m cdae evaluate CHECKPOINT [--data DIR] [--json OUT] [--n N] [--steps S]
    [--protocol P] [--guidance W] [--device D] [--tables T,...]``: evaluate a checkpoint on
    its config's dataset (test split read from ``data``, default the config's ``data.root`` or
    the dataset's cache), print the summary, optionally write the JSON report. ``n`` defaults
    to 256 (16 in smoke mode); ``tables_wanted`` None computes every table."""
    from cdae.checkpoint import load_model
    from cdae.counterfactual import CounterfactualModel
    from cdae.train.runtime import pick_device

    if json_out is not None:  # before the work, so that its results are never lost
        check_writable(json_out, "--json file")
    default_n = 16 if smoke_mode() else 256
    config = EvaluationConfig(n=default_n if n is None else n, steps=steps,
                              protocol=protocol, tables=tables_wanted, guidance=guidance)
    device = pick_device(device) if device else ("cuda" if torch.cuda.is_available() else "cpu")
    loaded = load_model(checkpoint, device=device)
    cf_model = CounterfactualModel(loaded.model, loaded.diffusion, loaded.normalizer)
    report = evaluate_model(
        cf_model, loaded.config.data.name, data if data is not None else loaded.config.data.root,
        config, dataset_options=loaded.config.data.options, meta={"checkpoint": str(checkpoint)})
    print(report.summary())
    if json_out is not None:
        print(f"wrote {report.to_json(json_out)}")
    return 0

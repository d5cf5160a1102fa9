"""Arms of the training recipe at equal budget: which change makes counterfactuals hold away
from the training joint. The README's "Recipe arms" table comes from this script.

Each arm is a config that differs from ``configs/morphomnist_small.yaml`` only in what it names,
trained for the same steps at several seeds (run folders ``runs/arms/<arm>_s<seed>/``)::

    python -m cdae train runs/arms/clip_s0.yaml --out runs/arms/clip_s0   # ... one per arm/seed
    python benchmarks/recipe_arms.py runs/arms/*/last.pt

Each checkpoint is evaluated on 256 test digits at 50 DDIM steps (benchmark protocol, read by
morphometry) under do(thickness) and do(intensity), with the errors binned by k, the distance of
the requested state from the training joint in noise sds (:mod:`cdae.evaluate.distance`). One
row per checkpoint, then one per arm: the seeds' mean and, in brackets, their range.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pandas as pd
from checkpoint_reports import checkpoint_args, reports, run_name
from quality_table import markdown

from cdae.checkpoint import load_model
from cdae.counterfactual import CounterfactualModel
from cdae.evaluate.distance import bin_labels
from cdae.evaluate.report import EvaluationConfig, EvaluationReport, evaluate_model


def evaluate_one(path: Path, out: Path, n: int, steps: int) -> Path:
    loaded = load_model(path)
    cf = CounterfactualModel(loaded.model, loaded.diffusion, loaded.normalizer)
    data = loaded.config.data
    started = time.perf_counter()
    report = evaluate_model(
        cf, data.name, data.root,
        EvaluationConfig(n=n, steps=steps, variables=("thickness", "intensity"),
                         tables=("effectiveness", "off_joint", "true_error")),
        dataset_options=data.options, meta={"checkpoint": str(path)})
    target = out / f"arm_{run_name(path)}.json"
    report.to_json(target)
    print(f"{path}: {time.perf_counter() - started:.0f} s -> {target}", flush=True)
    return target


def row_of(report: EvaluationReport) -> dict[str, float]:
    """The numbers of one checkpoint: oracle MAEs (unmeasurable images count as failures),
    do(intensity)'s intensity MAE per k bin, L1 to the true counterfactual."""
    effect = report.tables["effectiveness"].query("measured_by == 'oracle'")
    mae = effect.set_index(["intervened", "variable"])["value_all"]
    row = {"do(i): intensity": mae[("intensity", "intensity")],
           "do(i): thickness moved": mae[("intensity", "thickness")],
           "do(t): thickness": mae[("thickness", "thickness")],
           "do(t): intensity vs propagated": mae[("thickness", "intensity")]}
    binned = report.tables["off_joint"].query(
        "measured_by == 'oracle' and intervened == 'intensity' and variable == 'intensity'")
    by_bin = binned.set_index("off_joint")["value_all"]
    row |= {f"do(i) {label}": by_bin.get(label, float("nan")) for label in bin_labels()[:-1]}
    true = report.tables["true_error"].query("metric == 'l1'").set_index("intervened")["value"]
    row |= {f"L1 do({k[0]})": true[k] for k in ("thickness", "intensity")}
    return row


def arm_of(name: str) -> str:
    """clip_s0 -> clip: the seeds of one arm share a name up to ``_s<seed>``."""
    return re.sub(r"_s\d+$", "", name)


def summary(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per arm: "mean [min–max]" over its seeds."""
    grouped = rows.groupby(rows.index.map(arm_of), sort=False)
    mean, low, high = grouped.mean(), grouped.min(), grouped.max()
    count = grouped.size()
    cells = mean.copy().astype(object)
    for arm in mean.index:
        for column in mean.columns:
            m, lo, hi = mean.at[arm, column], low.at[arm, column], high.at[arm, column]
            cells.at[arm, column] = (f"{m:.3g}" if count[arm] == 1
                                     else f"{m:.3g} [{lo:.3g}–{hi:.3g}]")
    return cells.assign(seeds=count)


def main() -> None:
    args = checkpoint_args(__doc__.splitlines()[0])
    found = reports(args, "arm", evaluate_one)
    frame = pd.DataFrame.from_dict(
        {path.stem.removeprefix("arm_"): row_of(EvaluationReport.from_json(path))
         for path in found}, orient="index")
    print(markdown(frame.T.rename_axis("metric")))
    print()
    print(markdown(summary(frame).T.rename_axis("metric (mean [range] over seeds)")))


if __name__ == "__main__":
    main()

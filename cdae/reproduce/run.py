"""Regenerate the paper's figures and tables from the shipped models:
``python -m cdae figures [--smoke]`` (:func:`reproduce`), or step by step in notebook 12.

Steps, each usable alone: :func:`compare_models` (the effectiveness tables of CausalDiffAE and
its baselines on one dataset), :func:`counterfactual_grid` (a paper-style grid),
:func:`weak_supervision_sweep` (every metric against the guidance weight, per labelled
fraction) and :func:`speed_curve` (time and quality against DDIM steps). Figures and markdown
tables go to :func:`cdae.paths.figures_dir`, named ``12_*`` after the notebook.
"""

from __future__ import annotations

import time
import warnings
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from cdae.counterfactual import CounterfactualModel
from cdae.evaluate import (
    EvaluationConfig,
    EvaluationReport,
    evaluate_model,
    guidance_sweep,
    load_or_train_evaluators,
    speed_quality,
    sweep_frame,
)
from cdae.files import atomic_write_bytes
from cdae.manifest import read_manifest
from cdae.paths import figures_dir
from cdae.reproduce.figures import paper_grid, speed_quality_figure, weak_supervision_figure
from cdae.reproduce.settings import (
    COMPARISONS,
    GRID_INTERVENTIONS,
    WEAK_SUPERVISION,
    ReproductionSettings,
)
from cdae.reproduce.tables import comparison_table, to_markdown

PREFIX = "12_"


def dataset_root(dataset: str) -> Path | None:
    """Where the shipped models' test split lives: the course's shared Morpho-MNIST folder, or
    the dataset's default cache (None)."""
    if dataset == "morphomnist":
        from cdae.data.morphomnist import tutorial_root

        return tutorial_root()
    return None


def shipped_models(names: dict[str, str]) -> tuple[dict[str, CounterfactualModel], list[str]]:
    """``{display name: model}`` for the names the manifest lists, and a note per missing one."""
    from cdae.pretrained import load_pretrained

    manifest = read_manifest()
    models, missing = {}, []
    for label, name in names.items():
        if f"{name}.pt" in manifest:
            models[label] = load_pretrained(name)
        else:
            missing.append(f"{label} ({name}.pt) is not in data/pretrained: skipped")
    return models, missing


def _dataset_options(dataset: str, cf_model: CounterfactualModel) -> dict[str, Any]:
    """``build_dataset`` keywords for the model's test split: Pendulum is resized to the model."""
    if dataset != "pendulum":
        return {}
    return {"size": cf_model.model.config.image_size, "channels": cf_model.model.config.in_channels}


@dataclass
class Comparison:
    """One dataset's comparison: the table (metric x model), each model's full report, notes."""

    dataset: str
    table: pd.DataFrame
    reports: dict[str, EvaluationReport]
    notes: list[str]


def compare_models(dataset: str, settings: ReproductionSettings,
                   progress: bool = False) -> Comparison:
    """Evaluate every shipped model of :data:`COMPARISONS` [dataset] on the same test images
    with the same intervention values, and gather the headline numbers."""
    models, notes = shipped_models(COMPARISONS[dataset])
    if not models:
        raise FileNotFoundError(f"no shipped model of {dataset!r} found; notes: {notes}")
    root = dataset_root(dataset)
    first = next(iter(models.values()))
    options = _dataset_options(dataset, first)
    predictors, feature_net = load_or_train_evaluators(dataset, root, options, progress=progress)
    config = EvaluationConfig(n=settings.n[dataset], steps=settings.steps,
                              composition_n=settings.composition_n, cycles=settings.cycles,
                              realism_n=settings.realism_n, dci_n=settings.dci_n,
                              seed=settings.seed, progress=progress)
    reports = {label: evaluate_model(cf, dataset, root, config, dataset_options=options,
                                     predictors=predictors, feature_net=feature_net)
               for label, cf in models.items()}
    return Comparison(dataset, comparison_table(reports), reports, notes)


def off_joint_table(reports: Mapping[str, EvaluationReport], intervened: str,
                    variable: str) -> pd.DataFrame:
    """The oracle's error of ``variable`` under do(``intervened``), in bins of the distance k
    from the training joint: rows the bins, columns the models (with each bin's count). Every
    report must be scored on the same images and requests (as :func:`compare_models` does)."""
    columns, counts = {}, None
    for label, report in reports.items():
        binned = report.tables.get("off_joint")
        if binned is None:
            continue
        rows = binned[(binned["measured_by"] == "oracle") & (binned["intervened"] == intervened)
                      & (binned["variable"] == variable)].set_index("off_joint")
        columns[label] = rows["value_all"]
        counts = rows["n"]
    if counts is None:
        raise ValueError(f"none of the reports {list(reports)} has an off_joint table; evaluate "
                         "with 'off_joint' in EvaluationConfig.tables")
    return pd.DataFrame({**columns, "n": counts}).rename_axis(
        f"do({intervened}): {variable}, by k")


def test_images(dataset: str, cf_model: CounterfactualModel, count: int,
                seed: int) -> tuple[Any, pd.DataFrame]:
    """``count`` seeded random test images (B, C, H, W) in [-1, 1] and their labels."""
    from cdae.data.datasets import build_dataset

    test = build_dataset(dataset, "test", root=dataset_root(dataset),
                         normalizer=cf_model.normalizer, **_dataset_options(dataset, cf_model))
    pick = np.random.default_rng(seed).permutation(len(test))[:count]
    x, _ = test.tensors()
    return x[pick], test.labels_natural.iloc[pick].reset_index(drop=True)


def counterfactual_grid(dataset: str, settings: ReproductionSettings,
                        model: str = "CausalDiffAE") -> Any:
    """The paper-style grid of one shipped model: test images by rows, the interventions of
    :data:`GRID_INTERVENTIONS` by columns, each captioned with what the oracle measures."""
    from cdae.evaluate.oracles import oracle_for
    from cdae.widgets.readers import oracle_reader

    models, _ = shipped_models({model: COMPARISONS[dataset][model]})
    cf = models[model]
    x, _ = test_images(dataset, cf, settings.grid_images, settings.seed)
    oracle = oracle_for(dataset, dataset_root(dataset), _dataset_options(dataset, cf))
    reader = oracle_reader(oracle) if oracle is not None else None
    return paper_grid(cf, x, GRID_INTERVENTIONS[dataset], settings.steps, reader,
                      title=f"{model} on {dataset}: counterfactuals of test images "
                            f"({settings.steps} DDIM steps)\ncaptions: the value the "
                            "counterfactual latents hold / what the oracle measures")


def weak_supervision_sweep(settings: ReproductionSettings, progress: bool = False,
                           ) -> pd.DataFrame:
    """Every metric against the guidance weight for each model of :data:`WEAK_SUPERVISION`,
    as one :func:`~cdae.evaluate.sweep_frame` with a ``model`` column."""
    models, notes = shipped_models(WEAK_SUPERVISION)
    if not models:
        raise FileNotFoundError(f"no weak-supervision model found; notes: {notes}")
    root = dataset_root("morphomnist")
    predictors, feature_net = load_or_train_evaluators("morphomnist", root, progress=progress)
    config = EvaluationConfig(n=settings.weak_n, steps=settings.weak_steps, cycles=(1,),
                              composition_n=min(settings.composition_n, settings.weak_n),
                              realism_n=min(settings.realism_n, 500), seed=settings.seed,
                              progress=False,
                              tables=["effectiveness", "off_joint", "true_error", "composition",
                                      "realism"])
    frames = []
    for label, cf in models.items():
        reports = guidance_sweep(cf, "morphomnist", list(settings.weak_weights), root, config,
                                 progress=progress, predictors=predictors,
                                 feature_net=feature_net)
        frames.append(sweep_frame(reports).assign(model=label))
    return pd.concat(frames, ignore_index=True)


def weak_supervision_table(sweep: pd.DataFrame) -> pd.DataFrame:
    """do(intensity)'s and do(thickness)'s oracle MAE and the thickness do(intensity) moves:
    rows (metric, guidance weight), columns the models."""
    from cdae.reproduce.figures import weak_curves

    panels = ("do(intensity): intensity MAE", "do(thickness): thickness MAE (px)",
              "do(intensity): thickness moved (px)")
    return pd.concat({panel: weak_curves(sweep, panel) for panel in panels},
                     names=["metric", "guidance"])


def speed_curve(settings: ReproductionSettings, progress: bool = False) -> pd.DataFrame:
    """Seconds per counterfactual and its quality against DDIM steps, for the shipped Causal
    Morpho-MNIST CausalDiffAE (do(thickness))."""
    models, _ = shipped_models({"CausalDiffAE": COMPARISONS["morphomnist"]["CausalDiffAE"]})
    return speed_quality(models["CausalDiffAE"], "morphomnist",
                         steps_list=settings.speed_steps, data_root=dataset_root("morphomnist"),
                         n=settings.speed_n, seed=settings.seed, progress=progress)


def write_table(frame: pd.DataFrame, name: str, caption: str) -> Path:
    """``<figures_dir()>/<name>.md``: a caption line, then the table in markdown (atomic)."""
    path = figures_dir() / f"{name}.md"
    atomic_write_bytes(path, f"{caption}\n\n{to_markdown(frame)}\n".encode())
    return path


def reproduce(settings: ReproductionSettings | None = None, progress: bool = True,
              log: Callable[[str], None] = tqdm.write) -> list[Path]:
    """Every figure and table, written to :func:`~cdae.paths.figures_dir`; returns the paths
    (and logs each as it is written, with the time each step took)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from cdae.plotting import save_figure, use_style

    use_style()
    settings = settings or ReproductionSettings.full()
    written: list[Path] = []

    def keep(path: Path, started: float) -> None:
        written.append(path)
        log(f"  wrote {path}  ({time.perf_counter() - started:.0f} s)")

    def figure(fig: Any, name: str, started: float) -> None:
        keep(save_figure(fig, PREFIX + name), started)
        plt.close(fig)

    def comparison(dataset: str) -> None:
        started = time.perf_counter()
        result = compare_models(dataset, settings)
        n = settings.n[dataset]
        caption = (f"{dataset}: shipped models on the same {n} test images, benchmark protocol, "
                   f"{settings.steps} DDIM steps, abduction by inversion. "
                   + " ".join(result.notes))
        keep(write_table(result.table, f"{PREFIX}table_{dataset}", caption), started)
        if dataset == "morphomnist":
            binned = off_joint_table(result.reports, "intensity", "intensity")
            keep(write_table(binned, f"{PREFIX}table_{dataset}_off_joint",
                             f"do(intensity): intensity MAE (oracle) by distance k from the "
                             f"training joint; {n} test digits"), started)

    def grid(dataset: str) -> None:
        started = time.perf_counter()
        figure(counterfactual_grid(dataset, settings), f"grid_{dataset}", started)

    def weak() -> None:
        started = time.perf_counter()
        sweep = weak_supervision_sweep(settings)
        figure(weak_supervision_figure(sweep, f"Weak supervision: {settings.weak_n} test digits, "
                                              f"{settings.weak_steps} DDIM steps"),
               "weak_supervision", started)
        keep(write_table(weak_supervision_table(sweep), f"{PREFIX}table_weak_supervision",
                         f"oracle MAE against the guidance weight w; {settings.weak_n} test "
                         f"digits, {settings.weak_steps} DDIM steps"), started)

    def speed() -> None:
        started = time.perf_counter()
        table = speed_curve(settings)
        figure(speed_quality_figure(table, f"Speed and quality against DDIM steps "
                                           f"({settings.speed_n} test digits)"),
               "speed_quality", started)
        keep(write_table(table.set_index("steps"), f"{PREFIX}table_speed_quality",
                         f"seconds and quality against DDIM steps; {settings.speed_n} test "
                         "digits, do(thickness)"), started)

    steps: list[tuple[str, Callable[[], None]]] = [
        ("Morpho-MNIST grid", lambda: grid("morphomnist")),
        ("Pendulum grid", lambda: grid("pendulum")),
        ("Morpho-MNIST tables", lambda: comparison("morphomnist")),
        ("Pendulum tables", lambda: comparison("pendulum")),
        ("weak supervision", weak),
        ("speed/quality curve", speed),
    ]
    started = time.perf_counter()
    bar = tqdm(steps, desc="reproducing the paper", unit="step", disable=not progress,
               dynamic_ncols=True)
    with warnings.catch_warnings(record=True) as caught:  # summarised below, not one per call
        warnings.simplefilter("always")
        for title, step in bar:
            bar.set_postfix_str(title)
            step()
    for line in _warning_summary(caught):
        log(line)
    log(f"{len(written)} files in {figures_dir()} ({time.perf_counter() - started:.0f} s)")
    return written


def _warning_summary(caught: list[warnings.WarningMessage]) -> list[str]:
    """One line per place that warned: how often, and its first message."""
    counts = Counter((w.category.__name__, Path(w.filename).name, w.lineno) for w in caught)
    first = {}
    for w in caught:
        first.setdefault((w.category.__name__, Path(w.filename).name, w.lineno), str(w.message))
    return [f"{count} x {category} at {name}:{line}, e.g. {first[(category, name, line)]}"
            for (category, name, line), count in counts.items()]

"""The evaluation repeated over classifier-free guidance weights, gathered into one tidy frame.

    >>> reports = guidance_sweep(cf, "morphomnist", [0.0, 1.0, 2.0], config=EvaluationConfig(n=64))
    >>> frame = sweep_frame(reports)   # columns: guidance, table, intervened, variable, ...
    >>> frame.query("table == 'effectiveness'").pivot_table("value", "guidance", "variable")

Guidance is a sampling knob: the decoder's output is pushed along eps(x_t, t, z) -
eps(x_t, t, null) by the weight w. It is not the value of a do(); the sweep measures what it does
to every metric at once: the intervened variable, the others, the error against the true
counterfactual, the drift of repeated null interventions and realism.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
from tqdm.auto import tqdm

from cdae.counterfactual import CounterfactualModel
from cdae.evaluate.report import EvaluationReport, evaluate_model
from cdae.evaluate.tables import EvaluationConfig


def guidance_sweep(cf_model: CounterfactualModel, dataset_name: str,
                   weights: Sequence[float | None],
                   data_root: str | os.PathLike | None = None,
                   config: EvaluationConfig | None = None,
                   progress: bool = True, **evaluate_kwargs: Any,
                   ) -> dict[float | None, EvaluationReport]:
    """:func:`~cdae.evaluate.report.evaluate_model` once per guidance weight (None: plain
    conditional decoding), with the same test images, intervention values and evaluators.

    ``evaluate_kwargs`` go to ``evaluate_model`` (pass ``predictors`` and ``feature_net`` so that
    the evaluators are loaded once). Returns ``{weight: report}`` in the order given.
    """
    if not weights:
        raise ValueError("weights is empty; give at least one guidance weight, e.g. [0, 1, 2]")
    config = config or EvaluationConfig()
    reports: dict[float | None, EvaluationReport] = {}
    for weight in tqdm(list(weights), desc="guidance weights", disable=not progress):
        reports[weight] = evaluate_model(cf_model, dataset_name, data_root,
                                         dataclasses.replace(config, guidance=weight),
                                         **evaluate_kwargs)
    return reports


def sweep_frame(reports: Mapping[float | None, EvaluationReport]) -> pd.DataFrame:
    """One row per (guidance, table, intervened, variable, off_joint, metric): the oracle's
    effectiveness (overall and by distance from the training joint), the error against the true
    counterfactual, composition and realism of every report. Tables a report lacks are skipped.
    """
    frames = []
    for weight, report in reports.items():
        tables = report.tables
        parts = []
        if "effectiveness" in tables:
            effect = tables["effectiveness"]
            parts.append(effect[effect["measured_by"] == "oracle"].assign(
                table="effectiveness", off_joint="all"))
        if "off_joint" in tables:
            binned = tables["off_joint"]
            parts.append(binned[binned["measured_by"] == "oracle"].assign(table="off_joint"))
        if "true_error" in tables:
            parts.append(tables["true_error"].assign(table="true_error",
                                                     variable="image", off_joint="all"))
        if "composition" in tables:
            composition = tables["composition"]
            parts.append(composition.assign(
                table="composition", intervened="null x " + composition["cycles"].astype(str),
                variable="image", off_joint="all"))
        if "realism" in tables:
            parts.append(tables["realism"].rename(columns={"images": "intervened"}).assign(
                table="realism", variable="image", off_joint="all"))
        for part in parts:
            frames.append(part[["table", "intervened", "variable", "off_joint", "metric",
                                "value"]].assign(guidance=weight))
    if not frames:
        raise ValueError("the reports hold none of the tables a sweep reads (effectiveness, "
                         "off_joint, true_error, composition, realism)")
    frame = pd.concat(frames, ignore_index=True)
    return frame[["guidance", "table", "intervened", "variable", "off_joint", "metric", "value"]]

"""The paper's tables from evaluation reports: one column per model, one row per metric.

    >>> reports = {"CausalDiffAE": report_a, "Diff-AE": report_b}   # EvaluationReport each
    >>> comparison_table(reports)            # DataFrame: metric x model, plus "floor" / "unchanged"
    >>> print(to_markdown(comparison_table(reports)))
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from cdae.evaluate.report import EvaluationReport

#: Columns beside the models: what a real image scores (the readers' own error) and, for the
#: error against the true counterfactual, what leaving the image unchanged scores.
REFERENCE_COLUMNS = ("floor", "unchanged")


def _effectiveness_rows(tables: Mapping[str, pd.DataFrame]) -> dict[str, tuple[float, float]]:
    rows: dict[str, tuple[float, float]] = {}
    effect = tables.get("effectiveness")
    if effect is None:
        return rows
    for _, r in effect.iterrows():
        label = f"do({r['intervened']}): {r['variable']} {r['metric']} ({r['measured_by']})"
        rows[label] = (r["value_all"], r["floor"])  # unmeasurable images count as failures
    return rows


def metric_column(report: EvaluationReport) -> tuple[pd.Series, pd.DataFrame]:
    """Every headline number of one report, indexed by a readable metric name, and the reference
    values (floor, unchanged) of the rows that have one."""
    tables = report.tables
    values: dict[str, float] = {}
    reference: dict[str, dict[str, float]] = {}
    for label, (value, floor) in _effectiveness_rows(tables).items():
        values[label] = value
        reference[label] = {"floor": floor}
    true = tables.get("true_error")
    if true is not None:
        for _, r in true[true["metric"] == "l1"].iterrows():
            label = f"do({r['intervened']}): L1 to the true counterfactual"
            values[label] = r["value"]
            reference[label] = {"unchanged": r["identity"]}
    simple = (("composition", "l1", "composition: L1 after {cycles:.0f} null interventions"),
              ("reversibility", "l1", "reversibility of do({intervened}): L1"),
              ("realism", "fid", "FID ({images})"))
    for name, metric, template in simple:
        table = tables.get(name)
        if table is not None:
            for _, r in table[table["metric"] == metric].iterrows():
                values[template.format(**r)] = r["value"]
    dci = tables.get("dci")
    if dci is not None:
        for _, r in dci[dci["item"] == "all"].iterrows():
            values[f"DCI {r['metric']} (per {r['granularity']})"] = r["value"]
    frame = pd.DataFrame.from_dict(reference, orient="index",
                                   columns=list(REFERENCE_COLUMNS))
    return pd.Series(values, dtype=float), frame


def comparison_table(reports: Mapping[str, EvaluationReport]) -> pd.DataFrame:
    """Rows: every metric any report has, in first-seen order; columns: one per model (NaN where
    a model lacks the metric, e.g. DCI of a model without latents), then ``floor`` and
    ``unchanged`` (taken from the first report that has them: every report must be scored on the
    same test images, which the reproduction ensures)."""
    if not reports:
        raise ValueError("reports is empty; give at least one {model name: EvaluationReport}")
    columns, references = {}, []
    for name, report in reports.items():
        columns[name], reference = metric_column(report)
        references.append(reference)
    table = pd.concat(columns, axis=1)
    reference = pd.concat(references)
    reference = reference[~reference.index.duplicated()]
    return table.join(reference.reindex(table.index)).rename_axis("metric")


def to_markdown(frame: pd.DataFrame, digits: int = 3) -> str:
    """A DataFrame (index included) as a GitHub markdown table, numbers to ``digits``
    significant figures, NaN blank."""
    frame = frame.reset_index()

    def cell(value: object) -> str:
        if isinstance(value, float):
            return "" if pd.isna(value) else f"{value:.{digits}g}"
        return str(value)

    rows = [[str(c) for c in frame.columns]] + [[cell(v) for v in row]
                                                for row in frame.itertuples(index=False)]
    lines = ["| " + " | ".join(row) + " |" for row in rows]
    lines.insert(1, "|" + "---|" * len(frame.columns))
    return "\n".join(lines)

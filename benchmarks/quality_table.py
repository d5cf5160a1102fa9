"""The README's quality table of the shipped models, from the reports of ``python -m cdae
evaluate``:

    for m in morphomnist_small pendulum_small; do
        python -m cdae evaluate data/pretrained/$m.pt --n 256 --steps 50 --json runs/eval/$m.json
    done
    python benchmarks/quality_table.py runs/eval/*.json

For each report: the oracle's reading of every variable under each intervention (MAE in natural
units, accuracy for a categorical variable; unmeasurable counterfactuals counted as failures),
with the floor (the oracle on real test images); L1 (0-255) to the true counterfactual beside
leaving the image unchanged; composition, reversibility and DCI. Prints markdown.

``--compare`` prints one table instead, a column per report (e.g. a model and its baselines, all
evaluated with the same settings) and a row per metric; a metric a report lacks is blank:

    python benchmarks/quality_table.py --compare runs/eval/morphomnist_small*.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd


def markdown(frame: pd.DataFrame, index: bool = True) -> str:
    """A DataFrame as a GitHub markdown table (no extra dependency)."""
    frame = frame.reset_index() if index else frame
    cells = [[str(c) for c in frame.columns]] + [[f"{v:.3g}" if isinstance(v, float) else str(v)
                                                  for v in row] for row in frame.to_numpy()]
    lines = ["| " + " | ".join(row) + " |" for row in cells]
    lines.insert(1, "|" + "---|" * len(frame.columns))
    return "\n".join(lines)


def read_report(path: Path) -> tuple[dict, dict[str, pd.DataFrame]]:
    payload = json.loads(path.read_text())
    tables = {name: pd.DataFrame(t["data"], columns=t["columns"])
              for name, t in payload["tables"].items()}
    return payload["meta"], tables


def effectiveness_markdown(tables: dict[str, pd.DataFrame]) -> str:
    effect = tables["effectiveness"]
    reader = "oracle" if (effect["measured_by"] == "oracle").any() else "predictor"
    effect = effect[effect["measured_by"] == reader]
    column = "value_all" if "value_all" in effect else "value"
    wide = effect.pivot_table(index="intervened", columns="variable", values=column)
    floor = effect.groupby("variable")["floor"].first()
    wide.loc["(floor: real images)"] = floor
    return f"read by the {reader}:\n\n" + markdown(wide.rename_axis("do(...)"))


def soundness_markdown(tables: dict[str, pd.DataFrame]) -> str:
    rows = []
    true = tables.get("true_error")
    if true is not None and len(true):
        for _, r in true[true["metric"] == "l1"].iterrows():
            rows.append((f"do({r['intervened']}): L1 to the true counterfactual",
                         f"{r['value']:.2f}", f"{r['identity']:.2f} if unchanged"))
    for _, r in tables["composition"][tables["composition"]["metric"] == "l1"].iterrows():
        rows.append((f"composition, L1 after {int(r['cycles'])} null interventions",
                     f"{r['value']:.2f}", "0 ideal"))
    rev = tables["reversibility"]
    for _, r in rev[rev["metric"] == "l1"].iterrows():
        rows.append((f"reversibility of do({r['intervened']}), L1", f"{r['value']:.2f}", "0 ideal"))
    dci = tables.get("dci")
    if dci is None:  # the label-conditional DDIM has no latents to score
        return markdown(pd.DataFrame(rows, columns=["", "value", "reference"]), index=False)
    block = dci[(dci["granularity"] == dci["granularity"].iloc[-1]) & (dci["item"] == "all")]
    scores = " / ".join(f"{block.loc[block['metric'] == m, 'value'].iloc[0]:.2f}"
                        for m in ("disentanglement", "completeness", "informativeness")
                        if (block["metric"] == m).any())
    rows.append((f"DCI of z ({block['granularity'].iloc[0]}: D / C / I)", scores, ""))
    frame = pd.DataFrame(rows, columns=["", "value", "reference"])
    return markdown(frame, index=False)


def metric_column(tables: dict[str, pd.DataFrame]) -> pd.Series:
    """Every headline number of one report, indexed by a readable metric name."""
    out: dict[str, float] = {}
    effect = tables.get("effectiveness")
    if effect is not None:  # the oracle's reading, the predictor's where the oracle has none
        column = "value_all" if "value_all" in effect else "value"
        by_oracle = set(effect.loc[effect["measured_by"] == "oracle", "variable"])
        keep = (effect["measured_by"] == "oracle") | ~effect["variable"].isin(by_oracle)
        for _, r in effect[keep].iterrows():
            out[f"do({r['intervened']}): {r['variable']} ({r['measured_by']})"] = r[column]
    true = tables.get("true_error")
    if true is not None:
        for _, r in true[true["metric"] == "l1"].iterrows():
            out[f"do({r['intervened']}): L1 to the true counterfactual"] = r["value"]
            out[f"do({r['intervened']}): L1 if unchanged"] = r["identity"]
    simple = (("composition", "l1", "composition, L1 after {cycles:.0f} null interventions"),
              ("reversibility", "l1", "reversibility of do({intervened}), L1"),
              ("realism", "fid", "FID ({images})"))
    for name, metric, label in simple:
        table = tables.get(name)
        if table is not None:
            for _, r in table[table["metric"] == metric].iterrows():
                out[label.format(**r)] = r["value"]
    dci = tables.get("dci")
    if dci is not None:
        block = dci[(dci["granularity"] == dci["granularity"].iloc[-1]) & (dci["item"] == "all")]
        for _, r in block.iterrows():
            out[f"DCI {r['metric']} ({r['granularity']})"] = r["value"]
    return pd.Series(out, dtype=float)


def comparison_markdown(reports: dict[str, dict[str, pd.DataFrame]]) -> str:
    """One column per report (keyed by name), one row per metric, in first-seen order."""
    frame = pd.concat({name: metric_column(tables) for name, tables in reports.items()}, axis=1)
    cells = frame.map(lambda v: "" if pd.isna(v) else f"{v:.3g}")
    return markdown(cells.rename_axis("metric"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reports", nargs="+", type=Path)
    parser.add_argument("--compare", action="store_true",
                        help="one table, a column per report")
    args = parser.parse_args()
    if args.compare:
        reports = {path.stem: read_report(path)[1] for path in args.reports}
        print(comparison_markdown(reports))
        return
    for path in args.reports:
        meta, tables = read_report(path)
        settings = {k: meta.get(k) for k in ("n", "steps", "protocol", "abduction") if k in meta}
        print(f"### {path.stem}  {settings}\n")
        print(effectiveness_markdown(tables), "\n")
        print(soundness_markdown(tables), "\n")


if __name__ == "__main__":
    main()

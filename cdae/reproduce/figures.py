"""The paper's figures, drawn from measurements: counterfactual grids, the weak-supervision
curves (every metric against the guidance weight) and the speed/quality curve.

Each function takes what was measured (a model and images, a sweep frame, a speed table) and
returns a matplotlib ``Figure``; :mod:`cdae.reproduce.run` measures and saves.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd
from torch import Tensor

from cdae.counterfactual import CounterfactualModel

#: The weak-supervision panels: title -> (table, intervened, variable, metric) of the sweep frame.
WEAK_PANELS: dict[str, tuple[str, str, str, str]] = {
    "do(intensity): intensity MAE": ("effectiveness", "intensity", "intensity", "mae"),
    "do(thickness): thickness MAE (px)": ("effectiveness", "thickness", "thickness", "mae"),
    "do(intensity): thickness moved (px)": ("effectiveness", "intensity", "thickness", "mae"),
    "do(intensity): L1 to the true counterfactual": ("true_error", "intensity", "image", "l1"),
    "composition: L1 after one null intervention": ("composition", "null x 1", "image", "l1"),
    "FID, all counterfactuals": ("realism", "all counterfactuals", "image", "fid"),
}


def paper_grid(cf_model: CounterfactualModel, x: Tensor,
               interventions: Mapping[str, Mapping[str, Any]], steps: int,
               reader: Any | None = None, title: str | None = None) -> Any:
    """Rows: the images of ``x`` (B, C, H, W) in [-1, 1]; columns: the input, then one
    counterfactual per named intervention (one abduction per image serves every column).
    Captions, one line per intervened variable and descendant: the value the counterfactual
    latents hold, then what ``reader`` (images -> DataFrame) measures on the image."""
    from cdae.plotting import captioned_grid

    graph = cf_model.graph
    abducted = cf_model.abduct(x, steps)
    cells: list[list[tuple[Any, str]]] = [[(image, "input")] for image in x]
    for do in interventions.values():
        result = cf_model.predict(abducted, do)
        measured = reader(result.images) if reader is not None else pd.DataFrame()
        touched = [n for n in graph.nodes if n in do or set(graph.ancestors(n)) & set(do)]
        for b, row in enumerate(cells):
            lines = []
            for name in touched:
                line = f"{name} {result.counterfactual[name].iloc[b]:.3g}"
                if name in measured.columns:
                    value = measured[name].iloc[b]
                    line += " / –" if pd.isna(value) else f" / {value:.3g}"
                lines.append(line)
            row.append((result.images[b], "\n".join(lines)))
    return captioned_grid(cells, [f"image {b}" for b in range(len(x))],
                          ["input", *interventions], title=title, cell_size=2.0)


def weak_curves(sweep: pd.DataFrame, panel: str, off_joint: str = "all") -> pd.DataFrame:
    """One panel of :data:`WEAK_PANELS` from a sweep frame with a ``model`` column: rows the
    guidance weights, columns the models (in the frame's order)."""
    table, intervened, variable, metric = WEAK_PANELS[panel]
    rows = sweep[(sweep["table"] == table) & (sweep["intervened"] == intervened)
                 & (sweep["variable"] == variable) & (sweep["metric"] == metric)
                 & (sweep["off_joint"] == off_joint)]
    if rows.empty:
        raise ValueError(f"the sweep has no rows for {panel!r} ({table}, do({intervened}), "
                         f"{variable}, {metric}, off_joint {off_joint!r})")
    return rows.pivot_table("value", "guidance", "model")[list(dict.fromkeys(rows["model"]))]


def weak_supervision_figure(sweep: pd.DataFrame, title: str) -> Any:
    """Every panel of :data:`WEAK_PANELS` against the guidance weight w, one line per model."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(13, 6.6))
    for ax, panel in zip(axes.flat, WEAK_PANELS, strict=True):
        curves = weak_curves(sweep, panel)
        for model in curves:
            ax.plot(curves.index, curves[model], marker="o", label=model)
        ax.axvline(1.0, color="0.6", lw=0.8, ls="--")
        ax.set(title=panel, xlabel="guidance weight w")
    axes.flat[0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def speed_quality_figure(table: pd.DataFrame, title: str) -> Any:
    """Seconds per counterfactual and the error against the truth against DDIM steps, from
    :func:`cdae.evaluate.speed_quality`'s table."""
    import matplotlib.pyplot as plt

    name = table["intervened"].iloc[0]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    panels = (("seconds_per_image", "seconds per counterfactual"),
              ("true_l1", "L1 to the true counterfactual (0-255)"),
              ("oracle_mae", f"do({name}): {name} MAE (oracle)"))
    for ax, (column, label) in zip(axes, panels, strict=True):
        ax.plot(table["steps"], table[column], marker="o")
        ax.set(xscale="log", xlabel="DDIM steps", title=label)
        ax.set_xticks(table["steps"], [str(s) for s in table["steps"]])
    fig.suptitle(title)
    fig.tight_layout()
    return fig

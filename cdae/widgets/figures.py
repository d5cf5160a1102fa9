"""Static figures of the widgets' interactions, for papers and for notebooks read without a
kernel: the explorer's current state, and a grid of several interventions on several images.

    >>> fig = intervention_grid(cf, x, {"do(t=1.5)": {"thickness": 1.5},
    ...                                 "do(i=240)": {"intensity": 240.0}}, reader=reader)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from torch import Tensor

from cdae.counterfactual import CounterfactualModel
from cdae.graph import CausalGraph
from cdae.plotting import captioned_grid, to_display
from cdae.widgets.readers import Reader
from cdae.widgets.render import format_value
from cdae.widgets.session import DEFAULT_STEPS, Update


def _caption(graph: CausalGraph, values: Any, names: list[str], digits: int = 4) -> str:
    def short(name: str) -> str:
        value = values[name]
        if graph.is_categorical(name) or value is None or np.isnan(value):
            return format_value(graph, name, value)
        return f"{value:.{digits}g}"

    return ", ".join(f"{name} {short(name)}" for name in names)


def explorer_figure(graph: CausalGraph, update: Update, reader_name: str = "reader") -> Any:
    """Factual, counterfactual, signed difference and the mutilated graph of one explorer
    :class:`~cdae.widgets.session.Update`, captioned with the asked-for and measured values."""
    import matplotlib.pyplot as plt

    if update is None:
        raise ValueError("the explorer has not made a counterfactual yet")
    fig, axes = plt.subplots(1, 4, figsize=(13, 3.4),
                             gridspec_kw={"width_ratios": [1, 1, 1, 1.6]})
    delta = (update.image - update.factual_image)[0].mean(dim=0).numpy()  # (H, W)
    panels = [(to_display(update.factual_image[0]), "gray", (0, 1), "factual"),
              (to_display(update.image[0]), "gray", (0, 1), "counterfactual"),
              (delta, "RdBu_r", (-1, 1), "difference (red: brighter)")]
    for ax, (image, cmap, (low, high), title) in zip(axes, panels, strict=False):
        ax.imshow(image, cmap=cmap, vmin=low, vmax=high)
        ax.set(xticks=[], yticks=[], title=title)
        ax.grid(False)
    names = graph.nodes
    axes[0].set_xlabel("model: " + _caption(graph, update.factual, names), fontsize=7)
    asked = "model: " + _caption(graph, update.counterfactual, names)
    if update.measured is not None:
        measurable = [n for n in names if n in update.measured]
        asked += f"\n{reader_name}: " + _caption(graph, update.measured, measurable)
    axes[1].set_xlabel(asked, fontsize=7)
    graph.draw(ax=axes[3], intervened=update.do,
               captions={n: format_value(graph, n, update.counterfactual[n]) for n in names})
    do = ", ".join(f"{n}={format_value(graph, n, v)}" for n, v in update.do.items()) or "nothing"
    fig.suptitle(f"image {update.index}: do({do})")
    fig.tight_layout()
    return fig


def intervention_grid(cf_model: CounterfactualModel, x: Tensor,
                      interventions: Mapping[str, Mapping[str, Any]],
                      steps: int = DEFAULT_STEPS, abduction: str = "inversion",
                      reader: Reader | None = None, row_labels: list[str] | None = None) -> Any:
    """A captioned grid: one row per image of ``x`` (B, C, H, W), the input and then one column
    per named intervention (``{"title": do}``). One abduction per image serves every column
    (:meth:`~cdae.counterfactual.CounterfactualModel.abduct`). Captions: the values the
    counterfactual latents encode for the intervened variables and their descendants, and,
    with a ``reader``, what it measures on the image. Returns the matplotlib ``Figure``."""
    graph = cf_model.graph
    if not interventions:
        raise ValueError("interventions is empty; give at least one {title: do} entry")
    abducted = cf_model.abduct(x, steps, abduction)
    columns = {title: cf_model.predict(abducted, do) for title, do in interventions.items()}
    measured = {title: reader(result.images) for title, result in columns.items()} if reader \
        else {}
    cells = []
    for b in range(len(x)):
        row = [(x[b], "input")]
        for title, result in columns.items():
            touched = [n for n in graph.nodes if n in result.do
                       or set(graph.ancestors(n)) & set(result.do)]
            text = _caption(graph, result.counterfactual.iloc[b], touched, digits=3)
            if title in measured:
                seen = [n for n in touched if n in measured[title].columns]
                if seen:
                    text += "\nmeasured " + _caption(graph, measured[title].iloc[b], seen, 3)
            row.append((result.images[b], text))
        cells.append(row)
    labels = row_labels or [f"image {b}" for b in range(len(x))]
    return captioned_grid(cells, labels, ["input", *interventions],
                          title=f"Interventions ({steps} DDIM steps, {abduction})",
                          cell_size=2.3)

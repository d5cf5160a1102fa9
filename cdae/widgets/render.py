"""Pictures for the widgets as PNG bytes: model images, signed difference maps, the
mutilated causal graph; and the HTML table of asked-for against measured values.

Images are drawn with numpy and Pillow, not matplotlib, so that a slider update spends its time
in the model; only the graph (redrawn when the set of intervened variables changes) uses
matplotlib.
"""

from __future__ import annotations

import html
import io
from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd
from PIL import Image
from torch import Tensor

from cdae.graph import CausalGraph
from cdae.plotting import to_display

#: Rendered images are scaled up (nearest neighbour) to about this many pixels wide.
DISPLAY_WIDTH = 168


def png_bytes(array: np.ndarray) -> bytes:
    """uint8 (H, W) or (H, W, 3|4) -> PNG bytes."""
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def _upscale(array: np.ndarray, width: int) -> np.ndarray:
    factor = max(1, width // array.shape[1])
    return array.repeat(factor, axis=0).repeat(factor, axis=1)


def image_png(image: Tensor, width: int = DISPLAY_WIDTH) -> bytes:
    """One model image (C, H, W) or (1, C, H, W) in [-1, 1] -> PNG, scaled up to ~``width``."""
    array = to_display(image[0] if image.ndim == 4 else image)  # (H, W[, C]) in [0, 1]
    return png_bytes(_upscale(np.rint(array * 255).astype(np.uint8), width))


def difference_png(after: Tensor, before: Tensor, width: int = DISPLAY_WIDTH,
                   scale: float = 1.0) -> bytes:
    """Signed difference ``after - before`` of two model images (averaged over channels) as a
    red (brighter) / blue (darker) map, white where equal; ``scale`` (model units, 1 = half the
    grey range) maps to full colour."""
    from matplotlib import colormaps

    delta = (after - before).detach().cpu().float().numpy().reshape(-1, *after.shape[-2:])
    signed = np.clip(delta.mean(axis=0) / (2 * scale) + 0.5, 0.0, 1.0)  # (H, W), 0.5 = equal
    rgba = colormaps["RdBu_r"](signed)  # (H, W, 4) in [0, 1]
    return png_bytes(_upscale(np.rint(rgba[..., :3] * 255).astype(np.uint8), width))


def graph_png(graph: CausalGraph, intervened: Iterable[str] = (), dpi: int = 80) -> bytes:
    """The causal graph with ``intervened`` nodes highlighted and their incoming edges cut."""
    import matplotlib.pyplot as plt

    fig = graph.draw(intervened=intervened).figure
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def format_value(graph: CausalGraph, name: str, value: float) -> str:
    """A variable's value as shown to a reader: class index or 4 significant digits."""
    if value is None or pd.isna(value):
        return "–"
    return str(int(round(value))) if graph.is_categorical(name) else f"{value:.4g}"


def values_table(graph: CausalGraph, factual: pd.Series, counterfactual: pd.Series,
                 intervened: Iterable[str], measured: pd.Series | None = None,
                 measured_factual: pd.Series | None = None, reader: str = "reader") -> str:
    """HTML table, one row per variable: factual, counterfactual (asked for or propagated) and,
    where a reader measured them, the values it reads off the factual and the counterfactual."""
    done = set(intervened)
    head = ["variable", "factual (model)", "counterfactual (asked / propagated)"]
    if measured is not None:
        head += [f"factual ({reader})", f"counterfactual ({reader})"]
    rows = []
    for name in graph.nodes:
        role = "do" if name in done else ("propagated" if set(graph.ancestors(name)) & done
                                          else "kept")
        cells = [name, format_value(graph, name, factual[name]),
                 f"{format_value(graph, name, counterfactual[name])} ({role})"]
        if measured is not None:
            cells += [format_value(graph, name, _get(measured_factual, name)),
                      format_value(graph, name, _get(measured, name))]
        rows.append("<tr>" + "".join(f"<td style='{_CELL}'>{html.escape(c)}</td>" for c in cells)
                    + "</tr>")
    header = "".join(f"<th style='{_CELL}'>{html.escape(c)}</th>" for c in head)
    return (f"<table class='cdae-values'><tr>{header}</tr>{''.join(rows)}</table>")


_CELL = "padding: 1px 12px 1px 0; text-align: left"


def _get(series: Mapping | None, name: str) -> float | None:
    return None if series is None or name not in series else series[name]

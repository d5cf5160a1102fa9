"""A latent-traversal widget: one block at a time, a strip of decoded images.

    >>> LatentTraversal(cf, test_set)        # pick an image, a variable, a range, how many

The chosen variable's block is set to evenly spaced values (every class for a categorical
variable) with :func:`cdae.latents.traverse`: with "propagate" ticked that is do(), so the
descendants follow their mechanisms; unticked it is a bare edit of the one block. Every value is
decoded in one batch from the image's cached DDIM inversion (``inversion_steps`` steps).
"""

from __future__ import annotations

import html
import time
from typing import Any

import ipywidgets as widgets
import numpy as np
import torch

from cdae.counterfactual import CounterfactualModel
from cdae.latents import Traversal, traverse
from cdae.widgets.render import DISPLAY_WIDTH, format_value, png_bytes
from cdae.widgets.session import DEFAULT_INVERSION_STEPS, DEFAULT_STEPS, ExplorerSession


def strip_png(images: torch.Tensor, height: int = DISPLAY_WIDTH // 2, gap: int = 2) -> bytes:
    """Images (V, C, H, W) in [-1, 1] side by side, scaled up to ~``height`` px, as PNG."""
    from cdae.plotting import to_display

    factor = max(1, height // images.shape[-2])
    tiles = [np.rint(to_display(image) * 255).astype(np.uint8)
             .repeat(factor, axis=0).repeat(factor, axis=1) for image in images]
    spacer = np.full((tiles[0].shape[0], gap, *tiles[0].shape[2:]), 255, dtype=np.uint8)
    joined = [part for tile in tiles for part in (tile, spacer)][:-1]
    return png_bytes(np.concatenate(joined, axis=1))


class LatentTraversal:
    """Traverse one latent block of one image; the widgets are public attributes
    (``image_index``, ``variable``, ``value_range``, ``count``, ``propagate``, ``steps``) and
    ``last`` holds the latest :class:`~cdae.latents.Traversal`."""

    def __init__(self, cf_model: CounterfactualModel, dataset: Any, steps: int = DEFAULT_STEPS,
                 index: int = 0, inversion_steps: int = DEFAULT_INVERSION_STEPS) -> None:
        if not cf_model.has_encoder:
            raise ValueError("a latent traversal needs a model with an encoder (causal_diffae or "
                             "diffae); the label-conditional baseline has no latent blocks")
        self.session = ExplorerSession(cf_model, dataset)
        self.inversion_steps = inversion_steps
        self.graph = self.session.graph
        self.last: Traversal | None = None
        self._setting = False  # True while the range is reset for a new variable
        self.image_index = widgets.IntSlider(value=index, min=0, max=len(dataset) - 1,
                                             description="image", continuous_update=False)
        self.variable = widgets.Dropdown(options=self.graph.nodes, description="block")
        self.value_range = widgets.FloatRangeSlider(description="values",
                                                    continuous_update=False,
                                                    readout_format=".3g")
        self.count = widgets.IntSlider(value=7, min=2, max=12, description="how many",
                                       continuous_update=False)
        self.propagate = widgets.Checkbox(value=True, description="propagate to descendants")
        self.steps = widgets.IntSlider(value=steps, min=2, max=100, description="DDIM steps",
                                       continuous_update=False)
        self.strip = widgets.Image(format="png")
        self.captions = widgets.HTML()
        self.status = widgets.HTML()
        self._set_range()
        self.variable.observe(self._variable_changed, names="value")
        for control in (self.image_index, self.value_range, self.count, self.propagate,
                        self.steps):
            control.observe(lambda _: self._refresh(), names="value")
        self.widget = widgets.VBox([
            widgets.HBox([self.image_index, self.variable]),
            widgets.HBox([self.value_range, self.count]),
            widgets.HBox([self.propagate, self.steps]), self.strip, self.captions, self.status])
        self._refresh()

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

    def values(self) -> np.ndarray:
        """The values traversed now: every class, or ``count`` evenly spaced in the range."""
        name = self.variable.value
        if self.graph.is_categorical(name):
            return np.arange(self.graph.categorical[name], dtype=np.float64)
        low, high = self.value_range.value
        return np.linspace(low, high, self.count.value)

    def _set_range(self) -> None:
        name = self.variable.value
        categorical = self.graph.is_categorical(name)
        self.value_range.layout.display = "none" if categorical else None
        self.count.layout.display = "none" if categorical else None
        if not categorical:
            low, high = self.session.ranges[name]
            self.value_range.min, self.value_range.max = -np.inf, np.inf  # avoid clamping
            self.value_range.max, self.value_range.min = high, low
            self.value_range.step = (high - low) / 100
            self.value_range.value = (low, high)

    def _variable_changed(self, _: Any) -> None:
        self._setting = True
        try:
            self._set_range()
        finally:
            self._setting = False
        self._refresh()

    def _refresh(self) -> None:
        if self._setting:
            return
        started = time.perf_counter()
        index, name, values = self.image_index.value, self.variable.value, self.values()
        abducted, cached = self.session.abduct(index, self.inversion_steps, "inversion")
        with torch.inference_mode():
            walk = traverse(self.session.cf, self.session.image(index), name, values,
                            steps=self.steps.value, propagate=self.propagate.value,
                            x_T=abducted.x_T)
        self.last = walk
        self.strip.value = strip_png(walk.images[0])
        head = "".join(f"<th>{html.escape(name)} = {format_value(self.graph, name, v)}</th>"
                       for v in values)
        rows = "".join(
            f"<tr><td>{html.escape(other)}</td>" + "".join(
                f"<td>{format_value(self.graph, other, v)}</td>" for v in walk.labels[other])
            + "</tr>" for other in self.graph.nodes if other != name)
        self.captions.value = (f"<table><tr><th>values the latents encode</th>{head}</tr>"
                               f"{rows}</table>")
        self.status.value = (f"{len(values)} images in {time.perf_counter() - started:.2f} s "
                             f"(inversion {'cached' if cached else 'computed'}, "
                             f"{self.steps.value} DDIM steps)")

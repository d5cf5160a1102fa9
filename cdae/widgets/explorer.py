"""The interactive counterfactual explorer (ipywidgets 8).

    >>> explorer = CounterfactualExplorer(cf, test_set, reader=default_reader("morphomnist"))
    >>> explorer                      # the last expression of a notebook cell shows it
    >>> explorer.rows["thickness"].set(4.0)   # what ticking "do" and moving the slider does

Pick an image (index slider, "random", a filter by class or label range), tick "do" on any
variables and move their sliders: the counterfactual is made on slider release, with the
abduction cached per image, and every non-intervened variable shows the value its mechanism
propagates. The causal graph is drawn mutilated (intervened nodes highlighted, the edges into
them cut); the images are factual, counterfactual and their signed difference; the table sets
the asked-for values beside what the reader measures on the counterfactual.
"""

from __future__ import annotations

import html
import time
from typing import Any

import ipywidgets as widgets
import numpy as np

from cdae.counterfactual import ABDUCTIONS, CounterfactualModel
from cdae.widgets.controls import VariableRow
from cdae.widgets.readers import Reader
from cdae.widgets.render import difference_png, graph_png, image_png, values_table
from cdae.widgets.session import (
    DEFAULT_INVERSION_STEPS,
    DEFAULT_STEPS,
    ExplorerSession,
    Update,
    check_steps,
)

STEP_CHOICES = (2, 5, 10, 15, 20, 25, 30, 50, 100, 250)
ALL = "(all images)"


class CounterfactualExplorer:
    """Interactive counterfactuals of one image at a time; see the module docstring.

    Args:
        cf_model: the :class:`~cdae.counterfactual.CounterfactualModel`.
        dataset: a ``CausalImageDataset`` over the model's variables (its normaliser).
        reader: measures the counterfactual (e.g. :func:`~cdae.widgets.default_reader`).
        steps, inversion_steps: initial DDIM steps of the decoding and of the (cached)
            inversion; index: initial image; seed: of the "random" button.
    """

    def __init__(self, cf_model: CounterfactualModel, dataset: Any, reader: Reader | None = None,
                 steps: int = DEFAULT_STEPS, inversion_steps: int = DEFAULT_INVERSION_STEPS,
                 index: int = 0, seed: int = 0) -> None:
        check_steps(steps, "steps")
        check_steps(inversion_steps, "inversion_steps")
        self.session = ExplorerSession(cf_model, dataset, reader)
        self.graph = self.session.graph
        self.last: Update | None = None
        self._rng = np.random.default_rng(seed)
        self._graph_pngs: dict[frozenset[str], bytes] = {}
        self._candidates = self.session.matching()
        self._busy = False

        # image choice
        self.filter_variable = widgets.Dropdown(options=[ALL, *self.graph.nodes],
                                                description="filter", layout=_width(230))
        self.filter_class = widgets.Dropdown(layout=_width(140))
        self.filter_range = widgets.FloatRangeSlider(continuous_update=False,
                                                     readout_format=".3g", layout=_width(320))
        self.image_index = widgets.IntSlider(value=0, min=0, max=len(self._candidates) - 1,
                                             description="image", continuous_update=False,
                                             layout=_width(380))
        self.random_button = widgets.Button(description="random", icon="random",
                                            layout=_width(100))
        self.image_label = widgets.HTML()
        # controls
        self.steps = widgets.Dropdown(options=sorted({*STEP_CHOICES, steps}), value=steps,
                                      description="DDIM steps", layout=_width(200))
        self.inversion_steps = widgets.Dropdown(
            options=sorted({*STEP_CHOICES, inversion_steps}), value=inversion_steps,
            description="inversion steps", style={"description_width": "initial"},
            layout=_width(200))
        self.abduction = widgets.ToggleButtons(options=list(ABDUCTIONS), value="inversion",
                                               description="abduction")
        self.guidance = widgets.FloatSlider(value=1.0, min=0.0, max=3.0, step=0.25,
                                            description="guidance w", continuous_update=False)
        # variables and outputs
        self.rows = {name: VariableRow(self.session, name, self._refresh)
                     for name in self.graph.nodes}
        self.factual_image, self.counterfactual_image, self.difference_image = (
            widgets.Image(format="png") for _ in range(3))
        self.graph_image = widgets.Image(format="png")
        self.table = widgets.HTML()
        self.status = widgets.HTML()

        self._show_filter()
        self.session.image(index)  # refuses an index outside the dataset
        self.image_index.value = int(index)  # every image is a candidate before any filter
        self.filter_variable.observe(self._filter_changed, names="value")
        for control in (self.filter_class, self.filter_range):
            control.observe(self._filter_changed, names="value")
        self.random_button.on_click(self._random)
        for control in (self.image_index, self.steps, self.inversion_steps, self.abduction,
                        self.guidance):
            control.observe(lambda _: self._refresh(), names="value")
        self.widget = self._layout()
        self.widget.add_class("cdae-explorer")
        self.counterfactual_image.add_class("cdae-counterfactual")
        for name, row in self.rows.items():
            row.widget.add_class(f"cdae-row-{name}")
        self._refresh()

    @classmethod
    def from_pretrained(cls, name: str, data_root: Any = None, **kwargs: Any,
                        ) -> CounterfactualExplorer:
        """The explorer of shipped checkpoint ``name`` on the test split of the dataset it was
        trained on (read from ``data_root``, default the dataset's cache, with the options
        recorded in the manifest), measured by that dataset's oracle or predictors."""
        from cdae.data.datasets import build_dataset
        from cdae.pretrained import load_pretrained, read_manifest
        from cdae.widgets.readers import default_reader

        cf_model = load_pretrained(name)
        entry = read_manifest()[name if name.endswith(".pt") else f"{name}.pt"]["dataset"]
        test = build_dataset(entry["name"], "test", root=data_root,
                             normalizer=cf_model.normalizer, **entry.get("options", {}))
        return cls(cf_model, test, default_reader(entry["name"], data_root), **kwargs)

    # ------------------------------------------------------------------ public
    @property
    def index(self) -> int:
        """The dataset position of the image shown."""
        return int(self._candidates[self.image_index.value])

    @property
    def do(self) -> dict[str, float]:
        """The current intervention, natural units."""
        return {name: row.value for name, row in self.rows.items() if row.intervened}

    def figure(self) -> Any:
        """The current state as a static matplotlib figure (for notebooks without widgets)."""
        from cdae.widgets.figures import explorer_figure

        return explorer_figure(self.graph, self.last, self._reader_name)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

    # ------------------------------------------------------------------ image choice
    def _show_filter(self) -> None:
        name = self.filter_variable.value
        self.filter_class.layout.display = "none"
        self.filter_range.layout.display = "none"
        if name == ALL:
            return
        if self.graph.is_categorical(name):
            self.filter_class.options = list(range(self.graph.categorical[name]))
            self.filter_class.value = 0
            self.filter_class.layout.display = None
        else:
            low, high = self.session.ranges[name]
            self.filter_range.min, self.filter_range.max = -np.inf, np.inf  # avoid clamping
            self.filter_range.max, self.filter_range.min = high, low
            self.filter_range.step = (high - low) / 100
            self.filter_range.value = (low, high)
            self.filter_range.layout.display = None

    def _filter_changed(self, change: dict) -> None:
        if self._busy:
            return
        self._busy = True
        try:
            if change["owner"] is self.filter_variable:
                self._show_filter()
            name = self.filter_variable.value
            selection = (None if name == ALL else self.filter_class.value
                         if self.graph.is_categorical(name) else self.filter_range.value)
            try:
                found = self.session.matching(None if name == ALL else name, selection)
            except ValueError as exc:
                self._say(str(exc), error=True)
                return
            current = self.index
            self._candidates = found
            self.image_index.max = len(found) - 1
            self.image_index.value = int(np.argmin(np.abs(found - current)))
        finally:
            self._busy = False
        self._refresh()

    def _random(self, _: Any = None) -> None:
        self.image_index.value = int(self._rng.integers(len(self._candidates)))

    # ------------------------------------------------------------------ update
    @property
    def _reader_name(self) -> str:
        return self.session.reader.name if self.session.reader is not None else "reader"

    def _refresh(self) -> None:
        """Make the counterfactual of the current state and redraw everything."""
        if self._busy:
            return
        started = time.perf_counter()
        try:
            update = self.session.update(self.index, self.do, self.steps.value,
                                         self.abduction.value, self.guidance.value,
                                         self.inversion_steps.value)
        except ValueError as exc:
            self._say(f"refused: {exc}", error=True)
            return
        self.last = update
        intervened = set(update.do)
        for name, row in self.rows.items():
            ancestors = set(self.graph.ancestors(name))
            role = ("do" if name in intervened else
                    "propagated" if ancestors & intervened else "factual")
            row.show(float(update.counterfactual[name]), role)
        self.factual_image.value = image_png(update.factual_image)
        self.counterfactual_image.value = image_png(update.image)
        self.difference_image.value = difference_png(update.image, update.factual_image)
        key = frozenset(intervened)
        if key not in self._graph_pngs:
            self._graph_pngs[key] = graph_png(self.graph, key)
        self.graph_image.value = self._graph_pngs[key]
        self.table.value = values_table(self.graph, update.factual, update.counterfactual,
                                        intervened, update.measured, update.measured_factual,
                                        self._reader_name)
        labels = self.session.dataset.labels_natural.iloc[update.index]
        self.image_label.value = (f"dataset index {update.index} ({len(self._candidates)} "
                                  "match) · true labels: " + ", ".join(
                                      f"{n} {_short(labels[n])}" for n in self.graph.nodes))
        s = update.seconds
        abduction = "cached" if update.abduction_cached else f"{s['abduction']:.2f} s"
        timing = (f"update {time.perf_counter() - started:.2f} s: abduction {abduction}, "
                  f"decode {s['decode']:.2f} s, measure {s['measure']:.2f} s "
                  f"({self.steps.value} DDIM steps"
                  + (f", inversion {self.inversion_steps.value})"
                     if self.abduction.value == "inversion" else ")"))
        self._say(timing + "".join(f"<br>⚠ {html.escape(n)}" for n in update.notes),
                  escape=False)

    def _say(self, text: str, error: bool = False, escape: bool = True) -> None:
        body = html.escape(text) if escape else text
        colour = "#cc0000" if error else "#555555"
        self.status.value = f"<span style='color:{colour}'>{body}</span>"

    # ------------------------------------------------------------------ layout
    def _layout(self) -> widgets.Widget:
        def captioned(title: str, image: widgets.Image) -> widgets.VBox:
            return widgets.VBox([widgets.HTML(f"<b>{title}</b>"), image],
                                layout=widgets.Layout(margin="0 14px 0 0"))

        pictures = widgets.HBox([
            captioned("factual", self.factual_image),
            captioned("counterfactual", self.counterfactual_image),
            captioned("difference (red: brighter)", self.difference_image),
            captioned("causal graph of the do()", self.graph_image)])
        return widgets.VBox([
            widgets.HBox([self.filter_variable, self.filter_class, self.filter_range]),
            widgets.HBox([self.image_index, self.random_button, self.image_label]),
            widgets.HTML("<b>variables</b> (tick <i>do</i> to intervene; the others follow "
                         "their mechanisms)"),
            *(row.widget for row in self.rows.values()),
            widgets.HBox([self.steps, self.inversion_steps, self.guidance]), self.abduction,
            pictures, self.table, self.status,
        ], layout=widgets.Layout(border="1px solid #ddd", padding="6px"))


def _width(pixels: int) -> widgets.Layout:
    return widgets.Layout(width=f"{pixels}px")


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)

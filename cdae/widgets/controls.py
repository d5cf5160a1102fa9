"""One row of widgets per causal variable: intervene or not, and the value.

A :class:`VariableRow` has an "intervene" checkbox, a slider in natural units over the training
range (a dropdown of classes for a categorical variable), a text box to type an exact value, and
a readout. While the box is unticked the slider is disabled and follows the value the model
gives the variable (factual, or propagated by its mechanism from an intervened ancestor).
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import ipywidgets as widgets

from cdae.widgets.render import format_value
from cdae.widgets.session import ExplorerSession

SLIDER_STEPS = 200  # a continuous slider moves in 1/200 of its range


class VariableRow:
    """The widgets of variable ``name``; ``on_change()`` is called once per user change
    (tick, slider release, accepted text), never while the row is being redrawn."""

    def __init__(self, session: ExplorerSession, name: str, on_change: Callable[[], None]) -> None:
        self.session, self.name, self._on_change = session, name, on_change
        self._quiet_depth = 0
        self.shown = float("nan")  # the value last drawn by show()
        graph = session.graph
        self.intervene = widgets.Checkbox(value=False, description="do", indent=False,
                                          layout=widgets.Layout(width="52px"))
        if graph.is_categorical(name):
            self.control = widgets.Dropdown(
                options=[(str(k), k) for k in range(graph.categorical[name])],
                layout=widgets.Layout(width="300px"))
        else:
            low, high = session.ranges[name]
            self.control = widgets.FloatSlider(
                value=low, min=low, max=high, step=(high - low) / SLIDER_STEPS,
                continuous_update=False, readout_format=".3g",
                layout=widgets.Layout(width="300px"))
        self.control.disabled = True
        self.text = widgets.Text(placeholder="type a value", continuous_update=False,
                                 layout=widgets.Layout(width="110px"))
        self.readout = widgets.HTML(layout=widgets.Layout(width="240px"))
        self.message = widgets.HTML()
        label = widgets.HTML(f"<b>{html.escape(name)}</b>", layout=widgets.Layout(width="130px"))
        self.widget = widgets.HBox([label, self.intervene, self.control, self.text, self.readout,
                                    self.message])
        self.intervene.observe(self._ticked, names="value")
        self.control.observe(self._moved, names="value")
        self.text.observe(self._typed, names="value")

    # ------------------------------------------------------------------ state
    @property
    def intervened(self) -> bool:
        return bool(self.intervene.value)

    @property
    def value(self) -> float:
        """The value on the slider (or dropdown), natural units."""
        return float(self.control.value)

    def set(self, value: float, intervene: bool = True) -> None:
        """Set the value (and the checkbox) as a user would, with one ``on_change``; a value
        the user could not enter raises ``ValueError`` (see ``ExplorerSession.check_value``)."""
        value = self.session.check_value(self.name, value)
        with self._quiet():
            self.intervene.value = intervene
            self.control.disabled = not intervene
            self.control.value = self._control_value(value)
        self._on_change()

    def show(self, value: float, role: str) -> None:
        """Redraw the row for the model's current ``value`` of the variable; ``role`` is "do",
        "propagated" or "factual". The slider follows only while not intervened."""
        shown = format_value(self.session.graph, self.name, value)
        with self._quiet():
            if not self.intervened:
                self.control.value = self._control_value(value)
        colour = {"do": "#cc4125", "propagated": "#1155cc"}.get(role, "#444444")
        self.readout.value = f"<span style='color:{colour}'>{role}: <b>{shown}</b></span>"
        self.shown = value

    def refuse(self, message: str) -> None:
        self.message.value = f"<span style='color:#cc0000'>{html.escape(message)}</span>"

    # ------------------------------------------------------------------ events
    @contextmanager
    def _quiet(self) -> Iterator[None]:
        self._quiet_depth += 1
        try:
            yield
        finally:
            self._quiet_depth -= 1

    def _control_value(self, value: float) -> float | int:
        if self.session.graph.is_categorical(self.name):
            return int(round(value))
        return min(max(float(value), self.control.min), self.control.max)

    def _ticked(self, change: dict) -> None:
        self.control.disabled = not change["new"]
        if not self._quiet_depth:
            self.message.value = ""
            self._on_change()

    def _moved(self, change: dict) -> None:
        if not self._quiet_depth and self.intervened:
            self.message.value = ""
            self._on_change()

    def _typed(self, change: dict) -> None:
        if self._quiet_depth or not str(change["new"]).strip():
            return
        try:
            value = self.session.check_value(self.name, change["new"])
        except ValueError as exc:
            self.refuse(f"refused: {exc}")
            return
        self.message.value = ""
        with self._quiet():
            self.text.value = ""  # the slider shows the value from now on
        self.set(value)

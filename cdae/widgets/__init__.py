"""Interactive counterfactuals in Jupyter (ipywidgets 8), and static figures of the same.

* :class:`CounterfactualExplorer`: pick an image, intervene on any variables with sliders,
  see the counterfactual, the difference, the mutilated graph and the measured values;
* :class:`LatentTraversal`: one latent block at a time, as a strip of images;
* :func:`intervention_grid`, :func:`explorer_figure`: the same as static figures;
* :class:`ExplorerSession`: the widget-free state and computation behind them (cached
  abductions, timed updates); :func:`default_reader`: the dataset's oracle, else its predictors.

Nothing here knows a dataset: variables, ranges and classes come from the model's graph and
normaliser and from the dataset's labels.
"""

from cdae.widgets.explorer import CounterfactualExplorer
from cdae.widgets.figures import explorer_figure, intervention_grid
from cdae.widgets.readers import Reader, default_reader, oracle_reader, predictor_reader
from cdae.widgets.session import DEFAULT_STEPS, ExplorerSession, Update
from cdae.widgets.traversal import LatentTraversal

__all__ = [
    "DEFAULT_STEPS",
    "CounterfactualExplorer",
    "ExplorerSession",
    "LatentTraversal",
    "Reader",
    "Update",
    "default_reader",
    "explorer_figure",
    "intervention_grid",
    "oracle_reader",
    "predictor_reader",
]

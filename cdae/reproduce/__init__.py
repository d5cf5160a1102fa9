"""The paper's figures and tables, regenerated from the shipped models.

    python -m cdae figures            # full size, under 15 minutes on a 2-core CPU
    python -m cdae figures --smoke    # every loop small (CI)

:func:`reproduce` runs every step and writes to :func:`cdae.paths.figures_dir`; notebook 12 runs
the same steps one at a time (:func:`compare_models`, :func:`counterfactual_grid`,
:func:`weak_supervision_sweep`, :func:`speed_curve`) with their sizes in
:class:`ReproductionSettings`.
"""

from cdae.reproduce.run import (
    Comparison,
    compare_models,
    counterfactual_grid,
    off_joint_table,
    reproduce,
    speed_curve,
    weak_supervision_sweep,
    weak_supervision_table,
)
from cdae.reproduce.settings import (
    COMPARISONS,
    GRID_INTERVENTIONS,
    WEAK_SUPERVISION,
    ReproductionSettings,
)
from cdae.reproduce.tables import comparison_table, to_markdown

__all__ = [
    "COMPARISONS",
    "GRID_INTERVENTIONS",
    "WEAK_SUPERVISION",
    "Comparison",
    "ReproductionSettings",
    "compare_models",
    "comparison_table",
    "counterfactual_grid",
    "off_joint_table",
    "reproduce",
    "speed_curve",
    "to_markdown",
    "weak_supervision_sweep",
    "weak_supervision_table",
]

"""Evaluation: DCI, realism (FID/KID), anti-causal predictors and counterfactual metrics.

One function per metric, each with its formula in its docstring:

* :func:`dci` (disentanglement, completeness, informativeness of a code);
* :func:`fid`, :func:`kid` in the feature space of a :class:`FeatureNet` trained here;
* :func:`train_predictor` -> :class:`AntiCausalPredictor` (reads the variables from images);
* :func:`counterfactual_error`, :func:`effectiveness_table`, :func:`composition`,
  :func:`reversibility`.
"""

from cdae.evaluate.dci import DCIResult, dci
from cdae.evaluate.metrics import (
    composition,
    counterfactual_error,
    effectiveness_table,
    format_table,
    reversibility,
)
from cdae.evaluate.predictors import AntiCausalPredictor, TrunkConfig, train_predictor
from cdae.evaluate.realism import KID, FeatureNet, fid, kid, realism_table, train_feature_net

__all__ = [
    "KID",
    "TrunkConfig",
    "AntiCausalPredictor",
    "DCIResult",
    "FeatureNet",
    "composition",
    "counterfactual_error",
    "dci",
    "effectiveness_table",
    "fid",
    "format_table",
    "kid",
    "realism_table",
    "reversibility",
    "train_feature_net",
    "train_predictor",
]

"""Evaluation: DCI, realism (FID/KID), anti-causal predictors and counterfactual metrics.

One function per metric, each with its formula in its docstring:

* :func:`dci` (disentanglement, completeness, informativeness of a code);
* :func:`fid`, :func:`kid` in the feature space of a :class:`FeatureNet` trained here;
* :func:`train_predictor` -> :class:`AntiCausalPredictor` (reads the variables from images);
* :func:`counterfactual_error`, :func:`effectiveness_table`, :func:`composition`,
  :func:`reversibility`;
* :class:`LabelSCM`: counterfactual label targets from an additive-noise SCM fitted to the
  labels, for data without an oracle (your own images).

And the whole pipeline: :func:`evaluate_model` -> :class:`EvaluationReport` (all of the above on
a trained model's test set, with intervention protocols and dataset oracles, set by an
:class:`EvaluationConfig`),
:func:`speed_quality` (seconds and quality versus DDIM steps), :func:`guidance_sweep` and
:func:`sweep_frame` (every metric against the guidance weight) and
:func:`load_or_train_evaluators` (the cached predictor and feature net that score them).
"""

from cdae.evaluate.dci import DCIResult, dci
from cdae.evaluate.evaluators import load_or_train_evaluators
from cdae.evaluate.label_scm import LabelSCM
from cdae.evaluate.metrics import (
    composition,
    counterfactual_error,
    effectiveness_table,
    format_table,
    reversibility,
)
from cdae.evaluate.oracles import Oracle, oracle_for, register_oracle
from cdae.evaluate.predictors import AntiCausalPredictor, TrunkConfig, train_predictor
from cdae.evaluate.realism import KID, FeatureNet, fid, kid, realism_table, train_feature_net
from cdae.evaluate.report import EvaluationReport, evaluate_model, speed_quality
from cdae.evaluate.sweeps import guidance_sweep, sweep_frame
from cdae.evaluate.tables import EvaluationConfig

__all__ = [
    "KID",
    "TrunkConfig",
    "AntiCausalPredictor",
    "DCIResult",
    "EvaluationConfig",
    "EvaluationReport",
    "FeatureNet",
    "LabelSCM",
    "Oracle",
    "composition",
    "counterfactual_error",
    "dci",
    "effectiveness_table",
    "evaluate_model",
    "fid",
    "format_table",
    "guidance_sweep",
    "kid",
    "load_or_train_evaluators",
    "oracle_for",
    "realism_table",
    "register_oracle",
    "reversibility",
    "speed_quality",
    "sweep_frame",
    "train_feature_net",
    "train_predictor",
]

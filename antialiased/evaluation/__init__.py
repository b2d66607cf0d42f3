"""Evaluation with the paper's protocols (accuracy, shift consistency, diagonal stability, ensembles) and the
field's other shift-invariance protocols (circular, sub-pixel and adversarial shifts, per-layer equivariance).

One loop (:func:`run_protocols`) runs a model over a loader; each protocol is a :class:`Scorer`
that only says how it scores a batch, so several protocols share one decode of every image, and one
:class:`Protocol` registration (:data:`PROTOCOLS`) that gives its flag, lines, result fields and report
figures. What depends on the kind of model is a :class:`Task` (classification, segmentation: :data:`TASKS`).
:func:`evaluate` runs a whole :class:`EvalConfig` (data folder, model or model object, protocols, result files).
"""
from antialiased.evaluation.accuracy import AccuracyScorer, evaluate_accuracy
from antialiased.evaluation.adversarial import AdversarialScorer, adversarial_accuracy
from antialiased.evaluation.audit import AuditConfig, AuditResult, run_audit
from antialiased.evaluation.bootstrap import Interval, bootstrap_interval
from antialiased.evaluation.circular import CircularConsistencyScorer, circular_consistency
from antialiased.evaluation.config import (DataSettings, EnsembleOptions, EvalConfig, ModelSource, RunSettings,
                                           ShiftOptions)
from antialiased.evaluation.diagonal import DiagonalScorer, diagonal_stability, plot_diagonal, save_diagonal_arrays
from antialiased.evaluation.distance import ShiftDistanceScorer, consistency_by_distance
from antialiased.evaluation.equivariance import EquivarianceScorer, layer_equivariance
from antialiased.evaluation.feature_maps import FeatureMap, find_feature_maps
from antialiased.evaluation.fractional import FractionalConsistencyScorer, fractional_consistency
from antialiased.evaluation.invariance import InvarianceOptions
from antialiased.evaluation.ensemble import EnsembleScorer, ensemble_accuracy
from antialiased.evaluation.loop import EvalBatch, Forward, LoopOptions, LoopResult, Scorer, run_protocols
from antialiased.evaluation.protocols import PROTOCOLS, Figure, Flag, Protocol, ProtocolContext, ProtocolReport
from antialiased.evaluation.results import make_result, write_result
from antialiased.evaluation.runner import EvalReport, ProtocolRun, evaluate
from antialiased.evaluation.segmentation import SegmentationTask, confusion_matrix, segmentation_scores
from antialiased.evaluation.segmentation_settings import SegmentationOptions
from antialiased.evaluation.task import Task
from antialiased.evaluation.tasks import TASKS, get_task
from antialiased.evaluation.shift import ShiftConsistencyScorer, crop_pairs, shift_consistency
from antialiased.evaluation.shifts import fourier_shift, roll_images

__all__ = [
    "AccuracyScorer",
    "AdversarialScorer",
    "AuditConfig",
    "AuditResult",
    "CircularConsistencyScorer",
    "DataSettings",
    "DiagonalScorer",
    "EnsembleOptions",
    "EnsembleScorer",
    "EquivarianceScorer",
    "EvalBatch",
    "EvalConfig",
    "EvalReport",
    "Figure",
    "Flag",
    "FeatureMap",
    "Forward",
    "FractionalConsistencyScorer",
    "Interval",
    "InvarianceOptions",
    "LoopOptions",
    "LoopResult",
    "ModelSource",
    "PROTOCOLS",
    "Protocol",
    "ProtocolContext",
    "ProtocolReport",
    "ProtocolRun",
    "RunSettings",
    "Scorer",
    "SegmentationOptions",
    "SegmentationTask",
    "ShiftConsistencyScorer",
    "ShiftDistanceScorer",
    "ShiftOptions",
    "TASKS",
    "Task",
    "adversarial_accuracy",
    "bootstrap_interval",
    "circular_consistency",
    "confusion_matrix",
    "consistency_by_distance",
    "crop_pairs",
    "diagonal_stability",
    "ensemble_accuracy",
    "evaluate",
    "evaluate_accuracy",
    "find_feature_maps",
    "fourier_shift",
    "fractional_consistency",
    "get_task",
    "layer_equivariance",
    "make_result",
    "plot_diagonal",
    "roll_images",
    "run_audit",
    "run_protocols",
    "save_diagonal_arrays",
    "segmentation_scores",
    "shift_consistency",
    "write_result",
]

"""Evaluation with the paper's protocols: accuracy, shift consistency, diagonal stability, ensembles.

One loop (:func:`run_protocols`) runs a model over a loader; each protocol is a :class:`Scorer`
that only says how it scores a batch, so several protocols share one decode of every image.
:func:`evaluate` runs a whole :class:`EvalConfig` (data folder, model, protocols, result files).
"""
from antialiased.evaluation.accuracy import AccuracyScorer, evaluate_accuracy
from antialiased.evaluation.config import (DataSettings, EnsembleOptions, EvalConfig, ModelSource, RunSettings,
                                           ShiftOptions)
from antialiased.evaluation.diagonal import DiagonalScorer, diagonal_stability, plot_diagonal, save_diagonal_arrays
from antialiased.evaluation.ensemble import EnsembleScorer, ensemble_accuracy
from antialiased.evaluation.loop import EvalBatch, Forward, LoopOptions, LoopResult, Scorer, run_protocols
from antialiased.evaluation.protocols import PROTOCOLS, ProtocolContext, ProtocolEntry, ProtocolReport
from antialiased.evaluation.results import make_result, write_result
from antialiased.evaluation.runner import EvalReport, ProtocolRun, evaluate
from antialiased.evaluation.shift import ShiftConsistencyScorer, crop_pairs, shift_consistency

__all__ = [
    "AccuracyScorer",
    "DataSettings",
    "DiagonalScorer",
    "EnsembleOptions",
    "EnsembleScorer",
    "EvalBatch",
    "EvalConfig",
    "EvalReport",
    "Forward",
    "LoopOptions",
    "LoopResult",
    "ModelSource",
    "PROTOCOLS",
    "ProtocolContext",
    "ProtocolEntry",
    "ProtocolReport",
    "ProtocolRun",
    "RunSettings",
    "Scorer",
    "ShiftConsistencyScorer",
    "ShiftOptions",
    "crop_pairs",
    "diagonal_stability",
    "ensemble_accuracy",
    "evaluate",
    "evaluate_accuracy",
    "make_result",
    "plot_diagonal",
    "run_protocols",
    "save_diagonal_arrays",
    "shift_consistency",
    "write_result",
]

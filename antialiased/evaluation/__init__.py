"""Evaluation with the paper's protocols: accuracy, shift consistency, diagonal stability, ensembles."""
from antialiased.evaluation.accuracy import evaluate_accuracy
from antialiased.evaluation.diagonal import diagonal_stability, plot_diagonal, save_diagonal_arrays
from antialiased.evaluation.ensemble import ensemble_accuracy
from antialiased.evaluation.results import make_result, write_result
from antialiased.evaluation.shift import crop_pairs, shift_consistency

__all__ = [
    "crop_pairs",
    "diagonal_stability",
    "ensemble_accuracy",
    "evaluate_accuracy",
    "make_result",
    "plot_diagonal",
    "save_diagonal_arrays",
    "shift_consistency",
    "write_result",
]

"""The shift-invariance audit: a chosen set of protocols on one or more models, ready for a report.

Each model runs every chosen protocol in one evaluation (:func:`~antialiased.evaluation.evaluate`:
one decode of each image serves all protocols); the audit keeps each model's result records and
per-unit outcomes, from which :mod:`antialiased.reporting.audit` writes ``report.md``,
``report.json`` and the plots.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from antialiased.errors import ConfigError, MissingFileError
from antialiased.evaluation.bootstrap import bootstrap_columns
from antialiased.evaluation.config import DataSettings, EvalConfig, ModelSource, RunSettings, ShiftOptions
from antialiased.evaluation.invariance import InvarianceOptions
from antialiased.evaluation.runner import EvalReport, check_models_fit_data, evaluate
from antialiased.models import get_model_spec

__all__ = ["AUDIT_PROTOCOLS", "PROTOCOL_ALIASES", "AuditConfig", "ModelAudit", "AuditResult", "resolve_protocols",
           "run_audit", "diagonal_curve"]

# every protocol of the audit, in report order (the default: all of them)
AUDIT_PROTOCOLS: tuple[str, ...] = ("accuracy", "shift_consistency", "diagonal", "circular_consistency",
                                    "fractional_consistency", "adversarial", "equivariance", "shift_distance")
# the evaluation flags' names (and short names) for them
PROTOCOL_ALIASES: dict[str, str] = {"e": "accuracy", "es": "shift_consistency", "shift": "shift_consistency",
                                    "ed": "diagonal", "ec": "circular_consistency", "circular": "circular_consistency",
                                    "ef": "fractional_consistency", "fractional": "fractional_consistency",
                                    "ea": "adversarial", "eq": "equivariance", "distance": "shift_distance"}


def resolve_protocols(names: Sequence[str] | None) -> tuple[str, ...]:
    """Protocol names (or the flags' short names) in report order; None or empty: all of them.

    Example:
        >>> resolve_protocols(["eq", "e", "circular"])
        ('accuracy', 'circular_consistency', 'equivariance')
    """
    if not names:
        return AUDIT_PROTOCOLS
    chosen = {PROTOCOL_ALIASES.get(n, n) for n in names}
    unknown = sorted(chosen - set(AUDIT_PROTOCOLS))
    if unknown:
        raise ConfigError(f"unknown protocol(s) {', '.join(unknown)}: choose from {', '.join(AUDIT_PROTOCOLS)} "
                          f"(or {', '.join(sorted(PROTOCOL_ALIASES))})")
    return tuple(p for p in AUDIT_PROTOCOLS if p in chosen)


@dataclass(frozen=True)
class AuditConfig:
    """An audit: the models (each a :class:`ModelSource`), the data and the protocols with their settings."""

    models: tuple[ModelSource, ...]
    data: DataSettings
    protocols: tuple[str, ...] = AUDIT_PROTOCOLS
    run: RunSettings = field(default_factory=RunSettings)
    shift: ShiftOptions = field(default_factory=ShiftOptions)
    invariance: InvarianceOptions = field(default_factory=InvarianceOptions)
    cache_mb: int = 4096
    out_dir: str | os.PathLike = "audit"

    def eval_config(self, model: ModelSource) -> EvalConfig:
        """The evaluation of one model (no result files of its own: the audit writes one report)."""
        return EvalConfig(model=model, data=self.data, protocols=self.protocols, run=self.run, shift=self.shift,
                          invariance=self.invariance, cache_mb=self.cache_mb, out_dir=None)

    def validate(self) -> None:
        """Everything that can be checked before any model runs: names, files, settings."""
        if not self.models:
            raise ConfigError("give at least one model: -a MODEL (repeat -a for more)")
        resolve_protocols(self.protocols)
        for model in self.models:
            get_model_spec(model.name)  # ModelError with the closest names
            model.validate()
            for path in (model.weights, model.checkpoint):
                if path and not Path(path).expanduser().is_file():
                    raise MissingFileError(f"weights file {str(path)!r} of -a {model.name} not found")
        self.eval_config(self.models[0]).validate()  # the invariance options too, at the default geometry


@dataclass
class ModelAudit:
    """One model's audit: its label in the report, its evaluation (records, printed lines, per-unit outcomes)."""

    label: str
    source: ModelSource
    report: EvalReport

    @property
    def records(self) -> list[dict[str, Any]]:
        return [run.record for run in self.report.runs if run.record is not None]

    @property
    def units(self) -> dict[str, dict[str, np.ndarray]]:
        return self.report.loop.units


@dataclass
class AuditResult:
    config: AuditConfig
    models: list[ModelAudit]


def _labels(models: Sequence[ModelSource]) -> list[str]:
    """Model names, made unique with their weights where a name appears more than once."""
    names = [m.name for m in models]
    labels = []
    for m in models:
        weights = m.weights or m.checkpoint
        tag = Path(weights).stem if weights else ("pretrained" if m.pretrained else "random")
        labels.append(m.name if names.count(m.name) == 1 else f"{m.name} ({tag})")
    if len(set(labels)) != len(labels):
        raise ConfigError(f"the same model is audited twice with the same weights: {labels}")
    return labels


def run_audit(config: AuditConfig) -> AuditResult:
    """Run the audit's protocols on every model in turn (see :class:`AuditConfig`)."""
    config.validate()
    labels = _labels(config.models)
    check_models_fit_data(config.models, config.data)  # a misfit last model must not wait for the others
    audits = [ModelAudit(label, source, evaluate(config.eval_config(source)))
              for label, source in zip(labels, config.models)]
    return AuditResult(config, audits)


def diagonal_curve(arrays: dict[str, np.ndarray], *, resamples: int = 2000, seed: int = 0) -> dict[str, list]:
    """Mean true-class probability (percent) per diagonal shift k with 95% bootstrap intervals over images."""
    value, low, high, _ = bootstrap_columns(arrays["true_prob"], resamples=resamples, seed=seed, scale=100)
    return {"shifts": np.asarray(arrays["shifts"]).tolist(), "mean_true_prob": value.tolist(), "low": low.tolist(),
            "high": high.tolist()}


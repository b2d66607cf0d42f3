"""The shift-invariance audit: a chosen set of protocols on one or more models, ready for a report.

Each model runs every chosen protocol in one evaluation (:func:`~antialiased.evaluation.evaluate`:
one decode of each image serves all protocols); the audit keeps each model's result records and
per-unit outcomes, from which :mod:`antialiased.reporting.audit` writes ``report.md``,
``report.json`` and the plots.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from antialiased.errors import ConfigError, MissingFileError, ModelError
from antialiased.evaluation import protocols as registry
from antialiased.evaluation.bootstrap import bootstrap_columns, interval_methods
from antialiased.evaluation.config import DataSettings, EvalConfig, ModelSource, RunSettings, ShiftOptions
from antialiased.evaluation.invariance import InvarianceOptions
from antialiased.evaluation.runner import EvalReport, check_models_fit_data, evaluate
from antialiased.evaluation.segmentation_settings import SegmentationOptions
from antialiased.evaluation.tasks import TASKS, infer_task
from antialiased.models import get_model_spec

__all__ = ["AUDIT_PROTOCOLS", "PROTOCOL_ALIASES", "AuditConfig", "ModelAudit", "AuditResult", "resolve_protocols",
           "run_audit", "diagonal_curve"]

# every protocol of the audit of classifiers, in report order (the default: all of them); from the protocol registry
AUDIT_PROTOCOLS: tuple[str, ...] = registry.audit_protocols("classification")
# the evaluation flags' short names (and a few more) for them, from the registry
PROTOCOL_ALIASES: dict[str, str] = registry.protocol_aliases()


def resolve_protocols(names: Sequence[str] | None, task: str = "classification") -> tuple[str, ...]:
    """Protocol names (or the flags' short names) of ``task``, in report order; None or empty: all of its own.

    Example:
        >>> resolve_protocols(["eq", "e", "circular"])
        ('accuracy', 'circular_consistency', 'equivariance')
        >>> resolve_protocols(["es", "e"], "segmentation")
        ('segmentation_accuracy', 'segmentation_consistency')
    """
    if not names:
        return registry.audit_protocols(task)
    chosen = {PROTOCOL_ALIASES.get(n, n) for n in names}
    unknown = sorted(chosen - {p for t in TASKS for p in registry.audit_protocols(t)})
    if unknown:
        raise ConfigError(f"unknown protocol(s) {', '.join(unknown)}: choose from "
                          f"{', '.join(registry.audit_protocols(task))} (or {', '.join(sorted(PROTOCOL_ALIASES))})")
    found = registry.resolve_protocols(sorted(chosen), task)
    return tuple(p for p in registry.audit_protocols(task) if p in found)


def audit_task(models: Sequence[ModelSource], task: str | None = None) -> str:
    """The one task of the audited models (``task`` when given, checked against each model's).

    Raises:
        ModelError: models of different tasks (a table of them would compare unlike figures), or a
            model whose spec differs from ``task``.
    """
    found = {m.name: infer_task(task, get_model_spec(m.name)).name for m in models}
    if len(set(found.values())) > 1:
        raise ModelError(f"the audit compares models of one task, but these differ: "
                         f"{', '.join(f'{name} ({kind})' for name, kind in found.items())}; audit them separately")
    return next(iter(found.values()), task or "classification")


@dataclass(frozen=True)
class AuditConfig:
    """An audit: the models (each a :class:`ModelSource`), the data and the protocols with their settings.

    ``protocols`` None: all of the models' task; ``task`` None: the models' (all of one task).
    """

    models: tuple[ModelSource, ...]
    data: DataSettings
    protocols: tuple[str, ...] | None = None
    run: RunSettings = field(default_factory=RunSettings)
    shift: ShiftOptions = field(default_factory=ShiftOptions)
    invariance: InvarianceOptions = field(default_factory=InvarianceOptions)
    cache_mb: int = 4096
    out_dir: str | os.PathLike = "audit"
    task: str | None = None
    segmentation: SegmentationOptions = field(default_factory=SegmentationOptions)

    def eval_config(self, model: ModelSource) -> EvalConfig:
        """The evaluation of one model (no result files of its own: the audit writes one report)."""
        task = self.task or audit_task(self.models)
        return EvalConfig(model=model, data=self.data, protocols=resolve_protocols(self.protocols, task),
                          run=self.run, shift=self.shift, invariance=self.invariance, cache_mb=self.cache_mb,
                          out_dir=None, task=task, segmentation=self.segmentation)

    def resolved(self) -> "AuditConfig":
        """This audit with its task and protocol names decided (the models' task, its registrations)."""
        task = audit_task(self.models, self.task)
        return dataclasses.replace(self, task=task, protocols=resolve_protocols(self.protocols, task))

    def validate(self) -> None:
        """Everything that can be checked before any model runs: names, files, settings."""
        if not self.models:
            raise ConfigError("give at least one model: -a MODEL (repeat -a for more)")
        for model in self.models:
            get_model_spec(model.name)  # ModelError with the closest names
            model.validate()
            for path in (model.weights, model.checkpoint):
                if path and not Path(path).expanduser().is_file():
                    raise MissingFileError(f"weights file {str(path)!r} of -a {model.name} not found")
        self.resolved().eval_config(self.models[0]).validate()  # the invariance options too, at the default geometry


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
    names = [m.name + (f"@{m.aa_method}" if m.aa_method else "") for m in models]  # the method tells them apart
    labels = []
    for m, name in zip(models, names):
        weights = m.weights or m.checkpoint
        tag = Path(weights).stem if weights else ("pretrained" if m.pretrained else "random")
        labels.append(name if names.count(name) == 1 else f"{name} ({tag})")
    if len(set(labels)) != len(labels):
        raise ConfigError(f"the same model is audited twice with the same weights: {labels}")
    return labels


def run_audit(config: AuditConfig) -> AuditResult:
    """Run the audit's protocols on every model in turn (see :class:`AuditConfig`)."""
    config.validate()
    config = config.resolved()
    labels = _labels(config.models)
    check_models_fit_data(config.models, config.data, config.task)  # a misfit last model must not wait
    audits = [ModelAudit(label, source, evaluate(config.eval_config(source)))
              for label, source in zip(labels, config.models)]
    return AuditResult(config, audits)


def diagonal_curve(arrays: dict[str, np.ndarray], *, resamples: int = 2000, seed: int = 0) -> dict[str, list]:
    """Mean true-class probability (percent) per diagonal shift k with 95% bootstrap intervals over images
    (``methods``: the method of each, ``none`` with fewer than two images)."""
    value, low, high, _ = bootstrap_columns(arrays["true_prob"], resamples=resamples, seed=seed, scale=100)
    return {"shifts": np.asarray(arrays["shifts"]).tolist(), "mean_true_prob": value.tolist(), "low": low.tolist(),
            "high": high.tolist(), "methods": interval_methods(arrays["true_prob"])}


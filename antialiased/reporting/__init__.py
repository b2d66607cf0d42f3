"""The paper's deliverables from result JSON files: tables with the Pareto front marked, plots.

``load_results`` reads files written by ``antialiased eval``/``demo`` (schema
``antialiased.result/1``); ``summarize`` merges them per network, dataset and variant (accuracy
from one file, consistency from another, several seeds averaged with their spread, identical
re-runs counted once: :mod:`antialiased.reporting.grouping`); ``markdown_table`` and
``write_csv`` format the paper's tables; ``plot_network``/``plot_overview`` draw
consistency-vs-accuracy plots.
"""
from antialiased.reporting.results import RESULT_SCHEMA, load_results
from antialiased.reporting.tables import (
    Metric,
    Variant,
    arch_title,
    markdown_report,
    markdown_table,
    pareto_front,
    summarize,
    table_title,
    variant_label,
    write_csv,
)
from antialiased.reporting.plots import plot_network, plot_overview

__all__ = [
    "RESULT_SCHEMA",
    "load_results",
    "Metric",
    "Variant",
    "arch_title",
    "markdown_report",
    "markdown_table",
    "pareto_front",
    "summarize",
    "table_title",
    "variant_label",
    "write_csv",
    "plot_network",
    "plot_overview",
]

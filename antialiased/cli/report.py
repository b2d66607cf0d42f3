"""``antialiased report RESULTS...``: the paper's tables and plots from result JSON files."""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Sequence

from antialiased.cli._parser import ArgumentParser

__all__ = ["get_args_parser", "main"]


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="antialiased report", add_help=add_help,
        description="Per-network tables (Baseline, Rect-2, Tri-3, Tri-4, Bin-5; accuracy and consistency; "
                    "Pareto front bold, dominated variants italic, best values bold) as Markdown and CSV, "
                    "and consistency-vs-accuracy plots, from result JSON files of 'antialiased eval' or "
                    "'antialiased demo' and 'antialiased audit' (its report.json). A row is one model (its source, "
                    "method and kind of weights) on one dataset; a network evaluated on several datasets gets a "
                    "table per dataset. Several files of one row are merged (accuracy from one, consistency from "
                    "another); runs with different seeds are averaged with their spread, identical re-runs (same "
                    "seed and settings) count once. Circular, sub-pixel and adversarial-shift figures and equivariance errors "
                    "get a table of their own. Segmentation results make tables of mIoU and segmentation consistency "
                    "(and their plots); the columns of each table come from its results' task.")
    parser.add_argument("results", nargs="+", metavar="RESULTS", help="result JSON files or folders of them")
    parser.add_argument("--out-dir", default="report", metavar="DIR",
                        help="where report.md, report.csv and the PNG plots go (default: ./report)")
    parser.add_argument("--digits", type=int, default=2, help="decimals in the Markdown table (default: 2)")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    return parser


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def main(argv: Sequence[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    from antialiased.reporting import (load_results, markdown_report, plot_network, plot_overview, summarize,
                                       write_csv)
    from antialiased.reporting.audit import invariance_markdown

    if args.digits < 0:
        print("antialiased report: --digits must be >= 0", file=sys.stderr)
        return 2
    try:
        records = load_results(args.results)
    except (FileNotFoundError, ValueError) as exc:
        print(f"antialiased report: {exc}", file=sys.stderr)
        return 2
    tables = summarize(records)
    text = markdown_report(tables, digits=args.digits)
    invariance = invariance_markdown(records, digits=args.digits)  # -ec/-ef/-ea/-eq results and audits
    if invariance:
        text += "\n" + invariance
    print(text, end="")
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.md").write_text(text)
    written = [out / "report.md", write_csv(tables, out / "report.csv")]
    if not args.no_plots:
        for arch, rows in tables.items():
            written.append(plot_network(rows, out / f"{_safe(arch)}.png"))
        written.append(plot_overview(tables, out / "overview.png"))
    print(f"\nwrote {', '.join(str(p) for p in written)}", file=sys.stderr)
    return 0

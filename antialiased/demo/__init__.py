"""The demo: anti-aliasing's effect in minutes on a CPU, with nothing to download.

Trains a small CNN as a baseline and converted by ``antialias()`` (BlurPool of several filter
sizes, and optionally other methods: blur-first, APS, APS-LPF) on procedurally generated shapes
(or any ImageFolder dataset), then measures accuracy, crop-shift and circular-shift consistency.
"""
from antialiased.demo.data import CropDataset, DemoData, load_folder, load_generated
from antialiased.demo.nets import NETS, DemoCNN, SmallResNet, build_net
from antialiased.demo.report import COLUMNS, VariantRow, describe_builds, methods_table, plot_methods, summarize_variants
from antialiased.demo.run import DemoConfig, DemoResult, run_demo, total_stride, train_variant
from antialiased.demo.shapes import SHAPES, generate_shapes
from antialiased.demo.variants import BASELINE, Variant, build_variant, parse_variant

__all__ = [
    "CropDataset",
    "DemoData",
    "load_folder",
    "load_generated",
    "NETS",
    "DemoCNN",
    "SmallResNet",
    "build_net",
    "COLUMNS",
    "VariantRow",
    "describe_builds",
    "methods_table",
    "plot_methods",
    "summarize_variants",
    "DemoConfig",
    "DemoResult",
    "run_demo",
    "total_stride",
    "train_variant",
    "SHAPES",
    "generate_shapes",
    "BASELINE",
    "Variant",
    "build_variant",
    "parse_variant",
]

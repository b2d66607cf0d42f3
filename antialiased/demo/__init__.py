"""The demo: anti-aliasing's effect in minutes on a CPU, with nothing to download.

Trains a small CNN as a baseline and with BlurPool of several filter sizes on procedurally
generated shapes (or any ImageFolder dataset), then measures accuracy and shift consistency.
"""
from antialiased.demo.data import CropDataset, DemoData, load_folder, load_generated
from antialiased.demo.nets import NETS, DemoCNN, SmallResNet, build_net
from antialiased.demo.run import DemoConfig, DemoResult, run_demo, train_variant
from antialiased.demo.shapes import SHAPES, generate_shapes

__all__ = [
    "CropDataset",
    "DemoData",
    "load_folder",
    "load_generated",
    "NETS",
    "DemoCNN",
    "SmallResNet",
    "build_net",
    "DemoConfig",
    "DemoResult",
    "run_demo",
    "train_variant",
    "SHAPES",
    "generate_shapes",
]

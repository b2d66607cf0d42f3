"""The built-in model families, in lookup order: one explicit table.

A name is owned by the first family that answers it; the built-in families answer disjoint sets
of names (the torchvision family leaves the paper's 23 architectures to the paper's), so the order
only decides for families registered later with :func:`~antialiased.models.registry.register_family`
(they come after these). A new built-in family is one more row here (see the registry's module doc).
"""
from __future__ import annotations

from antialiased.models._smp import SMP
from antialiased.models._timm import TIMM
from antialiased.models._tv_segmentation import TORCHVISION_SEGMENTATION
from antialiased.models.converted import TORCHVISION
from antialiased.models.paper import PAPER
from antialiased.models.registry import Family, register_family

__all__ = ["FAMILIES"]

FAMILIES: tuple[Family, ...] = (
    PAPER,  # the paper's 23 architectures: published weights for <arch>_lpf<N>, every method
    TORCHVISION,  # torchvision's other classifiers, converted by antialias()
    TIMM,  # timm/<name>, converted by antialias() (timm imported when a timm/ name is used)
    TORCHVISION_SEGMENTATION,  # torchvision's segmentation models (task "segmentation"), converted by antialias()
    SMP,  # smp/<Arch>-<encoder>, segmentation_models_pytorch's (imported when an smp/ name is used)
)

for _family in FAMILIES:
    register_family(_family)

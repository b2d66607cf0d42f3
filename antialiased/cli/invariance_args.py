"""The protocol flags (``-e -es -ed -ec -ef -ea -eq``, made from the protocol registry), the shift-invariance
options, and the task options (``--task``, ``--seg-size``), with the settings they make."""
from __future__ import annotations

import argparse

from antialiased.errors import ConfigError
from antialiased.evaluation.adversarial import SHIFT_MODES
from antialiased.evaluation.bootstrap import RESAMPLES
from antialiased.evaluation.invariance import InvarianceOptions
from antialiased.evaluation.protocols import PROTOCOLS, flag_help, protocol_flags
from antialiased.evaluation.segmentation_settings import SegmentationOptions
from antialiased.evaluation.tasks import TASKS

__all__ = ["PROTOCOL_FLAGS", "INVARIANCE_FLAGS", "add_protocol_flags", "add_invariance_flags",
           "add_invariance_options", "add_task_options", "invariance_options_from_args", "task_from_args",
           "segmentation_options_from_args", "SEGMENTATION_CROP"]


def _flag_protocols() -> tuple[tuple[str, str], ...]:
    """(flag dest, protocol name of its first registration), in registry order: the order results are reported."""
    first = {}
    for name, protocol in PROTOCOLS.items():
        if protocol.flag is not None:
            first.setdefault(protocol.flag, name)
    return tuple((flag.dest, first[flag]) for flag in protocol_flags())


# flag dest -> protocol name (the classification registration; the run's task picks its own), in report order
PROTOCOL_FLAGS: tuple[tuple[str, str], ...] = _flag_protocols()
# the flags beyond the paper's -e/-es/-ed (kept for callers of the earlier interface)
INVARIANCE_FLAGS = tuple(pair for pair in PROTOCOL_FLAGS if pair[0] not in ("evaluate", "evaluate_shift",
                                                                                 "evaluate_diagonal"))
SEGMENTATION_CROP = SegmentationOptions().crop_size


def _escape(text: str) -> str:
    return text.replace("%", "%%")


def add_protocol_flags(group: argparse._ArgumentGroup, dests: tuple[str, ...] | None = None) -> None:
    """Every protocol flag of the registry (or those of ``dests``), with its help (what it does for each task)."""
    for flag in protocol_flags():
        if dests is None or flag.dest in dests:
            group.add_argument(flag.short, flag.long, dest=flag.dest, action="store_true",
                               help=_escape(flag_help(flag)))


def add_invariance_flags(group: argparse._ArgumentGroup) -> None:
    """``-ec``, ``-ef``, ``-ea``, ``-eq`` (see :func:`add_protocol_flags` for all of them)."""
    add_protocol_flags(group, tuple(dest for dest, _ in INVARIANCE_FLAGS))


def add_invariance_options(group: argparse._ArgumentGroup) -> None:
    """``--shift-grid``, ``--shift-mode``, ``--layers``, ``--bootstrap``, and the task options."""
    group.add_argument("--shift-grid", dest="shift_grid", default=8, type=int, metavar="G",
                       help="-ea: the G x G shifts (dh, dw) in {0..G-1}^2 (default: 8; crop mode: G <= max-shift + 1)")
    group.add_argument("--shift-mode", dest="shift_mode", default="crop", choices=SHIFT_MODES,
                       help="-ea: crops of the 256 image at the offsets, or circular shifts of the 224 center crop "
                            "(default: crop)")
    group.add_argument("--layers", dest="layers", nargs="+", default=(), metavar="NAME",
                       help="-eq: more modules to measure (names as in model.named_modules()) besides the end of "
                            "every subsampling stage")
    group.add_argument("--bootstrap", dest="bootstrap", default=RESAMPLES, type=int, metavar="N",
                       help=f"resamples of the bootstrap behind every 95%% interval (default: {RESAMPLES})")
    add_task_options(group)


def add_task_options(group: argparse._ArgumentGroup) -> None:
    """``--task`` and ``--seg-size``."""
    group.add_argument("--task", dest="task", default=None, choices=tuple(TASKS),
                       help="what the model predicts: a class per image or per pixel (default: the model's; "
                            "classification for names that do not say). Segmentation data: Pascal VOC "
                            "(JPEGImages/, SegmentationClass/, ImageSets/Segmentation/val.txt) or images/ + masks/")
    group.add_argument("--seg-size", dest="seg_size", default=SegmentationOptions().size, type=int, metavar="N",
                       help=f"segmentation: the shorter side of every image and mask after resizing, as "
                            f"torchvision's reference evaluates (default: {SegmentationOptions().size}); -es crops "
                            f"--crop-size pixels of it (default for segmentation: {SEGMENTATION_CROP})")


def invariance_options_from_args(args: argparse.Namespace, protocols: tuple[str, ...] | None = None
                                 ) -> InvarianceOptions:
    """The options of the flags; with ``protocols``, options given for a protocol that does not run are refused."""
    options = InvarianceOptions(grid=args.shift_grid, mode=args.shift_mode, layers=tuple(args.layers),
                                resamples=args.bootstrap)
    adversarial = PROTOCOLS["adversarial"].flag  # -ea, whichever task's registration runs
    if protocols is not None and not any(PROTOCOLS[p].flag == adversarial for p in protocols if p in PROTOCOLS):
        if (args.shift_grid, args.shift_mode) != (8, "crop"):
            raise ConfigError("--shift-grid and --shift-mode set the adversarial-shift protocol; add -ea")
    return options


def task_from_args(args: argparse.Namespace) -> str | None:
    """``--task`` (None: the model's)."""
    return getattr(args, "task", None)


def segmentation_options_from_args(args: argparse.Namespace, crop_size: int | None) -> SegmentationOptions:
    """``--seg-size`` and, for segmentation, ``--crop-size`` when given (``crop_size``; None: 480)."""
    return SegmentationOptions(size=args.seg_size, crop_size=SEGMENTATION_CROP if crop_size is None else crop_size)

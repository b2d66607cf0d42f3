"""Flags of the shift-invariance protocols (``-ec``, ``-ef``, ``-ea``, ``-eq``) and their settings."""
from __future__ import annotations

import argparse

from antialiased.errors import ConfigError
from antialiased.evaluation.adversarial import SHIFT_MODES
from antialiased.evaluation.bootstrap import RESAMPLES
from antialiased.evaluation.invariance import InvarianceOptions

__all__ = ["INVARIANCE_FLAGS", "add_invariance_flags", "add_invariance_options", "invariance_options_from_args"]

# flag dest -> protocol name, in the order results are reported (after -e, -es, -ed)
INVARIANCE_FLAGS = (("evaluate_circular", "circular_consistency"), ("evaluate_fractional", "fractional_consistency"),
                    ("evaluate_adversarial", "adversarial"), ("evaluate_equivariance", "equivariance"))


def add_invariance_flags(group: argparse._ArgumentGroup) -> None:
    """``-ec``, ``-ef``, ``-ea``, ``-eq``."""
    group.add_argument("-ec", "--evaluate-circular", dest="evaluate_circular", action="store_true",
                       help="circular-shift consistency: two circular shifts of the 224 center crop per image and "
                            "pass, drawn from {0..max-shift-1}^2: how often the top-1 agrees")
    group.add_argument("-ef", "--evaluate-fractional", dest="evaluate_fractional", action="store_true",
                       help="sub-pixel consistency: the same with shifts drawn from [0, 1)^2, applied as a "
                            "band-limited circular translation (Fourier phase ramp)")
    group.add_argument("-ea", "--evaluate-adversarial", dest="evaluate_adversarial", action="store_true",
                       help="adversarial-shift accuracy: correct only if the top-1 is right for every shift of "
                            "a --shift-grid G x G grid (--shift-mode crop or circular)")
    group.add_argument("-eq", "--evaluate-equivariance", dest="evaluate_equivariance", action="store_true",
                       help="per-layer shift equivariance ||f(Tx) - T'f(x)|| / ||f(x)|| of the end of every "
                            "subsampling stage (and --layers), for shifts of 1, 2, 3 times each map's stride")


def add_invariance_options(group: argparse._ArgumentGroup) -> None:
    """``--shift-grid``, ``--shift-mode``, ``--layers``, ``--bootstrap``."""
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


def invariance_options_from_args(args: argparse.Namespace, protocols: tuple[str, ...] | None = None
                                 ) -> InvarianceOptions:
    """The options of the flags; with ``protocols``, options given for a protocol that does not run are refused."""
    options = InvarianceOptions(grid=args.shift_grid, mode=args.shift_mode, layers=tuple(args.layers),
                                resamples=args.bootstrap)
    if protocols is not None and "adversarial" not in protocols:
        if (args.shift_grid, args.shift_mode) != (8, "crop"):
            raise ConfigError("--shift-grid and --shift-mode set the adversarial-shift protocol; add -ea")
    return options

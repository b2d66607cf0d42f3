"""The methods' upsampling rules: what an up site (transposed conv, interpolation, pixel shuffle) becomes.

A method's upsampling rule is its ``up_rewriters`` entry (``_types.Method``): up site kind ->
rewriter, as ``rewriters`` are for subsampling. Two rules are defined here:

- :data:`BLUR_AFTER` (``"blurpool"``, ``"blur-first"``): the upsampling as it is, then a stride-1
  blur of the method's filter (an ``antialiased.BlurPool`` with stride 1) behind its normalization
  and activation, if any. For a 2x nearest upsampling, blurring after the zero-order hold is the
  anti-aliasing interpolator. Any factor above 1 (whole or not), ``align_corners`` and ``size=``
  targets: the blur after it is defined for all of them.
- :func:`polyphase_rules` (``"aps"``, ``"aps-lpf"``): polyphase upsampling (APS-U): the layer becomes
  its polyphase twin (``PolyphaseUpsampling``, ``PolyphaseConvTranspose2d``), which zero-inserts on
  the phase of the subsampling it undoes (wired by the method's ``finalize``, see
  ``_upsample_pairing``) and then applies the layer's own kernel (nearest: a box, bilinear: its
  triangle, bicubic: its cubic, a transposed conv: its weights); ``aps-lpf`` blurs after it. It
  needs a whole factor and a kernel on the ``s``-times grid, so a non-integer factor and
  ``align_corners=True`` are left alone, with the reason.

:class:`Interpolate` is the layer the engine turns an ``F.interpolate`` call into (its ``size=`` may
be computed by the forward, so it can come at call time).

Example:
    >>> from torch import nn
    >>> from antialiased.models.antialias._types import RewriteContext, Site
    >>> site = Site("up", "interpolate", nn.Upsample(scale_factor=2, mode="bilinear"), (2, 2), 8, 8)
    >>> BLUR_AFTER["interpolate"](site, RewriteContext(filter_size=3)).replace  # the layer, then a blur
    Upsampled(
      (0): Upsample(scale_factor=2.0, mode='bilinear')
      (1): BlurPool(8, pad_type='reflect', filt_size=3, stride=1, pad_off=0, persistent=False)
    )
    >>> polyphase_rules(lpf=False)["interpolate"](site, RewriteContext(circular=True)).replace
    PolyphaseUpsampling(stride=(2, 2), mode='bilinear', circular=True)
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from antialiased.layers.polyphase import UPSAMPLING_MODES, PolyphaseConvTranspose2d, PolyphaseUpsampling
from antialiased.models.antialias._types import Rewrite, RewriteContext, Site, SiteRewriter, Skip

__all__ = ["Interpolate", "Upsampled", "BLUR_AFTER", "polyphase_rules", "whole_factor"]


class Interpolate(nn.Module):
    """``F.interpolate`` as a layer: constant arguments kept, the ones the forward computes passed at call time.

    Shape:
        - Input: :math:`(N, C, *)`; optional ``size`` / ``scale_factor`` at call time
        - Output: as ``F.interpolate``

    Example:
        >>> layer = Interpolate(mode="bilinear", align_corners=False, runtime_args=("size",))
        >>> layer(torch.rand(1, 2, 4, 4), size=(8, 8)).shape
        torch.Size([1, 2, 8, 8])
    """

    def __init__(self, size: object = None, scale_factor: object = None, mode: str = "nearest",
                 align_corners: bool | None = None, recompute_scale_factor: bool | None = None,
                 antialias: bool = False, runtime_args: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.size, self.scale_factor, self.mode = size, scale_factor, mode
        self.align_corners, self.recompute_scale_factor, self.antialias = align_corners, recompute_scale_factor, antialias
        self.runtime_args = tuple(runtime_args)  # arguments the owner's forward computes and passes

    def forward(self, input: torch.Tensor, size: object = None, scale_factor: object = None) -> torch.Tensor:
        return F.interpolate(
            input, size if size is not None else self.size,
            scale_factor if scale_factor is not None else self.scale_factor, self.mode, self.align_corners,
            self.recompute_scale_factor, self.antialias,
        )

    def extra_repr(self) -> str:
        parts = [f"{k}={getattr(self, k)!r}" for k in ("size", "scale_factor") if getattr(self, k) is not None]
        parts += [f"{k}=<run time>" for k in self.runtime_args]
        parts.append(f"mode={self.mode!r}")
        if self.align_corners is not None:
            parts.append(f"align_corners={self.align_corners}")
        return ", ".join(parts)


class Upsampled(nn.Sequential):
    """An upsampling layer, then the layers after it; call arguments (an interpolation's ``size=``) go to the first.

    Example:
        >>> layer = Upsampled(Interpolate(mode="nearest", runtime_args=("size",)), nn.Identity())
        >>> layer(torch.rand(1, 2, 3, 3), size=(6, 6)).shape
        torch.Size([1, 2, 6, 6])
    """

    def forward(self, input: torch.Tensor, *args, **kwargs) -> torch.Tensor:  # type: ignore[override]
        layers = list(self)
        out = layers[0](input, *args, **kwargs)
        for layer in layers[1:]:
            out = layer(out)
        return out


def _stateless(module: nn.Module) -> bool:
    return not any(True for _ in module.parameters()) and not any(True for _ in module.buffers())


def whole_factor(stride: tuple) -> tuple[int, ...] | None:
    """The factor as integers, or None where one is not a whole number."""
    if all(float(s).is_integer() for s in stride):
        return tuple(int(s) for s in stride)
    return None


def _blur_after(site: Site, ctx: RewriteContext) -> Rewrite | Skip:
    """The upsampling, its normalization and activation, then a stride-1 blur of the method's filter."""
    if len(set(site.stride)) > 1:
        return Skip(f"its factor {site.stride} differs between dimensions; the blur treats every dimension alike, "
                    f"so it is left as it is")
    blur = ctx.blur(site.out_channels, 1, site.ndim)
    if _stateless(site.module):  # an interpolation or pixel shuffle: one layer, which still takes its size=
        return Rewrite(replace=Upsampled(site.module, blur))
    return Rewrite(after=(blur,), after_followers=True)


#: ``"blurpool"`` and ``"blur-first"``'s upsampling rule (see the module doc).
BLUR_AFTER: dict[str, SiteRewriter] = {
    "transposed_conv": _blur_after, "interpolate": _blur_after, "pixel_shuffle": _blur_after,
}

_NO_GRID = ("polyphase upsampling inserts samples on an s-times grid and needs a whole factor; left as it is "
            "(fix: an integer scale_factor, or a size= that is a whole multiple of the input)")
_ALIGN_CORNERS = ("align_corners=True samples the input at (H - 1) / (s H - 1) steps, not on an s-times grid: "
                  "it has no polyphase form; left as it is (fix: align_corners=False, torch's default)")


def _interpolation_refusal(module: nn.Module) -> str | None:
    mode = module.mode
    if mode not in UPSAMPLING_MODES or mode == "pixel_shuffle":
        usable = [m for m in UPSAMPLING_MODES if m != "pixel_shuffle"]
        return f"mode {mode!r} has no polyphase form here ({', '.join(usable)} do); left as it is"
    if module.align_corners:
        return _ALIGN_CORNERS
    if "scale_factor" in getattr(module, "runtime_args", ()):
        return ("its scale_factor is computed at run time; a polyphase layer has one fixed factor, so it is left "
                "as it is (fix: a constant scale_factor or a size=)")
    return None


def _polyphase_refusal(site: Site) -> str | None:
    if site.ndim != 2:
        return f"polyphase upsampling is 2-D; this {site.ndim}-D upsampling is left as it is"
    if whole_factor(site.stride) is None:
        return f"a non-integer factor {site.stride}: {_NO_GRID}"
    if site.kind == "interpolate":
        return _interpolation_refusal(site.module)
    if site.kind == "pixel_shuffle" and len(set(site.stride)) > 1:
        return f"pixel shuffle by {site.stride}: one factor for both sides is needed"
    return None


def _polyphase_layer(site: Site, ctx: RewriteContext, lpf: bool, conv: type, upsampling: type) -> nn.Module:
    options = dict(circular=ctx.circular, filt_size=ctx.filter_size if lpf else 1,
                   pad_type=None if ctx.circular else ctx.pad_type)
    if site.kind == "transposed_conv":
        return conv.from_conv(site.module, **options)
    mode = "pixel_shuffle" if site.kind == "pixel_shuffle" else site.module.mode
    return upsampling(whole_factor(site.stride), mode=mode, size=getattr(site.module, "size", None), **options)


def polyphase_rules(lpf: bool, *, conv: type = PolyphaseConvTranspose2d, upsampling: type = PolyphaseUpsampling,
                    name: str = "polyphase_upsampling") -> dict[str, SiteRewriter]:
    """The APS methods' upsampling rule (``lpf``: ``aps-lpf``, the blur after): up kind -> rewriter.

    ``conv`` and ``upsampling`` are the polyphase layers the sites become (LPS passes its learnable twins)."""
    def rewrite(site: Site, ctx: RewriteContext) -> Rewrite | Skip:
        reason = _polyphase_refusal(site)
        if reason is not None:
            return Skip(reason)
        return Rewrite(replace=_polyphase_layer(site, ctx, lpf, conv, upsampling))

    rewrite.__name__ = name + ("_lpf" if lpf else "")
    return {"transposed_conv": rewrite, "interpolate": rewrite, "pixel_shuffle": rewrite}


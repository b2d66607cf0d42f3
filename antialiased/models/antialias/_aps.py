"""The APS methods: every subsampling becomes stride 1 + adaptive polyphase sampling.

``"aps"`` (Chaman & Dokmanic, CVPR 2021) and ``"aps-lpf"`` (the same with the binomial blur of
``filter_size`` taps before the sampling) rewrite every subsampling site, the stem included (a
fixed-grid stem would break invariance):

- strided conv -> the conv at stride 1, its normalization and activation, then APS (a pad-free
  1x1 conv samples its input first: the same function, computed at the low resolution);
- ``MaxPool(k, s)`` -> ``MaxPool(k, 1)`` + APS;
- ``AvgPool(k, s)`` -> ``AvgPool(k, 1)`` + APS (``"aps"``: the average is part of the model) or
  blur + APS (``"aps-lpf"``: the blur replaces the box filter, as ``"blurpool"`` does; where that
  would change the output size, ``AvgPool(k, 1)`` + blur + APS).

Upsamplings (strided transposed convs, interpolations, pixel shuffles) become their polyphase
twins (APS-U, ``_upsample.polyphase_rules``): zero-insertion on the phase of the subsamplings they
undo, then their own kernel (``aps-lpf``: and the blur).

``finalize`` then, with ``circular=True``, converts every convolution and pool to circular padding
(``_circular``), makes branches that meet pick the same phase and hands each upsampling the phase
of the subsamplings on its data path (``_aps_phases.share_model_phases``).

**Exactness.** With ``circular=True``, a model whose sides are divisible by its total stride and
that ends in global pooling gives the same logits for every circular shift of its input (up to
float rounding, and as long as no two polyphase components tie in norm); a segmentation network
(a U-Net, FCN, DeepLabV3) gives the same output, circularly shifted: ``f(roll(x, s)) == roll(f(x), s)``.
"""
from __future__ import annotations

import math
from typing import Callable

from torch import nn

from antialiased.layers.polyphase import AdaptivePolyphaseSampling
from antialiased.models.antialias._aps_phases import share_model_phases, share_phases
from antialiased.models.antialias._circular import make_circular
from antialiased.models.antialias._types import Method, Rewrite, RewriteContext, Site, SiteRewriter, Skip
from antialiased.models.antialias._upsample import polyphase_rules

__all__ = ["APS", "APS_LPF", "share_phases", "share_model_phases"]


def _sampler(site: Site, ctx: RewriteContext, lpf: bool) -> AdaptivePolyphaseSampling:
    return AdaptivePolyphaseSampling(
        site.stride[:2], filt_size=ctx.filter_size if lpf else 1, circular=ctx.circular,
        pad_type=None if ctx.circular else ctx.pad_type,
    )


def _pool_size(n: int, k: int, s: int, p: int, d: int, ceil_mode: bool) -> int:
    """torch's pooling output size (with ceil_mode's rule: the last window starts inside the input)."""
    span = n + 2 * p - d * (k - 1) - 1
    out = (-(-span // s) if ceil_mode else span // s) + 1
    return out - 1 if ceil_mode and (out - 1) * s >= n + p else out


def _sampling_keeps_sizes(pool: nn.AvgPool2d, s: int) -> bool:
    """Whether sampling alone (``ceil(n / s)``) gives the pool's output size for every input size."""
    k, p = pool.kernel_size, pool.padding
    if not isinstance(k, int) or not isinstance(p, int):
        return False
    return all(-(-n // s) == _pool_size(n, k, s, p, 1, pool.ceil_mode) for n in range(max(1, k - 2 * p), 65))


def _ceil_mode_pad(pool: nn.MaxPool2d, s: int) -> nn.Module | Skip:
    """-inf on the right so the dense pool has ceil_mode's partial last window, if that gives the size."""
    k, p, d = (getattr(pool, name) for name in ("kernel_size", "padding", "dilation"))
    if not all(isinstance(v, int) for v in (k, p, d)):
        return Skip("ceil_mode with a non-square window: the dense pool + APS would change the output size")
    for n in range(d * (k - 1) + 1 - 2 * p, 65):
        if n > 0 and math.ceil((n + s - 1 + 2 * p - d * (k - 1)) / s) != _pool_size(n, k, s, p, d, True):
            return Skip(f"ceil_mode: the dense pool + APS would change the output size (input side {n})")
    return nn.ConstantPad2d((0, s - 1, 0, s - 1), float("-inf"))


def _two_d(rewriter: Callable[[Site, RewriteContext, bool], Rewrite | Skip], lpf: bool) -> SiteRewriter:
    def rewrite(site: Site, ctx: RewriteContext) -> Rewrite | Skip:
        if site.ndim != 2:
            return Skip(f"adaptive polyphase sampling is 2-D; this {site.ndim}-D subsampling is left as it is")
        return rewriter(site, ctx, lpf)

    rewrite.__name__ = rewriter.__name__
    return rewrite


def _pad_free_pointwise(conv: nn.Module) -> bool:
    padding = conv.padding  # with a 1x1 kernel, 'same' and 'valid' both pad nothing
    return all(k == 1 for k in conv.kernel_size) and (isinstance(padding, str) or not any(padding))


def _conv(site: Site, ctx: RewriteContext, lpf: bool) -> Rewrite | Skip:
    if _pad_free_pointwise(site.module):
        return Rewrite(before=(_sampler(site, ctx, lpf),), stride=(1, 1))
    return Rewrite(stride=(1, 1), after=(_sampler(site, ctx, lpf),), after_followers=True)


def _max_pool(site: Site, ctx: RewriteContext, lpf: bool) -> Rewrite | Skip:
    pool = site.module
    if pool.return_indices:
        return Skip("returns indices (for max-unpooling); a dense pool + APS would change what they index")
    dense = nn.MaxPool2d(pool.kernel_size, stride=1, padding=pool.padding, dilation=pool.dilation)
    if pool.ceil_mode and not ctx.circular:  # circular padding gives ceil(H / s) by itself
        pad = _ceil_mode_pad(pool, site.factor)
        if isinstance(pad, Skip):
            return pad
        return Rewrite(before=(pad,), replace=dense, after=(_sampler(site, ctx, lpf),))
    return Rewrite(replace=dense, after=(_sampler(site, ctx, lpf),))


def _avg_pool(site: Site, ctx: RewriteContext, lpf: bool) -> Rewrite | Skip:
    pool = site.module
    if pool.ceil_mode and not ctx.circular:
        return Skip("ceil_mode average pool: the dense pool + APS would change which windows are averaged")
    if lpf and _sampling_keeps_sizes(pool, site.factor):  # the blur replaces the box filter, as in "blurpool"
        return Rewrite(replace=_sampler(site, ctx, lpf))
    dense = nn.AvgPool2d(pool.kernel_size, stride=1, padding=pool.padding,
                         count_include_pad=pool.count_include_pad, divisor_override=pool.divisor_override)
    return Rewrite(replace=dense, after=(_sampler(site, ctx, lpf),))


def _record_circular(model: nn.Module, summary: object | None) -> None:
    changed, skipped = make_circular(model)
    if summary is None:
        return
    for path, before, after in changed:
        summary.add_change(path, "padding", before, after)
    for path, reason in skipped:
        summary.add_left_alone(path, "padding", type(model.get_submodule(path)).__name__, reason)


def _finalize(model: nn.Module, ctx: RewriteContext) -> nn.Module:
    if ctx.circular:
        _record_circular(model, ctx.summary)
    return share_model_phases(model, ctx.summary)


def _method(name: str, lpf: bool, description: str) -> Method:
    return Method(
        name=name, description=description,
        rewriters={"conv": _two_d(_conv, lpf), "max_pool": _two_d(_max_pool, lpf), "avg_pool": _two_d(_avg_pool, lpf)},
        converts_stem=True, supports_circular=True, finalize=_finalize, up_rewriters=polyphase_rules(lpf),
        options=("filter_size", "pad_type", "circular") if lpf else ("circular",),  # plain APS has no blur
    )


APS = _method("aps", False, "adaptive polyphase sampling: stride 1, then keep the largest-norm polyphase component")
APS_LPF = _method("aps-lpf", True, "APS with the blur before it (low-pass filter, then adaptive polyphase sampling)")

"""Where a method's subsampling layer goes: three placements, each a set of site rewriters.

Every layer of issue 19's methods (``AdaptiveBlurPool``, ``LearnablePolyphaseSampling``,
``FLCPool``, ``ASAPPool``, ``HaarPool``, TIPS) replaces a stride-``s`` subsampling and returns
``ceil(H / s) x ceil(W / s)``. A method is a *layer factory* ``(site, ctx, channels, stride) ->
layer | Skip`` and one of these placements, as its authors place it:

- :func:`after_rewriters` (the blurpool recipe; DDAC, WaveCNet): a strided conv runs at stride 1
  and the layer comes behind its normalization and activation (a pad-free 1x1 conv: the layer
  first, on its input); ``MaxPool(k, s)`` -> ``MaxPool(k, 1)`` + layer (``replace_max=True``: the
  layer alone, where that keeps the output size: WaveCNet's); ``AvgPool(k, s)`` -> the layer (or
  ``AvgPool(k, 1)`` + layer where the layer alone would change the size). The stem stays strided
  (``include_stem=True`` converts it), and the paper's per-architecture choices apply.
- :func:`sampler_rewriters` (APS's; LPS, TIPS): the same, with the stem converted and an average
  pool kept as a stride-1 average before the layer (``lpf``: replaced, the blur being the filter).
- :func:`pool_first_rewriters` (FLC, ASAP): the layer *before* a strided conv, which runs at
  stride 1 on the pooled map (the authors' ``Sequential(FLC_Pooling(), Conv2d(stride=1))``), where
  that gives the conv's output size, else right behind the conv run at stride 1; a max or average
  pool is replaced by the layer (where that keeps the size, else dense pool + layer); stem included.

The conv-then-layer placements always keep the output size (a conv at stride 1 gives
``m = H + 2p - d(k - 1)`` and the layer ``ceil(m / s)``, the strided conv's size).

Example:
    >>> from torch import nn
    >>> from antialiased.models.antialias._types import RewriteContext, Site
    >>> rules = pool_first_rewriters(lambda site, ctx, channels, stride: nn.Identity())
    >>> site = Site("layer2.0.conv1", "conv", nn.Conv2d(8, 16, 3, 2, 1), (2, 2), 8, 16)
    >>> r = rules["conv"](site, RewriteContext())
    >>> r.before, r.stride, r.after
    ((Identity(),), (1, 1), ())
    >>> r = rules["conv"](Site("stages.1.0", "conv", nn.Conv2d(8, 16, 2, 2), (2, 2), 8, 16), RewriteContext())
    >>> r.before, r.after  # a 2x2 conv at stride 1 on the pooled map would lose a row: pool after it
    ((), (Identity(),))
"""
from __future__ import annotations

from typing import Callable, Union

from torch import nn

from antialiased.models.antialias._aps import _ceil_mode_pad, _pad_free_pointwise, _pool_size
from antialiased.models.antialias._types import Rewrite, RewriteContext, Site, SiteRewriter, Skip

__all__ = ["LayerFactory", "after_rewriters", "sampler_rewriters", "pool_first_rewriters", "keeps_ceil_size"]

#: ``(site, ctx, channels, stride) -> layer | Skip``: the method's layer for ``channels`` at ``stride``.
LayerFactory = Callable[[Site, RewriteContext, int, int], Union[nn.Module, Skip]]
_SIZES = range(1, 65)  # input sides over which a replacement must give the original's output size


def _first(value: object) -> int:
    return value[0] if isinstance(value, (tuple, list)) else value


def keeps_ceil_size(pool: nn.Module, s: int) -> bool:
    """Whether ``ceil(n / s)`` (the layer alone) is the pool's output size at every side where it works."""
    k, p = _first(pool.kernel_size), _first(pool.padding)
    d, ceil_mode = _first(getattr(pool, "dilation", 1)), pool.ceil_mode
    sides = [n for n in _SIZES if n + 2 * p - d * (k - 1) - 1 >= 0]
    return all(-(-n // s) == _pool_size(n, k, s, p, d, ceil_mode) for n in sides)


def _conv_keeps_size_pooled_first(conv: nn.Module, s: int) -> bool:
    """Whether the conv at stride 1 on the ``ceil(n / s)`` map gives the strided conv's output size."""
    if isinstance(conv.padding, str):
        return conv.padding == "same"
    k, p, d = conv.kernel_size[0], conv.padding[0], conv.dilation[0]
    span = d * (k - 1)
    return all(-(-n // s) + 2 * p - span == (n + 2 * p - span - 1) // s + 1
               for n in _SIZES if n + 2 * p - span >= 1)


def _two_d(rule: Callable[[Site, RewriteContext], Rewrite | Skip]) -> SiteRewriter:
    def rewrite(site: Site, ctx: RewriteContext) -> Rewrite | Skip:
        if site.ndim != 2:
            return Skip(f"the method's layer is 2-D; this {site.ndim}-D subsampling is left as it is")
        return rule(site, ctx)

    rewrite.__name__ = getattr(rule, "__name__", "rewrite")
    return rewrite


def _dense_max(site: Site, kernel: object = None, padding: object = None) -> nn.MaxPool2d:
    pool = site.module
    return nn.MaxPool2d(pool.kernel_size if kernel is None else kernel, stride=1,
                        padding=pool.padding if padding is None else padding, dilation=pool.dilation)


def _dense_avg(pool: nn.Module) -> nn.AvgPool2d:
    return nn.AvgPool2d(pool.kernel_size, stride=1, padding=pool.padding, count_include_pad=pool.count_include_pad,
                        divisor_override=pool.divisor_override)


def _max_then(site: Site, ctx: RewriteContext, layer: nn.Module, use_choice: bool) -> Rewrite | Skip:
    """``MaxPool(k, s)`` -> ``MaxPool(k, 1)`` (the paper's window where it has one) + layer."""
    pool, choice = site.module, site.choice if use_choice else None
    if pool.return_indices:
        return Skip("returns indices (for max-unpooling); a dense pool + the method's layer would change what "
                    "they index")
    if choice is not None and choice.pool_kernel is not None:
        return Rewrite(replace=_dense_max(site, choice.pool_kernel, choice.pool_padding), after=(layer,))
    dense = _dense_max(site)
    if pool.ceil_mode:
        pad = _ceil_mode_pad(pool, site.factor)
        if isinstance(pad, Skip):
            return pad
        return Rewrite(before=(pad,), replace=dense, after=(layer,))
    return Rewrite(replace=dense, after=(layer,))


def _avg_then(site: Site, layer: nn.Module, replace: bool) -> Rewrite | Skip:
    """``AvgPool(k, s)`` -> the layer (``replace``, where sizes keep) or ``AvgPool(k, 1)`` + layer."""
    pool = site.module
    if replace and ((site.choice is not None and site.choice.blur_only) or keeps_ceil_size(pool, site.factor)):
        return Rewrite(replace=layer)
    if pool.ceil_mode:
        return Skip("ceil_mode average pool: a dense pool + the method's layer would change which windows are "
                    "averaged")
    return Rewrite(replace=_dense_avg(pool), after=(layer,))


def _conv_then(site: Site, ctx: RewriteContext, make: LayerFactory, use_choice: bool) -> Rewrite | Skip:
    """Conv at stride 1, its norm + activation, the layer; a pad-free 1x1 conv: the layer first."""
    keep = site.choice.keep_stride if use_choice and site.choice is not None else 1
    if site.factor % keep:
        return Skip(f"the paper's kept stride {keep} does not divide the stride {site.factor}")
    if keep == 1 and _pad_free_pointwise(site.module):
        layer = make(site, ctx, site.in_channels, site.factor)
        return layer if isinstance(layer, Skip) else Rewrite(before=(layer,), stride=(1, 1))
    layer = make(site, ctx, site.out_channels, site.factor // keep)
    return layer if isinstance(layer, Skip) else Rewrite(stride=(keep, keep), after=(layer,), after_followers=True)


def after_rewriters(make: LayerFactory, *, replace_max: bool = False) -> dict[str, SiteRewriter]:
    """The blurpool recipe's placement with the method's layer in place of the blur (see the module doc)."""

    def conv(site: Site, ctx: RewriteContext) -> Rewrite | Skip:
        return _conv_then(site, ctx, make, use_choice=True)

    def max_pool(site: Site, ctx: RewriteContext) -> Rewrite | Skip:
        layer = make(site, ctx, site.in_channels, site.factor)
        if isinstance(layer, Skip):
            return layer
        if replace_max and not site.module.return_indices and keeps_ceil_size(site.module, site.factor):
            return Rewrite(replace=layer)
        return _max_then(site, ctx, layer, use_choice=True)

    def avg_pool(site: Site, ctx: RewriteContext) -> Rewrite | Skip:
        layer = make(site, ctx, site.in_channels, site.factor)
        return layer if isinstance(layer, Skip) else _avg_then(site, layer, replace=True)

    return {"conv": _two_d(conv), "max_pool": _two_d(max_pool), "avg_pool": _two_d(avg_pool)}


def sampler_rewriters(make: LayerFactory, *, lpf: bool) -> dict[str, SiteRewriter]:
    """APS's placement with the method's sampler (see the module doc); ``lpf``: it blurs first."""

    def conv(site: Site, ctx: RewriteContext) -> Rewrite | Skip:
        return _conv_then(site, ctx, make, use_choice=False)

    def max_pool(site: Site, ctx: RewriteContext) -> Rewrite | Skip:
        layer = make(site, ctx, site.in_channels, site.factor)
        if isinstance(layer, Skip):
            return layer
        if ctx.circular and not site.module.return_indices:  # circular padding gives ceil(H / s) by itself
            return Rewrite(replace=_dense_max(site), after=(layer,))
        return _max_then(site, ctx, layer, use_choice=False)

    def avg_pool(site: Site, ctx: RewriteContext) -> Rewrite | Skip:
        layer = make(site, ctx, site.in_channels, site.factor)
        return layer if isinstance(layer, Skip) else _avg_then(site, layer, replace=lpf)

    return {"conv": _two_d(conv), "max_pool": _two_d(max_pool), "avg_pool": _two_d(avg_pool)}


def pool_first_rewriters(make: LayerFactory) -> dict[str, SiteRewriter]:
    """FLC's and ASAP's placement (see the module doc)."""

    def conv(site: Site, ctx: RewriteContext) -> Rewrite | Skip:
        if _conv_keeps_size_pooled_first(site.module, site.factor):
            layer = make(site, ctx, site.in_channels, site.factor)
            return layer if isinstance(layer, Skip) else Rewrite(before=(layer,), stride=(1, 1))
        layer = make(site, ctx, site.out_channels, site.factor)
        return layer if isinstance(layer, Skip) else Rewrite(stride=(1, 1), after=(layer,))

    def pool(site: Site, ctx: RewriteContext) -> Rewrite | Skip:
        layer = make(site, ctx, site.in_channels, site.factor)
        if isinstance(layer, Skip):
            return layer
        if not getattr(site.module, "return_indices", False) and keeps_ceil_size(site.module, site.factor):
            return Rewrite(replace=layer)
        if isinstance(site.module, nn.MaxPool2d):
            return _max_then(site, ctx, layer, use_choice=False)
        return _avg_then(site, layer, replace=False)

    return {"conv": _two_d(conv), "max_pool": _two_d(pool), "avg_pool": _two_d(pool)}

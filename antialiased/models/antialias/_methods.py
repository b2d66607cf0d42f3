"""The anti-aliasing methods, as a table: method name -> how each kind of subsampling site is rewritten.

``METHODS`` is the one place that knows the methods; ``antialias(method=...)`` validates against
it and dispatches through it. Each entry is a :class:`~._types.Method` whose ``rewriters`` map a
site kind (``"conv"``, ``"max_pool"``, ``"avg_pool"``) to a function ``(site, ctx) -> Rewrite |
Skip`` that says what the site becomes (see ``_types``); the engine finds the sites, calls the
rewriters and realizes their answers while keeping the state-dict keys.

**Adding a method** (e.g. APS): write rewriters that return :class:`~._types.Rewrite` records
(their new layers are any modules without saved state; ``ctx.blur(channels, stride)`` makes a
BlurPool), optionally ``prepare`` / ``finalize`` hooks for model-wide work (circular padding,
wiring a phase between layers), and register the :class:`~._types.Method` with
:func:`register_method`, from the module that defines it. Set ``converts_stem=True`` if the
stem must be converted too and ``supports_circular=True`` if it accepts ``circular=True``.

Methods here:

- ``"blurpool"``, the paper's recipe: ``MaxPool(k, s)`` -> ``MaxPool(k, 1)`` + blur(s);
  strided conv -> the conv at stride 1, its normalization and activation, then blur(s) (a 1x1
  conv is blurred first: the same function, computed at the low resolution); ``AvgPool(k, s)`` ->
  blur(s) (or ``AvgPool(k, 1)`` + blur(s) where the blur alone would change the output size).
- ``"blur-first"``, MosaicML composer's cheaper placement: a strided conv keeps its stride and
  a stride-1 blur runs before it; pools as ``"blurpool"``.

Both blur after every upsampling (``up_rewriters``: a stride-1 blur behind the transposed conv,
interpolation or pixel shuffle, ``_upsample.BLUR_AFTER``); the APS methods upsample onto the
matching subsampling's phase (``_upsample.polyphase_rules``). A method's upsampling rule is that one
entry; a method without one leaves up sites alone, with that reason.

Example:
    >>> sorted(METHODS)  # with issue 19's, registered by the package (_field_methods, _lps_method)
    ['adaptive', 'aps', 'aps-lpf', 'asap', 'blur-first', 'blurpool', 'flc', 'lps', 'lps-lpf', 'tips', 'wavelet']
    >>> from torch import nn
    >>> from antialiased.models.antialias._types import RewriteContext, Site
    >>> site = Site("layer2.0.conv1", "conv", nn.Conv2d(64, 128, 3, 2, 1), (2, 2), 64, 128)
    >>> r = METHODS["blurpool"].rewriters["conv"](site, RewriteContext(filter_size=4))
    >>> r.stride, r.after_followers, r.after[0].stride
    ((1, 1), True, 2)
"""
from __future__ import annotations

from typing import Sequence

from torch import nn

from antialiased.errors import ConfigError
from antialiased.models.antialias._aps import APS, APS_LPF
from antialiased.models.antialias._types import Method, Rewrite, RewriteContext, Site, Skip
from antialiased.models.antialias._upsample import BLUR_AFTER

__all__ = ["METHODS", "register_method", "check_method"]

_MAX_POOL = {1: nn.MaxPool1d, 2: nn.MaxPool2d, 3: nn.MaxPool3d}
_AVG_POOL = {1: nn.AvgPool1d, 2: nn.AvgPool2d, 3: nn.AvgPool3d}
_PAD = {1: nn.ConstantPad1d, 2: nn.ConstantPad2d, 3: nn.ConstantPad3d}
# Sizes over which a pool's replacement must give the original's output size.
_CHECK_SIZES = range(2, 41)


def _ones(site: Site) -> tuple[int, ...]:
    return (1,) * site.ndim


def _is_pointwise(module: nn.Module) -> bool:
    return all(k == 1 for k in getattr(module, "kernel_size", (0,)))


def _conv_then_blur(site: Site, ctx: RewriteContext) -> Rewrite | Skip:
    """The paper's strided conv: conv at stride 1, its norm + activation, blur(s); 1x1: blur first."""
    keep = site.choice.keep_stride if site.choice is not None else 1
    if site.factor % keep:
        return Skip(f"the paper's kept stride {keep} does not divide the stride {site.factor}")
    if _is_pointwise(site.module) and keep == 1:
        # A 1x1 conv commutes with the blur: blurring its (smaller) input first is the same function.
        return Rewrite(before=(ctx.blur(site.in_channels, site.factor, site.ndim),), stride=_ones(site))
    blur = ctx.blur(site.out_channels, site.factor // keep, site.ndim)
    return Rewrite(stride=(keep,) * site.ndim, after=(blur,), after_followers=True)


def _blur_then_conv(site: Site, ctx: RewriteContext) -> Rewrite | Skip:
    """composer's blur-first: a stride-1 blur, then the unchanged strided conv (1x1: as the paper)."""
    if _is_pointwise(site.module):
        return _conv_then_blur(site, ctx)
    return Rewrite(before=(ctx.blur(site.in_channels, 1, site.ndim),))


def _first(value: object) -> int:
    return value[0] if isinstance(value, (tuple, list)) else value


def _out_size(module: nn.Module, n: int | None) -> int | None:
    """Output length along one dimension (PyTorch's pooling formula); None if the window does not fit."""
    if n is None:
        return None
    if hasattr(module, "filt_size"):  # a blur layer: (n + pads - f) // s + 1, pads = f - 1 + 2 pad_off
        return (n - 1 + 2 * module.pad_off) // module.stride + 1
    if isinstance(module, nn.modules.padding._ConstantPadNd):
        return n + module.padding[0] + module.padding[1]
    k, s, p = _first(module.kernel_size), _first(module.stride), _first(module.padding)
    d = _first(getattr(module, "dilation", 1))
    span = n + 2 * p - d * (k - 1) - 1
    if span < 0:
        return None
    out = (span + (s - 1 if module.ceil_mode else 0)) // s + 1
    if module.ceil_mode and (out - 1) * s >= n + p:
        out -= 1
    return out if out > 0 else None


def _output_sizes(modules: Sequence[nn.Module]) -> list[int | None]:
    sizes = []
    for n in _CHECK_SIZES:
        for module in modules:
            n = _out_size(module, n)
        sizes.append(n)
    return sizes


def _keeps_sizes(original: nn.Module, modules: Sequence[nn.Module]) -> bool:
    """Whether ``modules`` give ``original``'s output size at every size where ``original`` works."""
    want, got = _output_sizes([original]), _output_sizes(modules)
    return all(w is None or w == g for w, g in zip(want, got))


def _dense_max_then_blur(site: Site, ctx: RewriteContext) -> Rewrite | Skip:
    """``MaxPool(k, s)`` -> ``MaxPool(k, 1)`` + blur(s): the max evaluated densely, then blur-subsample."""
    pool = site.module
    if getattr(pool, "return_indices", False):
        return Skip("returns indices (for max-unpooling); a dense pool + blur would change what they index")
    choice = site.choice
    kernel = choice.pool_kernel if choice is not None and choice.pool_kernel is not None else pool.kernel_size
    padding = choice.pool_padding if choice is not None and choice.pool_padding is not None else pool.padding
    dense = _MAX_POOL[site.ndim](kernel, stride=1, padding=padding, dilation=pool.dilation)
    blur = ctx.blur(site.in_channels, site.factor, site.ndim)
    if choice is None and pool.ceil_mode and not _keeps_sizes(pool, (dense, blur)):
        # ceil_mode adds a last, partial window: pad the right edge so that the dense pool has it too.
        pad = _PAD[site.ndim]((0, site.factor - 1) * site.ndim, float("-inf"))
        if _keeps_sizes(pool, (pad, dense, blur)):
            return Rewrite(before=(pad,), replace=dense, after=(blur,))
    return Rewrite(replace=dense, after=(blur,))


def _avg_to_blur(site: Site, ctx: RewriteContext) -> Rewrite | Skip:
    """``AvgPool(k, s)`` -> blur(s), the paper's; ``AvgPool(k, 1)`` + blur(s) if sizes would change."""
    pool = site.module
    blur = ctx.blur(site.in_channels, site.factor, site.ndim)
    if (site.choice is not None and site.choice.blur_only) or _keeps_sizes(pool, (blur,)):
        return Rewrite(replace=blur)
    dense = _AVG_POOL[site.ndim](
        pool.kernel_size, stride=1, padding=pool.padding, count_include_pad=pool.count_include_pad,
        **({"divisor_override": pool.divisor_override} if site.ndim > 1 else {}),
    )
    return Rewrite(replace=dense, after=(blur,))


METHODS: dict[str, Method] = {}


def register_method(method: Method) -> Method:
    """Add ``method`` to :data:`METHODS` (names are unique: a second registration is an error)."""
    if method.name in METHODS:
        raise ConfigError(f"an anti-aliasing method named {method.name!r} is already registered")
    METHODS[method.name] = method
    return method


def check_method(name: object) -> Method:
    """The method called ``name``, or a ConfigError listing the valid names."""
    if not isinstance(name, str) or name not in METHODS:
        raise ConfigError(f"unknown anti-aliasing method {name!r}; valid methods: {', '.join(sorted(METHODS))}")
    return METHODS[name]


register_method(Method(
    name="blurpool",
    description="the paper's recipe: dense max / stride-1 conv + norm + activation, then blur-subsample",
    rewriters={"conv": _conv_then_blur, "max_pool": _dense_max_then_blur, "avg_pool": _avg_to_blur},
    up_rewriters=BLUR_AFTER,
))
register_method(Method(
    name="blur-first",
    description="composer's cheaper placement: a stride-1 blur before each strided conv; pools as blurpool",
    rewriters={"conv": _blur_then_conv, "max_pool": _dense_max_then_blur, "avg_pool": _avg_to_blur},
    up_rewriters=BLUR_AFTER,
))
register_method(APS)  # adaptive polyphase sampling (_aps)
register_method(APS_LPF)

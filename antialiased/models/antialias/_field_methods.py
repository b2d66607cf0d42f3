"""Issue 19's other methods as registrations: adaptive (DDAC), flc, asap, wavelet (Haar) and tips.

Each is a layer factory and the placement its authors use (``_placements``):

============  =========================================  ===========================================
method        layer (``antialiased.layers``)             placement (as the authors' ResNets)
============  =========================================  ===========================================
adaptive      ``AdaptiveBlurPool(C, s, k, groups)``      the blurpool recipe, the adaptive filter in
                                                         place of the blur (stem kept strided)
flc           ``FLCPool(s, crop)``                       before each strided conv (run at stride 1);
                                                         replaces max and average pools; stem too
asap          ``ASAPPool(s, crop)`` (one-pixel pad)      as flc
wavelet       ``HaarPool(s)`` (LL band, s = 2, 4, ...)   the blurpool recipe, the LL band in place of
                                                         the blur; replaces max pools (stem kept)
tips          ``TranslationInvariantPolyphaseSampling``  APS's (stride 1, norm, act, then TIPS; the
                                                         stem too)
============  =========================================  ===========================================

None of them has an upsampling rule (their papers define none): up sites are left alone, listed
with that reason. Only adaptive has a filter size (3, 5 or 7; default 3); the others accept an
``_lpf<N>`` name's N and ignore it.

Example:
    >>> import torch, torchvision
    >>> from antialiased.models.antialias import antialias
    >>> net = antialias(torchvision.models.resnet18(num_classes=4), method="flc")
    >>> [(c.path, c.after) for c in net.antialias_summary.changed][:2]  # doctest: +NORMALIZE_WHITESPACE
    [('conv1', 'FLCPool(stride=(2, 2)) -> Conv2d(3->64, k=7, s=1, p=3)'), ('maxpool', 'FLCPool(stride=(2, 2))')]
    >>> net.eval()(torch.rand(1, 3, 32, 32)).shape
    torch.Size([1, 4])
"""
from __future__ import annotations

import math

import torch
from torch import nn

from antialiased.errors import ConfigError
from antialiased.layers import ASAPPool, FLCPool, HaarPool, TranslationInvariantPolyphaseSampling
from antialiased.layers.adaptive import NORMALIZATIONS, AdaptiveBlurPool
from antialiased.layers.fourier import CROP_RULES
from antialiased.models.antialias._placements import after_rewriters, pool_first_rewriters, sampler_rewriters
from antialiased.models.antialias._train_rules import ParamGroupRule
from antialiased.models.antialias._types import Method, MethodOption, RewriteContext, Site, Skip

__all__ = ["ADAPTIVE", "FLC", "ASAP", "WAVELET", "TIPS", "PublishedCropFLCPool", "PublishedCropASAPPool"]

DEFAULT_GROUPS = 8  # the published ResNet-101 (79.0 top-1 / 91.8 consistency with k=3)


# -- adaptive (DDAC) ----------------------------------------------------------------------------

def _check_groups(value: object) -> int | None:
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
        raise ConfigError(f"groups must be a positive integer (channel groups sharing one predicted filter; the "
                          f"paper's {DEFAULT_GROUPS}) or None (each layer: the largest divisor of its channels up to "
                          f"{DEFAULT_GROUPS}), got {value!r}")
    return value


def _check_normalize(value: object) -> str:
    if value not in NORMALIZATIONS:
        raise ConfigError(f"normalize must be one of {NORMALIZATIONS} ('joint': the authors' softmax over all "
                          f"groups' taps), got {value!r}")
    return value


def _groups(site: Site, channels: int, groups: int | None) -> int:
    if groups is None:  # the default adapts to layers whose width 8 does not divide (ShuffleNet's 116)
        return math.gcd(channels, DEFAULT_GROUPS)
    if channels % groups:
        raise ConfigError(f"groups={groups} does not divide the {channels} channels at {site.path} (DDAC groups "
                          f"consecutive channels); use groups={math.gcd(channels, groups)} or leave groups out (each "
                          f"layer then uses the largest divisor of its channels up to {DEFAULT_GROUPS})")
    return groups


def _adaptive(site: Site, ctx: RewriteContext, channels: int, stride: int) -> nn.Module:
    options = ctx.method_options
    return AdaptiveBlurPool(channels, stride, ctx.filter_size, _groups(site, channels, options["groups"]),
                            ctx.pad_type, normalize=options["normalize"])


ADAPTIVE = Method(
    name="adaptive",
    description="DDAC content-aware filters: a conv + BN + softmax predicts each position's low-pass filter, "
                "then subsample (in place of the blur)",
    rewriters=after_rewriters(_adaptive), options=("filter_size", "pad_type"), filter_sizes=(3, 5, 7),
    default_filter_size=3,
    method_options=(
        MethodOption("groups", None, _check_groups,
                     f"channel groups sharing a predicted filter (paper: {DEFAULT_GROUPS}); None: {DEFAULT_GROUPS}, "
                     f"or the largest divisor of a layer's channels below it"),
        MethodOption("normalize", "joint", _check_normalize,
                     "'joint' (the authors' softmax over all groups' taps) or 'group' (unit gain per group)"),
    ),
)


# -- flc, asap (Fourier low-cut) -----------------------------------------------------------------

class _PublishedCropCheck:
    """The published indices keep ``n/2 + 1`` rows on some sides: say so instead of a shape error further on."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = super().forward(x)  # type: ignore[misc]
        want = tuple(-(-n // s) for n, s in zip(x.shape[-2:], self.stride))
        got = tuple(y.shape[-2:])
        if got != want:
            raise ConfigError(
                f"{type(self).__name__} with crop='authors' maps a {x.shape[-2]}x{x.shape[-1]} map to "
                f"{got[0]}x{got[1]}, not the {want[0]}x{want[1]} of the subsampling it replaces (the published "
                f"indices fit sides divisible by 4); use crop='centered' (the default) or inputs whose sides are "
                f"multiples of 4 times the network's stride here")
        return y


class PublishedCropFLCPool(_PublishedCropCheck, FLCPool):
    """``FLCPool(crop='authors')`` that refuses a map whose published crop would not have ``ceil(n/2)`` samples."""


class PublishedCropASAPPool(_PublishedCropCheck, ASAPPool):
    """``ASAPPool(crop='authors')`` that refuses a map whose published crop would not have ``ceil(n/2)`` samples."""


def _check_crop(value: object) -> str:
    if value not in CROP_RULES:
        raise ConfigError(f"crop must be one of {CROP_RULES} ('centered' defines every size and stride; 'authors' "
                          f"is the published stride-2 indices), got {value!r}")
    return value


def _fourier(plain: type, published: type):
    def make(site: Site, ctx: RewriteContext, channels: int, stride: int) -> nn.Module | Skip:
        crop = ctx.method_options["crop"]
        if crop == "centered":
            return plain(stride)
        if stride != 2:
            return Skip(f"crop='authors' is the published stride-2 crop; this stride-{stride} subsampling is left as "
                        f"it is (crop='centered' converts it)")
        return published(stride, crop=crop)

    return make


_CROP = MethodOption("crop", "centered", _check_crop,
                     "'centered' (the ceil(n/s) lowest frequencies: every size and stride) or 'authors' (the "
                     "published indices; sides divisible by 4, stride 2)")
FLC = Method(
    name="flc",
    description="FrequencyLowCut pooling: keep the lowest frequencies of the 2-D FFT (before each strided conv, "
                "in place of pools)",
    rewriters=pool_first_rewriters(_fourier(FLCPool, PublishedCropFLCPool)), converts_stem=True, options=(),
    method_options=(_CROP,),
)
ASAP = Method(
    name="asap",
    description="ASAP: FLC with a Hamming window on the spectrum after a one-pixel pad (placed as flc)",
    rewriters=pool_first_rewriters(_fourier(ASAPPool, PublishedCropASAPPool)), converts_stem=True, options=(),
    method_options=(_CROP,),
)


# -- wavelet (Haar LL band) ----------------------------------------------------------------------

def _haar(site: Site, ctx: RewriteContext, channels: int, stride: int) -> nn.Module | Skip:
    if stride & (stride - 1):
        return Skip(f"the Haar DWT subsamples by 2 per level: stride {stride} is not a power of 2, so it is left as "
                    f"it is")
    return HaarPool(stride)


WAVELET = Method(
    name="wavelet",
    description="WaveCNet's Haar DWT: the low-frequency (LL) band as the subsampling (in place of the blur; "
                "replaces max pools)",
    rewriters=after_rewriters(_haar, replace_max=True), options=(),
)


# -- tips ----------------------------------------------------------------------------------------

def _check_kernel(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1 or value % 2 == 0:
        raise ConfigError(f"kernel_size must be a positive odd integer (TIPS's centred depthwise conv; the paper's 3), "
                          f"got {value!r}")
    return value


def _tips(site: Site, ctx: RewriteContext, channels: int, stride: int) -> nn.Module:
    return TranslationInvariantPolyphaseSampling(channels, stride, kernel_size=ctx.method_options["kernel_size"],
                                                 pad_type=ctx.pad_type)


TIPS = Method(
    name="tips",
    description="TIPS: a learned per-channel softmax mix of the polyphase components (placed as APS)",
    rewriters=sampler_rewriters(_tips, lpf=False), converts_stem=True, options=("pad_type",),
    method_options=(MethodOption("kernel_size", 3, _check_kernel, "the depthwise conv's size (odd; the paper's 3)"),),
    training=(ParamGroupRule(TranslationInvariantPolyphaseSampling, {"weight_decay": 0.0},
                             source="the release trains with weight decay 0 (train_test.py's default)"),),
)

"""The LPS methods: learnable polyphase sampling (Rojas-Gomez et al., NeurIPS 2022) in APS's places.

``"lps"`` and ``"lps-lpf"`` (the binomial blur of ``filter_size`` taps first, the authors'
default) rewrite every subsampling as ``"aps"`` / ``"aps-lpf"`` do (stride 1, the normalization
and activation, then the sampler; the stem included; ``circular=True`` pads every layer
circularly), with :class:`~antialiased.layers.LearnablePolyphaseSampling` as the sampler: its
scorer picks the component (argmax in eval, a Gumbel-softmax mixture in training). Branches that
meet share one phase and upsamplings get the phase of the subsamplings they undo
(``_aps_phases.share_model_phases``), so in eval mode a converted model with ``circular=True`` is
exactly invariant (a classifier) or equivariant (a segmentation network) to circular shifts, as APS.

**Upsampling (LPU).** Each up site becomes its polyphase twin (as APS-U) that also takes the
training-time soft phase: :class:`LearnablePolyphaseInterpolation` and
:class:`LearnablePolyphaseConvTranspose2d` compute ``sum_p w_p up_p(x)``, the twin onto each
phase ``p`` weighted by the paired sampler's Gumbel weights. Since the upsampling is linear,
that is the authors' LPU (zero-insertion of each component's copy scaled by its weight,
``lps_upsampleV2``) followed by the layer's own kernel; with an integer phase (eval) it is APS-U.

**Training.** The scorer trains without weight decay and the Gumbel temperature is annealed per
epoch (the authors' ``configs/tau_stepdecay_limit.json``: x0.85 every 10 epochs, at least 0.025);
both are the method's ``training`` records (``_train_rules``), applied by ``antialiased.training``.

Example:
    >>> import torch
    >>> up = LearnablePolyphaseInterpolation(2, mode="nearest")
    >>> x, weights = torch.randn(1, 2, 3, 3), torch.tensor([[0.25, 0.75, 0.0, 0.0]])
    >>> mixed = 0.25 * up(x, phase=torch.tensor([0])) + 0.75 * up(x, phase=torch.tensor([1]))
    >>> torch.allclose(up(x, phase=weights), mixed)
    True
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from antialiased.errors import ConfigError
from antialiased.layers import LearnablePolyphaseSampling
from antialiased.layers.polyphase import PolyphaseConvTranspose2d, PolyphaseUpsampling
from antialiased.models.antialias._aps import _finalize as _aps_finalize
from antialiased.models.antialias._placements import sampler_rewriters
from antialiased.models.antialias._probe import ProbeError, default_input_sizes, probe
from antialiased.models.antialias._train_rules import BufferSchedule, ParamGroupRule, step_decay
from antialiased.models.antialias._types import Method, MethodOption, RewriteContext, Site, SiteRewriter
from antialiased.models.antialias._upsample import polyphase_rules

__all__ = ["LPS", "LPS_LPF", "LearnablePolyphaseInterpolation", "LearnablePolyphaseConvTranspose2d"]


def _mixture(up: nn.Module, call: Any, x: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
    """``sum_p phase[:, p] * call(x, p)``: the twin onto each phase, weighted (a float phase)."""
    sh, sw = up.stride
    n = x.shape[0]
    if phase.shape != (n, sh * sw):
        raise ConfigError(f"a soft phase must have shape ({n}, {sh * sw}) (the paired sampler's Gumbel weights), "
                          f"got {tuple(phase.shape)}")
    out = None
    for p in range(sh * sw):
        index = torch.full((n,), p, dtype=torch.long, device=x.device)
        term = phase[:, p].to(x.dtype).view(n, 1, 1, 1) * call(x, index)
        out = term if out is None else out + term
    return out


class LearnablePolyphaseInterpolation(PolyphaseUpsampling):
    """:class:`~antialiased.layers.PolyphaseUpsampling` that also takes a soft phase (LPS in training).

    An integer phase (or None) computes exactly ``PolyphaseUpsampling``; ``(N, s_h s_w)`` weights
    give the weighted sum of its outputs onto each phase (the module doc). No parameters.

    Shape:
        - Input: :math:`(N, C, H, W)`; ``phase`` :math:`(N,)` integer or :math:`(N, s_h s_w)` weights
        - Output: as :class:`~antialiased.layers.PolyphaseUpsampling`
    """

    def forward(self, x: torch.Tensor, phase: torch.Tensor | None = None, size: object = None) -> torch.Tensor:
        if phase is None or not phase.is_floating_point():
            return super().forward(x, phase, size)
        return _mixture(self, lambda inp, index: super(LearnablePolyphaseInterpolation, self).forward(inp, index, size),
                        x, phase)


class LearnablePolyphaseConvTranspose2d(PolyphaseConvTranspose2d):
    """:class:`~antialiased.layers.PolyphaseConvTranspose2d` that also takes a soft phase (LPS in training).

    Holds the transposed conv's own ``weight`` and ``bias`` (:meth:`from_conv`: the same objects,
    the same keys). Integer phases as the parent; weights: the weighted sum over phases.

    Shape:
        - Input: :math:`(N, C_{in}, H, W)`; ``phase`` :math:`(N,)` integer or :math:`(N, s_h s_w)` weights
        - Output: as :class:`~antialiased.layers.PolyphaseConvTranspose2d`
    """

    def forward(self, input: torch.Tensor, output_size: list[int] | None = None,
                phase: torch.Tensor | None = None) -> torch.Tensor:
        if phase is None or not phase.is_floating_point():
            return super().forward(input, output_size, phase)
        parent = super(LearnablePolyphaseConvTranspose2d, self).forward
        return _mixture(self, lambda inp, index: parent(inp, output_size, index), input, phase)


def _up_rules(lpf: bool) -> dict[str, SiteRewriter]:
    """APS-U's upsampling rule with the learnable twins (LPU): the same sites, refusals and options."""
    return polyphase_rules(lpf, conv=LearnablePolyphaseConvTranspose2d, upsampling=LearnablePolyphaseInterpolation,
                           name="learnable_polyphase_upsampling")


def _followers(model: nn.Module) -> list[LearnablePolyphaseSampling]:
    """The samplers that are handed another's phase in the converted model's forward (one probe run)."""
    given: dict[str, bool] = {}

    def record(path: str):
        def hook(module: nn.Module, args: tuple, kwargs: dict) -> None:
            phase = kwargs.get("phase", args[1] if len(args) > 1 else None)
            given[path] = given.get(path, True) and phase is not None
        return hook

    layers = {path: m for path, m in model.named_modules() if isinstance(m, LearnablePolyphaseSampling)}
    handles = [m.register_forward_pre_hook(record(path), with_kwargs=True) for path, m in layers.items()]
    try:
        for size in default_input_sizes(model):
            try:
                probe(model, size)
                break
            except ProbeError:
                given.clear()
    finally:
        for handle in handles:
            handle.remove()
    return [layers[path] for path, follows in given.items() if follows]


def _finalize(model: nn.Module, ctx: RewriteContext) -> nn.Module:
    """APS's model-wide steps (circular padding, phase hand-off), then: a sampler handed another's phase
    (a ResNet shortcut's) never runs its scorer, whose parameters are frozen (``requires_grad=False``)
    so that they count as unused nowhere (DistributedDataParallel needs no ``find_unused_parameters``)."""
    model = _aps_finalize(model, ctx)
    for layer in _followers(model):
        layer.scorer.requires_grad_(False)
    return model


def _check_hidden(value: object) -> int | float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0 or (
            isinstance(value, float) and value > 1):
        raise ConfigError(f"hidden_channels must be a positive integer (every scorer that wide), a fraction in (0, 1] "
                          f"of each layer's channels (the authors' ImageNet ResNet-18: 0.125) or None (each layer's "
                          f"channels, the authors' default), got {value!r}")
    return value


def _check_scorer_padding(value: object) -> str:
    if value not in ("circular", "zeros"):
        raise ConfigError(f"scorer_padding must be 'circular' (the authors' default; exact invariance) or 'zeros', "
                          f"got {value!r}")
    return value


def _hidden(channels: int, value: int | float | None) -> int | None:
    if isinstance(value, float):
        return max(1, round(channels * value))
    return value


def _sampler(lpf: bool):
    def make(site: Site, ctx: RewriteContext, channels: int, stride: int) -> nn.Module:
        options = ctx.method_options
        return LearnablePolyphaseSampling(
            channels, stride, hidden_channels=_hidden(channels, options["hidden_channels"]),
            filt_size=ctx.filter_size if lpf else 1, circular=ctx.circular,
            pad_type=None if ctx.circular or not lpf else ctx.pad_type, scorer_padding=options["scorer_padding"],
        )

    return make


LPS_OPTIONS = (
    MethodOption("hidden_channels", None, _check_hidden,
                 "the scorer's width: None (each layer's channels, the authors' default), an int, or a fraction "
                 "of the channels (0.125: the authors' ImageNet ResNet-18)"),
    MethodOption("scorer_padding", "circular", _check_scorer_padding,
                 "padding of the scorer's convs within each component: 'circular' (exact invariance) or 'zeros'"),
)
LPS_TRAINING = (
    ParamGroupRule(LearnablePolyphaseSampling, {"weight_decay": 0.0}, prefix="scorer.",
                   source="the authors' optimizer puts the scorer (component_selection) in a group with weight "
                          "decay 0"),
    BufferSchedule(LearnablePolyphaseSampling, "gumbel_tau", step_decay(0.85, every=10, floor=0.025),
                   source="the authors' configs/tau_stepdecay_limit.json: x0.85 every 10 epochs, at least 0.025",
                   initial="initial_tau"),
)


def _method(name: str, lpf: bool, description: str) -> Method:
    return Method(
        name=name, description=description, rewriters=sampler_rewriters(_sampler(lpf), lpf=lpf),
        converts_stem=True, supports_circular=True, finalize=_finalize, up_rewriters=_up_rules(lpf),
        options=("filter_size", "pad_type", "circular") if lpf else ("circular",),
        method_options=LPS_OPTIONS, training=LPS_TRAINING,
    )


LPS = _method("lps", False, "learnable polyphase sampling: stride 1, then a scorer picks the polyphase component")
LPS_LPF = _method("lps-lpf", True, "LPS with the blur before it (the authors' default LPS-LPF)")

"""The engine's interface: what a site is, how it is recognized, and how a method says to rewrite it.

A *site* is one operation that changes the resolution: it subsamples (direction ``"down"``: a
strided convolution, a strided max or average pool) or upsamples (``"up"``: a strided transposed
convolution, an interpolation, a pixel shuffle), as a layer or a functional call. Each kind of
site is one :class:`SiteRule`, registered once in :data:`SITE_RULES` (``_sites`` registers them):
how it is recognized among layers and among a forward's calls, and its direction. The engine finds
the sites; a :class:`Method` maps each site kind to a *rewriter* (``rewriters`` for down sites,
``up_rewriters`` for up sites), a function ``(site, ctx) -> Rewrite | Skip`` that returns what
the site becomes, without touching the model. The engine then realizes every :class:`Rewrite` while keeping the
model's state-dict keys (see ``_engine``), and records it in the summary.

A rewrite reads: ``before...`` -> the operation (``replace``-d, or the original module with its
``stride`` set) -> [the operation's normalization and activation, if ``after_followers``] ->
``after...``. New layers come from ``ctx.blur(channels, stride)`` (BlurPool, not saved in the
state dict) or are any other module; a learned one's parameters and buffers are saved under the
name the engine gives the inserted module (every other key stays the baseline's).

Example:
    >>> from torch import nn
    >>> site = Site(path="features.0", kind="conv", module=nn.Conv2d(3, 8, 3, 2, 1), stride=(2, 2),
    ...             in_channels=3, out_channels=8)
    >>> ctx = RewriteContext(filter_size=3)
    >>> r = Rewrite(stride=(1, 1), after=(ctx.blur(8, 2),), after_followers=True)
    >>> r.after[0]
    BlurPool(8, pad_type='reflect', filt_size=3, stride=2, pad_off=0, persistent=False)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Union

from torch import nn

from antialiased.layers import MAX_FILTER_SIZE, BlurPool, BlurPool1D, BlurPool3D

__all__ = [
    "DIRECTIONS",
    "SiteRule",
    "SITE_RULES",
    "SITE_KINDS",
    "register_site_rule",
    "PaperChoice",
    "Site",
    "Rewrite",
    "Skip",
    "RewriteContext",
    "SiteRewriter",
    "ModelHook",
    "MethodOption",
    "Method",
]

#: A site subsamples (``"down"``) or upsamples (``"up"``).
DIRECTIONS = ("down", "up")


@dataclass(frozen=True)
class SiteRule:
    """One kind of site: how the engine recognizes it, and its direction (one registration per kind).

    Attributes:
        kind: the name (``"conv"``, ``"interpolate"``, ...): a key of ``Method.rewriters`` or
            ``Method.up_rewriters``, and the summary's kind.
        direction: ``"down"`` or ``"up"``.
        description: one line for the docs.
        layer: which layers are of this kind (a type test).
        read_layer: ``(path, layer) -> Found | None``: the record of such a layer (its stride or
            factor), or None where it does not change the resolution (stride 1).
        functions: the functional calls of this kind (graph targets) -> spatial dimensions.
        read_call: ``(path, node, ndim) -> Found | None``: the record of such a call.
        call_layer: ``Found -> nn.Module``: the layer computing the same as a call, so that every
            site is rewritten as a layer (None: calls are listed, never rewritten).
        out_channels: ``(layer, in_channels) -> int`` (default: what the layer declares, else
            ``in_channels``).
    """

    kind: str
    direction: str
    description: str
    layer: Callable[[nn.Module], bool]
    read_layer: Callable[[str, nn.Module], Any]
    functions: Mapping[object, int] = field(default_factory=dict)
    read_call: Callable[..., Any] | None = None
    call_layer: Callable[[Any], nn.Module] | None = None
    out_channels: Callable[[nn.Module, int], int] | None = None


#: kind -> rule: the one place that knows the site kinds (filled by ``_sites``).
SITE_RULES: dict[str, SiteRule] = {}
#: The kinds of site a method may rewrite (a live view of :data:`SITE_RULES`).
SITE_KINDS = SITE_RULES.keys()


def register_site_rule(rule: SiteRule) -> SiteRule:
    """Add ``rule`` to :data:`SITE_RULES` (kinds are unique; the direction must be one of :data:`DIRECTIONS`)."""
    if rule.kind in SITE_RULES:
        raise ValueError(f"a site rule for {rule.kind!r} is already registered")
    if rule.direction not in DIRECTIONS:
        raise ValueError(f"site rule {rule.kind!r}: direction must be one of {DIRECTIONS}, got {rule.direction!r}")
    SITE_RULES[rule.kind] = rule
    return rule

_BLUR_BY_NDIM = {1: BlurPool1D, 2: BlurPool, 3: BlurPool3D}


@dataclass(frozen=True)
class PaperChoice:
    """The paper's choice for one site of one of its architectures (see ``_paper.PAPER_CHOICES``).

    Attributes:
        note: what the paper does there, in words (for the summary and the docs).
        keep_stride: stride the conv keeps (AlexNet's conv1: 4 -> 2, the blur does the rest).
        convert_stem: convert this site even though it reads the image (AlexNet's conv1).
        pool_kernel, pool_padding: the dense max-pool's window (ResNet's stem: 2, 0).
        blur_only: an average pool becomes the blur alone (DenseNet's transitions).
    """

    note: str
    keep_stride: int = 1
    convert_stem: bool = False
    pool_kernel: int | None = None
    pool_padding: int | None = None
    blur_only: bool = False


@dataclass(frozen=True)
class Site:
    """One site of the model (a subsampling or an upsampling), as found by the engine (read-only for rewriters).

    Attributes:
        path: module path in the model (for a functional call, ``<owner>.<call name>``: the engine
            first turns the call into a module of that name).
        kind: one of :data:`SITE_KINDS`.
        module: the operation's module (``nn.Conv2d``, ``nn.MaxPool2d``, ``nn.Upsample``, ... or a subclass).
        stride: its stride per spatial dimension; for an up site, its upsampling factor (a float where
            it is not a whole number, e.g. 1.5).
        in_channels, out_channels: channels of its input and output.
        ndim: spatial dimensions (1, 2 or 3).
        is_stem: it reads the input image (no subsampling before it).
        origin: ``"module"`` or the functional call it came from (``"F.max_pool2d"``).
        input_shape: its input's shape in the engine's shape probe (batch first), if it ran there.
        choice: the paper's per-architecture choice for this site (``_paper.PaperChoice``), if any.
        output_shape: its output's shape in the probe, where the engine needed it (up sites).
    """

    path: str
    kind: str
    module: nn.Module
    stride: tuple[int, ...]
    in_channels: int
    out_channels: int
    ndim: int = 2
    is_stem: bool = False
    origin: str = "module"
    input_shape: tuple[int, ...] | None = None
    choice: PaperChoice | None = None
    output_shape: tuple[int, ...] | None = None

    @property
    def factor(self) -> int:
        """The (square) subsampling or upsampling factor; down rewriters are only called for square strides."""
        return self.stride[0]

    @property
    def direction(self) -> str:
        """``"down"`` or ``"up"``, from the site's rule."""
        return SITE_RULES[self.kind].direction


@dataclass(frozen=True)
class Rewrite:
    """What a site becomes: ``before`` -> op -> [norm/activation] -> ``after``.

    Attributes:
        before: modules applied to the operation's input, in order.
        replace: a module replacing the operation (only for operations without parameters or
            buffers, i.e. pools); None keeps the original module.
        stride: new stride of the kept module (a convolution run at stride 1: ``(1, 1)``).
        after: modules applied after the operation.
        after_followers: place ``after`` behind the operation's normalization and activation
            (the paper's placement, found from the graph) instead of right behind the operation.
        description: the summary's "after" text; by default built from the pieces.
    """

    before: tuple[nn.Module, ...] = ()
    replace: nn.Module | None = None
    stride: tuple[int, ...] | None = None
    after: tuple[nn.Module, ...] = ()
    after_followers: bool = False
    description: str = ""


@dataclass(frozen=True)
class Skip:
    """A rewriter's refusal: the site is left alone and listed in the summary with ``reason``."""

    reason: str


@dataclass
class RewriteContext:
    """The options of one ``antialias()`` call, and the factory of the layers it inserts."""

    filter_size: int = 4
    pad_type: str = "reflect"
    include_stem: bool = False
    circular: bool = False
    upsample: bool = True  # rewrite up sites too (False: they are listed as left alone)
    extra: dict = field(default_factory=dict)  # method-specific state shared by prepare/rewrite/finalize
    method_options: dict = field(default_factory=dict)  # the method's own options (Method.method_options), checked
    summary: object | None = None  # the AntialiasSummary being filled (hooks add their entries to it)

    def blur(self, channels: int, stride: int, ndim: int = 2, filter_size: int | None = None) -> nn.Module:
        """A BlurPool for ``channels`` channels subsampling by ``stride`` (1: blur only)."""
        layer = _BLUR_BY_NDIM[ndim]
        size = self.filter_size if filter_size is None else filter_size
        return layer(channels, pad_type=self.pad_type, filt_size=size, stride=stride, persistent=False)


SiteRewriter = Callable[[Site, RewriteContext], Union[Rewrite, Skip]]
#: Model-wide step of a method, before the sites are found (``prepare``) or after they are
#: rewritten (``finalize``); returns the model (a new root only if it had to be replaced).
ModelHook = Callable[[nn.Module, RewriteContext], nn.Module]


@dataclass(frozen=True)
class MethodOption:
    """One option of a method's own (``antialias(model, method=..., NAME=value)``, ``aa_options``, ``--aa-option``).

    Attributes:
        name: the keyword.
        default: its value when not given.
        check: ``value -> value`` (normalized), raising ``ConfigError`` with the fix for a value the method cannot take.
        help: one line for the docs and ``--help``.
    """

    name: str
    default: Any
    check: Callable[[Any], Any]
    help: str


@dataclass(frozen=True)
class Method:
    """One anti-aliasing method: a rewriter per site kind, plus optional model-wide steps.

    Attributes:
        name: the ``method=`` string.
        description: one line for the docs and error messages.
        rewriters: down site kind -> rewriter; a kind without one is left alone (listed with a reason).
        up_rewriters: up site kind -> rewriter (the method's upsampling rule); a method without
            one leaves up sites alone, listed with that reason.
        converts_stem: the stem is always converted (``include_stem`` is implied).
        supports_circular: the method accepts ``circular=True``.
        prepare, finalize: optional model-wide steps (e.g. circular padding, phase hand-off).
        options: the ``antialias()`` options its layers read (the summary shows only these):
            ``"filter_size"``, ``"pad_type"`` (a blur's), ``"circular"``. A method without
            ``"filter_size"`` has no filter: it accepts any size (an ``_lpf<N>`` name's N) and ignores it.
        filter_sizes: the filter sizes it takes (where it has a filter).
        default_filter_size: ``antialias(filter_size=None)``'s size for it.
        method_options: its own options (:class:`MethodOption`), passed to ``antialias()`` as keywords.
        training: how its inserted layers train (``_train_rules``: parameter-group settings and
            per-epoch schedules from the paper), applied by ``antialiased.training``.
    """

    name: str
    description: str
    rewriters: Mapping[str, SiteRewriter]
    converts_stem: bool = False
    supports_circular: bool = False
    prepare: ModelHook | None = None
    finalize: ModelHook | None = None
    options: tuple[str, ...] = ("filter_size", "pad_type")
    up_rewriters: Mapping[str, SiteRewriter] = field(default_factory=dict)
    filter_sizes: tuple[int, ...] = tuple(range(1, MAX_FILTER_SIZE + 1))
    default_filter_size: int = 4
    method_options: tuple[MethodOption, ...] = ()
    training: tuple[Any, ...] = ()

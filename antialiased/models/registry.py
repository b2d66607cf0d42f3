"""The architectures, the grammar of model names, and :class:`ModelSpec`: a name resolved once.

A model name is ``[<prefix>]<arch>`` (the baseline, without blur) or ``[<prefix>]<arch>_lpf<N>``
(anti-aliased with an ``N``-tap blur filter, N = 1..7). Which architectures exist and what a name
builds is decided by a small table of :class:`Source` records, looked up in this order:

- ``"paper"`` (:mod:`antialiased.models.factory`): the paper's 23 architectures in its published
  module layout (their families register here through :func:`register_torchvision_family` or
  :func:`register_model`), and their torchvision baselines;
- ``"torchvision"`` (:mod:`antialiased.models.converted`): every other torchvision classification
  model, anti-aliased by :func:`~antialiased.models.antialias.antialias` with any of its methods
  (and the paper's architectures too, for methods other than the paper's ``"blurpool"``);
- ``"timm"`` (:mod:`antialiased.models._timm`): ``timm/<name>`` and ``timm/<name>_lpf<N>``, when
  timm is installed.

:func:`get_model_spec` turns a name (and optionally a method) into a frozen :class:`ModelSpec`
(the only place names are parsed); everything downstream reads the spec.
"""
from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torchvision
from torch import nn

from antialiased.errors import CheckpointError, ModelError
from antialiased.layers import MAX_FILTER_SIZE

__all__ = [
    "ArchEntry",
    "ModelSpec",
    "Source",
    "baseline_spec",
    "check_recorded_spec",
    "get_arch",
    "get_model_spec",
    "get_source",
    "list_archs",
    "list_models",
    "list_sources",
    "parse_model_name",
    "register_model",
    "register_source",
    "register_torchvision_family",
    "upgrade_keys",
]

Builder = Callable[..., nn.Module]
StateDictUpgrade = Callable[[dict], dict]
Converter = Callable[..., nn.Module]
FILTER_SIZES = range(1, MAX_FILTER_SIZE + 1)


# --------------------------------------------------------------------------- architectures


@dataclass(frozen=True)
class ArchEntry:
    """One registered architecture.

    Attributes:
        name: the architecture, e.g. ``resnet50``.
        build: ``build(*, filter_size, **kwargs)`` returns the (untrained) anti-aliased model.
        baseline: ``baseline(**kwargs)`` returns the (untrained) model without blur; None if the
            architecture has none (then ``<arch>`` alone is not a model name).
        upgrade_state_dict: renames older key spellings of weight files to the current layout.
    """

    name: str
    build: Builder
    baseline: Builder | None = None
    upgrade_state_dict: StateDictUpgrade | None = None


_ARCHS: dict[str, ArchEntry] = {}


def register_model(
    name: str | None = None, *, baseline: Builder | None = None, upgrade_state_dict: StateDictUpgrade | None = None
) -> Callable[[Builder], Builder]:
    """Register an anti-aliased builder under ``name`` (default: the function's name); the one way in.

    The builder is called as ``builder(filter_size=N, **kwargs)``. Names are unique: registering
    one twice is a :class:`~antialiased.errors.ModelError`, so two modules cannot silently shadow
    each other. ``baseline`` (optional) builds the model without blur, named ``<name>``;
    ``upgrade_state_dict`` (optional) rewrites legacy key names of weight files before loading.

    Example:
        >>> register_model("resnet18")(lambda **kwargs: nn.Identity())
        Traceback (most recent call last):
        ...
        antialiased.errors.ModelError: a model named 'resnet18' is already registered; pick another name
    """

    def wrapper(fn: Builder) -> Builder:
        key = name or fn.__name__
        if key in _ARCHS:
            raise ModelError(f"a model named {key!r} is already registered; pick another name")
        _ARCHS[key] = ArchEntry(key, fn, baseline, upgrade_state_dict)
        return fn

    return wrapper


def _torchvision_builder(arch: str, convert: Converter, prepare_kwargs: Callable[[dict], dict] | None) -> Builder:
    def build(*, filter_size: int = 4, **kwargs) -> nn.Module:
        if prepare_kwargs is not None:
            kwargs = prepare_kwargs(kwargs)
        return convert(torchvision.models.get_model(arch, weights=None, **kwargs), filter_size=filter_size)

    build.__name__ = build.__qualname__ = arch
    build.__doc__ = (f"Anti-aliased {arch}: torchvision's {arch} (``kwargs`` go to its builder), "
                     f"then {convert.__name__}.")
    return build


def _torchvision_baseline(arch: str) -> Builder:
    def baseline(**kwargs) -> nn.Module:
        return torchvision.models.get_model(arch, weights=None, **kwargs)

    baseline.__name__ = baseline.__qualname__ = arch
    return baseline


def register_torchvision_family(
    archs: Iterable[str],
    convert: Converter,
    *,
    prepare_kwargs: Callable[[dict], dict] | None = None,
    upgrade_state_dict: StateDictUpgrade | None = None,
) -> None:
    """Register anti-aliased versions of torchvision architectures (the paper's families use this).

    For each ``arch``, the anti-aliased builder makes torchvision's untrained model (its
    initialization and keyword arguments such as ``num_classes`` apply) and rewrites it with
    ``convert(model, filter_size=N)``; the baseline ``<arch>`` is torchvision's model itself.
    ``prepare_kwargs`` (optional) checks or adjusts the keyword arguments first.
    """
    for arch in archs:
        register_model(arch, baseline=_torchvision_baseline(arch), upgrade_state_dict=upgrade_state_dict)(
            _torchvision_builder(arch, convert, prepare_kwargs))


def get_arch(arch: str) -> ArchEntry:
    """The registered entry of ``arch`` (a :class:`ModelError` naming the registered ones if none)."""
    try:
        return _ARCHS[arch]
    except KeyError:
        raise ModelError(f"no architecture {arch!r} is registered; registered: {', '.join(list_archs())}") from None


def list_archs() -> list[str]:
    """The registered architecture names (no ``_lpf`` suffix), sorted."""
    return sorted(_ARCHS)


def upgrade_keys(arch: str, state_dict: dict) -> dict:
    """``state_dict`` with legacy key spellings of ``arch`` renamed (unchanged for most architectures)."""
    entry = _ARCHS.get(arch)
    if entry is None or entry.upgrade_state_dict is None:
        return state_dict
    return entry.upgrade_state_dict(state_dict)




@dataclass(frozen=True)
class ModelSpec:
    """What a model name means, resolved once by :func:`get_model_spec`.

    Attributes:
        name: the name as given, e.g. ``resnet50_lpf4``.
        arch: the architecture, e.g. ``resnet50`` (for timm, timm's name, with a pretrained tag if given).
        filter_size: taps of the blur filter; None for the baseline without blur.
        source: the :class:`Source` that defines the model: ``"paper"`` (the paper's 23 architectures,
            its module layout and published weights, and their torchvision baselines),
            ``"torchvision"`` or ``"timm"`` (those libraries' models, converted by
            :func:`~antialiased.models.antialias.antialias`).
        method: the anti-aliasing method (``"blurpool"``: the paper's); None for a baseline.

    Converted models of one architecture share their state-dict keys across filter sizes and
    methods, so result files and checkpoints record the whole spec (:meth:`to_dict`) and loading a
    checkpoint checks it (:func:`check_recorded_spec`).

    Example:
        >>> spec = get_model_spec("resnet50_lpf4")
        >>> spec
        ModelSpec(name='resnet50_lpf4', arch='resnet50', filter_size=4, source='paper', method='blurpool')
        >>> spec.antialiased, get_model_spec("resnet50").to_dict()
        (True, {'name': 'resnet50', 'arch': 'resnet50', 'filter_size': None, 'source': 'paper', 'method': None})
        >>> spec.describe()
        "'resnet50_lpf4' (paper, filter size 4, method blurpool)"
    """

    name: str
    arch: str
    filter_size: int | None = None
    source: str = "paper"
    method: str | None = None

    @property
    def antialiased(self) -> bool:
        """True for an anti-aliased model, False for a baseline."""
        return self.filter_size is not None

    def to_dict(self) -> dict[str, Any]:
        """The spec as a JSON-ready dict (for result files and checkpoints)."""
        return dataclasses.asdict(self)

    def describe(self) -> str:
        """One line for messages: the name, its source, filter size and method."""
        return _describe(self.to_dict())


def _describe(record: Mapping[str, Any]) -> str:
    if record.get("filter_size") is None:
        return f"{record.get('name')!r} ({record.get('source')}, baseline without blur)"
    return (f"{record.get('name')!r} ({record.get('source')}, filter size {record.get('filter_size')}, "
            f"method {record.get('method')})")


@dataclass(frozen=True)
class Source:
    """One row of the name table: which names a source offers and how it makes their models.

    Attributes:
        name: recorded as :attr:`ModelSpec.source`.
        prefix: every name of the source starts with it (``""``; ``"timm/"`` for timm's models).
        archs: returns the architectures it offers now (called at lookup: registries grow).
        has_baseline: whether ``<prefix><arch>`` without ``_lpf<N>`` is a model name.
        build: ``build(spec, **kwargs)`` returns the untrained model.
        pretrained: ``pretrained(spec, force_nonfinetuned)`` returns the :class:`WeightsInfo` record
            of the weights that ``pretrained=True`` loads (nothing is downloaded yet).
        load_pretrained: ``load_pretrained(spec, info, progress=..., **kwargs)`` builds the model with
            those weights.
        method: the default anti-aliasing method of its ``_lpf<N>`` names.
        filter_sizes: the valid ``N``.
        methods: returns the methods its ``_lpf<N>`` names accept (``create_model(..., aa_method=)``);
            None: only ``method``.
        has_arch: ``has_arch(arch)``, a faster membership test than ``archs()`` (None: look in it).
        listed_by_default: False for a large source (timm): :func:`list_models` shows its names only
            for include patterns that start with ``prefix``.
        cannot_convert: ``cannot_convert(arch)`` returns why ``arch`` has no ``_lpf<N>`` names (e.g. a
            vision transformer), or None.
        convert: ``convert(baseline_model, spec)`` returns the anti-aliased model made from a baseline
            model (the same state-dict keys), for sources whose anti-aliased models are converted
            baselines; :func:`~antialiased.models.transfer.init_from_baseline` uses it. None for the
            paper's layout.
    """

    name: str
    prefix: str
    archs: Callable[[], Iterable[str]]
    has_baseline: Callable[[str], bool]
    build: Callable[..., nn.Module]
    pretrained: Callable[[ModelSpec, bool], Any]
    load_pretrained: Callable[..., nn.Module]
    method: str = "blurpool"
    filter_sizes: range = FILTER_SIZES
    methods: Callable[[], Iterable[str]] | None = None
    has_arch: Callable[[str], bool] | None = None
    listed_by_default: bool = True
    cannot_convert: Callable[[str], str | None] | None = None
    convert: Callable[[nn.Module, ModelSpec], nn.Module] | None = None

    def accepted_methods(self) -> tuple[str, ...]:
        """The methods its ``_lpf<N>`` names accept, the default first."""
        others = [] if self.methods is None else [m for m in self.methods() if m != self.method]
        return (self.method, *others)

    def offers(self, arch: str) -> bool:
        """Whether ``arch`` is one of its architectures."""
        return self.has_arch(arch) if self.has_arch is not None else arch in set(self.archs())


_SOURCES: dict[str, Source] = {}
_NAME = re.compile(r"^(?P<arch>.+?)(?:_lpf(?P<filter_size>\d+))?$")


def register_source(source: Source) -> Source:
    """Add a row to the name table; names are looked up in the order sources were registered."""
    if source.name in _SOURCES:
        raise ModelError(f"a model source named {source.name!r} is already registered")
    _SOURCES[source.name] = source
    return source


def get_source(name: str) -> Source:
    """The registered :class:`Source` called ``name``."""
    try:
        return _SOURCES[name]
    except KeyError:
        raise ModelError(f"unknown model source {name!r}; known: {', '.join(_SOURCES)}") from None


def list_sources() -> list[str]:
    """The registered sources, in lookup order."""
    return list(_SOURCES)


def _source_names(source: Source) -> list[str]:
    names = []
    for arch in source.archs():
        if source.has_baseline(arch):
            names.append(source.prefix + arch)
        if source.cannot_convert is None or source.cannot_convert(arch) is None:
            names += [f"{source.prefix}{arch}_lpf{n}" for n in source.filter_sizes]
    return names


def _patterns(value: str | Iterable[str] | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _listed(source: Source, include: list[str]) -> bool:
    return source.listed_by_default or any(p.startswith(source.prefix) for p in include)


def list_models(
    include: str | Iterable[str] | None = None, exclude: str | Iterable[str] | None = None
) -> list[str]:
    """All model names, sorted, optionally filtered by fnmatch patterns (as torchvision and timm do).

    The paper's names, every torchvision classification model (``<arch>``, and ``<arch>_lpf<N>``
    where :func:`~antialiased.models.antialias.antialias` can convert it: not the vision
    transformers). timm's ~1400 architectures (``timm/<name>``, ``timm/<name>_lpf<N>``, 8 names
    each) are listed only for an include pattern that starts with ``timm/`` (e.g. ``"timm/resnet*"``),
    so that the default list stays readable and needs no timm.

    Example:
        >>> list_models("resnet18*")
        ['resnet18', 'resnet18_lpf1', 'resnet18_lpf2', 'resnet18_lpf3', 'resnet18_lpf4', 'resnet18_lpf5', 'resnet18_lpf6', 'resnet18_lpf7']
        >>> list_models("vgg16*", exclude="*_lpf[1-6]")
        ['vgg16', 'vgg16_bn', 'vgg16_bn_lpf7', 'vgg16_lpf7']
        >>> list_models(["efficientnet_b0*", "vit_b_16*"], exclude="*_lpf[2-7]")
        ['efficientnet_b0', 'efficientnet_b0_lpf1', 'vit_b_16']
    """
    include_patterns, exclude_patterns = _patterns(include), _patterns(exclude)
    names = {name for source in _SOURCES.values() if _listed(source, include_patterns)
             for name in _source_names(source)}
    if include_patterns:
        names = {n for n in names if any(fnmatch.fnmatchcase(n, p) for p in include_patterns)}
    return sorted(n for n in names if not any(fnmatch.fnmatchcase(n, p) for p in exclude_patterns))


def _unknown(name: str) -> ModelError:
    sources = [s for s in _SOURCES.values() if s.prefix and name.startswith(s.prefix)]
    if sources:  # a large source: suggest among its architectures only
        candidates = [sources[0].prefix + arch for arch in sources[0].archs()]
    else:
        candidates = list_models()
    close = difflib.get_close_matches(name, candidates, n=5, cutoff=0.5)
    hint = f" Closest names: {', '.join(close)}." if close else ""
    return ModelError(
        f"unknown model {name!r}.{hint} Names are '<arch>' (baseline) or '<arch>_lpf<N>' (anti-aliased, "
        f"N=1..{MAX_FILTER_SIZE}) for the paper's and torchvision's architectures, 'timm/<name>' or "
        f"'timm/<name>_lpf<N>' for timm's; see antialiased.list_models() ('antialiased models')."
    )


def _spec_in(source: Source, name: str) -> ModelSpec | None:
    if not name.startswith(source.prefix):
        return None
    match = _NAME.match(name[len(source.prefix):])
    if match is None or not source.offers(match["arch"]):
        return None
    arch = match["arch"]
    if match["filter_size"] is None:
        if not source.has_baseline(arch):
            raise ModelError(f"{name!r} has no baseline model (it was registered without one); "
                             f"use an anti-aliased name such as '{name}_lpf4'")
        return ModelSpec(name, arch, None, source.name, None)
    filter_size = int(match["filter_size"])
    if filter_size not in source.filter_sizes:
        raise ModelError(
            f"filter size {filter_size} in {name!r} is out of range: use _lpf{source.filter_sizes[0]} to "
            f"_lpf{source.filter_sizes[-1]} (e.g. {source.prefix}{arch}_lpf4)")
    reason = None if source.cannot_convert is None else source.cannot_convert(arch)
    if reason is not None:
        raise ModelError(f"{name!r} cannot be made: {source.prefix}{arch} {reason}. Use the baseline "
                         f"'{source.prefix}{arch}' or a CNN (see antialiased.list_models())")
    return ModelSpec(name, arch, filter_size, source.name, source.method)


def _with_method(name: str, method: str) -> ModelSpec:
    """The spec of ``name`` made with ``method``: the first source offering the name that accepts it."""
    if not isinstance(method, str):
        raise ModelError(f"aa_method must be a method name such as 'blurpool', got {type(method).__name__}")
    offered: list[Source] = []
    for source in _SOURCES.values():
        spec = _spec_in(source, name)
        if spec is None:
            continue
        if not spec.antialiased:
            raise ModelError(f"aa_method={method!r} applies to anti-aliased names, and {name!r} is the baseline "
                             f"without blur: use '{name}_lpf4' (or leave aa_method / --aa-method out)")
        if method in source.accepted_methods():
            return dataclasses.replace(spec, method=method)
        offered.append(source)
    if not offered:
        raise _unknown(name)
    accepted = sorted({m for source in offered for m in source.accepted_methods()})
    raise ModelError(f"{name!r} cannot be made with method {method!r}: choose one of {', '.join(accepted)} "
                     f"(aa_method= in create_model, --aa-method on the command line)")


def get_model_spec(name: str | ModelSpec, *, method: str | None = None) -> ModelSpec:
    """Resolve a model name into its :class:`ModelSpec` (a spec passes through unchanged).

    Args:
        name: a model name (see :func:`list_models`) or a spec.
        method: the anti-aliasing method for an ``_lpf<N>`` name (default: the source's,
            ``"blurpool"``). The paper's names are built in its layout with ``"blurpool"`` only; with
            another method (``"blur-first"``, ``"aps"``, ``"aps-lpf"``) the name means torchvision's
            architecture converted by :func:`~antialiased.models.antialias.antialias` (source
            ``"torchvision"``).

    Raises:
        ModelError: an unknown name (with the closest names), a filter size out of range, a name
            that cannot be anti-aliased (vision transformers), a method for a baseline name or one
            that does not apply.
        MissingDependencyError: a ``timm/`` name without timm installed.

    Example:
        >>> get_model_spec("wide_resnet50_2_lpf7")
        ModelSpec(name='wide_resnet50_2_lpf7', arch='wide_resnet50_2', filter_size=7, source='paper', method='blurpool')
        >>> get_model_spec("resnet18_lpf3", method="aps")
        ModelSpec(name='resnet18_lpf3', arch='resnet18', filter_size=3, source='torchvision', method='aps')
    """
    if isinstance(name, ModelSpec):
        if method is None or method == name.method:
            return name
        name = name.name
    if not isinstance(name, str):
        raise TypeError(f"a model name must be a string, got {type(name).__name__}")
    if method is not None:
        return _with_method(name, method)
    for source in _SOURCES.values():
        spec = _spec_in(source, name)
        if spec is not None:
            return spec
    raise _unknown(name)


def baseline_spec(spec: ModelSpec) -> ModelSpec:
    """The spec of ``spec``'s baseline (the same architecture without blur, from the same source).

    Example:
        >>> baseline_spec(get_model_spec("resnet18_lpf3", method="aps"))
        ModelSpec(name='resnet18', arch='resnet18', filter_size=None, source='torchvision', method=None)
    """
    return ModelSpec(get_source(spec.source).prefix + spec.arch, spec.arch, None, spec.source, None)


def check_recorded_spec(recorded: Any, spec: ModelSpec, where: str) -> None:
    """Refuse a file that records another spec of the same architecture (other source, filter size, method).

    ``recorded`` is the file's ``model_spec`` entry (a dict, as :meth:`ModelSpec.to_dict` wrote it);
    a file without one (torchvision's, timm's and the paper's published files, bare state dicts)
    is accepted. A record of another architecture is left to the strict load and the ``arch``
    check, which name the keys that do not fit.

    Raises:
        CheckpointError: naming both specs and the name / method that fits.

    Example:
        >>> check_recorded_spec(None, get_model_spec("resnet18_lpf4"), "w.pth")  # nothing recorded
        >>> check_recorded_spec(get_model_spec("resnet18_lpf2").to_dict(), get_model_spec("resnet18_lpf4"), "w.pth")
        Traceback (most recent call last):
        ...
        antialiased.errors.CheckpointError: w.pth was saved from 'resnet18_lpf2' (paper, filter size 2, method blurpool), but the model asked for is 'resnet18_lpf4' (paper, filter size 4, method blurpool). Load it as create_model('resnet18_lpf2') (-a resnet18_lpf2 on the command line), or pass another file
    """
    if not isinstance(recorded, Mapping) or recorded.get("arch") != spec.arch:
        return
    fields = ("source", "filter_size", "method")
    if all(recorded.get(f) == getattr(spec, f) for f in fields):
        return
    name, method = recorded.get("name"), recorded.get("method")
    default = get_source(str(recorded.get("source"))).method if recorded.get("source") in _SOURCES else None
    extra = f", aa_method={method!r}" if method is not None and method != default else ""
    cli = f" --aa-method {method}" if extra else ""
    raise CheckpointError(
        f"{where} was saved from {_describe(recorded)}, but the model asked for is {spec.describe()}. "
        f"Load it as create_model({name!r}{extra}) (-a {name}{cli} on the command line), or pass another file")


def parse_model_name(name: str) -> tuple[str, int | None]:
    """Split a model name into ``(arch, filter_size)``; ``filter_size`` is None for a baseline.

    A shorthand for ``get_model_spec(name)``'s ``arch`` and ``filter_size``.

    Example:
        >>> parse_model_name("resnet50_lpf4")
        ('resnet50', 4)
        >>> parse_model_name("wide_resnet50_2")
        ('wide_resnet50_2', None)
    """
    spec = get_model_spec(name)
    return spec.arch, spec.filter_size

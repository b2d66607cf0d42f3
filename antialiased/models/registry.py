"""The architectures, the grammar of model names, and :class:`ModelSpec`: a name resolved once.

A model name is ``[<prefix>]<arch>`` (the baseline, without blur) or ``[<prefix>]<arch>_lpf<N>``
(anti-aliased with an ``N``-tap blur filter, N = 1..7). Which architectures exist and what a name
builds is decided by a small table of :class:`Source` records; the paper's 23 architectures are the
``"paper"`` source (defined in :mod:`antialiased.models.factory`), whose families register here
through :func:`register_torchvision_family` (or :func:`register_model` for a hand-written builder).
Further sources (torchvision's and timm's models converted by ``antialias()``) are further rows:
:func:`register_source`.

:func:`get_model_spec` turns a name into a frozen :class:`ModelSpec` (the only place names are
parsed); everything downstream reads the spec.
"""
from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torchvision
from torch import nn

from antialiased.errors import ModelError
from antialiased.layers import MAX_FILTER_SIZE

__all__ = [
    "ArchEntry",
    "ModelSpec",
    "Source",
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


# --------------------------------------------------------------------------- names


@dataclass(frozen=True)
class ModelSpec:
    """What a model name means, resolved once by :func:`get_model_spec`.

    Attributes:
        name: the name as given, e.g. ``resnet50_lpf4``.
        arch: the architecture, e.g. ``resnet50``.
        filter_size: taps of the blur filter; None for the baseline without blur.
        source: the :class:`Source` that defines the model (``"paper"``: the paper's 23 architectures
            and their torchvision baselines).
        method: the anti-aliasing method (``"blurpool"``: the paper's); None for a baseline.

    Example:
        >>> spec = get_model_spec("resnet50_lpf4")
        >>> spec
        ModelSpec(name='resnet50_lpf4', arch='resnet50', filter_size=4, source='paper', method='blurpool')
        >>> spec.antialiased, get_model_spec("resnet50").to_dict()
        (True, {'name': 'resnet50', 'arch': 'resnet50', 'filter_size': None, 'source': 'paper', 'method': None})
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
        method: the anti-aliasing method of its ``_lpf<N>`` names.
        filter_sizes: the valid ``N``.
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
        names += [f"{source.prefix}{arch}_lpf{n}" for n in source.filter_sizes]
    return names


def _patterns(value: str | Iterable[str] | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def list_models(
    include: str | Iterable[str] | None = None, exclude: str | Iterable[str] | None = None
) -> list[str]:
    """All model names, optionally filtered by fnmatch patterns (as torchvision and timm do).

    Example:
        >>> list_models("resnet18*")
        ['resnet18', 'resnet18_lpf1', 'resnet18_lpf2', 'resnet18_lpf3', 'resnet18_lpf4', 'resnet18_lpf5', 'resnet18_lpf6', 'resnet18_lpf7']
        >>> list_models("vgg16*", exclude="*_lpf[1-6]")
        ['vgg16', 'vgg16_bn', 'vgg16_bn_lpf7', 'vgg16_lpf7']
    """
    names = [name for source in _SOURCES.values() for name in _source_names(source)]
    include_patterns, exclude_patterns = _patterns(include), _patterns(exclude)
    if include_patterns:
        names = [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in include_patterns)]
    names = [n for n in names if not any(fnmatch.fnmatchcase(n, p) for p in exclude_patterns)]
    return sorted(names)


def _unknown(name: str) -> ModelError:
    close = difflib.get_close_matches(name, list_models(), n=5, cutoff=0.5)
    hint = f" Closest names: {', '.join(close)}." if close else ""
    return ModelError(
        f"unknown model {name!r}.{hint} Names are '<arch>' (torchvision baseline) or "
        f"'<arch>_lpf<N>' (anti-aliased, N=1..{MAX_FILTER_SIZE}); see antialiased.list_models()."
    )


def _spec_in(source: Source, name: str) -> ModelSpec | None:
    if not name.startswith(source.prefix):
        return None
    match = _NAME.match(name[len(source.prefix):])
    if match is None or match["arch"] not in set(source.archs()):
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
    return ModelSpec(name, arch, filter_size, source.name, source.method)


def get_model_spec(name: str | ModelSpec) -> ModelSpec:
    """Resolve a model name into its :class:`ModelSpec` (a spec passes through unchanged).

    Raises:
        ModelError: an unknown name (with the closest names), or a filter size out of range.

    Example:
        >>> get_model_spec("wide_resnet50_2_lpf7")
        ModelSpec(name='wide_resnet50_2_lpf7', arch='wide_resnet50_2', filter_size=7, source='paper', method='blurpool')
    """
    if isinstance(name, ModelSpec):
        return name
    if not isinstance(name, str):
        raise TypeError(f"a model name must be a string, got {type(name).__name__}")
    for source in _SOURCES.values():
        spec = _spec_in(source, name)
        if spec is not None:
            return spec
    raise _unknown(name)


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

"""Model names: one grammar, one table of families, one :class:`ModelSpec` per name.

A model name is ``<prefix><arch>`` (the baseline, without blur) or ``<prefix><arch>_lpf<N>``
(anti-aliased with an ``N``-tap blur filter). A :class:`Family` answers names: it lists its
architectures, builds their models and knows their pretrained weights. Families are rows of one
ordered table; the built-in rows (the paper's 23 architectures, torchvision's other classifiers,
timm's models) are listed in :data:`antialiased.models.families.FAMILIES`, and the first row that
answers a name owns it.

The path of a name, parsed once and formatted by one function:

    >>> spec = get_model_spec("resnet50_lpf4")              # the only parser
    >>> spec.family, spec.arch, spec.filter_size, spec.method
    ('paper', 'resnet50', 4, 'blurpool')
    >>> str(dataclasses.replace(spec, filter_size=3))        # the only formatter: spec.name
    'resnet50_lpf3'

``load_model(spec, weights)`` (:mod:`antialiased.models.loading`) then builds ``family.build(spec)``
and fills it from ``family.weights``. The method and its options are spec fields (``aa_method=``,
``--aa-method``), never part of the name.

**Adding a family** is one registration: a :class:`Family` record, added to ``FAMILIES`` in
``models/families.py`` (built-in) or passed to :func:`register_family` (anywhere). E.g.
segmentation_models_pytorch as ``smp/<Arch>-<encoder>`` (``smp/Unet-resnet34_lpf4``)::

    SMP = Family(
        name="smp", prefix="smp/", task="segmentation",
        names=ArchNames(archs=smp_archs, contains=is_smp_arch, listed_by_default=False),
        build=lambda spec, **kwargs: convert(smp_model(spec.arch, **kwargs), spec),   # baseline or converted
        weights=SmpWeights())   # a WeightsSource: resolve(spec, force) -> WeightsInfo | None; load(spec, info)

``arch`` may hold any character (``-``, ``.``, ``/`` after the prefix); only a trailing
``_lpf<N>`` is the filter size. Its pretrained-weights record is a :class:`WeightsSource`; files
saved in another key layout are mapped on load by the model's own ``load_state_dict`` pre-hook
(:mod:`antialiased.models.keymap`), installed by the family's builder.
"""
from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import inspect
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from torch import nn

from antialiased.errors import CheckpointError, ConfigError, ModelError
from antialiased.layers import MAX_FILTER_SIZE
from antialiased.models.antialias import METHODS, antialias
from antialiased.models.antialias._options import has_filter, resolve_method_options

__all__ = [
    "ArchNames",
    "DEFAULT_METHOD",
    "Family",
    "ModelSpec",
    "TASKS",
    "WeightsSource",
    "check_recorded_spec",
    "format_model_name",
    "get_family",
    "get_model_spec",
    "list_archs",
    "list_families",
    "list_models",
    "method_filter_sizes",
    "register_family",
    "register_model",
]

TASKS = ("classification", "segmentation")
DEFAULT_METHOD = "blurpool"
"""The method of an ``_lpf<N>`` name when none is given: the paper's."""
_NAME = re.compile(r"^(?P<arch>.+?)(?:_lpf(?P<filter_size>0|[1-9]\d*))?$")
# antialias()'s keyword options (pad_type, include_stem, ...): what ModelSpec.options may set
AA_OPTIONS = tuple(name for name, p in inspect.signature(antialias).parameters.items()
                   if p.kind is p.KEYWORD_ONLY and name not in ("filter_size", "method"))
# (and each method's own options, Method.method_options: adaptive's groups, LPS's hidden_channels, ...)


def format_model_name(arch: str, filter_size: int | None = None, *, prefix: str = "") -> str:
    """The grammar's one formatter, ``<prefix><arch>[_lpf<N>]`` (:attr:`ModelSpec.name` calls it).

    Example:
        >>> format_model_name("resnet50", 4), format_model_name("resnet50", prefix="timm/")
        ('resnet50_lpf4', 'timm/resnet50')
    """
    return f"{prefix}{arch}" if filter_size is None else f"{prefix}{arch}_lpf{filter_size}"


def _frozen(value: Any) -> Any:
    return tuple(_frozen(v) for v in value) if isinstance(value, (list, tuple)) else value


# --------------------------------------------------------------------------- the spec


@dataclass(frozen=True)
class ModelSpec:
    """What a model name means, resolved once by :func:`get_model_spec`; everything below takes it.

    Attributes:
        family: the :class:`Family` that answers the name (``"paper"``, ``"torchvision"``, ``"timm"``).
        arch: the architecture in the family, e.g. ``resnet50`` (timm's: its name, with a tag if given).
        filter_size: taps of the blur filter; None for the baseline without blur.
        method: the anti-aliasing method (``"blurpool"``: the paper's); None for a baseline.
        options: ``antialias()`` keyword options, a sorted tuple of ``(key, value)`` pairs (a mapping
            is accepted and sorted); empty for a baseline.
        task: the family's task, ``"classification"`` or ``"segmentation"``.

    :attr:`name` (also ``str(spec)``) is the canonical name, formatted from the fields: it stays
    right after ``dataclasses.replace``. A baseline has no method or options (they are cleared);
    an anti-aliased spec without a method gets :data:`DEFAULT_METHOD`.

    Example:
        >>> spec = get_model_spec("resnet50_lpf4")
        >>> spec.name, spec.antialiased, spec.baseline().name
        ('resnet50_lpf4', True, 'resnet50')
        >>> spec.describe()
        "'resnet50_lpf4' (paper, filter size 4, method blurpool)"
    """

    family: str
    arch: str
    filter_size: int | None = None
    method: str | None = None
    options: tuple[tuple[str, Any], ...] = ()
    task: str = "classification"

    def __post_init__(self) -> None:
        options = self.options.items() if isinstance(self.options, Mapping) else (self.options or ())
        options = tuple(sorted((str(key), _frozen(value)) for key, value in options))
        if self.filter_size is None:
            options, method = (), None
        else:
            method = self.method or DEFAULT_METHOD
        object.__setattr__(self, "options", options)
        object.__setattr__(self, "method", method)

    @property
    def name(self) -> str:
        """The canonical model name, e.g. ``resnet50_lpf4`` or ``timm/resnet50``."""
        return format_model_name(self.arch, self.filter_size, prefix=get_family(self.family).prefix)

    def __str__(self) -> str:
        return self.name

    @property
    def antialiased(self) -> bool:
        """True for an anti-aliased model, False for a baseline."""
        return self.filter_size is not None

    def baseline(self) -> ModelSpec:
        """The same architecture of the same family without blur."""
        return dataclasses.replace(self, filter_size=None)

    def to_dict(self) -> dict[str, Any]:
        """The spec as a JSON-ready dict (result files, checkpoints), with its name."""
        return {"name": self.name, "family": self.family, "arch": self.arch, "filter_size": self.filter_size,
                "method": self.method, "options": dict(self.options), "task": self.task}

    def describe(self) -> str:
        """One line for messages: the name, its family, filter size, method and options."""
        return _describe(self.to_dict())


def _describe(record: Mapping[str, Any]) -> str:
    family = record.get("family") or record.get("source")  # 'source': records written before families
    if record.get("filter_size") is None:
        return f"{record.get('name')!r} ({family}, baseline without blur)"
    options = "".join(f", {k}={v!r}" for k, v in sorted(dict(record.get("options") or {}).items()))
    method = METHODS.get(record.get("method"))
    size = f"filter size {record.get('filter_size')}, " if method is None or has_filter(method) else ""
    return f"{record.get('name')!r} ({family}, {size}method {record.get('method')}{options})"


# --------------------------------------------------------------------------- families


class WeightsSource(Protocol):
    """A family's pretrained weights: what ``pretrained=True`` means for a spec, and loading them."""

    def resolve(self, spec: ModelSpec, force_nonfinetuned: bool = False) -> Any:
        """The :class:`~antialiased.models.weights_info.WeightsInfo` of ``spec``'s own weights (nothing
        downloaded yet), or None: the spec has none of its own (an anti-aliased one then starts from its
        baseline's, loaded by :func:`~antialiased.models.transfer.load_baseline`). Raises
        :class:`~antialiased.errors.WeightsError` when the name promises weights that do not exist."""

    def load(self, spec: ModelSpec, info: Any, *, progress: bool = True, **kwargs: Any) -> nn.Module:
        """``spec``'s model (``kwargs`` go to the builder) holding the weights ``info`` describes."""


def _always(arch: str) -> bool:
    return True


def _never(arch: str) -> None:
    return None


@dataclass(frozen=True)
class ArchNames:
    """The architectures a family answers to.

    Attributes:
        archs: returns them (called when listing: registries grow).
        contains: a faster membership test than ``arch in archs()`` (e.g. timm's ``is_model``).
        has_baseline: whether ``<prefix><arch>`` alone (no ``_lpf<N>``) is a model name.
        cannot_convert: why ``arch`` has no ``_lpf<N>`` names (a vision transformer), or None.
        listed_by_default: False for a large family (timm): :func:`list_models` lists it only for
            include patterns that start with its prefix.
    """

    archs: Callable[[], Iterable[str]]
    contains: Callable[[str], bool] | None = None
    has_baseline: Callable[[str], bool] = _always
    cannot_convert: Callable[[str], str | None] = _never
    listed_by_default: bool = True

    def __contains__(self, arch: str) -> bool:
        return self.contains(arch) if self.contains is not None else arch in set(self.archs())


@dataclass(frozen=True)
class Family:
    """One row of the name table: the names it answers, how it builds them, its weights.

    Attributes:
        name: recorded as :attr:`ModelSpec.family`.
        names: the architectures (:class:`ArchNames`).
        build: ``build(spec, **kwargs)`` returns the untrained model (the baseline when
            ``spec.filter_size`` is None); ``kwargs`` are the architecture's (``num_classes``, ...).
            Installs the model's key remapping, if the family has files of other layouts
            (:func:`~antialiased.models.keymap.install_key_remap`).
        weights: its pretrained weights (:class:`WeightsSource`); None if it has none.
        prefix: every name of the family starts with it (``""``, ``"timm/"``).
        task: ``"classification"`` or ``"segmentation"``.
        methods: None when its models are converted by ``antialias()``: every registered method and
            its keyword options apply. A tuple when its builder places the blur itself: the methods
            it implements, and no options.
        file_kwargs: ``file_kwargs(spec, state_dict)``: the builder's keyword arguments that a weights
            file's keys imply (torchvision's segmentation models: ``aux_loss=True`` when it holds
            ``aux_classifier.*`` keys), given before the file loads; None: none.
    """

    name: str
    names: ArchNames
    build: Callable[..., nn.Module]
    weights: WeightsSource | None = None
    prefix: str = ""
    task: str = "classification"
    methods: tuple[str, ...] | None = None
    file_kwargs: Callable[[ModelSpec, Mapping[str, Any]], dict[str, Any]] | None = None

    def accepted_methods(self) -> tuple[str, ...]:
        """The methods its ``_lpf<N>`` names accept, sorted."""
        return tuple(sorted(METHODS if self.methods is None else self.methods))


_FAMILIES: dict[str, Family] = {}


def register_family(family: Family) -> Family:
    """Add ``family`` as the last row of the name table (a name is owned by the first row answering it)."""
    if family.name in _FAMILIES:
        raise ModelError(f"a model family named {family.name!r} is already registered")
    if family.task not in TASKS:
        raise ModelError(f"family {family.name!r}: task must be one of {', '.join(TASKS)}, got {family.task!r}")
    _FAMILIES[family.name] = family
    return family


def get_family(name: str) -> Family:
    """The registered :class:`Family` called ``name``."""
    try:
        return _FAMILIES[name]
    except KeyError:
        raise ModelError(f"unknown model family {name!r}; registered: {', '.join(_FAMILIES)}") from None


def list_families() -> list[str]:
    """The registered families, in lookup order."""
    return list(_FAMILIES)


def _answered(arch: str) -> Family | None:
    """The prefix-less family that answers ``arch`` (names with a prefix cannot collide with it)."""
    return next((f for f in _FAMILIES.values() if not f.prefix and arch in f.names), None)


def register_model(name: str | None = None, *, baseline: Callable[..., nn.Module] | None = None
                   ) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Register one architecture built by your own code, as a family of its own (decorator).

    The builder is called as ``builder(filter_size=N, **kwargs)`` and places its blur layers itself
    (method ``"blurpool"``); ``baseline(**kwargs)`` (optional) builds ``<name>`` without blur.
    A name another family answers is refused.

    Example:
        >>> register_model("resnet18")(lambda **kwargs: nn.Identity())
        Traceback (most recent call last):
        ...
        antialiased.errors.ModelError: a model named 'resnet18' is already registered; pick another name
    """

    def wrapper(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        arch = name or builder.__name__
        if arch in _FAMILIES or _answered(arch) is not None:
            raise ModelError(f"a model named {arch!r} is already registered; pick another name")

        def build(spec: ModelSpec, **kwargs: Any) -> nn.Module:
            return builder(filter_size=spec.filter_size, **kwargs) if spec.antialiased else baseline(**kwargs)

        names = ArchNames(archs=lambda: [arch], has_baseline=lambda _: baseline is not None)
        register_family(Family(name=arch, names=names, build=build, methods=(DEFAULT_METHOD,)))
        return builder

    return wrapper


def list_archs(family: str | None = None) -> list[str]:
    """The architectures (no ``_lpf`` suffix) of ``family``, or of every family listed by default; sorted."""
    families = [get_family(family)] if family is not None else [f for f in _FAMILIES.values()
                                                                if f.names.listed_by_default]
    return sorted({arch for f in families for arch in f.names.archs()})


def method_filter_sizes(method: str) -> tuple[int, ...]:
    """The filter sizes ``method`` takes in a name (``_lpf<N>``): its ``filter_sizes`` where it has a filter,
    else 1..7 (a method without a filter accepts N and ignores it)."""
    chosen = METHODS.get(method)
    if chosen is None or not has_filter(chosen):
        return tuple(range(1, MAX_FILTER_SIZE + 1))
    return tuple(chosen.filter_sizes)


# --------------------------------------------------------------------------- listing


def _patterns(value: str | Iterable[str] | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _family_names(family: Family) -> list[str]:
    sizes = method_filter_sizes(DEFAULT_METHOD)
    names = []
    for arch in family.names.archs():
        if family.names.has_baseline(arch):
            names.append(format_model_name(arch, prefix=family.prefix))
        if family.names.cannot_convert(arch) is None:
            names += [format_model_name(arch, n, prefix=family.prefix) for n in sizes]
    return names


def list_models(include: str | Iterable[str] | None = None, exclude: str | Iterable[str] | None = None
                ) -> list[str]:
    """All model names, sorted, optionally filtered by fnmatch patterns (as torchvision and timm do).

    The paper's names and every torchvision classification model (``<arch>``, and ``<arch>_lpf<N>``
    where :func:`~antialiased.models.antialias.antialias` can convert it: not the vision
    transformers). A family not listed by default (timm's ~1400 architectures, 8 names each) is
    listed only for an include pattern that starts with its prefix (e.g. ``"timm/resnet*"``).

    Example:
        >>> list_models("resnet18*")
        ['resnet18', 'resnet18_lpf1', 'resnet18_lpf2', 'resnet18_lpf3', 'resnet18_lpf4', 'resnet18_lpf5', 'resnet18_lpf6', 'resnet18_lpf7']
        >>> list_models("vgg16*", exclude="*_lpf[1-6]")
        ['vgg16', 'vgg16_bn', 'vgg16_bn_lpf7', 'vgg16_lpf7']
        >>> list_models(["efficientnet_b0*", "vit_b_16*"], exclude="*_lpf[2-7]")
        ['efficientnet_b0', 'efficientnet_b0_lpf1', 'vit_b_16']
    """
    include_patterns, exclude_patterns = _patterns(include), _patterns(exclude)
    families = [f for f in _FAMILIES.values()
                if f.names.listed_by_default or any(p.startswith(f.prefix) for p in include_patterns)]
    names = {name for family in families for name in _family_names(family)}
    if include_patterns:
        names = {n for n in names if any(fnmatch.fnmatchcase(n, p) for p in include_patterns)}
    return sorted(n for n in names if not any(fnmatch.fnmatchcase(n, p) for p in exclude_patterns))


# --------------------------------------------------------------------------- parsing


def _unknown(name: str) -> ModelError:
    prefixed = [f for f in _FAMILIES.values() if f.prefix and name.startswith(f.prefix)]
    if prefixed:  # a large family: suggest among its architectures only
        candidates = [format_model_name(arch, prefix=prefixed[0].prefix) for arch in prefixed[0].names.archs()]
    else:
        candidates = list_models()
    close = difflib.get_close_matches(name, candidates, n=5, cutoff=0.5)
    hint = f" Closest names: {', '.join(close)}." if close else ""
    prefixes = "".join(f", '{f.prefix}<name>' or '{f.prefix}<name>_lpf<N>' for {f.name}'s"
                       for f in _FAMILIES.values() if f.prefix)
    return ModelError(
        f"unknown model {name!r}.{hint} Names are '<arch>' (baseline) or '<arch>_lpf<N>' (anti-aliased, "
        f"N=1..{MAX_FILTER_SIZE}) for the paper's and torchvision's architectures{prefixes}; see "
        f"antialiased.list_models() ('antialiased models').")


def _owner(name: str) -> tuple[Family, str, int | None]:
    """The family answering ``name``, the architecture and the filter size (None: the baseline)."""
    for family in _FAMILIES.values():
        if not name.startswith(family.prefix):
            continue
        match = _NAME.match(name[len(family.prefix):])
        if match is not None and match["arch"] in family.names:
            size = match["filter_size"]
            return family, match["arch"], None if size is None else int(size)
    raise _unknown(name)


def _spec_owner(spec: ModelSpec) -> tuple[Family, str, int | None]:
    """``spec``'s family, architecture and filter size, checked without going through its name."""
    family = _FAMILIES.get(spec.family)
    if family is None or spec.arch not in family.names:
        raise _unknown(format_model_name(spec.arch, spec.filter_size, prefix=family.prefix if family else ""))
    if spec.filter_size is not None and (not isinstance(spec.filter_size, int) or isinstance(spec.filter_size, bool)):
        raise ModelError(f"filter_size must be an integer, got {spec.filter_size!r}")
    return family, spec.arch, spec.filter_size


def _check_method(family: Family, spec: ModelSpec, method: str | None) -> None:
    if method is None:
        return
    if not isinstance(method, str):
        raise ModelError(f"aa_method must be a method name such as 'blurpool', got {type(method).__name__}")
    if not spec.antialiased:
        raise ModelError(f"aa_method={method!r} applies to anti-aliased names, and {spec.name!r} is the baseline "
                         f"without blur: use '{dataclasses.replace(spec, filter_size=4).name}' (or leave aa_method / "
                         f"--aa-method out)")
    if method not in family.accepted_methods():
        raise ModelError(f"{spec.name!r} cannot be made with method {method!r}: choose one of "
                         f"{', '.join(family.accepted_methods())} (aa_method= in create_model, --aa-method on the "
                         f"command line)")


def _check_options(family: Family, spec: ModelSpec) -> None:
    if not spec.options:
        return
    if family.methods is not None:
        raise ModelError(f"{spec.name!r} is built by its own code, which takes no antialias() options; leave "
                         f"aa_options out")
    method = METHODS[spec.method]
    own = [option.name for option in method.method_options]
    unknown = [key for key, _ in spec.options if key not in AA_OPTIONS and key not in own]
    if unknown:
        raise ModelError(f"unknown aa_options {', '.join(map(repr, unknown))} for {spec.name!r}: antialias() takes "
                         f"{', '.join(AA_OPTIONS)}, and method {spec.method} its own: {', '.join(own) or 'none'}")
    try:  # the method's own values are checked now, before any work
        resolve_method_options(method, {key: value for key, value in spec.options if key in own})
    except ConfigError as err:
        raise ModelError(f"aa_options for {spec.name!r}: {err}") from None


def _check_buildable(family: Family, spec: ModelSpec) -> None:
    if not spec.antialiased:
        if not family.names.has_baseline(spec.arch):
            raise ModelError(f"{spec.name!r} has no baseline model (it was registered without one); use an "
                             f"anti-aliased name such as '{dataclasses.replace(spec, filter_size=4).name}'")
        return
    sizes = method_filter_sizes(spec.method)
    if spec.filter_size not in sizes:
        example = dataclasses.replace(spec, filter_size=4 if 4 in sizes else sizes[0]).name
        span = (f"_lpf{sizes[0]} to _lpf{sizes[-1]}" if list(sizes) == list(range(sizes[0], sizes[-1] + 1))
                else f"{', '.join(f'_lpf{n}' for n in sizes[:-1])} or _lpf{sizes[-1]} (method {spec.method})")
        raise ModelError(f"filter size {spec.filter_size} in {spec.name!r} is out of range: use {span} (e.g. "
                         f"{example})")
    reason = family.names.cannot_convert(spec.arch)
    if reason is not None:
        base = spec.baseline().name
        raise ModelError(f"{spec.name!r} cannot be made: {base} {reason}. Use the baseline {base!r} or a CNN (see "
                         f"antialiased.list_models())")


def get_model_spec(name: str | ModelSpec, *, method: str | None = None,
                   options: Mapping[str, Any] | None = None) -> ModelSpec:
    """Resolve a model name into its :class:`ModelSpec` (a valid spec passes through unchanged).

    Args:
        name: a model name (see :func:`list_models`) or a spec.
        method: the anti-aliasing method of an ``_lpf<N>`` name (default ``"blurpool"``, the paper's);
            for a spec, replaces its method.
        options: ``antialias()`` keyword options of an ``_lpf<N>`` name (``pad_type``, ``include_stem``,
            ``paper_choices``, ``input_size``, ``circular``).

    Raises:
        ModelError: an unknown name (with the closest names), a filter size outside the method's range,
            a name that cannot be anti-aliased (vision transformers), a method or options for a
            baseline name, a method or option the family does not take.
        MissingDependencyError: a ``timm/`` name without timm installed.

    Example:
        >>> get_model_spec("wide_resnet50_2_lpf7").name
        'wide_resnet50_2_lpf7'
        >>> get_model_spec("efficientnet_b0_lpf3", method="aps")
        ModelSpec(family='torchvision', arch='efficientnet_b0', filter_size=3, method='aps', options=(), task='classification')
    """
    if isinstance(name, ModelSpec):  # its fields are checked as they are: the name is not parsed again
        given = name
        method = given.method if method is None else method
        options = dict(given.options) if options is None else options
        family, arch, filter_size = _spec_owner(given)
    elif isinstance(name, str):
        given = None
        family, arch, filter_size = _owner(name)
    else:
        raise TypeError(f"a model name must be a string, got {type(name).__name__}")
    spec = ModelSpec(family.name, arch, filter_size, task=family.task)
    _check_method(family, spec, method)
    if options and not spec.antialiased:
        raise ModelError(f"aa_options apply to anti-aliased names, and {spec.name!r} is the baseline without blur")
    spec = dataclasses.replace(spec, method=method, options=options or ())
    _check_options(family, spec)
    _check_buildable(family, spec)
    return given if given == spec else spec


# --------------------------------------------------------------------------- files that record a spec


def check_recorded_spec(recorded: Any, spec: ModelSpec, where: str) -> None:
    """Refuse a file that records another spec of the same architecture (other family, filter size, method).

    ``recorded`` is the file's ``model_spec`` entry (a dict, as :meth:`ModelSpec.to_dict` wrote it;
    older files say ``source`` for the family); a file without one (torchvision's, timm's and the
    paper's published files, bare state dicts) is accepted. The name (family prefix, architecture,
    filter size), method and options are compared; a record of another architecture is left to the
    strict load, which names the keys that do not fit.

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
    options = {str(key): _frozen(value) for key, value in dict(recorded.get("options") or {}).items()}
    method = METHODS.get(spec.method) if spec.method is not None else None
    size = recorded.get("filter_size")
    if method is not None and not has_filter(method) and isinstance(size, int) and size in method_filter_sizes(
            spec.method):  # a method without a filter ignores N: _lpf3 and _lpf5 are the same model
        spec = dataclasses.replace(spec, filter_size=size)
    if (recorded.get("name"), recorded.get("method"), options) == (spec.name, spec.method, dict(spec.options)):
        return
    name, method = recorded.get("name"), recorded.get("method")
    extra = f", aa_method={method!r}" if method not in (None, DEFAULT_METHOD) else ""
    extra += f", aa_options={options!r}" if options else ""
    cli = f" --aa-method {method}" if method not in (None, DEFAULT_METHOD) else ""
    cli += "".join(f" --aa-option {key}={value}" for key, value in sorted(options.items()))
    raise CheckpointError(
        f"{where} was saved from {_describe(recorded)}, but the model asked for is {spec.describe()}. "
        f"Load it as create_model({name!r}{extra}) (-a {name}{cli} on the command line), or pass another file")

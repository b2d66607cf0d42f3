"""``antialias(model)``: find every subsampling of a CNN and rewrite it with the chosen method.

Steps (one :class:`_Conversion`):

1. functional pools in traced forwards (``F.max_pool2d``...) become equivalent layers, so that
   every site is a module (their owner turns into a ``GraphModule``, keys unchanged);
2. a shape probe on ``meta`` tensors gives each site's channels and tells which layers read the
   image (``_probe``);
3. every layer is classified (``_sites``): sites are rewritten by the method's rewriters
   (``_methods``), with the paper's choices for its architectures (``_paper``); everything else
   that subsamples is listed with the reason it is left alone;
4. the rewrites are realized with the same state-dict keys (``_apply``).
"""
from __future__ import annotations

import warnings
from typing import Any

import torch.fx as fx
from torch import nn

from antialiased.errors import ConfigError, ModelError
from antialiased.layers import PAD_TYPES
from antialiased.models.antialias._apply import Applier, CannotApply, _free_name, _join
from antialiased.models.antialias._graphs import (
    FUNCTIONAL_NOTES,
    GraphIndex,
    is_plain_sequential,
    is_torch_module,
    keyed_graph_module,
)
from antialiased.models.antialias._methods import METHODS, check_method
from antialiased.models.antialias._options import resolve_filter_size, resolve_method_options
from antialiased.models.antialias._paper import find_choice, paper_choices
from antialiased.models.antialias._probe import ProbeError, ProbeResult, default_input_sizes, probe
from antialiased.models.antialias._sites import (
    Found,
    call_layer,
    classify_call,
    classify_module,
    describe,
    resolve_upsampling,
    site_functions,
)
from antialiased.models.antialias._summary import AntialiasSummary
from antialiased.models.antialias._shapes import input_channels, reads_image
from antialiased.models.antialias._types import SITE_RULES, Method, Rewrite, RewriteContext, Site, Skip
from antialiased.models.antialias._upsample_calls import call_shapes, specialized_graph

__all__ = ["antialias", "AntialiasWarning", "INSERTED"]

#: The attribute ``antialias()`` sets (to True) on every layer it inserts, so that loaders know which
#: entries a baseline checkpoint cannot hold (:func:`antialiased.models.transfer.load_baseline`).
INSERTED = "antialias_inserted"


class AntialiasWarning(UserWarning):
    """``antialias()`` found nothing to change (the model has no strided subsampling)."""


def _check_int(name: str, value: object, low: int, high: int | None) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < low or (high is not None and value > high):
        span = f"from {low} to {high}" if high is not None else f">= {low}"
        raise ConfigError(f"{name} must be an integer {span}, got {value!r}")


def _check_options(model: object, method: object, pad_type: object, flags: dict, input_size: object) -> Method:
    if not isinstance(model, nn.Module):
        raise ModelError(f"antialias() takes a torch.nn.Module, got {type(model).__name__}; build the model first, "
                         f"e.g. antialias(torchvision.models.resnet50())")
    chosen = check_method(method)
    if pad_type not in PAD_TYPES:
        raise ConfigError(f"pad_type must be one of {sorted(PAD_TYPES)}, got {pad_type!r}")
    for name, value in flags.items():
        if not isinstance(value, bool):
            raise ConfigError(f"{name} must be True or False, got {value!r}")
    if flags["circular"] and not chosen.supports_circular:
        able = sorted(m.name for m in METHODS.values() if m.supports_circular) or ["none installed"]
        raise ConfigError(f"circular=True needs a method that supports it ({', '.join(able)}), not {method!r}")
    if input_size is not None:
        if not isinstance(input_size, (tuple, list)) or not 2 <= len(input_size) <= 4:
            raise ConfigError(f"input_size must be (channels, *spatial), e.g. (3, 224, 224), got {input_size!r}")
        for value in input_size:
            _check_int("each entry of input_size", value, 1, None)
    return chosen


def antialias(
    model: nn.Module,
    *,
    filter_size: int | None = None,
    method: str = "blurpool",
    pad_type: str = "reflect",
    include_stem: bool = False,
    paper_choices: bool = True,
    input_size: tuple[int, ...] | None = None,
    circular: bool = False,
    upsample: bool = True,
    **method_options: Any,
) -> nn.Module:
    """Anti-alias every subsampling of ``model`` in place and return it (see the package docs).

    Args:
        model: a CNN (torchvision, timm or your own); rewritten in place.
        filter_size: blur filter taps, 1-7 (1: none, 2: box, 3: triangle, 4-7: binomial); for
            ``"adaptive"`` the predicted filters' size (3, 5 or 7). None: the method's default (4;
            adaptive: 3). Methods without a filter (aps, lps, flc, asap, wavelet, tips) ignore it.
        method: a name of :data:`METHODS`: ``"blurpool"`` (the paper's recipe), ``"blur-first"``,
            ``"aps"``, ``"aps-lpf"``, ``"adaptive"``, ``"lps"``, ``"lps-lpf"``, ``"flc"``, ``"asap"``,
            ``"wavelet"``, ``"tips"`` (docs/methods.md).
        pad_type: the blur's padding: ``'reflect'``, ``'replicate'``, ``'zero'`` or ``'circular'``.
        include_stem: also convert a strided conv that reads the image (the paper keeps it).
        paper_choices: for torchvision instances of the paper's architectures, apply its
            per-architecture choices (ResNet's 2x2 stem max-pool, AlexNet's conv1 at stride 2, ...).
        input_size: ``(C, H, W)`` the model will see; the conversion is checked at this size (clear
            errors if it is too small for the chosen layers). Default: tried at 224 (then 32).
        circular: pad circularly everywhere (for methods that support it), upsamplings' borders included.
        upsample: also rewrite the upsamplings (strided transposed convs, ``nn.Upsample`` and
            ``F.interpolate``, pixel shuffles) with the method's upsampling rule; False leaves them,
            listed as such in the summary.
        **method_options: the method's own options (``groups=`` for adaptive, ``hidden_channels=``
            for LPS, ``crop=`` for FLC/ASAP; ``Method.method_options``), checked.

    Returns:
        The same model object, with ``model.antialias_summary`` (:class:`AntialiasSummary`). A module
        whose own forward needed a new call between two of its calls (the model itself, a ResNet
        block) runs its edited ``torch.fx`` graph as its forward and stays an instance of its class
        (now ``Antialiased<Class>``, a subclass): methods, attributes and state-dict keys are kept.

    Raises:
        ModelError: not an ``nn.Module``, a vision transformer's patch embedding, a model that
            does not run on the probe input.
        ConfigError: an unknown method or pad type, a filter size the method cannot take, an option
            the method does not have (or a value it cannot take), an input size too small for the
            converted model.

    Example:
        >>> import torch, torchvision
        >>> net = antialias(torchvision.models.resnet18(num_classes=10), filter_size=3)
        >>> net(torch.rand(1, 3, 64, 64)).shape
        torch.Size([1, 10])
        >>> [c.path for c in net.antialias_summary.changed][:3]
        ['maxpool', 'layer2.0.conv1', 'layer2.0.downsample.0']
    """
    flags = {"include_stem": include_stem, "paper_choices": paper_choices, "circular": circular, "upsample": upsample}
    chosen = _check_options(model, method, pad_type, flags, input_size)
    filter_size = resolve_filter_size(chosen, filter_size)
    ctx = RewriteContext(filter_size, pad_type, include_stem or chosen.converts_stem, circular, upsample,
                         method_options=resolve_method_options(chosen, method_options))
    uses = chosen.options  # the summary shows only the options the method reads
    summary = AntialiasSummary(method, filter_size if "filter_size" in uses else None,
                               pad_type if "pad_type" in uses else None, ctx.include_stem,
                               circular=circular and "circular" in uses, method_options=dict(ctx.method_options))
    ctx.summary = summary
    if chosen.prepare is not None:
        model = chosen.prepare(model, ctx)
    model = _Conversion(model, chosen, ctx, paper_choices, input_size).run()
    if chosen.finalize is not None:
        model = chosen.finalize(model, ctx)
    if not summary.changed:
        warnings.warn(
            f"antialias(): nothing changed in {type(model).__name__}: it has no subsampling (or upsampling) to rewrite "
            f"({len(summary.left_alone)} layers left alone; see model.antialias_summary)", AntialiasWarning,
            stacklevel=2,
        )
    model.antialias_summary = summary
    return model


def _has_forward(module: nn.Module) -> bool:
    return type(module).forward is not nn.Module.forward


class _Conversion:
    """The state of one ``antialias()`` call (see the module doc for the steps)."""

    def __init__(self, model: nn.Module, method: Method, ctx: RewriteContext, use_paper: bool,
                 input_size: tuple[int, ...] | None) -> None:
        self.index = GraphIndex(model)
        self.method, self.ctx, self.summary = method, ctx, ctx.summary
        self.choices = paper_choices(model) if use_paper else {}
        self.input_size = tuple(input_size) if input_size is not None else None
        self.origins: dict[str, str] = {}  # module path -> the functional call it replaces
        self.call_shapes: dict[str, tuple] = {}  # module path -> its call's (input, output) shapes in the probe
        self._probed: ProbeResult | None = None

    def run(self) -> nn.Module:
        self._calls_to_modules()
        if self.input_size is not None:
            _ = self.probed  # the unconverted model's shapes at the user's size, for the final check
        found = [self._resolved(f) for path, module in self.index.model.named_modules()
                 if (f := classify_module(path, module))]
        self._refuse_patch_embedding(found)
        plans = [(record, self._plan(record)) for record in found]
        applier = Applier(self.index)
        for record, plan in plans:
            self._apply(record, plan, applier)
        model = applier.finish()
        self.summary.add_graph_modules(applier.graph_modules)
        if self.input_size is not None:
            self._check_converted(model)
        return model

    # -- step 1: functional calls (pools, interpolations) become layers ----------------------

    def _calls_to_modules(self) -> None:
        owners = self._calls_by_owner()
        if any(r.direction == "up" for _, _, found in owners for r in found):
            owners = [self._with_shapes(*owner) for owner in owners]  # up calls: factors from the probe
        for path, graph, found in owners:
            sites = []
            for record in found:
                reason = record.reason if not record.is_site else self._call_refusal(record)
                if reason is None:
                    sites.append(record)
                else:
                    before = _call_text(record) if record.is_site or record.params else record.origin
                    self.summary.add_left_alone(record.path, record.kind, before, reason)
            if sites:
                self._rewrite_calls(path, graph, sites)

    def _calls_by_owner(self) -> list[tuple[str, fx.Graph, list[Found]]]:
        owners, clean = [], set()  # clean: classes whose forward calls nothing that changes the resolution
        for path, module in list(self.index.model.named_modules()):
            if (type(module) in clean or is_torch_module(module) or is_plain_sequential(module)
                    or not _has_forward(module) or classify_module(path, module) is not None):
                continue
            graph = self.index.graph(path)
            if graph is None:
                continue
            found = [f for f in (classify_call(path, node) for node in graph.nodes) if f is not None]
            if not found and not any(n.op == "call_function" and _is_site_call(n) for n in graph.nodes):
                clean.add(type(module))
            if found:
                owners.append((path, graph, found))
        return owners

    def _shapes_probe(self) -> ProbeResult | None:
        """The probe, for up calls' shapes; None where it cannot run and no up site would be rewritten anyway."""
        try:
            return self.probed
        except ModelError:
            if self.ctx.upsample and self.method.up_rewriters:
                raise
            return None

    def _with_shapes(self, path: str, graph: fx.Graph, found: list[Found]) -> tuple[str, fx.Graph, list[Found]]:
        """The owner's calls with the probe's shapes (up calls' factors); its graph fixed to its None arguments."""
        probed = self._shapes_probe()
        if probed is None:
            return path, graph, found
        if any(f.is_site for f in found):
            fixed = specialized_graph(self.index.module(path), probed.none_args.get(path, frozenset()))
            if fixed is not None:
                graph = fixed
                found = [f for f in (classify_call(path, node) for node in graph.nodes) if f is not None]
        shapes = call_shapes(probed.calls.get(path, []), graph, site_functions("up"))
        found = [resolve_upsampling(f, shapes.get(f.path.rpartition(".")[2])) if f.direction == "up" and f.is_site
                 else f for f in found]
        return path, graph, found

    def _call_refusal(self, record: Found) -> str | None:
        """Why an up call stays a call (the method leaves it alone), or None: it becomes a layer."""
        if record.direction != "up":
            return None
        reason = self._up_reason(record.kind)
        if reason is not None or record.shapes is None:
            return reason
        site = self._up_site(record, call_layer(record))
        if isinstance(site, str):
            return site
        result = self.method.up_rewriters[record.kind](site, self.ctx)
        return result.reason if isinstance(result, Skip) else None

    def _rewrite_calls(self, path: str, graph: fx.Graph, sites: list[Found]) -> None:
        if self.index.depends_on_training(path):
            reason = (f"the forward of {path or 'the model'} takes other paths in training than in eval mode; "
                      f"rewriting its graph would freeze one of them")
            for record in sites:
                self.summary.add_left_alone(record.path, record.kind, _call_text(record), reason)
            return
        module = self.index.module(path)
        for record in sites:
            node = next(n for n in graph.nodes if n.name == record.path.rpartition(".")[2])
            name = _free_name(module, node.name)
            module.add_module(name, call_layer(record))
            with graph.inserting_before(node):
                new = graph.call_module(name, (node.args[0],), dict(record.call_inputs or {}))
            node.replace_all_uses_with(new)
            graph.erase_node(node)
            self.origins[_join(path, name)] = _call_text(record)
            if record.shapes is not None:
                self.call_shapes[_join(path, name)] = record.shapes
        graph.lint()
        self.index.replace(path, keyed_graph_module(module, graph), graph)
        self.summary.add_graph_modules([path])

    # -- step 2: the shape probe -------------------------------------------------------------

    @property
    def probed(self) -> ProbeResult:
        """The shape probe of the model as it was, run once, when the graphs cannot tell."""
        if self._probed is None:
            self._probed = self._probe(self.index.model, self.input_size)
        return self._probed

    @staticmethod
    def _probe(model: nn.Module, input_size: tuple[int, ...] | None) -> ProbeResult:
        sizes = [input_size] if input_size is not None else default_input_sizes(model)
        failures = []
        for size in sizes:
            try:
                return probe(model, size, watch=site_functions("up"))
            except ProbeError as err:
                failures.append(f"{size}: {err} (in {err.module or 'the model'})")
        raise ModelError(
            f"antialias() could not run {type(model).__name__} once on a probe input to find its feature map "
            f"shapes ({'; '.join(failures)}). Pass input_size=(C, H, W) with a size the model accepts"
        )

    # -- step 3: classify and rewrite --------------------------------------------------------

    def _refuse_patch_embedding(self, found: list[Found]) -> None:
        sites = [f for f in found if f.is_site]
        if len(sites) != 1 or sites[0].kind != "conv" or not self._reads_image(sites[0].path):
            return
        conv = sites[0].module
        spatial_convs = [m for m in self.index.model.modules()
                         if isinstance(m, nn.modules.conv._ConvNd) and m is not conv and max(m.kernel_size) > 1]
        if tuple(conv.kernel_size) == tuple(conv.stride) and max(conv.stride) >= 4 and not spatial_convs:
            raise ModelError(
                f"{sites[0].path} ({describe(conv)}) is the patch embedding of a vision transformer (or MLP-mixer): "
                f"a conv whose kernel equals its stride, cutting the image into tokens. It is not a CNN's "
                f"subsampling and the model has no other, so antialias() has nothing to anti-alias; use it on a CNN "
                f"(e.g. resnet50, convnext_tiny, efficientnet_b0) or the CNN part of a hybrid model"
            )

    def _reads_image(self, path: str) -> bool:
        known = reads_image(self.index, path)
        if known is not None:
            return known
        shape = self.probed.inputs.get(path)
        return path in self.probed.reads_image or (shape is not None and shape[1:] == self.probed.input_size)

    def _site(self, record: Found) -> Site | str:
        if record.direction == "up":
            return self._up_site(record, record.module)
        module, path = record.module, record.path
        if len(set(record.stride)) > 1:
            return (f"stride {record.stride} differs between dimensions; BlurPool subsamples every dimension by one "
                    f"factor, so it is left as it is")
        channels = getattr(module, "in_channels", None) or input_channels(self.index, path)
        shape = self.probed.inputs.get(path) if channels is None else None
        channels = channels or (shape[1] if shape is not None and len(shape) > 1 else None)
        if channels is None:
            return (f"not reached by the shape probe (one forward at input size {self.probed.input_size}), so its "
                    f"channel count is unknown; pass the input_size at which the model uses it")
        return Site(
            path=path, kind=record.kind, module=module, stride=record.stride, in_channels=channels,
            out_channels=getattr(module, "out_channels", channels), ndim=record.ndim,
            is_stem=self._reads_image(path), origin=self.origins.get(path, "module"),
            input_shape=shape, choice=find_choice(self.choices, path),
        )

    def _resolved(self, record: Found) -> Found:
        """An interpolation's factor from the probe, where the layer does not state it (size=), and the 1x1 check."""
        if record.kind != "interpolate" or not record.is_site or self._up_reason(record.kind) is not None:
            return record  # nothing to resolve, or left alone whatever its factor
        shapes = self.call_shapes.get(record.path)
        if shapes is None and (record.stride is None or self._probed is not None):
            before, after = self.probed.inputs.get(record.path), self.probed.outputs.get(record.path)
            shapes = (before, after) if before is not None and after is not None else None
        return resolve_upsampling(record, shapes)

    def _up_site(self, record: Found, module: nn.Module) -> Site | str:
        """The Site of an up record (``module``: its layer, or the layer a call would become)."""
        shapes = record.shapes or self.call_shapes.get(record.path)
        channels = getattr(module, "in_channels", None) or (shapes[0][1] if shapes else None)
        if channels is None and record.module is module:  # a layer of the model: its graph, then the probe
            channels = input_channels(self.index, record.path)
            if channels is None:
                shape = self.probed.inputs.get(record.path)
                channels = shape[1] if shape is not None and len(shape) > 1 else None
        if channels is None:
            return (f"not reached by the shape probe (one forward at input size {self.probed.input_size}), so its "
                    f"channel count is unknown; pass the input_size at which the model uses it")
        rule = SITE_RULES[record.kind]
        out = getattr(module, "out_channels", None) or (rule.out_channels(module, channels) if rule.out_channels
                                                          else channels)
        return Site(path=record.path, kind=record.kind, module=module, stride=record.stride, in_channels=channels,
                    out_channels=out, ndim=record.ndim, origin=self.origins.get(record.path, "module"),
                    input_shape=shapes[0] if shapes else None, output_shape=shapes[1] if shapes else None)

    def _up_reason(self, kind: str) -> str | None:
        """Why an up site of ``kind`` is left alone whatever it is (upsample=False, no rule), or None."""
        if not self.ctx.upsample:
            return (f"upsample=False: {SITE_RULES[kind].description} is left as it is (upsample=True rewrites it "
                    f"with the method's upsampling rule)")
        if kind not in self.method.up_rewriters:
            which = f" for {kind} sites" if self.method.up_rewriters else ""
            return f"method {self.method.name!r} has no upsampling rule{which}; left as it is"
        return None

    def _left_alone_reason(self, site: Site) -> str | None:
        if site.direction == "up":
            return self._up_reason(site.kind)
        converts = self.ctx.include_stem or (site.choice is not None and site.choice.convert_stem)
        if site.kind == "conv" and site.is_stem and not converts:
            return ("stem: a strided conv reading the image stays strided, as in the paper (include_stem=True "
                    "converts it)")
        if site.kind not in self.method.rewriters:
            return f"method {self.method.name!r} does not rewrite {site.kind} sites"
        return None

    def _plan(self, record: Found) -> tuple[Site, Rewrite] | str:
        """What the site becomes, or the reason it is left alone (nothing is changed yet)."""
        if not record.is_site:
            return record.reason or ""
        site = self._site(record)
        reason = site if isinstance(site, str) else self._left_alone_reason(site)
        if reason is not None:
            return reason
        rewriters = self.method.up_rewriters if site.direction == "up" else self.method.rewriters
        result = rewriters[site.kind](site, self.ctx)
        if isinstance(result, Skip):
            return result.reason
        self._place_like_model(site, result)
        return site, result

    def _place_like_model(self, site: Site, rewrite: Rewrite) -> None:
        """New layers on the device (and floating dtype) of the site's, or the model's, tensors; tagged INSERTED.

        A replacement holding the site's own parameters (a polyphase transposed conv) is no new layer:
        its keys are the baseline's, so it is not tagged (a baseline checkpoint must fill them).
        """
        new = (*rewrite.before, *rewrite.after, *([rewrite.replace] if rewrite.replace is not None else []))
        own = {id(t) for t in (*site.module.parameters(), *site.module.buffers())}
        for module in new:
            if not any(id(t) in own for t in (*module.parameters(), *module.buffers())):
                setattr(module, INSERTED, True)
        tensors = [*site.module.parameters(), *site.module.buffers()] or [
            *self.index.model.parameters(), *self.index.model.buffers()]
        if not tensors:
            return
        like = next((t for t in tensors if t.is_floating_point()), tensors[0])
        for module in new:
            module.to(device=like.device, dtype=like.dtype if like.is_floating_point() else None)

    def _apply(self, record: Found, plan: tuple[Site, Rewrite] | str, applier: Applier) -> None:
        before = self.origins.get(record.path) or (describe(record.module) if record.module is not None else record.origin)
        if not isinstance(plan, str):
            try:
                self.summary.add_change(record.path, record.kind, before, applier.apply(*plan))
                return
            except CannotApply as err:
                plan = str(err)
        self.summary.add_left_alone(record.path, record.kind, before, plan)

    # -- step 4: check the result at the user's input size -----------------------------------

    def _check_converted(self, model: nn.Module) -> None:
        try:
            result = probe(model, self.input_size)
        except ProbeError as err:
            raise ConfigError(
                f"the converted model does not run at input_size={self.input_size}: {err} (in {err.module}). The "
                f"input is too small for the rewritten layers; use larger inputs or a smaller filter_size"
            ) from None
        for path, module in model.named_modules():
            shape = result.inputs.get(path)
            if _inserted_blur(module) and shape is not None and module.pad_type in ("reflect", "refl"):
                after = module.filt_size // 2 + module.pad_off
                if min(shape[2:]) <= after:
                    raise ConfigError(
                        f"{path} (BlurPool, filt_size={module.filt_size}) gets a {'x'.join(map(str, shape[2:]))} "
                        f"feature map at input_size={self.input_size}: reflect padding of {after} needs at least "
                        f"{after + 1} pixels. Use larger inputs, pad_type='replicate' or 'zero', or "
                        f"filter_size <= {max(1, 2 * min(shape[2:]) - 1)}"
                    )
        if result.output != self.probed.output:
            warnings.warn(f"antialias(): the output shape changed from {self.probed.output} to {result.output} "
                          f"at input_size={self.input_size}", AntialiasWarning, stacklevel=3)


def _inserted_blur(module: nn.Module) -> bool:
    return hasattr(module, "filt_size") and "filt" in getattr(module, "_non_persistent_buffers_set", ())


def _call_text(record: Found) -> str:
    args = [f"{k}={v}" for k, v in (record.params or {}).items()]
    args += [f"{k}=<run time>" for k in (record.call_inputs or {})]
    return f"{record.origin}({', '.join(args)})"


def _is_site_call(node: fx.Node) -> bool:
    return node.target in site_functions() or (
        node.target in FUNCTIONAL_NOTES and FUNCTIONAL_NOTES[node.target][0] != "slice")

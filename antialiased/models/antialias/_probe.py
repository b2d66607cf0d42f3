"""A shape probe: one forward pass that records what every module receives and returns.

The probe runs on the ``meta`` device (shapes only: no memory, no arithmetic, the model's own
tensors untouched) through ``torch.func.functional_call``, in training mode so that branches
used only in training are visited too, with a batch of 2 (batch norm needs two values per
channel in training). A model that cannot run on ``meta`` is probed once for real, in eval mode,
without gradients, and left as it was.

It tells the engine each site's input channels (a pool has no channel count of its own), which
layers read the image itself (the stem), and whether the converted model still runs. It also
records, per module, the input and output shapes of the functional calls its own forward makes
(``watch``: ``F.interpolate``'s factor may only be known at run time, ``size=``), in call order,
and which forward arguments were None (a traced forward must not take the other branch).

Example:
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.ReLU(), nn.MaxPool2d(2))
    >>> result = probe(net, (3, 32, 32))
    >>> result.inputs["2"], result.output
    ((2, 8, 16, 16), (2, 8, 8, 8))
    >>> sorted(result.reads_image)  # the model itself and its first conv get the image
    ['', '0']
"""
from __future__ import annotations

import contextlib
import inspect
from dataclasses import dataclass, field
from typing import Iterator

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

__all__ = ["ProbeResult", "probe", "default_input_sizes", "ProbeError"]

_BATCH = 2


class ProbeError(RuntimeError):
    """The model did not run on the probe input; ``module`` is the innermost module that failed."""

    def __init__(self, message: str, module: str | None) -> None:
        super().__init__(message)
        self.module = module


@dataclass
class ProbeResult:
    """Shapes seen in one forward pass (first call of each module), by module path."""

    input_size: tuple[int, ...]
    inputs: dict[str, tuple[int, ...]] = field(default_factory=dict)
    outputs: dict[str, tuple[int, ...]] = field(default_factory=dict)
    reads_image: set[str] = field(default_factory=set)
    output: tuple[int, ...] | None = None
    calls: dict[str, list[tuple[object, tuple[int, ...], tuple[int, ...]]]] = field(default_factory=dict)
    none_args: dict[str, frozenset[str]] = field(default_factory=dict)


def default_input_sizes(model: nn.Module) -> list[tuple[int, ...]]:
    """Input sizes to try: the first conv's input channels at 224 pixels (then 32, for CIFAR nets)."""
    conv = next((m for m in model.modules() if isinstance(m, nn.modules.conv._ConvNd)), None)
    channels = conv.in_channels if conv is not None else 3
    ndim = len(conv.kernel_size) if conv is not None else 2
    spatial = {1: [(224,), (32,)], 2: [(224, 224), (32, 32)], 3: [(16, 112, 112), (8, 32, 32)]}[ndim]
    return [(channels, *size) for size in spatial]


def _first_tensor(value: object) -> torch.Tensor | None:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, (tuple, list)) and value:
        return _first_tensor(value[0])
    if isinstance(value, dict) and value:
        return _first_tensor(next(iter(value.values())))
    return None


class _CallRecorder(TorchFunctionMode):
    """Records ``(function, input shape, output shape)`` of the watched calls, under the innermost module."""

    def __init__(self, watch: frozenset, result: ProbeResult, stack: list, first: set) -> None:
        super().__init__()
        self.watch, self.result, self.stack, self.first = watch, result, stack, first

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        owner = self.stack[-1] if self.stack else ""
        if func in self.watch and owner in self.first:  # the owner's first call only, as the shapes
            x, y = _first_tensor(args), _first_tensor(out)
            if x is not None and y is not None:
                self.result.calls.setdefault(owner, []).append((func, tuple(x.shape), tuple(y.shape)))
        return out


def _none_arguments(module: nn.Module, args: tuple, kwargs: dict) -> frozenset[str]:
    try:
        bound = inspect.signature(module.forward).bind(*args, **kwargs)
    except (TypeError, ValueError):
        return frozenset()
    bound.apply_defaults()  # an argument left out is its default: None for skip=None
    return frozenset(name for name, value in bound.arguments.items() if value is None)


@contextlib.contextmanager
def _hooks(model: nn.Module, result: ProbeResult, image: list, stack: list, first: set) -> Iterator[None]:
    handles = []
    for path, module in model.named_modules():
        def pre(mod, args, kwargs, path=path):
            stack.append(path)
            x = _first_tensor(args) if args else _first_tensor(list(kwargs.values()))
            if path not in result.none_args:
                first.add(path)
                result.none_args[path] = _none_arguments(mod, args, kwargs)
            else:
                first.discard(path)
            if x is not None and path not in result.inputs:
                result.inputs[path] = tuple(x.shape)
                if x is image[0]:
                    result.reads_image.add(path)

        def post(mod, args, out, path=path):
            stack.pop()
            y = _first_tensor(out)
            if y is not None and path not in result.outputs:
                result.outputs[path] = tuple(y.shape)

        handles += [module.register_forward_pre_hook(pre, with_kwargs=True), module.register_forward_hook(post)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


@contextlib.contextmanager
def _mode(model: nn.Module, training: bool) -> Iterator[None]:
    modes = {m: m.training for m in model.modules()}
    model.train(training)
    try:
        yield
    finally:
        for module, was in modes.items():
            module.training = was


def _run(model: nn.Module, input_size: tuple[int, ...], on_meta: bool, watch: frozenset) -> ProbeResult:
    result = ProbeResult(tuple(input_size))
    stack: list[str] = []
    first: set[str] = set()  # modules in their first call
    if on_meta:
        x = torch.empty((_BATCH, *input_size), device="meta")
        tensors = {k: torch.empty_like(v, device="meta") for k, v in _state(model)}
        call, mode, grad = (lambda: torch.func.functional_call(model, tensors, (x,), strict=False)), True, True
    else:
        ref = next(model.parameters(), torch.empty(0))
        x = torch.zeros((_BATCH, *input_size), device=ref.device, dtype=ref.dtype if ref.is_floating_point() else None)
        call, mode, grad = (lambda: model(x)), False, False
    image = [x]
    recorder = _CallRecorder(watch, result, stack, first) if watch else contextlib.nullcontext()
    with _hooks(model, result, image, stack, first), _mode(model, mode), torch.set_grad_enabled(grad), recorder:
        try:
            out = call()
        except Exception as err:  # noqa: BLE001 - reported with the module it happened in
            raise ProbeError(f"{type(err).__name__}: {err}", stack[-1] if stack else None) from err
    first = _first_tensor(out)
    result.output = tuple(first.shape) if first is not None else None
    return result


def _state(model: nn.Module) -> list[tuple[str, torch.Tensor]]:
    return [*model.named_parameters(remove_duplicate=False), *model.named_buffers(remove_duplicate=False)]


def probe(model: nn.Module, input_size: tuple[int, ...], watch: frozenset = frozenset()) -> ProbeResult:
    """Run ``model`` once on a batch of 2 inputs of ``input_size`` (C, *spatial); see the module doc.

    ``watch``: functions whose calls are recorded in ``calls`` (by the module making them).

    Raises:
        ProbeError: the model failed on this input, on ``meta`` and for real.
    """
    try:
        return _run(model, input_size, on_meta=True, watch=frozenset(watch))
    except ProbeError:
        return _run(model, input_size, on_meta=False, watch=frozenset(watch))

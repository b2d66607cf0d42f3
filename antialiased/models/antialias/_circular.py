"""Circular padding everywhere: the conversion that makes a network commute with circular shifts.

A convolution or pooling layer commutes with circular shifts of its input only when it pads
circularly and keeps the size ("same" padding: ``d * (k - 1)`` in total per side pair, ``p``
before and the rest after). With every layer converted, a circular shift of the input becomes a
circular shift of every feature map, up to the subsamplings; APS turns those into shifts too,
and global pooling at the end removes them: the logits do not change.

- ``nn.Conv2d``: ``padding_mode='circular'`` with the "same" amounts (in place: same module,
  same parameters, so the state-dict keys do not change). A conv whose padding is not already
  "same" (``padding=0`` with ``k > 1``) then keeps its input size instead of shrinking it.
- ``nn.MaxPool2d`` / ``nn.AvgPool2d``: :class:`CircularPool2d`, explicit circular padding and the
  pool with ``padding=0``. Every window is then full, so ``count_include_pad`` has nothing to count,
  and ``ceil_mode`` is dropped (with "same" padding the floor size is ``ceil(H / s)``).
- Zero, reflect and replicate padding modules become ``nn.CircularPad2d`` of the same amounts.
- In a traced model (``torch.fx.GraphModule``, or a forward that ``antialias()`` generated from
  its graph) functional pools (``F.max_pool2d``,
  ``F.avg_pool2d``, as in Inception v3) call :func:`circular_max_pool2d` / :func:`circular_avg_pool2d`.

What cannot be converted is returned with the reason (conv subclasses with their own forward,
such as timm's ``Conv2dSame``; transposed convs; adaptive pools to more than 1x1, whose bins are
positions) so that nothing is skipped silently.

Example:
    >>> net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.MaxPool2d(3, 1, 1), nn.AdaptiveAvgPool2d(1))
    >>> changed, skipped = make_circular(net)
    >>> [path for path, _, _ in changed], skipped
    (['0', '1'], [])
    >>> x = torch.randn(1, 3, 8, 8)
    >>> torch.allclose(net(torch.roll(x, (3, 5), (2, 3))), net(x), atol=1e-6)
    True
"""
from __future__ import annotations

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.utils import _pair

from antialiased.errors import ModelError
from antialiased.layers._padding import pad as _pad_any  # circular padding that may wrap several times
from antialiased.layers.polyphase import phase_role
from antialiased.models.antialias._graphs import keyed_graph_module, shallow_graph
from antialiased.models.antialias._keep_class import runs_generated_forward

__all__ = [
    "same_pads",
    "circular_max_pool2d",
    "circular_avg_pool2d",
    "CircularPool2d",
    "CircularConv2d",
    "make_circular",
]

Change = tuple[str, str, str]  # (module path, before, after)
Skip = tuple[str, str]  # (module path, reason)

_PAD_MODULES = (nn.ZeroPad2d, nn.ConstantPad2d, nn.ReflectionPad2d, nn.ReplicationPad2d)


def same_pads(kernel_size: object, padding: object, dilation: object = 1) -> list[int]:
    """``F.pad`` amounts (left, right, top, bottom) that keep the size: ``p`` before, ``d (k - 1) - p`` after.

    Example:
        >>> same_pads(3, 1), same_pads(2, 0), same_pads((7, 1), (3, 0))
        ([1, 1, 1, 1], [0, 1, 0, 1], [0, 0, 3, 3])
    """
    (kh, kw), (dh, dw) = _pair(kernel_size), _pair(dilation)
    if isinstance(padding, str):  # 'same' / 'valid': centre the window as torch does for 'same'
        padding = (dh * (kh - 1) // 2, dw * (kw - 1) // 2)
    ph, pw = _pair(padding)
    pads = [pw, dw * (kw - 1) - pw, ph, dh * (kh - 1) - ph]
    if min(pads) < 0:
        raise ModelError(
            f"padding {padding} is larger than the window (kernel {kernel_size}, dilation {dilation}) needs; "
            f"circular padding cannot keep the size"
        )
    return pads


def circular_max_pool2d(
    input: torch.Tensor, kernel_size: object, stride: object = None, padding: object = 0,
    dilation: object = 1, ceil_mode: bool = False, return_indices: bool = False,
) -> torch.Tensor:
    """``F.max_pool2d`` with circular "same" padding instead of ``padding`` (and no ``ceil_mode``).

    Example:
        >>> x = torch.arange(4.0).reshape(1, 1, 1, 4)
        >>> circular_max_pool2d(x, (1, 2), 1)  # the last window wraps around to the first column
        tensor([[[[1., 2., 3., 3.]]]])
    """
    padded = F.pad(input, same_pads(kernel_size, padding, dilation), mode="circular")
    return F.max_pool2d(padded, kernel_size, stride, 0, dilation, False, return_indices)


def circular_avg_pool2d(
    input: torch.Tensor, kernel_size: object, stride: object = None, padding: object = 0,
    ceil_mode: bool = False, count_include_pad: bool = True, divisor_override: int | None = None,
) -> torch.Tensor:
    """``F.avg_pool2d`` with circular "same" padding: every window is full, so no padding is counted.

    Example:
        >>> circular_avg_pool2d(torch.tensor([[[[0.0, 2.0, 4.0]]]]), (1, 3), 1, (0, 1))
        tensor([[[[2., 2., 2.]]]])
    """
    padded = F.pad(input, same_pads(kernel_size, padding), mode="circular")
    return F.avg_pool2d(padded, kernel_size, stride, 0, False, True, divisor_override)


class CircularPool2d(nn.Module):
    """A max or average pool behind circular "same" padding; holds the pool (no state).

    Shape:
        - Input: :math:`(N, C, H, W)`
        - Output: :math:`(N, C, \\lceil H / s \\rceil, \\lceil W / s \\rceil)`

    Example:
        >>> CircularPool2d(nn.AvgPool2d(2, 1))(torch.randn(1, 2, 5, 6)).shape
        torch.Size([1, 2, 5, 6])
    """

    def __init__(self, pool: nn.MaxPool2d | nn.AvgPool2d) -> None:
        super().__init__()
        if isinstance(pool, nn.MaxPool2d):
            if pool.return_indices:
                raise ModelError(f"{pool} returns indices; circular padding would change what they index")
            self.pads = same_pads(pool.kernel_size, pool.padding, pool.dilation)
            self.pool: nn.Module = nn.MaxPool2d(pool.kernel_size, pool.stride, 0, pool.dilation)
        elif isinstance(pool, nn.AvgPool2d):
            self.pads = same_pads(pool.kernel_size, pool.padding)
            self.pool = nn.AvgPool2d(pool.kernel_size, pool.stride, 0, divisor_override=pool.divisor_override)
        else:
            raise ModelError(f"CircularPool2d wraps nn.MaxPool2d or nn.AvgPool2d, got {type(pool).__name__}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(F.pad(x, self.pads, mode="circular"))

    def extra_repr(self) -> str:
        return f"pads={self.pads}"


class CircularConv2d(nn.Conv2d):
    """An ``nn.Conv2d`` whose circular padding may wrap around the map more than once.

    torch's circular padding refuses pads larger than the map (DeepLabV3's ASPP convs of
    dilation 36 on the 8x8 map of a 64x64 input); the wrap-around is still well defined: the
    map repeats. :func:`make_circular` gives plain ``nn.Conv2d`` layers with pads above 1 this
    class, in place (same object, parameters and keys).

    Example:
        >>> conv = nn.Conv2d(1, 1, 3, padding=4, dilation=4)
        >>> _ = make_circular(nn.Sequential(conv))
        >>> type(conv).__name__, conv(torch.rand(1, 1, 3, 3)).shape
        ('CircularConv2d', torch.Size([1, 1, 3, 3]))
    """

    def _conv_forward(self, input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        padded = _pad_any(input, tuple(self._reversed_padding_repeated_twice), "circular")
        return F.conv2d(padded, weight, bias, self.stride, 0, self.dilation, self.groups)


def _plain_conv(module: nn.Module) -> bool:
    # Subclasses that pad on their own (timm's Conv2dSame) would pad twice.
    cls = type(module)
    return cls.forward is nn.Conv2d.forward and cls._conv_forward in (nn.Conv2d._conv_forward,
                                                                     CircularConv2d._conv_forward)


def _convert_conv(conv: nn.Conv2d) -> str | None:
    pads = same_pads(conv.kernel_size, conv.padding, conv.dilation)
    if not any(pads) and conv.padding_mode == "zeros":
        return None  # 1x1 and other pad-free convs already commute with circular shifts
    conv.padding_mode = "circular"
    # Conv2d pads with these amounts whenever padding_mode is not 'zeros' (self.padding is then unused).
    conv._reversed_padding_repeated_twice = pads
    if type(conv) is nn.Conv2d and max(pads) > 1:  # may exceed a small map: wrap as often as needed
        conv.__class__ = CircularConv2d
    return f"circular padding {pads}"


def _skip_reason(module: nn.Module) -> str | None:
    if phase_role(module) is not None:
        return None  # polyphase layers pad on their own (circularly when built with circular=True)
    if isinstance(module, nn.Conv2d) and not _plain_conv(module):
        return f"{type(module).__name__} overrides Conv2d's padding; it keeps its own (not circular)"
    if isinstance(module, nn.ConvTranspose2d):
        return "transposed convolutions are not converted to circular padding (upsample=True makes them polyphase, circular)"
    if isinstance(module, nn.Upsample) and module.mode not in ("nearest", "nearest-exact"):
        return (f"{module.mode} interpolation clamps at the borders (not circular); upsample=True makes it "
                f"polyphase, circular")
    if isinstance(module, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)) and _pair(module.output_size) != (1, 1):
        return (f"adaptive pooling to {module.output_size} keeps positions: the output is not invariant to "
                f"circular shifts (global pooling is)")
    return None


def _replacement(module: nn.Module) -> nn.Module | None:
    if isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)) and type(module) in (nn.MaxPool2d, nn.AvgPool2d):
        return CircularPool2d(module)
    if type(module) in _PAD_MODULES:
        return nn.CircularPad2d(tuple(module.padding))
    return None


def _set_child(model: nn.Module, path: str, new: nn.Module) -> None:
    parent, _, name = path.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, name, new)


def _convert_functional_pools(graph_module: torch.fx.GraphModule) -> list[Change]:
    changes = []
    targets = {F.max_pool2d: circular_max_pool2d, torch.max_pool2d: circular_max_pool2d,
               F.avg_pool2d: circular_avg_pool2d, torch._C._nn.avg_pool2d: circular_avg_pool2d}
    for node in graph_module.graph.nodes:
        if node.op == "call_function" and node.target in targets:
            before = getattr(node.target, "__name__", str(node.target))
            node.target = targets[node.target]
            changes.append((node.name, f"{before} (graph node)", f"{node.target.__name__}"))
    if changes:
        graph_module.recompile()
    return changes


def make_circular(model: nn.Module) -> tuple[list[Change], list[Skip]]:
    """Convert ``model`` in place to circular padding; returns (changed, skipped) module paths.

    ``changed`` holds ``(path, before, after)``, ``skipped`` ``(path, reason)``. State-dict keys
    do not change (pools and padding modules hold no state; convs are modified in place).
    """
    changed: list[Change] = []
    skipped: list[Skip] = []
    for path, module in list(model.named_modules()):
        reason = _skip_reason(module)
        if reason is not None:
            skipped.append((path, reason))
        elif isinstance(module, nn.Conv2d):
            before = repr(module)
            after = _convert_conv(module)
            if after is not None:
                changed.append((path, before, after))
        else:
            new = _replacement(module) if path else None  # the root itself cannot be swapped in place
            if new is not None:
                _set_child(model, path, new)
                changed.append((path, repr(module), repr(new)))
    if isinstance(model, torch.fx.GraphModule):
        changed += _convert_functional_pools(model)
    changed += _convert_generated_forwards(model)
    return changed, skipped


def _convert_generated_forwards(model: nn.Module) -> list[Change]:
    """Functional pools in forwards that antialias() generated from a graph (``_keep_class``), made circular."""
    changes = []
    for path, module in list(model.named_modules()):
        if runs_generated_forward(module):
            scratch = torch.fx.GraphModule(module, shallow_graph(module))  # its graph, to edit
            found = _convert_functional_pools(scratch)
            if found:
                keyed_graph_module(module, scratch.graph)
                changes += [(f"{path}.{node}" if path else node, before, after) for node, before, after in found]
    return changes

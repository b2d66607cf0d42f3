"""Key remapping on load: state dicts of other layouts mapped onto a model's own keys.

A family whose files exist in other key layouts installs a :class:`KeyRemap` on the models it
builds (:func:`install_key_remap`): a ``load_state_dict`` pre-hook, so that plain
``model.load_state_dict(state_dict)`` takes those files, and ``model.key_remap``, which
:func:`~antialiased.support.checkpoints.load_into` applies before it checks the keys. A remap is
a list of *rules*, ``rule(model, state_dict) -> state_dict``, each recognizing its layout and
leaving any other state dict as it is.

The paper's models (:mod:`antialiased.models.paper`) are torchvision's models converted by
``antialias()``: their keys are torchvision's. Their published files (and checkpoints saved by
earlier versions of this package) are in the *published layout*: blur filters saved as ``*.filt``
buffers and learned entries nested differently (``layer2.0.conv2.1.weight`` for
``layer2.0.conv2.weight``). :func:`published_layout` maps them by role: the learned entries of
both, in state-dict order, paired one to one and checked by leaf name and shape; each ``filt``
must be the filter of one of the model's blur layers (it is then dropped, or adopted by a model
still on the ``meta`` device).

Example:
    >>> from antialiased.models import create_model
    >>> model = create_model("resnet18_lpf3", num_classes=10)
    >>> blurs = [m for m in model.modules() if isinstance(m, BlurPool)]
    >>> saved = {**{f"blur{i}.filt": m.filt for i, m in enumerate(blurs)}, **model.state_dict()}  # filters saved
    >>> model.load_state_dict(saved, strict=True)
    <All keys matched successfully>
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from antialiased.errors import WeightsError
from antialiased.layers import BlurPool, BlurPool1D, BlurPool3D, binomial_filter

__all__ = ["KeyRemap", "KeyRule", "install_key_remap", "pair_by_role", "published_layout"]

KeyRule = Callable[[nn.Module, dict], dict]
_BLURS = (BlurPool, BlurPool1D, BlurPool3D)
_NDIM = {BlurPool: 2, BlurPool1D: 1, BlurPool3D: 3}


class KeyRemap:
    """Maps state dicts of other layouts onto a model's keys, rule after rule (see the module doc).

    Installed as the model's ``load_state_dict`` pre-hook (it rewrites the entries under the
    module's prefix in place; a rule's refusal becomes one of ``load_state_dict``'s error messages).
    """

    def __init__(self, rules: Sequence[KeyRule]) -> None:
        self.rules = tuple(rules)

    def apply(self, model: nn.Module, state_dict: dict) -> dict:
        """``state_dict`` in ``model``'s keys (raises :class:`WeightsError` for a layout it cannot map)."""
        for rule in self.rules:
            state_dict = rule(model, state_dict)
        return state_dict

    def __call__(self, module: nn.Module, state_dict: dict, prefix: str, local_metadata: dict, strict: bool,
                 missing_keys: list, unexpected_keys: list, error_msgs: list) -> None:
        own = {key[len(prefix):]: state_dict.pop(key) for key in list(state_dict) if key.startswith(prefix)}
        try:
            own = self.apply(module, own)
        except WeightsError as err:
            error_msgs.append(str(err))
        state_dict.update({prefix + key: value for key, value in own.items()})


def install_key_remap(model: nn.Module, rules: Sequence[KeyRule]) -> nn.Module:
    """Give ``model`` a :class:`KeyRemap` of ``rules`` (its pre-hook and ``model.key_remap``); returns it."""
    if rules:
        remap = KeyRemap(rules)
        model.key_remap = remap
        model.register_load_state_dict_pre_hook(remap)
    return model


def _leaf(key: str) -> str:
    return key.rpartition(".")[2]


def pair_by_role(source: list[tuple[str, torch.Tensor]], dest: list[tuple[str, torch.Tensor]], *,
                 source_name: str, dest_name: str) -> list[tuple[str, str]]:
    """``(source key, dest key)`` for entries playing the same role: in order, same leaf name and shape.

    Raises:
        WeightsError: other counts, or the first pair that disagrees (the two differ in architecture or
            number of classes).
    """
    if len(source) != len(dest):
        raise WeightsError(
            f"{source_name} has {len(source)} learned parameters/buffers but {dest_name} has {len(dest)}: they are "
            f"not the same architecture ({source_name} starts {[k for k, _ in source[:3]]}, {dest_name} starts "
            f"{[k for k, _ in dest[:3]]}). Build the model of the file's architecture and num_classes.")
    for (src_key, src), (dst_key, dst) in zip(source, dest):
        if _leaf(src_key) != _leaf(dst_key) or src.shape != dst.shape:
            raise WeightsError(
                f"{source_name}'s entry {src_key!r} {tuple(src.shape)} does not match {dest_name}'s entry "
                f"{dst_key!r} {tuple(dst.shape)}: the two differ in architecture or num_classes")
    return [(src_key, dst_key) for (src_key, _), (dst_key, _) in zip(source, dest)]


def _blur_layers(model: nn.Module) -> list[nn.Module]:
    """Blur layers whose filter is not saved (those ``antialias()`` inserts), in module order."""
    return [m for m in model.modules() if isinstance(m, _BLURS) and "filt" in m._non_persistent_buffers_set]


def _own_filter(module: nn.Module) -> torch.Tensor:
    if not module.filt.is_meta:
        return module.filt.detach().cpu()
    return binomial_filter(module.filt_size, _NDIM[type(module)]).expand(module.filt.shape)


def _check_filter_sizes(saved: list[torch.Tensor], blurs: list[nn.Module]) -> None:
    taps, own = sorted({int(t.shape[-1]) for t in saved}), sorted({int(m.filt.shape[-1]) for m in blurs})
    if taps != own:
        found, want = "/".join(map(str, taps)), "/".join(map(str, own))
        raise WeightsError(f"the file's blur filters have {found} taps, the model's {want}: the file is for another "
                           f"filter size (_lpf{found} instead of _lpf{want}); build the model with that filter size")
    shapes = sorted(tuple(t.shape) for t in saved)
    if shapes != sorted(tuple(m.filt.shape) for m in blurs):
        raise WeightsError(f"the file saves {len(saved)} blur filters that do not match the model's {len(blurs)} blur "
                           f"layers (channels per filter differ): it is another architecture's file")


def _take_filters(model: nn.Module, saved: list[torch.Tensor]) -> None:
    """Check each saved filter against a blur layer of the same shape; a layer still on meta adopts it."""
    blurs = _blur_layers(model)
    _check_filter_sizes(saved, blurs)
    free = {}
    for module in blurs:
        free.setdefault(tuple(module.filt.shape), []).append(module)
    for tensor in saved:
        module = free[tuple(tensor.shape)].pop(0)
        if not torch.allclose(tensor.detach().cpu().float(), _own_filter(module).float(), atol=1e-6):
            raise WeightsError(f"a saved blur filter of shape {tuple(tensor.shape)} is not the normalized binomial "
                               f"filter the model's blur layers apply: the file was not saved from this package's or "
                               f"the paper's models")
        if module.filt.is_meta:
            module.filt = tensor.detach().to(module.filt.dtype)


def published_layout(model: nn.Module, state_dict: dict) -> dict:
    """Map a published-layout state dict (it saves ``*.filt`` blur filters) onto ``model``'s keys by role.

    State dicts without saved filters the model does not have are returned unchanged.

    Raises:
        WeightsError: filters of another size or architecture, learned entries that do not pair.
    """
    expected = model.state_dict()
    filters = [key for key in state_dict if _leaf(key) == "filt" and key not in expected]
    if not filters:
        return state_dict
    _take_filters(model, [state_dict[key] for key in filters])
    saved = set(filters)
    learned = [(key, value) for key, value in state_dict.items() if key not in saved]
    pairs = pair_by_role(learned, list(expected.items()), source_name="the published-layout file",
                         dest_name="the model")
    return {dst: state_dict[src] for src, dst in pairs}

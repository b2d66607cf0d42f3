"""The fast CIFAR-10 recipe of the methods benchmarks, and their evaluation by the package's shift protocols.

**Network** (airbench94's, K. Jordan, "94% on CIFAR-10 in 3.29 seconds on a single GPU", 2024):
a frozen whitening conv (the eigenvectors of the training images' 3x3 patch covariance, scaled
by ``1/sqrt(eigenvalue + 5e-4)``, each with its negation: 54 filters; trainable bias, frozen after
3 epochs) + GELU, then three groups ``conv3x3 -> MaxPool(2) -> BN -> GELU -> conv3x3 -> BN -> GELU``
of widths 64, 256, 256 (``width`` x 1, 4, 4), global max pooling, a linear layer without bias and a
1/9 scale. Convs have no bias and start from the identity ("dirac" init of their first filters);
BatchNorm: eps 1e-12, momentum 0.6 in airbench's convention (PyTorch's 0.4), weights frozen at 1.
Changed from airbench94: a 3x3 whitening conv with padding (airbench: 2x2, no padding), so maps are
32, 16, 8, 4 pixels, all multiples of the strides: circularly padded APS/LPS networks are exactly
invariant to circular shifts; global max pooling of the 4x4 map (airbench: MaxPool(3) of 3x3).

**Schedule** (airbench94's numbers): batch 1024, Nesterov SGD with momentum 0.85, learning rate
11.5 and weight decay 0.0153 per 1024 examples in airbench's decoupled form (the summed loss,
``lr / (1024 (1 + 1 / (1 - momentum)))`` for PyTorch), BatchNorm biases at 64x the learning rate,
label smoothing 0.2, a triangular learning-rate schedule (0.2 of the peak at the start, the peak at
23% of the steps, 0.07 at the end), random flips (alternating every epoch) and random translation by
up to 2 pixels (reflect padding). Left out: the lookahead (EMA) optimizer and test-time
augmentation: accuracy is the plain single-view accuracy every method is compared on. Without
them (airbench's own ablation: test-time augmentation is worth 0.8 points) and on the shared copy
of CIFAR-10, which is JPEG-compressed (quality 75), airbench94's 9.9 epochs give less than 93%, so
the default here is 16 epochs: an estimate, not measured (no GPU here); check the baseline's
accuracy with one short run first (``--methods baseline --seeds 0``) and raise ``--epochs`` if needed.
The parameters of the layers a method inserts (learned methods) train as ``antialiased train`` trains
them (``antialiased.training.method_rules``, the methods' registered rules): at the convs' learning rate,
with weight decay except where the method's authors use none (LPS's scorer, TIPS), and the methods'
per-epoch schedules (LPS's Gumbel-softmax temperature) applied at the start of every epoch.
"""
from __future__ import annotations

import math
import time
from collections import OrderedDict
from dataclasses import dataclass, replace

import torch
from torch import nn

from _methods_common import inserted_layers
from antialiased.evaluation import (AccuracyScorer, AdversarialScorer, CircularConsistencyScorer,
                                    FractionalConsistencyScorer, LoopOptions, ShiftConsistencyScorer, run_protocols)
from antialiased.training.method_rules import apply_epoch_schedules, parameter_groups
from methods_cifar_data import TrainBatches

__all__ = ["Recipe", "ShiftSettings", "build_net", "whiten_init", "train", "evaluate", "NET_NAME"]

NET_NAME = "airnet"


@dataclass(frozen=True)
class Recipe:
    """The training recipe (airbench94's hyper-parameters; see the module doc)."""

    epochs: float = 16.0  # airbench94: 9.9 (with test-time augmentation, on PNG CIFAR-10); see the module doc
    batch_size: int = 1024
    lr: float = 11.5  # per 1024 examples, decoupled from the momentum
    momentum: float = 0.85
    weight_decay: float = 0.0153  # per 1024 examples, decoupled from the learning rate
    bias_scaler: float = 64.0
    label_smoothing: float = 0.2
    whiten_bias_epochs: float = 3.0
    translate: int = 2
    width: int = 64
    bn_momentum: float = 0.6
    schedule: tuple[float, float, float] = (0.2, 0.23, 0.07)  # start factor, peak position, end factor
    lr_scale: float = 1.0  # the whole schedule times this (fine-tuning: lower)

    def sgd_lr(self) -> float:
        """PyTorch's learning rate for the summed loss, from airbench's decoupled value."""
        return self.lr / (1024 * (1 + 1 / (1 - self.momentum)))

    def sgd_decay(self) -> float:
        """The decay per step (PyTorch's ``lr * weight_decay``) at the schedule's peak."""
        return self.weight_decay * self.batch_size / (1024 * (1 + 1 / (1 - self.momentum)))

    def factor(self, step: int, total: int) -> float:
        """The triangular schedule's factor at ``step`` of ``total``, times ``lr_scale``."""
        start, peak, end = self.schedule
        top = max(1, int(peak * total))
        value = start + (1 - start) * step / top if step < top else 1 + (end - 1) * (step - top) / max(1, total - top)
        return value * self.lr_scale

    def finetune(self, fraction: float, lr_scale: float) -> "Recipe":
        return replace(self, epochs=self.epochs * fraction, lr_scale=lr_scale)


def _conv(cin: int, cout: int) -> nn.Conv2d:
    conv = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
    with torch.no_grad():  # identity init of the first filters: an implicit residual (airbench's "dirac")
        nn.init.dirac_(conv.weight[:cin])
    return conv


def _norm(channels: int, momentum: float) -> nn.BatchNorm2d:
    norm = nn.BatchNorm2d(channels, eps=1e-12, momentum=1 - momentum)
    norm.weight.requires_grad_(False)
    return norm


def _group(cin: int, cout: int, momentum: float) -> nn.Sequential:
    return nn.Sequential(OrderedDict(conv1=_conv(cin, cout), pool=nn.MaxPool2d(2), norm1=_norm(cout, momentum),
                                     act1=nn.GELU(), conv2=_conv(cout, cout), norm2=_norm(cout, momentum),
                                     act2=nn.GELU()))


class Scale(nn.Module):
    """Multiplies by a constant (airbench's 1/9 on the logits)."""

    def __init__(self, scale: float) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


def build_net(width: int = 64, num_classes: int = 10, bn_momentum: float = 0.6) -> nn.Sequential:
    """The network (see the module doc); the whitening conv still needs :func:`whiten_init`.

    Example:
        >>> build_net(8)(torch.rand(2, 3, 32, 32)).shape
        torch.Size([2, 10])
    """
    widths = (width, 4 * width, 4 * width)
    whiten = nn.Conv2d(3, 54, 3, padding=1, bias=True)
    nn.init.zeros_(whiten.bias)
    whiten.weight.requires_grad_(False)
    return nn.Sequential(OrderedDict(
        whiten=whiten, act=nn.GELU(),
        block1=_group(54, widths[0], bn_momentum), block2=_group(widths[0], widths[1], bn_momentum),
        block3=_group(widths[1], widths[2], bn_momentum),
        pool=nn.AdaptiveMaxPool2d(1), flatten=nn.Flatten(), head=nn.Linear(widths[2], num_classes, bias=False),
        scale=Scale(1 / 9),
    ))


@torch.no_grad()
def whiten_init(conv: nn.Conv2d, images: torch.Tensor, eps: float = 5e-4) -> None:
    """Set ``conv``'s filters to the whitening of ``images``' patches and their negations (airbench's init).

    Shape:
        - conv.weight: (2 C k^2, C, k, k)
        - images: (N, C, H, W), normalized
    """
    c, k = images.shape[1], conv.kernel_size[0]
    cov = torch.zeros(c * k * k, c * k * k, dtype=torch.float64, device=images.device)
    count = 0
    for chunk in images.split(256):
        patches = chunk.unfold(2, k, 1).unfold(3, k, 1).permute(0, 2, 3, 1, 4, 5).reshape(-1, c * k * k).double()
        cov += patches.T @ patches
        count += patches.shape[0]
    values, vectors = torch.linalg.eigh(cov / count)
    values, vectors = values.flip(0), vectors.T.flip(0)  # largest first
    filters = (vectors / torch.sqrt(values.clamp_min(0) + eps).view(-1, 1)).view(-1, c, k, k)
    conv.weight.copy_(torch.cat([filters, -filters]).to(conv.weight.dtype))


def _optimizer(model: nn.Module, recipe: Recipe, total_steps: int) -> tuple:
    """airbench's groups (the network's BatchNorm biases at ``bias_scaler`` x the lr) within the methods'
    own (:func:`~antialiased.training.method_rules.parameter_groups`); weight decay decoupled from each lr."""
    lr, decay = recipe.sgd_lr(), recipe.sgd_decay()
    inside = {id(p) for layer in inserted_layers(model).values() for p in layer.parameters()}
    norm_ids = {id(m.bias) for m in model.modules()
                if isinstance(m, nn.BatchNorm2d) and m.bias is not None and id(m.bias) not in inside}
    groups = []
    for group in parameter_groups(model, lr=lr, weight_decay=decay / lr):  # frozen ones too: thawed later, e.g.
        if group["weight_decay"]:
            group["weight_decay"] = decay / group["lr"]
        if group["name"] == "default":
            biases = [p for p in group["params"] if id(p) in norm_ids]
            group["params"] = [p for p in group["params"] if id(p) not in norm_ids]
            groups.append(dict(params=biases, lr=lr * recipe.bias_scaler, name="norm_biases",
                               weight_decay=decay / (lr * recipe.bias_scaler)))
        groups.append(group)
    optimizer = torch.optim.SGD(groups, lr=lr, momentum=recipe.momentum, nesterov=True)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: recipe.factor(step, total_steps))
    return optimizer, schedule


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train(model: nn.Module, batches: TrainBatches, recipe: Recipe, *, amp_dtype: torch.dtype | None = None,
          whiten_bias: bool = True) -> dict:
    """Train ``model`` for ``recipe.epochs`` (fractions: a part of the last epoch); returns its numbers:
    ``train_time_s``, ``train_images_per_s``, ``peak_memory_MiB`` (CUDA: the most allocated above
    what was resident before, the data and the model; None elsewhere), ``steps``, ``loss``."""
    device = batches.images.device
    total = max(1, math.ceil(batches.steps_per_epoch() * recipe.epochs))
    optimizer, schedule = _optimizer(model, recipe, total)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing, reduction="sum")
    bias = dict(model.named_parameters())["whiten.bias"]
    resident = 0
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        resident = torch.cuda.memory_allocated(device)  # the data and the model
    model.train()
    step = seen = 0
    loss = torch.zeros(())
    _sync(device)
    start = time.perf_counter()
    for epoch in range(math.ceil(recipe.epochs)):
        bias.requires_grad_(whiten_bias and epoch < recipe.whiten_bias_epochs)
        apply_epoch_schedules(model, epoch)  # the methods' schedules, e.g. LPS's Gumbel temperature
        for images, labels in batches.epoch_batches():
            with torch.autocast(device.type, amp_dtype, enabled=amp_dtype is not None):
                loss = loss_fn(model(images), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            step, seen = step + 1, seen + len(labels)
            if step >= total:
                break
    _sync(device)
    elapsed = time.perf_counter() - start
    peak = (torch.cuda.max_memory_allocated(device) - resident) / 2 ** 20 if device.type == "cuda" else None
    return {"train_time_s": elapsed, "train_images_per_s": seen / elapsed, "peak_memory_MiB": peak, "steps": step,
            "loss": float(loss.detach()) / max(1, len(labels))}


@dataclass(frozen=True)
class ShiftSettings:
    """How the test images are shifted (the paper's protocols scaled to 32 pixels).

    ``pad``: the 32px test images are reflect-padded by this on every side; ``-es`` compares two
    random 32px crops of the padded image (offsets 0..2 pad - 1, as 224 of 256 with 32), ``-ea``
    the crops at every offset of a ``grid`` x ``grid`` grid (0..grid-1; ``grid`` <= 2 pad + 1).
    ``-ec``: two circular shifts drawn from all 32x32; ``-ef``: two sub-pixel shifts from [0, 1)^2.
    ``passes``: shifted pairs per image (``--epochs-shift``).
    """

    pad: int = 4
    passes: int = 1
    grid: int = 5
    crop: int = 32


def evaluate(model: nn.Module, batches: list, device: torch.device, settings: ShiftSettings, seed: int, *,
             amp_dtype: torch.dtype | None = None, channels_last: bool = False) -> dict:
    """Accuracy and the four shift protocols, in one loop over ``batches`` (:func:`test_batches`'s),
    by the package's scorers (``antialiased.evaluation``)."""
    c, margin = settings.crop, 2 * settings.pad
    scorers = {
        "acc1": (AccuracyScorer(c), "acc1"),
        "crop_shift": (ShiftConsistencyScorer(c, margin, settings.passes, seed=seed, independent=True),
                       "consistency"),
        "circular": (CircularConsistencyScorer(c, c, settings.passes, seed=seed + 1), "consistency"),
        "fractional": (FractionalConsistencyScorer(c, settings.passes, seed=seed + 2), "consistency"),
        "adversarial": (AdversarialScorer(c, margin, settings.grid, "crop"), "adversarial_acc1"),
    }
    options = LoopOptions(amp_dtype=amp_dtype, channels_last=channels_last, progress=False)
    start = time.perf_counter()
    loop = run_protocols(model, batches, device, [s for s, _ in scorers.values()], options)
    out = {key: float(loop.results[scorer.name][field]) for key, (scorer, field) in scorers.items()}
    return {**out, "test_images": loop.count, "eval_time_s": time.perf_counter() - start}

"""ImageNet preprocessing: the paper's evaluation and training transforms and normalization helpers."""
from __future__ import annotations

from typing import Any, Sequence

import torch
from torchvision import transforms as T
from torchvision.transforms import functional as TF

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "CenteredView",
    "center_offset",
    "eval_transform",
    "train_transform",
    "uint8_transform",
    "normalize",
    "denormalize",
    "to_float_normalized",
]

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)


def eval_transform(resize: int = 256, crop: int = 224, mean: Sequence[float] = IMAGENET_MEAN,
                   std: Sequence[float] = IMAGENET_STD) -> T.Compose:
    """Resize(resize) -> CenterCrop(crop) -> ToTensor -> Normalize(mean, std) (the paper's ``-e``: ImageNet's).

    Example:
        >>> from PIL import Image
        >>> eval_transform()(Image.new("RGB", (500, 375))).shape
        torch.Size([3, 224, 224])
    """
    return T.Compose([T.Resize(resize), T.CenterCrop(crop), T.ToTensor(), T.Normalize(mean, std)])


def train_transform(crop: int = 224, augment: bool = True, resize: int = 256, mean: Sequence[float] = IMAGENET_MEAN,
                    std: Sequence[float] = IMAGENET_STD) -> T.Compose:
    """RandomResizedCrop(crop) + horizontal flip (``augment``) or Resize(resize) + CenterCrop(crop).

    Example:
        >>> from PIL import Image
        >>> train_transform(crop=64)(Image.new("RGB", (120, 90))).shape
        torch.Size([3, 64, 64])
    """
    if augment:
        head = [T.RandomResizedCrop(crop), T.RandomHorizontalFlip()]
    else:
        head = [T.Resize(resize), T.CenterCrop(crop)]
    return T.Compose([*head, T.ToTensor(), T.Normalize(mean, std)])


def center_offset(outer: int, inner: int) -> int:
    """Where torchvision's ``CenterCrop`` starts an ``inner`` crop on an ``outer`` side.

    ``round((outer - inner) / 2)`` with halves to even (Python's ``round``): 2 for 37 -> 32, 4 for 39 -> 32.

    Example:
        >>> center_offset(256, 224), center_offset(37, 32), center_offset(39, 32)
        (16, 2, 4)
    """
    return int(round((outer - inner) / 2.0))


class CenteredView(torch.nn.Module):
    """A ``size`` x ``size`` crop whose own central ``center`` crop is exactly ``CenterCrop(center)`` of the input.

    Center crops do not nest: torchvision rounds half offsets to even, so ``CenterCrop(center)`` of
    ``CenterCrop(size)`` can be one pixel off ``CenterCrop(center)`` unless ``size - center`` is a multiple of
    4 (it is for the paper's 256 - 224; not for CIFAR's 37 - 32, nor 38 - 32). This view is placed so that
    the crop at :func:`center_offset` ``(size, center)`` inside it is the input's center crop: it is
    ``CenterCrop(size)`` when ``size - center`` is a multiple of 4 and at most one pixel from it otherwise.
    So the shift protocols' views and ``-e``'s center crop come from one decode, with ``-e`` unchanged.

    Example:
        >>> x = torch.arange(51 * 38).view(1, 51, 38)  # CenterCrop(38) then 32 would be a pixel off here
        >>> view = CenteredView(38, 32)(x)
        >>> o = center_offset(38, 32)
        >>> torch.equal(view[..., o:o + 32, o:o + 32], T.CenterCrop(32)(x)), view.shape
        (True, torch.Size([1, 38, 38]))
    """

    def __init__(self, size: int, center: int) -> None:
        super().__init__()
        if center > size:
            raise ValueError(f"the center crop ({center}) must fit in the view ({size})")
        self.size, self.center = size, center

    def _start(self, side: int) -> int:
        return center_offset(side, self.center) - center_offset(self.size, self.center)  # in [0, side - size]

    def forward(self, img: Any) -> Any:
        width, height = TF.get_image_size(img)
        if min(width, height) < self.size:  # smaller than the view: torchvision's padding
            return TF.center_crop(img, [self.size, self.size])
        return TF.crop(img, self._start(height), self._start(width), self.size, self.size)


def uint8_transform(resize: int = 256, crop: int | None = None, *, center: int | None = None) -> T.Compose:
    """Resize(resize) -> CenterCrop(crop or resize) as a uint8 CHW tensor, exactly torchvision's PIL path.

    Normalizing the result with :func:`to_float_normalized` gives bit-for-bit the tensor that
    ``ToTensor`` + ``Normalize`` give, so crops can be cut and normalized later, in batches. With
    ``center``, the crop is the :class:`CenteredView` whose central ``center`` crop is exactly
    Resize(resize) -> CenterCrop(center) (the evaluation loop's shared decode for ``-e`` with ``-es``).

    Example:
        >>> from PIL import Image
        >>> x = uint8_transform(256)(Image.new("RGB", (500, 375)))
        >>> x.shape, x.dtype
        (torch.Size([3, 256, 256]), torch.uint8)
    """
    view = crop or resize
    cut = T.CenterCrop(view) if center is None else CenteredView(view, center)
    return T.Compose([T.Resize(resize), cut, T.PILToTensor()])


def _stats(values: Sequence[float], like: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(values, dtype=like.dtype, device=like.device).view(-1, 1, 1)


def normalize(x: torch.Tensor, mean: Sequence[float] = IMAGENET_MEAN,
              std: Sequence[float] = IMAGENET_STD) -> torch.Tensor:
    """``(x - mean) / std`` per channel, for (C, H, W) or (B, C, H, W) float tensors in [0, 1]."""
    return (x - _stats(mean, x)) / _stats(std, x)


def denormalize(x: torch.Tensor, mean: Sequence[float] = IMAGENET_MEAN,
                std: Sequence[float] = IMAGENET_STD) -> torch.Tensor:
    """Inverse of :func:`normalize`, clamped to [0, 1] (for saving images).

    Example:
        >>> x = torch.rand(2, 3, 4, 4)
        >>> torch.allclose(denormalize(normalize(x)), x, atol=1e-6)
        True
    """
    return (x * _stats(std, x) + _stats(mean, x)).clamp_(0, 1)


def to_float_normalized(x: torch.Tensor, mean: Sequence[float] = IMAGENET_MEAN,
                        std: Sequence[float] = IMAGENET_STD, dtype: torch.dtype = torch.float32,
                        memory_format: torch.memory_format = torch.preserve_format) -> torch.Tensor:
    """uint8 images -> normalized float, with the same operations (and rounding) as ToTensor + Normalize.

    ``memory_format``: lay the result out as the model wants it (e.g. ``torch.channels_last``), in
    the same pass as the conversion; the values do not depend on it.

    Shape:
        - x: (..., C, H, W) uint8
        - output: same shape, ``dtype``

    Example:
        >>> from PIL import Image
        >>> img = Image.new("RGB", (300, 260), (200, 10, 90))
        >>> a = eval_transform(256, 224)(img)
        >>> b = to_float_normalized(uint8_transform(256, 224)(img))
        >>> torch.equal(a, b)
        True
    """
    out = x.to(dtype=dtype, memory_format=memory_format).div_(255)
    return out.sub_(_stats(mean, out)).div_(_stats(std, out))

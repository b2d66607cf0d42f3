"""Shifted copies of a batch of images, made on the images' device: crops, circular and sub-pixel shifts.

The shift protocols decode every image once and make all of its shifted copies here, as batched
tensor operations, so that the forward passes get large batches and no copy crosses the host bus.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import torch

from antialiased.evaluation.probe import top1

__all__ = ["roll_images", "rolled_copies", "fourier_shift", "crops_at", "grid_offsets", "top1_over"]


def roll_images(images: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """Circularly shift each image by its own ``(dh, dw)``: ``torch.roll(image, (dh, dw), dims=(-2, -1))``.

    One gather for the whole batch instead of one roll per image. The result is channels_last
    (the layout the evaluation feeds models in); its values do not depend on the layout.

    Shape:
        - images: (B, C, H, W)
        - shifts: (B, 2) integers (any sign; taken modulo the image size)
        - output: (B, C, H, W)

    Example:
        >>> x = torch.arange(2 * 9.).view(2, 1, 3, 3)
        >>> y = roll_images(x, torch.tensor([[1, 0], [0, 2]]))
        >>> torch.equal(y[0], x[0].roll(1, dims=1)), torch.equal(y[1], x[1].roll(2, dims=2))
        (True, True)
    """
    b, _, h, w = images.shape
    shifts = shifts.to(device=images.device, dtype=torch.long).view(b, 2)
    rows = (torch.arange(h, device=images.device).view(1, h) - shifts[:, :1]).remainder(h)  # (B, H)
    cols = (torch.arange(w, device=images.device).view(1, w) - shifts[:, 1:]).remainder(w)  # (B, W)
    batch = torch.arange(b, device=images.device).view(b, 1, 1)
    # advanced indices on dims 0, 2, 3 with a slice on 1: the indexed dims come first -> (B, H, W, C)
    return images.permute(0, 2, 3, 1)[batch, rows.view(b, h, 1), cols.view(b, 1, w)].permute(0, 3, 1, 2)


def rolled_copies(images: torch.Tensor, offsets: Sequence[Sequence[int]]) -> torch.Tensor:
    """Every image circularly shifted by each offset, offset-major (as :func:`crops_at` cuts crops).

    Shape:
        - images: (B, C, H, W)
        - output: (len(offsets) * B, C, H, W)

    Example:
        >>> x = torch.arange(8.).view(2, 1, 2, 2)
        >>> rolled_copies(x, [(0, 0), (0, 1)])[:, 0, 0].tolist()
        [[0.0, 1.0], [4.0, 5.0], [1.0, 0.0], [5.0, 4.0]]
    """
    shifts = torch.tensor([tuple(o) for o in offsets], device=images.device).repeat_interleave(images.shape[0], dim=0)
    return roll_images(images.repeat(len(offsets), 1, 1, 1), shifts)


def fourier_shift(images: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """Band-limited circular translation of each image by its own real ``(dh, dw)`` pixels.

    The image's discrete Fourier transform is multiplied by the phase ramp
    ``exp(-2 pi i (k_h dh / H + k_w dw / W))`` and transformed back; the real part is kept (at
    the Nyquist frequency of an even side the ramp is complex: the real part averages both
    directions). Integer shifts equal :func:`torch.roll` up to rounding; fractional ones
    interpolate with the periodic sinc kernel. Computed in float32 (float64 stays float64).

    Shape:
        - images: (B, C, H, W) float
        - shifts: (B, 2) (dh, dw), real
        - output: (B, C, H, W), the images' dtype

    Example:
        >>> x = torch.rand(2, 3, 8, 6, dtype=torch.float64)
        >>> y = fourier_shift(x, torch.tensor([[2.0, -1.0], [0.0, 3.0]]))
        >>> torch.allclose(y[0], x[0].roll((2, -1), dims=(1, 2))), torch.allclose(y[1], x[1].roll(3, dims=2))
        (True, True)
        >>> n = torch.arange(8.0).view(1, 1, 8, 1).expand(1, 1, 8, 4)  # a cosine along the height
        >>> wave = torch.cos(2 * math.pi * n / 8)
        >>> torch.allclose(fourier_shift(wave, torch.tensor([[0.5, 0.0]])), torch.cos(2 * math.pi * (n - 0.5) / 8),
        ...                atol=1e-6)
        True
    """
    b, _, h, w = images.shape
    real = torch.float64 if images.dtype == torch.float64 else torch.float32
    shifts = shifts.to(device=images.device, dtype=real).view(b, 2)
    fh = torch.fft.fftfreq(h, device=images.device, dtype=real)
    fw = torch.fft.fftfreq(w, device=images.device, dtype=real)
    angle = -2 * math.pi * (shifts[:, 0].view(b, 1, 1) * fh.view(1, h, 1) + shifts[:, 1].view(b, 1, 1) * fw.view(1, 1, w))
    ramp = torch.polar(torch.ones_like(angle), angle).unsqueeze(1)  # (B, 1, H, W)
    spectrum = torch.fft.fft2(images.to(real), dim=(-2, -1))
    return torch.fft.ifft2(spectrum * ramp, dim=(-2, -1)).real.to(images.dtype)


def crops_at(images: torch.Tensor, offsets: Sequence[Sequence[int]] | torch.Tensor, size: int) -> torch.Tensor:
    """The ``size`` x ``size`` crops of every image at each offset, offset-major: ``[all at o0; all at o1; ...]``.

    Shape:
        - images: (B, C, H, W), H and W at least offset + size
        - offsets: K pairs (h, w)
        - output: (K * B, C, size, size)

    Example:
        >>> x = torch.arange(16.).view(1, 1, 4, 4)
        >>> crops_at(x, [(0, 0), (2, 1)], 2)[:, 0].tolist()
        [[[0.0, 1.0], [4.0, 5.0]], [[9.0, 10.0], [13.0, 14.0]]]
    """
    pairs = offsets.tolist() if torch.is_tensor(offsets) else [tuple(o) for o in offsets]
    return torch.cat([images[..., h:h + size, w:w + size] for h, w in pairs])


def grid_offsets(grid: int) -> list[tuple[int, int]]:
    """Every offset ``(dh, dw)`` of a ``grid`` x ``grid`` grid, row-major.

    Example:
        >>> grid_offsets(2)
        [(0, 0), (0, 1), (1, 0), (1, 1)]
    """
    return [(dh, dw) for dh in range(grid) for dw in range(grid)]


def top1_over(forward: Callable[[torch.Tensor], torch.Tensor],
              make_copies: Callable[[list[tuple[int, int]]], torch.Tensor], offsets: list[tuple[int, int]], n: int,
              forward_batch: int = 0) -> torch.Tensor:
    """Top-1 labels of ``n`` images under each offset, about ``forward_batch`` copies per forward pass.

    ``make_copies(some_offsets)`` returns the copies of all ``n`` images at those offsets,
    offset-major (as :func:`crops_at`); ``forward_batch`` 0 runs one offset per pass.

    Shape:
        - output: (len(offsets), n)

    Example:
        >>> x = torch.arange(2 * 16.).view(2, 1, 4, 4)
        >>> top = top1_over(lambda c: c.flatten(1), lambda o: crops_at(x, o, 2), [(0, 0), (2, 2)], 2, 4)
        >>> top.tolist()  # the index of the largest pixel of each 2x2 crop
        [[3, 3], [3, 3]]
    """
    per_pass = max(1, forward_batch // max(n, 1))
    labels = [top1(forward(make_copies(offsets[start:start + per_pass]))).view(-1, n)
              for start in range(0, len(offsets), per_pass)]
    return torch.cat(labels)

"""A small U-Net for the segmentation demo and evidence script, small enough to train on a CPU in seconds.

It holds plain subsampling (2x2 max-pools) and plain upsampling (2x2 transposed convs, or 2x
bilinear interpolation) only; the anti-aliased variants are this net converted by
:func:`antialiased.models.antialias.antialias` (:mod:`antialiased.demo.seg_variants`), so the
demo measures exactly what the library builds: BlurPool after the pools, a stride-1 blur after
each upsampling, or APS with polyphase upsampling (exactly equivariant to circular shifts).
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from antialiased.errors import ConfigError

__all__ = ["SEG_NETS", "SegUNet", "build_seg_net"]


def _double_conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                         nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def _up(channels: int, mode: str) -> nn.Module:
    if mode == "transpose":
        return nn.ConvTranspose2d(channels, channels, 2, stride=2)
    return nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)


class SegUNet(nn.Module):
    """A U-Net (Ronneberger et al., 2015) of three levels: widths w, 2w, 4w and a 4w bottom at total stride 8.

    Each level is two 3x3 conv + BN + ReLU; down: 2x2 max-pool; up: a 2x2 transposed conv
    (``up="transpose"``) or 2x bilinear interpolation (``up="bilinear"``), concatenated with the
    encoder's map of the same level (skip connection); a 1x1 conv gives the class scores at the
    input's size. Inputs need sides divisible by 8.

    Shape:
        - Input: :math:`(N, 3, H, W)`, :math:`H, W` multiples of 8
        - Output: :math:`(N, \\text{num\\_classes}, H, W)`

    Example:
        >>> net = SegUNet(num_classes=6, width=8)
        >>> net(torch.rand(2, 3, 32, 32)).shape
        torch.Size([2, 6, 32, 32])
        >>> sum(p.numel() for p in net.parameters())
        58598
    """

    total_stride = 8  # three 2x subsamplings: inputs whose sides it divides keep APS exactly equivariant

    def __init__(self, *, num_classes: int = 6, width: int = 8, up: str = "transpose") -> None:
        super().__init__()
        if up not in ("transpose", "bilinear"):
            raise ConfigError(f"SegUNet's up must be 'transpose' or 'bilinear', got {up!r}")
        w = width
        self.enc0, self.enc1, self.enc2 = _double_conv(3, w), _double_conv(w, 2 * w), _double_conv(2 * w, 4 * w)
        self.pool1, self.pool2, self.pool3 = nn.MaxPool2d(2), nn.MaxPool2d(2), nn.MaxPool2d(2)
        self.bottom = _double_conv(4 * w, 4 * w)
        self.up3, self.up2, self.up1 = _up(4 * w, up), _up(2 * w, up), _up(w, up)
        self.dec2, self.dec1, self.dec0 = _double_conv(8 * w, 2 * w), _double_conv(4 * w, w), _double_conv(2 * w, w)
        self.head = nn.Conv2d(w, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x0 = self.enc0(x)
        x1 = self.enc1(self.pool1(x0))
        x2 = self.enc2(self.pool2(x1))
        x3 = self.bottom(self.pool3(x2))
        y2 = self.dec2(torch.cat([self.up3(x3), x2], 1))
        y1 = self.dec1(torch.cat([self.up2(y2), x1], 1))
        y0 = self.dec0(torch.cat([self.up1(y1), x0], 1))
        return self.head(y0)


# network name -> builder(*, num_classes, width) of the baseline
SEG_NETS: dict[str, Callable[..., nn.Module]] = {
    "unet": lambda **kw: SegUNet(up="transpose", **kw),
    "unet-bilinear": lambda **kw: SegUNet(up="bilinear", **kw),
}


def build_seg_net(name: str, *, num_classes: int, width: int = 8) -> nn.Module:
    """The baseline ``name`` of :data:`SEG_NETS` (to convert with :func:`.seg_variants.build_seg_variant`).

    Example:
        >>> type(build_seg_net("unet-bilinear", num_classes=3).up1).__name__
        'Upsample'
    """
    if name not in SEG_NETS:
        raise ConfigError(f"unknown segmentation demo network {name!r}; choose from {sorted(SEG_NETS)}")
    return SEG_NETS[name](num_classes=num_classes, width=width)

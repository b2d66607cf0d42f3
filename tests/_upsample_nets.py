"""Small networks with every kind of up site, shared by the upsampling tests.

``TinyUNet``: three subsamplings (max pool, strided conv, average pool) and, on the way back, a
strided transposed conv, an ``F.interpolate(size=skip.shape)`` (bicubic), an ``nn.Upsample``
(bilinear) and a pixel shuffle (a sub-pixel head), plus a deep-supervision branch that jumps all
three levels at once (``F.interpolate(scale_factor=8)``). Total stride 8.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv_block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU())


class TinyUNet(nn.Module):
    def __init__(self, width: int = 4, classes: int = 3) -> None:
        super().__init__()
        c = width
        self.inc = conv_block(3, c)
        self.pool1 = nn.MaxPool2d(2)
        self.enc1 = conv_block(c, 2 * c)
        self.down2 = nn.Sequential(nn.Conv2d(2 * c, 4 * c, 3, 2, 1), nn.BatchNorm2d(4 * c), nn.ReLU())
        self.pool3 = nn.AvgPool2d(2)
        self.bottom = conv_block(4 * c, 4 * c)
        self.up3 = nn.ConvTranspose2d(4 * c, 4 * c, 2, stride=2)
        self.dec2 = conv_block(8 * c, 2 * c)
        self.dec1 = conv_block(4 * c, c)
        self.up1 = nn.Upsample(scale_factor=2, mode="bilinear")
        self.dec0 = conv_block(2 * c, c)
        self.to_subpixels = nn.Conv2d(c, 4 * classes, 1)
        self.shuffle = nn.PixelShuffle(2)
        self.deep = nn.Conv2d(4 * c, classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x0 = self.inc(x)
        x1 = self.enc1(self.pool1(x0))
        x2 = self.down2(x1)
        x3 = self.bottom(self.pool3(x2))
        y2 = self.dec2(torch.cat([self.up3(x3), x2], 1))
        y1 = self.dec1(torch.cat([F.interpolate(y2, size=x1.shape[-2:], mode="bicubic"), x1], 1))
        y0 = self.dec0(torch.cat([self.up1(y1), x0], 1))
        fine = self.shuffle(self.to_subpixels(F.avg_pool2d(y0, 2)))  # half resolution, shuffled back up
        return fine + F.interpolate(self.deep(x3), scale_factor=8, mode="nearest")


def calibrated(model: nn.Module, size: int = 32, seed: int = 0) -> nn.Module:
    """``model`` in eval mode with batch-norm statistics of one random batch (unit-scale features)."""
    torch.manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
            module.momentum = None  # cumulative average: this batch's statistics exactly
    model.train()
    with torch.no_grad():
        model(torch.randn(4, 3, size, size))
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.momentum = 0.1  # back to the default (None cannot run on the probe's meta tensors)
    return model.eval()

"""How segmentation models are evaluated: the resize, the crops and the views of the shift protocols."""
from __future__ import annotations

from dataclasses import dataclass

from antialiased.errors import ConfigError

__all__ = ["SegmentationOptions"]


@dataclass(frozen=True)
class SegmentationOptions:
    """Settings of the segmentation protocols (torchvision's segmentation reference evaluation for ``-e``).

    Args:
        size: ``--seg-size``: the shorter side of every image (and mask) after resizing (520, the reference's).
        crop_size: ``--crop-size`` for segmentation: ``-es``'s two random crops and ``-eq``'s center
            crop (480, as LPS and DDAC measure consistency).
        multiple: ``-ec``/``-ef``/``-ea`` (circular) take the resized image's center crop of the largest
            multiple of this in each dimension (a network's total stride: circular shifts then
            stay exact for models that are exactly equivariant).
        border: ``-ef`` compares predictions over the interior, this many pixels off each edge (a
            Fourier shift wraps around the borders).

    Example:
        >>> SegmentationOptions().validate()
        >>> SegmentationOptions(size=400).validate()
        Traceback (most recent call last):
        ...
        antialiased.errors.ConfigError: --crop-size 480 exceeds --seg-size 400 (the shorter side of the resized images): use --crop-size <= 400
    """

    size: int = 520
    crop_size: int = 480
    multiple: int = 32
    border: int = 16

    def validate(self) -> None:
        if self.size < 1 or self.crop_size < 1:
            raise ConfigError(f"--seg-size and --crop-size must be positive, got {self.size} and {self.crop_size}")
        if self.crop_size > self.size:
            raise ConfigError(f"--crop-size {self.crop_size} exceeds --seg-size {self.size} (the shorter side of the "
                              f"resized images): use --crop-size <= {self.size}")
        if self.multiple < 1:
            raise ConfigError(f"the view multiple must be >= 1, got {self.multiple}")
        if self.border < 0:
            raise ConfigError(f"the -ef border must be >= 0 pixels, got {self.border}")

    def check_view(self) -> None:
        """``-ec``, ``-ef`` and circular ``-ea`` take a view of a multiple of ``multiple`` pixels: refuse a size
        that has none."""
        if self.multiple > self.size:
            raise ConfigError(f"-ec, -ef and circular -ea take the center crop of the largest multiple of "
                              f"{self.multiple} pixels, which a --seg-size {self.size} image does not have: use "
                              f"--seg-size >= {self.multiple}")

    def check_interior(self) -> None:
        """``-ef`` compares the view's interior: refuse a border that leaves none of the smallest view."""
        self.check_view()
        view = self.multiple * (self.size // self.multiple)
        if 2 * self.border >= view:
            raise ConfigError(f"-ef compares predictions {self.border} pixels off each edge, which leaves nothing of "
                              f"the {view}-pixel view of a --seg-size {self.size} image: raise --seg-size")

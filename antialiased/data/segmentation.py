"""Segmentation data: Pascal VOC folders and ``images/`` + ``masks/`` pairs, every unusable pair skipped with
its reason (or, with ``strict``, the first one an error naming the file and the fix).

Two layouts, found in ``--data`` (or its ``val/`` sub-folder):

- Pascal VOC: ``JPEGImages/<id>.jpg``, ``SegmentationClass/<id>.png`` (palette or 8-bit index PNG),
  ``ImageSets/Segmentation/val.txt`` (one id per line). ``--data`` may also be the folder holding
  ``VOCdevkit/VOC2012`` or ``VOC2012``, as torchvision's ``VOCSegmentation`` takes it.
- ``images/<stem>.<ext>`` with ``masks/<stem>.png``, paired by file stem.

Masks hold a class index per pixel; 255 marks pixels to ignore (VOC's object borders). Images are
resized as torchvision's segmentation reference evaluates: the shorter side to ``size`` with
``torchvision.transforms.functional.resize`` on the decoded PIL image (bilinear) and on the mask
(nearest).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision.datasets.folder import IMG_EXTENSIONS
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF

from antialiased.data.decode import READ_ERRORS, load_rgb, read_error_reason
from antialiased.data.folder import SKIPPED_TARGET, CorruptImageError, DatasetLayoutError

__all__ = ["IGNORE_INDEX", "VOC_CLASSES", "SEGMENTATION_LAYOUT", "SegmentationPair", "SegmentationListing",
           "SegmentationDataset", "find_segmentation_pairs", "read_mask", "resize_pair"]

IGNORE_INDEX = 255  # mask value of pixels that are not scored (VOC's object borders and "difficult" regions)

# Pascal VOC 2012's 21 classes, in the order of its mask indices (and torchvision's segmentation heads)
VOC_CLASSES: tuple[str, ...] = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor")

SEGMENTATION_LAYOUT = ("a segmentation folder: Pascal VOC (DIR/JPEGImages/<id>.jpg, DIR/SegmentationClass/<id>.png, "
                       "DIR/ImageSets/Segmentation/val.txt) or DIR/images/<name>.<ext> with DIR/masks/<name>.png "
                       "(paired by file stem; masks hold class indices, 255 = ignore)")

_STRICT_FIX = "fix or remove it, or run without --strict to skip it"
_MASK_MODES = ("P", "L", "1", "I", "I;16", "I;16L", "I;16B", "I;16N")  # a single channel of class indices
_LOSSY = (".jpg", ".jpeg")


class _BadPair(Exception):
    """A pair that cannot be scored: the file at fault and why (with the fix)."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = path, reason


@dataclass(frozen=True)
class SegmentationPair:
    """An image and its mask (``name``: the VOC id or the shared file stem)."""

    name: str
    image: str
    mask: str


@dataclass
class SegmentationListing:
    """What a folder holds: its layout (``"voc"`` or ``"pairs"``), the folder, the usable pairs and the files
    left out (``{path: reason}``: a listed id without its image, an image without a mask, ...)."""

    layout: str
    folder: Path
    pairs: list[SegmentationPair]
    skipped: dict[str, str] = field(default_factory=dict)


def _files_by_stem(folder: Path, skipped: dict[str, str], what: str) -> dict[str, str]:
    """``{stem: path}`` of the image files of ``folder``; a second file of one stem is left out."""
    found: dict[str, str] = {}
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        if not entry.is_file() or not entry.name.lower().endswith(IMG_EXTENSIONS):
            continue
        stem = os.path.splitext(entry.name)[0]
        if stem in found:
            skipped[entry.path] = (f"another {what} has the stem {stem!r} ({os.path.basename(found[stem])}): keep one "
                                   f"file per name")
            continue
        found[stem] = entry.path
    return found


def _voc_folder(root: Path) -> Path | None:
    for folder in (root, root / "VOC2012", root / "VOCdevkit" / "VOC2012"):
        if (folder / "JPEGImages").is_dir() and (folder / "SegmentationClass").is_dir():
            return folder
    return None


def _pairs_folder(root: Path, split: str) -> Path | None:
    for folder in (root, root / split):
        if (folder / "images").is_dir() and (folder / "masks").is_dir():
            return folder
    return None


def _list_voc(folder: Path, split: str) -> SegmentationListing:
    ids_file = folder / "ImageSets" / "Segmentation" / f"{split}.txt"
    if not ids_file.is_file():
        raise DatasetLayoutError(f"{str(folder)!r} has JPEGImages/ and SegmentationClass/ but no {ids_file.relative_to(folder)} "
                                 f"(the ids of the {split} images, one per line): add it (VOC ships it)")
    listing = SegmentationListing("voc", folder, [])
    images = _files_by_stem(folder / "JPEGImages", {}, "image")
    masks = folder / "SegmentationClass"
    seen: set[str] = set()
    for line in ids_file.read_text().splitlines():
        name = line.strip().split(" ")[0] if line.strip() else ""
        if not name or name in seen:
            continue
        seen.add(name)
        mask = masks / f"{name}.png"
        if name not in images:
            listing.skipped[str(folder / "JPEGImages" / f"{name}.jpg")] = (
                f"{name!r} is listed in {ids_file.name} but JPEGImages/ has no image {name}.*: add the image or "
                f"remove the line")
        elif not mask.is_file():
            listing.skipped[str(mask)] = (f"no mask for the image {images[name]}: add SegmentationClass/{name}.png "
                                          f"(class indices) or remove {name!r} from {ids_file.name}")
        else:
            listing.pairs.append(SegmentationPair(name, images[name], str(mask)))
    return listing


def _list_pairs(folder: Path) -> SegmentationListing:
    listing = SegmentationListing("pairs", folder, [])
    images = _files_by_stem(folder / "images", listing.skipped, "image")
    masks = _files_by_stem(folder / "masks", listing.skipped, "mask")
    for stem, image in images.items():
        if stem in masks:
            listing.pairs.append(SegmentationPair(stem, image, masks[stem]))
        else:
            listing.skipped[image] = (f"an image without a mask: no masks/{stem}.png (masks pair with images by file "
                                      f"stem): add the mask or remove the image")
    for stem, mask in masks.items():
        if stem not in images:
            listing.skipped[mask] = (f"a mask without an image: no images/{stem}.* (masks pair with images by file "
                                     f"stem): add the image or remove the mask")
    return listing


def _class_folders(root: Path) -> list[str]:
    for folder in (root / "val", root):
        if folder.is_dir():
            names = sorted(e.name for e in os.scandir(folder) if e.is_dir() and not e.name.startswith("."))
            if names:
                return names
    return []


def find_segmentation_pairs(root: str | os.PathLike | None, split: str = "val") -> SegmentationListing:
    """The image/mask pairs of ``root`` (Pascal VOC or ``images/`` + ``masks/``), and the files left out.

    Raises:
        DatasetLayoutError: no folder, neither layout (an ImageNet-layout folder of classes named as
            such), a VOC folder without its list of ids, or no pair at all.
    """
    if root is None or str(root) == "":
        raise DatasetLayoutError(f"no dataset folder given (--data DIR): give {SEGMENTATION_LAYOUT}")
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetLayoutError(f"dataset folder {str(root)!r} does not exist: give {SEGMENTATION_LAYOUT}")
    voc, pairs = _voc_folder(root), _pairs_folder(root, split)
    if voc is None and pairs is None:
        classes = _class_folders(root)
        what = (f"holds class folders ({', '.join(classes[:3])}{', ...' if len(classes) > 3 else ''}: an "
                f"image-classification folder)" if classes else "is not a segmentation folder")
        raise DatasetLayoutError(f"{str(root)!r} {what}, but a segmentation model is evaluated on {SEGMENTATION_LAYOUT}")
    listing = _list_voc(voc, split) if voc is not None else _list_pairs(pairs)
    if not listing.pairs:
        example = next(iter(listing.skipped.items()), None)
        why = f" ({len(listing.skipped)} file(s) left out, e.g. {example[0]}: {example[1]})" if example else ""
        raise DatasetLayoutError(f"no image with a mask found in {str(listing.folder)!r}{why}; expected "
                                 f"{SEGMENTATION_LAYOUT}")
    return listing


def read_mask(path: str) -> np.ndarray:
    """A mask file as an (H, W) array of class indices (palette, 8-bit grayscale, 1-bit or 16-bit index PNG).

    Raises:
        _BadPair: an unreadable file, a JPEG mask (lossy), or an RGB/RGBA mask (colors, not indices).
    """
    if path.lower().endswith(_LOSSY):
        raise _BadPair(path, "a JPEG mask (lossy compression changes the labels at every edge): save masks as PNG")
    try:
        with Image.open(path) as img:
            mode = img.mode
            if mode not in _MASK_MODES:
                article = "an" if mode[0] in "AEFHILMNORSX" else "a"  # as the letters are read: "an RGB mask"
                raise _BadPair(path, f"{article} {mode} mask (colors, not class indices): save it as a palette (P) or "
                                     f"8-bit grayscale (L) PNG of class indices, as VOC's SegmentationClass masks are")
            values = np.array(img)
    except READ_ERRORS as err:
        raise _BadPair(path, f"mask {read_error_reason(path, err)}") from None
    if mode not in ("P", "L", "1") and values.size and (values.min() < 0 or values.max() > IGNORE_INDEX):
        raise _BadPair(path, f"a {mode} mask with values up to {int(values.max())}: class indices must be 0-254 "
                             f"(255 = ignore); save it as an 8-bit index PNG")
    return values.astype(np.uint8)


def resize_pair(image: Image.Image, mask: np.ndarray, size: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """The image (uint8 (3, H, W)) and mask (int64 (H, W)), the shorter side resized to ``size`` (None: as is):
    the image bilinearly, the mask by nearest neighbour, both with ``torchvision.transforms.functional.resize``.

    Example:
        >>> img, mask = resize_pair(Image.new("RGB", (40, 20)), np.zeros((20, 40), np.uint8), 10)
        >>> tuple(img.shape), tuple(mask.shape), mask.dtype
        ((3, 10, 20), (10, 20), torch.int64)
    """
    target = Image.fromarray(mask, mode="L")
    if size is not None:
        image = TF.resize(image, size, interpolation=InterpolationMode.BILINEAR)
        target = TF.resize(target, size, interpolation=InterpolationMode.NEAREST)
    return TF.pil_to_tensor(image), torch.from_numpy(np.array(target, dtype=np.int64))


def _label_problem(mask: np.ndarray, num_classes: int | None) -> str | None:
    if num_classes is None:
        return None
    labels = np.unique(mask)
    wrong = labels[(labels >= num_classes) & (labels != IGNORE_INDEX)]
    if not len(wrong):
        return None
    return (f"label {int(wrong[0])} is not a class of the model ({num_classes} classes: 0-{num_classes - 1}; "
            f"{IGNORE_INDEX} is ignored): fix the mask, or evaluate a model with that many classes")


class SegmentationDataset(Dataset):
    """Image/mask pairs of a segmentation folder, decoded and resized as torchvision's reference evaluates.

    Items are ``(image, mask, index)``: uint8 (3, H, W), int64 (H, W) (class indices, 255 = ignore)
    and the pair's position. A pair that cannot be scored (unreadable image or mask, a mask of
    another size than its image, an RGB mask, a label above ``num_classes`` other than 255) gives a
    black placeholder and a mask of :data:`~antialiased.data.SKIPPED_TARGET`, and its reason is kept
    (:meth:`skip_report`); with ``strict=True`` it raises :class:`~antialiased.data.CorruptImageError`
    naming the file and the fix. Pairs left out while listing (see :func:`find_segmentation_pairs`)
    are in ``skip_reasons`` from the start (with ``strict``, the first one raises).

    Args:
        root: the folder (``--data``).
        size: the shorter side after resizing (``--seg-size``; None: keep the size).
        num_classes: the model's class count; labels at or above it (other than 255) are refused.
            Set it once the model is known (before the loader starts).
        class_names: the classes' names in index order (None: VOC's for a VOC folder and 21
            classes, else the indices).

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as d:
        ...     os.makedirs(f"{d}/images"); os.makedirs(f"{d}/masks")
        ...     Image.new("RGB", (8, 6)).save(f"{d}/images/a.png")
        ...     Image.fromarray(np.full((6, 8), 255, np.uint8)).save(f"{d}/masks/a.png")
        ...     Image.new("RGB", (8, 6)).save(f"{d}/images/b.png")
        ...     ds = SegmentationDataset(d, size=3)
        ...     image, mask, index = ds[0]
        ...     tuple(image.shape), int(mask.max()), len(ds), list(ds.skip_reasons.values())[0][:23]
        ((3, 3, 4), 255, 1, 'an image without a mask')
    """

    def __init__(self, root: str | os.PathLike | None, *, split: str = "val", size: int | None = 520,
                 strict: bool = False, num_classes: int | None = None,
                 class_names: Sequence[str] | None = None) -> None:
        listing = find_segmentation_pairs(root, split)
        self.layout, self.folder, self.pairs = listing.layout, listing.folder, listing.pairs
        self.size, self.strict, self.num_classes = size, strict, num_classes
        self.given_names = list(class_names) if class_names is not None else None
        self.skip_reasons: dict[str, str] = {}
        for path, reason in listing.skipped.items():
            self._skip(path, reason)

    def __len__(self) -> int:
        return len(self.pairs)

    @property
    def classes(self) -> list[str] | None:
        """Class names in index order, where known: the given list, or VOC's for a VOC folder of 21 classes."""
        if self.given_names is not None:
            return self.given_names
        if self.layout == "voc" and self.num_classes == len(VOC_CLASSES):
            return list(VOC_CLASSES)
        return None

    def _skip(self, path: str, reason: str) -> None:
        if self.strict:
            raise CorruptImageError(f"{path}: {reason} ({_STRICT_FIX})", path, reason)
        self.skip_reasons.setdefault(path, reason)

    def load(self, index: int) -> tuple[Image.Image, np.ndarray]:
        """The decoded image and mask of pair ``index``, checked; raises ``_BadPair`` for one that cannot be scored."""
        pair = self.pairs[index]
        try:
            image = load_rgb(pair.image)
        except READ_ERRORS as err:
            raise _BadPair(pair.image, read_error_reason(pair.image, err)) from None
        mask = read_mask(pair.mask)
        if mask.shape != (image.height, image.width):
            raise _BadPair(pair.mask, f"the mask is {mask.shape[1]}x{mask.shape[0]} but its image {pair.image} is "
                                      f"{image.width}x{image.height}: a mask must have its image's size")
        problem = _label_problem(mask, self.num_classes)
        if problem:
            raise _BadPair(pair.mask, problem)
        return image, mask

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        try:
            image, mask = self.load(index)
        except _BadPair as bad:
            self._skip(bad.path, bad.reason)
            side = self.size or 8
            return (torch.zeros(3, side, side, dtype=torch.uint8),
                    torch.full((side, side), SKIPPED_TARGET, dtype=torch.int64), index)
        image_t, mask_t = resize_pair(image, mask, self.size)
        return image_t, mask_t, index

    def skip_reason(self, index: int) -> tuple[str, str]:
        """``(path, reason)`` of a pair skipped while decoding (re-checked here: workers keep their own records)."""
        try:
            self.load(index)
        except _BadPair as bad:
            return bad.path, bad.reason
        pair = self.pairs[index]
        return pair.image, "could not be read then, but can be now (was a file replaced meanwhile?)"

    def skip_report(self, indices: Iterable[int] = ()) -> dict[str, str]:
        """``{path: reason}``: every file left out while listing, plus the pairs at ``indices``."""
        report = dict(self.skip_reasons)
        for index in sorted(set(int(i) for i in indices)):
            path, reason = self.skip_reason(index)
            report.setdefault(path, reason)
        return report

    def describe(self) -> dict[str, Any]:
        """The folder and layout, for result files."""
        return {"layout": self.layout, "folder": str(self.folder), "pairs": len(self.pairs)}

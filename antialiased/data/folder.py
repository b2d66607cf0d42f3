"""ImageNet-layout folders: locating a split, and an ImageFolder that survives corrupt files."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Sequence

from PIL import Image
from torchvision.datasets import ImageFolder
from torchvision.datasets.folder import IMG_EXTENSIONS

from antialiased.errors import DataError

__all__ = [
    "EXPECTED_LAYOUT",
    "SKIPPED_TARGET",
    "CorruptImageError",
    "DatasetLayoutError",
    "ImageFolderDataset",
    "find_split",
    "load_rgb",
]

EXPECTED_LAYOUT = """expected the ImageNet layout:
  DIR/
    train/<class>/<image>.JPEG   (e.g. train/n01440764/n01440764_10026.JPEG)
    val/<class>/<image>.JPEG     (e.g. val/n01440764/ILSVRC2012_val_00000293.JPEG)
Pass --data DIR (or the split folder itself). To sort the official flat validation folder into
class folders, run: antialiased prepare-imagenet --val-dir DIR/val --ground-truth FILE"""

# The target given to a sample whose file could not be read: CrossEntropyLoss ignores it by default,
# and the evaluation loops drop it, so a corrupt file never crashes a run started without --strict.
SKIPPED_TARGET = -100

# What PIL raises for unreadable, truncated or non-image files.
_READ_ERRORS = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)


class DatasetLayoutError(DataError, FileNotFoundError):
    """A dataset folder is missing or not in the ImageNet layout; the message shows the layout."""


class CorruptImageError(DataError):
    """An image file could not be decoded (raised instead of skipping it when ``strict=True``)."""


def _has_class_folders(path: Path) -> bool:
    try:
        with os.scandir(path) as entries:
            return any(entry.is_dir() and not entry.name.startswith(".") for entry in entries)
    except OSError:
        return False


def find_split(root: str | os.PathLike, split: str) -> Path:
    """The folder of ``split`` ('train' or 'val'): ``root/split`` when present, else ``root`` itself.

    Raises :class:`DatasetLayoutError` (a FileNotFoundError) naming the folder and the expected layout.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as d:
        ...     os.makedirs(f"{d}/val/n01440764")
        ...     find_split(d, "val").name
        'val'
    """
    if root is None or str(root) == "":
        raise DatasetLayoutError(f"no dataset folder given (--data DIR).\n{EXPECTED_LAYOUT}")
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetLayoutError(f"dataset folder {str(root)!r} does not exist.\n{EXPECTED_LAYOUT}")
    candidate = root / split
    if candidate.is_dir():
        if not _has_class_folders(candidate):
            raise DatasetLayoutError(f"{str(candidate)!r} has no class folders (found only files; is the "
                                     f"validation folder still flat?).\n{EXPECTED_LAYOUT}")
        return candidate
    if root.name == split and _has_class_folders(root):
        return root
    others = {"train", "val"} - {split}
    if _has_class_folders(root) and not any((root / o).is_dir() for o in others):
        return root  # the split folder itself was given
    raise DatasetLayoutError(f"no {split!r} folder in {str(root)!r}.\n{EXPECTED_LAYOUT}")


def load_rgb(path: str, draft: int | None = None) -> Image.Image:
    """Open an image as RGB, as torchvision's default loader does.

    ``draft``: let libjpeg decode a JPEG at a reduced scale (1/2, 1/4, 1/8) whose shorter side stays
    >= ``draft`` pixels. Faster, but not the paper's exact pixels: an opt-in approximation.
    """
    with open(path, "rb") as f:
        img = Image.open(f)
        if draft is not None and img.format == "JPEG":
            w, h = img.size
            scale = draft / min(w, h)
            img.draft("RGB", (max(1, int(w * scale + 0.5)), max(1, int(h * scale + 0.5))))
        return img.convert("RGB")


class ImageFolderDataset(ImageFolder):
    """torchvision's ImageFolder that skips unreadable files instead of crashing.

    Files without an image extension are left out and listed in ``.skipped`` at construction. A
    file that fails to decode yields the transform of a black placeholder with target
    :data:`SKIPPED_TARGET` (and is appended to ``.skipped`` in the process that read it); with
    ``strict=True`` it raises :class:`CorruptImageError` instead.

    Args:
        root: folder with one sub-folder per class.
        transform: applied to the PIL image.
        strict: raise on unreadable or non-image files.
        classes: fix the class list (and so the target indices), e.g. all 1000 ImageNet wnids
            when only some folders are present; default: the sorted sub-folders.
        return_index: items are ``(image, target, index)``, to trace skipped files across workers.
        draft: see :func:`load_rgb` (opt-in, approximate JPEG decoding).

    Example:
        >>> import tempfile
        >>> from PIL import Image
        >>> with tempfile.TemporaryDirectory() as d:
        ...     os.makedirs(f"{d}/cat"); os.makedirs(f"{d}/dog")
        ...     Image.new("RGB", (8, 8)).save(f"{d}/cat/a.png")
        ...     _ = open(f"{d}/dog/b.jpg", "w").write("not an image")
        ...     ds = ImageFolderDataset(d)
        ...     [ds[i][1] for i in range(len(ds))], len(ds.skipped)
        ([0, -100], 1)
    """

    def __init__(self, root: str | os.PathLike, transform: Callable | None = None, strict: bool = False, *,
                 classes: Sequence[str] | None = None, return_index: bool = False,
                 draft: int | None = None, placeholder_size: tuple[int, int] = (256, 256)) -> None:
        root = Path(root).expanduser()
        if not root.is_dir():
            raise DatasetLayoutError(f"dataset folder {str(root)!r} does not exist.\n{EXPECTED_LAYOUT}")
        if not _has_class_folders(root):
            raise DatasetLayoutError(f"{str(root)!r} has no class folders.\n{EXPECTED_LAYOUT}")
        self.strict = strict
        self.return_index = return_index
        self.draft = draft
        self.placeholder_size = placeholder_size
        self.skipped: list[str] = []
        self._fixed_classes = list(classes) if classes is not None else None
        super().__init__(str(root), transform=transform, loader=self._load, allow_empty=True)
        if not self.samples:
            raise DatasetLayoutError(f"no images found under {str(root)!r} (extensions: "
                                     f"{', '.join(IMG_EXTENSIONS)}).\n{EXPECTED_LAYOUT}")

    def find_classes(self, directory: str) -> tuple[list[str], dict[str, int]]:
        present, _ = super().find_classes(directory)
        if self._fixed_classes is None:
            return present, {c: i for i, c in enumerate(present)}
        unknown = sorted(set(present) - set(self._fixed_classes))
        if unknown:
            raise DatasetLayoutError(f"class folders {unknown[:5]} of {directory!r} are not in the given "
                                     f"class list of {len(self._fixed_classes)} classes")
        return list(self._fixed_classes), {c: i for i, c in enumerate(self._fixed_classes)}

    def make_dataset(self, directory: str, class_to_idx: dict[str, int], extensions=None,
                     is_valid_file=None, allow_empty: bool = False) -> list[tuple[str, int]]:
        samples: list[tuple[str, int]] = []
        ignored: list[str] = []
        for cls in sorted(class_to_idx):
            folder = os.path.join(directory, cls)
            if not os.path.isdir(folder):
                continue  # a class of a fixed class list without a folder here
            for dirpath, _, names in sorted(os.walk(folder, followlinks=True)):
                for name in sorted(names):
                    path = os.path.join(dirpath, name)
                    target = samples if name.lower().endswith(IMG_EXTENSIONS) else ignored
                    target.append((path, class_to_idx[cls]) if target is samples else path)
        if ignored:
            if getattr(self, "strict", False):
                raise CorruptImageError(f"{len(ignored)} non-image file(s) in the dataset, e.g. {ignored[0]!r} "
                                        f"(remove them or run without --strict to skip them)")
            self.skipped.extend(ignored)
        return samples

    def _load(self, path: str) -> Image.Image:
        return load_rgb(path, self.draft)

    def __getitem__(self, index: int) -> tuple[Any, ...]:
        path, target = self.samples[index]
        try:
            image = self.loader(path)
        except _READ_ERRORS as err:
            if self.strict:
                raise CorruptImageError(f"cannot read image {path!r}: {err} (run without --strict to skip "
                                        f"unreadable files)") from err
            self.skipped.append(path)
            image, target = Image.new("RGB", self.placeholder_size), SKIPPED_TARGET
        if self.transform is not None:
            image = self.transform(image)
        if self.target_transform is not None and target != SKIPPED_TARGET:
            target = self.target_transform(target)
        return (image, target, index) if self.return_index else (image, target)

"""ImageNet-layout folders: locating a split, and an ImageFolder that survives messy folders
(unreadable files, link loops, duplicates) and says why it skipped each file.

Decoding lives in :mod:`antialiased.data.decode`, the walk over the class folders in
:mod:`antialiased.data.scan`.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from PIL import Image
from torchvision.datasets import ImageFolder
from torchvision.datasets.folder import IMG_EXTENSIONS

from antialiased.data.decode import READ_ERRORS, load_rgb, read_error_reason, to_rgb
from antialiased.data.scan import FolderScan, looping_class_folders
from antialiased.errors import DataError

__all__ = [
    "EXPECTED_LAYOUT",
    "SKIPPED_TARGET",
    "CorruptImageError",
    "DatasetLayoutError",
    "ImageFolderDataset",
    "find_split",
    "load_rgb",
    "to_rgb",
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

_STRICT_FIX = "fix or remove it, or run without --strict to skip it"


class DatasetLayoutError(DataError, FileNotFoundError):
    """A dataset folder is missing or not in the ImageNet layout; the message shows the layout."""


class CorruptImageError(DataError):
    """A file of the dataset that cannot be used as an image, raised instead of skipping it (``strict=True``).

    ``path`` and ``reason`` name the file and what is wrong with it (empty when the error was rebuilt
    from its message alone, as a DataLoader does when a worker process raised it).
    """

    def __init__(self, message: str, path: str = "", reason: str = "") -> None:
        super().__init__(message)
        self.path = path
        self.reason = reason

    def __reduce__(self):
        return (type(self), (str(self), self.path, self.reason))


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


# --- the dataset -----------------------------------------------------------------------------------

class ImageFolderDataset(ImageFolder):
    """torchvision's ImageFolder that skips unusable files, says why, and decodes every mode right.

    Scanning (at construction) follows links to folders but never enters a folder twice, and leaves
    out, each with its reason: files without an image extension, dangling links, link loops (of files
    or folders), a second link to the same file or folder, links into another class's folder, and
    folders named like images. Decoding (in ``__getitem__``) turns a file that cannot be read (empty,
    truncated, not an image, over ``PIL.Image.MAX_IMAGE_PIXELS``) into the transform of a black
    placeholder with target :data:`SKIPPED_TARGET`. Images of any mode become 8-bit RGB
    (:func:`to_rgb`: 16-bit and float images are scaled, not clipped to white).

    Skipped files:
        - ``skipped``: list of paths, scan-time ones first, then those this process failed to decode.
        - ``skip_reasons``: ``{path: reason}`` for the same files, e.g. ``'not an image file'``,
          ``'dangling symbolic link (...)'``, ``'symbolic-link loop'``, ``'duplicate of <path>'``,
          ``'empty file (0 bytes)'``, ``'truncated image: ...'``, ``'cannot identify image file'``,
          ``'over the decompression-bomb limit (N pixels > M)'``.
        - ``skip_reason(index)``: the reason for sample ``index``. Decoding runs in DataLoader worker
          processes, whose ``skipped``/``skip_reasons`` never reach the main process: it re-opens
          that one file to find out.
        - ``skip_report(indices)``: ``{path: reason}`` for the scan-time skips plus the samples at
          ``indices`` (e.g. those whose target came back as :data:`SKIPPED_TARGET`), for result files.

    With ``strict=True`` the first unusable file (while scanning or decoding) raises
    :class:`CorruptImageError` naming it, the reason and the fix.

    Args:
        root: folder with one sub-folder per class.
        transform: applied to the PIL image.
        strict: raise on the first unusable file instead of skipping it.
        classes: fix the class list (and so the target indices), e.g. all 1000 ImageNet wnids
            when only some folders are present; default: the sorted sub-folders.
        return_index: items are ``(image, target, index)``, to trace skipped files across workers.
        draft: see :func:`load_rgb` (opt-in, approximate JPEG decoding).
        placeholder_size: size of the black image that stands in for an unreadable file.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as d:
        ...     os.makedirs(f"{d}/cat"); os.makedirs(f"{d}/dog")
        ...     Image.new("RGB", (8, 8)).save(f"{d}/cat/a.png")
        ...     _ = open(f"{d}/dog/b.jpg", "w").write("not an image")
        ...     _ = open(f"{d}/dog/notes.txt", "w").write("no image either")
        ...     ds = ImageFolderDataset(d)
        ...     [ds[i][1] for i in range(len(ds))], ds.skip_reason(1)
        ...     sorted(ds.skip_report([1]).values())
        ([0, -100], 'cannot identify image file')
        ['cannot identify image file', 'not an image file']
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
        self.skip_reasons: dict[str, str] = {}
        self._fixed_classes = list(classes) if classes is not None else None
        super().__init__(str(root), transform=transform, loader=self._load, allow_empty=True)
        if not self.samples:
            example = next(iter(self.skip_reasons.items()), None)
            skipped = f" ({len(self.skipped)} file(s) skipped, e.g. {example[0]}: {example[1]})" if example else ""
            raise DatasetLayoutError(f"no images found under {str(root)!r}{skipped} (extensions: "
                                     f"{', '.join(IMG_EXTENSIONS)}).\n{EXPECTED_LAYOUT}")

    def find_classes(self, directory: str) -> tuple[list[str], dict[str, int]]:
        present, _ = super().find_classes(directory)
        loops = looping_class_folders(directory, present)  # `ln -s . DIR/loop` is no class
        for path, reason in loops.items():
            self._skip(path, reason)
        present = [c for c in present if os.path.join(directory, c) not in loops]
        if self._fixed_classes is None:
            return present, {c: i for i, c in enumerate(present)}
        unknown = sorted(set(present) - set(self._fixed_classes))
        if unknown:
            raise DatasetLayoutError(f"class folders {unknown[:5]} of {directory!r} are not in the given "
                                     f"class list of {len(self._fixed_classes)} classes")
        return list(self._fixed_classes), {c: i for i, c in enumerate(self._fixed_classes)}

    def make_dataset(self, directory: str, class_to_idx: dict[str, int], extensions=None,
                     is_valid_file=None, allow_empty: bool = False) -> list[tuple[str, int]]:
        """``(path, target)`` of every usable image file; the others go to ``skipped`` with a reason."""
        folders = {cls: os.path.join(directory, cls) for cls in sorted(class_to_idx)}
        folders = {cls: f for cls, f in folders.items() if os.path.lexists(f)}  # a fixed list may name more
        scan = FolderScan(directory, folders, self._skip)
        return [(path, class_to_idx[cls]) for cls, folder in folders.items() for path in scan.class_files(cls, folder)]

    def _skip(self, path: str, reason: str) -> None:
        if self.strict:
            raise CorruptImageError(f"{path}: {reason} ({_STRICT_FIX})", path, reason)
        if path not in self.skip_reasons:
            self.skipped.append(path)
        self.skip_reasons[path] = reason

    def _load(self, path: str) -> Image.Image:
        return load_rgb(path, self.draft)

    def skip_reason(self, index: int) -> str:
        """Why sample ``index`` was skipped, re-opening its file when this process did not decode it."""
        path = self.samples[index][0]
        if path in self.skip_reasons:
            return self.skip_reasons[path]
        try:
            self._load(path)
        except READ_ERRORS as err:
            return read_error_reason(path, err)
        return "could not be decoded then, but can be now (was the file replaced meanwhile?)"

    def skip_report(self, indices: Iterable[int] = ()) -> dict[str, str]:
        """``{path: reason}``: every file skipped while scanning, plus the samples at ``indices``."""
        report = dict(self.skip_reasons)
        for index in sorted(set(int(i) for i in indices)):
            report.setdefault(self.samples[index][0], self.skip_reason(index))
        return report

    def __getitem__(self, index: int) -> tuple[Any, ...]:
        path, target = self.samples[index]
        try:
            image = self.loader(path)
        except READ_ERRORS as err:
            self._skip(path, read_error_reason(path, err))
            image, target = Image.new("RGB", self.placeholder_size), SKIPPED_TARGET
        if self.transform is not None:
            image = self.transform(image)
        if self.target_transform is not None and target != SKIPPED_TARGET:
            target = self.target_transform(target)
        return (image, target, index) if self.return_index else (image, target)

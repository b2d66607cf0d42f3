"""ImageNet-layout folders: locating a split, and an ImageFolder that survives messy folders
(unreadable files, link loops, duplicates) and says why it skipped each file.

Decoding lives in :mod:`antialiased.data.decode`, the walk over the class folders in
:mod:`antialiased.data.scan`.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from PIL import Image
from torchvision.datasets import ImageFolder
from torchvision.datasets.folder import IMG_EXTENSIONS

from antialiased.data.decode import READ_ERRORS, load_rgb, read_error_reason, to_rgb
from antialiased.data.scan import FolderScan, is_image_name, looping_class_folders
from antialiased.errors import DataError

__all__ = [
    "EXPECTED_LAYOUT",
    "SKIPPED_TARGET",
    "CorruptImageError",
    "DatasetLayoutError",
    "ImageFolderDataset",
    "VAL_SPLITS",
    "find_split",
    "find_val_split",
    "load_rgb",
    "to_rgb",
]

VAL_SPLITS = ("val", "test")  # the names a validation folder goes by, in the order they are looked for

EXPECTED_LAYOUT = """expected one folder per class:
  DIR/train/<class>/<image>   (e.g. train/n01440764/n01440764_10026.JPEG, train/cat/0001.jpg)
  DIR/val/<class>/<image>     (or DIR/test/<class>/<image>; --val-split NAME for another folder name)
Pass --data DIR (or the split folder itself)."""

# File names of ImageNet's official validation images: a flat folder of them needs prepare-imagenet.
_IMAGENET_VAL_NAME = re.compile(r"ILSVRC2012_val_\d{8}\.JPEG", re.IGNORECASE)
_ARCHIVES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".zip", ".7z", ".gz", ".rar")

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


def _not_a_folder(path: Path) -> str:
    message = (f"{str(path)!r} is a file, not a folder: give the dataset folder (DIR with DIR/train/<class>/* "
               f"and DIR/val/<class>/* or DIR/test/<class>/*)")
    if path.name.lower().endswith(_ARCHIVES):
        message += "; it looks like an archive: extract it first (tar xf FILE, unzip FILE), then give that folder"
    return message


def _flat_folder_problem(path: Path, names: list[str]) -> str:
    """What is wrong with a folder that holds files but no class folders (``names``: its visible entries)."""
    images = [n for n in names if is_image_name(n)]
    if any(_IMAGENET_VAL_NAME.fullmatch(n) for n in images):
        return (f"{str(path)!r} holds {len(images)} image files but no class folders: it looks like ImageNet's "
                f"official validation folder, which is flat. Sort it into class folders with: antialiased "
                f"prepare-imagenet --val-dir {path} --ground-truth FILE")
    if images:
        return (f"{str(path)!r} holds {len(images)} image files but no class folders: put each class's images in a "
                f"sub-folder of its own ({path.name}/<class>/<image>)")
    return f"{str(path)!r} holds no class folders, only files that are not images (e.g. {sorted(names)[0]!r})"


def _folder_problem(path: Path) -> str | None:
    """Why ``path`` cannot be a folder of class folders (missing, a file, empty, flat), or None when it is one."""
    if not path.is_dir():
        return _not_a_folder(path) if path.exists() else f"{str(path)!r} does not exist"
    try:
        with os.scandir(path) as it:
            entries = [(e.name, e.is_dir()) for e in it if not e.name.startswith(".")]
    except OSError as err:
        return f"cannot read {str(path)!r}: {err.strerror}"
    if any(is_dir for _, is_dir in entries):
        return None
    if not entries:
        return f"{str(path)!r} is empty: expected one sub-folder per class ({path.name}/<class>/<image>)"
    return _flat_folder_problem(path, [name for name, _ in entries])


def _layout_error(problem: str) -> DatasetLayoutError:
    return DatasetLayoutError(f"{problem}.\n{EXPECTED_LAYOUT}")


def _dataset_root(root: str | os.PathLike | None) -> Path:
    if root is None or str(root) == "":
        raise _layout_error("no dataset folder given (--data DIR)")
    path = Path(root).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise DatasetLayoutError(_not_a_folder(path))
    raise _layout_error(f"dataset folder {str(path)!r} does not exist")


def _split_folder(root: Path, names: Sequence[str]) -> Path | None:
    """``root/<name>`` for the first of ``names`` present (checked), or ``root`` when it is itself a split."""
    for i, name in enumerate(names):
        candidate = root / name
        if candidate.is_dir():
            problem = _folder_problem(candidate)
            if problem:
                usable = [n for n in names[i + 1:] if (root / n).is_dir() and not _folder_problem(root / n)]
                raise _layout_error(problem + (f" (or pass --val-split {usable[0]} to use {usable[0]}/)" if usable
                                               else ""))
            return candidate
    if root.name in names and _has_class_folders(root):
        return root
    splits = ("train", *VAL_SPLITS, *names)
    if _has_class_folders(root) and not any((root / s).is_dir() for s in splits):
        return root  # a folder of class folders, given as the split itself
    return None


def _other_folders(root: Path, exclude: Sequence[str]) -> list[str]:
    try:
        return sorted(e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith(".")
                      and e.name not in exclude)
    except OSError:
        return []


def find_split(root: str | os.PathLike, split: str) -> Path:
    """The folder of ``split`` (e.g. 'train', or the name given to ``--val-split``).

    ``root/split`` when present, else ``root`` itself when it is that split (named so, or a folder of
    class folders beside no other split).

    Raises :class:`DatasetLayoutError` (a FileNotFoundError) naming the folder, what is wrong with it
    (missing, a file, empty, flat) and the expected layout.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as d:
        ...     os.makedirs(f"{d}/val/n01440764")
        ...     find_split(d, "val").name
        'val'
    """
    base = _dataset_root(root)
    found = _split_folder(base, (split,))
    if found is not None:
        return found
    others = _other_folders(base, ())
    listed = f" (it holds {', '.join(others)})" if others else ""
    hint = "; --val-split NAME chooses the validation folder" if split not in ("train", *VAL_SPLITS) else ""
    raise _layout_error(f"no {split!r} folder in {str(base)!r}{listed}{hint}")


def find_val_split(root: str | os.PathLike, split: str | None = None) -> Path:
    """The validation folder: ``root/<split>`` when ``split`` is given (``--val-split``), else the first
    of :data:`VAL_SPLITS` present (``val/``, then ``test/``, CIFAR-10's usual name).

    Raises :class:`DatasetLayoutError` like :func:`find_split`; without any of them the message lists
    the folders that are there and the ``--val-split`` that would choose one.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as d:
        ...     os.makedirs(f"{d}/train/cat"); os.makedirs(f"{d}/test/cat")
        ...     find_val_split(d).name, find_val_split(d, "train").name
        ('test', 'train')
    """
    if split:
        return find_split(root, split)
    base = _dataset_root(root)
    found = _split_folder(base, VAL_SPLITS)
    if found is not None:
        return found
    others = _other_folders(base, ("train",))
    hint = (f"; it holds {', '.join(others)}: pass --val-split {others[0]} to validate on {others[0]}/"
            if others else "")
    raise _layout_error(f"no validation folder in {str(base)!r}: looked for {' and '.join(VAL_SPLITS)}{hint}")


def _names(names: Sequence[str], limit: int = 8) -> str:
    shown = ", ".join(map(repr, names[:limit]))
    return f"{shown}, ... ({len(names)} in all)" if len(names) > limit else shown


def _check_class_list(listed: Sequence[str], present: Sequence[str], directory: str) -> None:
    """Refuse class folders the fixed class list lacks (their images would have no target), saying which."""
    missing = [c for c in present if c not in set(listed)]
    if not missing:
        return
    if not set(listed) & set(present):
        raise DatasetLayoutError(
            f"none of the {len(listed)} names of the class list is a class folder of {directory!r} (the list "
            f"starts {_names(listed, 3)}; the folders are {_names(present, 3)}): the list must hold the class "
            f"folder names, one per line in the model's output order, not labels or numbers")
    raise DatasetLayoutError(
        f"class folders {_names(missing)} of {directory!r} are missing from the class list of {len(listed)} names: "
        f"add them to the list at the positions of their outputs, or move those folders out of {directory!r} "
        f"(the list may name classes without a folder, but not leave a folder out)")


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
        problem = _folder_problem(root)
        if problem:
            raise _layout_error(problem)
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
        _check_class_list(self._fixed_classes, present, directory)
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

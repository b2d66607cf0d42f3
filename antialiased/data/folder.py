"""ImageNet-layout folders: locating a split, decoding any image to 8-bit RGB, and an ImageFolder
that survives messy folders (unreadable files, link loops, duplicates) and says why it skipped each file."""
from __future__ import annotations

import errno
import os
import re
import stat
import struct
from pathlib import Path
from typing import Any, Callable, Iterable, NamedTuple, Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError
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

# What decoding a broken, truncated or hostile file raises (PIL's plugins use all of these).
_READ_ERRORS = (OSError, ValueError, SyntaxError, EOFError, struct.error, Image.DecompressionBombError)

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


# --- decoding --------------------------------------------------------------------------------------

class _OverPixelLimit(Image.DecompressionBombError):
    """More pixels than ``PIL.Image.MAX_IMAGE_PIXELS`` (PIL itself only warns up to twice that)."""

    def __init__(self, pixels: int, limit: int) -> None:
        super().__init__(f"Image size ({pixels} pixels) exceeds limit of {limit} pixels")
        self.pixels = pixels


def _from_16bit(values: np.ndarray) -> np.ndarray:
    return (np.clip(values, 0, 65535).astype(np.uint32) >> 8).astype(np.uint8)


def _from_unit_float(values: np.ndarray) -> np.ndarray:
    unit = np.clip(np.nan_to_num(values.astype(np.float64), nan=0.0), 0.0, 1.0)
    return np.rint(unit * 255).astype(np.uint8)


# Single-channel modes with more than 8 bits, and how their values become 0..255. PIL's own
# convert("RGB") clips them at 255, which turns a 16-bit image white.
_HIGH_DEPTH_TO_8BIT: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "I;16": _from_16bit, "I;16L": _from_16bit, "I;16B": _from_16bit, "I;16N": _from_16bit,
    "I": _from_16bit,  # 32-bit integers, as PIL opens 16-bit PGM/TIFF data: read as 0..65535
    "F": _from_unit_float,  # floats: 0.0..1.0 (torchvision's convention), NaN -> 0
}


def to_rgb(img: Image.Image) -> Image.Image:
    """8-bit RGB of an image in any PIL mode, as torchvision's loader does, but right for deep images.

    - RGB, L, 1, P, CMYK, YCbCr, ...: ``img.convert("RGB")`` (torchvision's loader); alpha (RGBA, LA,
      PA, P with transparency) is dropped, not composited, and PIL's warning about palette
      transparency is not raised, since the alpha is not used.
    - 16-bit grayscale (I;16, I;16B, I;16L, I;16N) and 32-bit integer (I, as PIL opens 16-bit PGM):
      the 0..65535 range maps to 0..255 by keeping the high byte (``v >> 8``; values outside are
      clipped). 16-bit RGB(A) PNGs are already reduced this way by PIL.
    - 32-bit float (F): 0.0..1.0 maps to 0..255 (``round(v * 255)``, clipped; NaN -> 0).

    Example:
        >>> deep = Image.fromarray(np.array([[0, 256, 65535]], dtype=np.uint16))
        >>> deep.mode, np.asarray(to_rgb(deep))[0, :, 0].tolist()
        ('I;16', [0, 1, 255])
    """
    scale = _HIGH_DEPTH_TO_8BIT.get(img.mode)
    if scale is not None:
        return Image.fromarray(scale(np.asarray(img))).convert("RGB")
    if img.mode == "P" and "transparency" in img.info:
        transparency = img.info.pop("transparency")  # only used for alpha, which RGB drops
        try:
            return img.convert("RGB")
        finally:
            img.info["transparency"] = transparency
    return img.convert("RGB")


def load_rgb(path: str, draft: int | None = None) -> Image.Image:
    """Open an image file as 8-bit RGB (see :func:`to_rgb` for the modes).

    Images over ``PIL.Image.MAX_IMAGE_PIXELS`` raise ``PIL.Image.DecompressionBombError`` before
    any pixel is decoded (PIL itself only warns below twice the limit).

    ``draft``: let libjpeg decode a JPEG at a reduced scale (1/2, 1/4, 1/8) whose shorter side stays
    >= ``draft`` pixels. Faster, but not the paper's exact pixels: an opt-in approximation.
    """
    with open(path, "rb") as f:
        img = Image.open(f)
        width, height = img.size
        limit = Image.MAX_IMAGE_PIXELS
        if limit is not None and width * height > limit:
            raise _OverPixelLimit(width * height, limit)
        if draft is not None and img.format == "JPEG":
            scale = draft / min(width, height)
            img.draft("RGB", (max(1, int(width * scale + 0.5)), max(1, int(height * scale + 0.5))))
        return to_rgb(img)


def _bomb_reason(err: Image.DecompressionBombError) -> str:
    pixels = getattr(err, "pixels", None)
    if pixels is None:  # PIL's own refusal: "Image size (N pixels) exceeds limit of 2M pixels ..."
        found = re.search(r"\((\d+) pixels\)", str(err))
        pixels = found.group(1) if found else "?"
    return f"over the decompression-bomb limit ({pixels} pixels > {Image.MAX_IMAGE_PIXELS})"


# Failures with a fixed reason, checked in order (before the file's size and the error's message).
_FIXED_REASONS: tuple[tuple[type[BaseException], str], ...] = (
    (IsADirectoryError, "a folder, not an image file"),
    (FileNotFoundError, "file not found (removed after the folder was scanned?)"),
    (PermissionError, "permission denied"),
)


def _read_error_reason(path: str, err: BaseException) -> str:
    """A short reason for a file that failed to decode, e.g. 'truncated image: ...'."""
    if isinstance(err, Image.DecompressionBombError):
        return _bomb_reason(err)
    for kind, reason in _FIXED_REASONS:
        if isinstance(err, kind):
            return reason
    try:
        if os.path.getsize(path) == 0:
            return "empty file (0 bytes)"
    except OSError:
        pass
    if isinstance(err, UnidentifiedImageError):
        return "cannot identify image file"
    message = str(err) or type(err).__name__
    if "truncated" in message.lower():
        return f"truncated image: {message}"
    kind = "" if type(err) is OSError else f"{type(err).__name__}: "
    return f"cannot decode image: {kind}{message}"


# --- scanning class folders --------------------------------------------------------------------------

Key = tuple[int, int]  # (st_dev, st_ino): the identity of a real file or folder


class _Found(NamedTuple):
    path: str
    is_link: bool
    key: Key | None  # known for files reached through a link; regular files are stat'ed only if needed


def _key(st: os.stat_result) -> Key:
    return (st.st_dev, st.st_ino)


def _is_image_name(name: str) -> bool:
    return name.lower().endswith(IMG_EXTENSIONS)


def _follow(path: str) -> os.stat_result | str:
    """``os.stat`` through a symbolic link, or the reason it cannot be followed."""
    try:
        return os.stat(path)
    except OSError as err:
        if err.errno == errno.ELOOP:
            return "symbolic-link loop"
        if err.errno in (errno.ENOENT, errno.ENOTDIR):
            try:
                return f"dangling symbolic link (to {os.readlink(path)!r}, which does not exist)"
            except OSError:
                return "dangling symbolic link"
        return f"cannot follow symbolic link: {err.strerror}"


def _classify(entry: os.DirEntry) -> tuple[str, Any]:
    """``('dir', stat)``, ``('file', key or None)`` or ``('skip', reason)`` for one folder entry.

    Only links are stat'ed (the entry's type comes with the folder listing), so scanning a million
    plain files costs no more system calls than ``os.walk``.
    """
    if entry.is_symlink():
        st = _follow(entry.path)
        if isinstance(st, str):
            return "skip", st
        is_dir, is_file, key = stat.S_ISDIR(st.st_mode), stat.S_ISREG(st.st_mode), _key(st)
    else:
        st, key = None, None
        is_dir, is_file = entry.is_dir(follow_symlinks=False), entry.is_file(follow_symlinks=False)
    if is_dir:
        return "dir", st or entry.stat(follow_symlinks=False)
    if not _is_image_name(entry.name):
        return "skip", "not an image file"
    if not is_file:
        return "skip", "not a regular file"
    return "file", key


def _ancestor_keys(real: str, cache: dict[str, Key | None]) -> frozenset[Key]:
    """Keys of the real folder ``real`` and every folder above it (a link to any of them is a loop)."""
    keys = []
    while True:
        if real not in cache:
            st = _follow(real)
            cache[real] = None if isinstance(st, str) else _key(st)
        keys.append(cache[real])
        parent = os.path.dirname(real)
        if parent == real:
            return frozenset(k for k in keys if k is not None)
        real = parent


def _looping_class_folders(directory: str, classes: Sequence[str]) -> dict[str, str]:
    """``{path: reason}`` of the class folders that are links back to ``directory`` or above it."""
    above = _ancestor_keys(os.path.realpath(directory), {})
    loops = {}
    for cls in classes:
        path = os.path.join(directory, cls)
        st = _follow(path) if os.path.islink(path) else None
        if isinstance(st, os.stat_result) and _key(st) in above:
            loops[path] = f"symbolic-link loop (back to {os.path.realpath(path)})"
    return loops


class _FolderScan:
    """The walk over a dataset's class folders behind :meth:`ImageFolderDataset.make_dataset`.

    Follows links to folders (class folders often live on other disks) but enters no folder twice:
    a link back to a folder on the way down (or above the class folder) is a loop, one to a folder
    already walked a duplicate, one into another class's folder would mislabel its images. Within a
    class, a real file reached a second time through a symbolic link is a duplicate (two hard links
    are two files, as for torchvision). Every file or folder left out goes to ``skip(path, reason)``.
    """

    def __init__(self, directory: str, class_folders: dict[str, str], skip: Callable[[str, str], None]) -> None:
        self.skip = skip
        self._stat_cache: dict[str, Key | None] = {}
        self.above = _ancestor_keys(os.path.realpath(directory), self._stat_cache)
        self.class_of_real = {os.path.realpath(folder): cls for cls, folder in class_folders.items()}
        self.class_of_key: dict[Key, str] = {}
        for cls, folder in class_folders.items():
            st = _follow(folder)
            if not isinstance(st, str):
                self.class_of_key.setdefault(_key(st), cls)

    def class_files(self, cls: str, folder: str) -> list[str]:
        """The image files of one class, each real file once, in torchvision's order (a sorted walk)."""
        st = _follow(folder)
        if isinstance(st, str):
            self.skip(folder, st)
            return []
        if _key(st) in self.above:
            self.skip(folder, f"symbolic-link loop (back to {os.path.realpath(folder)})")
            return []
        if self.class_of_key.get(_key(st), cls) != cls:
            self.skip(folder, f"duplicate of the folder of class {self.class_of_key[_key(st)]!r}")
            return []
        listed = sorted(self._walk(cls, folder, st), key=lambda pair: pair[0])
        return self._once_each([found for _, files in listed for found in sorted(files)])

    def _walk(self, cls: str, folder: str, st: os.stat_result) -> list[tuple[str, list[_Found]]]:
        root_key = _key(st)
        entered = {root_key: folder}
        chain = self.above | _ancestor_keys(os.path.realpath(folder), self._stat_cache) | {root_key}
        stack = [(folder, chain)]
        listed = []
        while stack:
            path, chain = stack.pop()
            files, subdirs = self._list(path)
            listed.append((path, files))
            accepted = []
            for sub, sub_st, is_link in subdirs:  # in sorted order: the first path to a folder wins
                reason = self._why_not_enter(cls, sub, _key(sub_st), chain, entered, is_link)
                if reason:
                    self.skip(sub, reason)
                    continue
                entered[_key(sub_st)] = sub
                accepted.append((sub, chain | {_key(sub_st)}))
            stack.extend(reversed(accepted))  # popped in sorted order
        return listed

    def _list(self, path: str) -> tuple[list[_Found], list[tuple[str, os.stat_result, bool]]]:
        """One folder's image files and sub-folders (sorted by name); everything else is skipped."""
        files, subdirs = [], []
        try:
            with os.scandir(path) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as err:
            self.skip(path, f"cannot read folder: {err.strerror}")
            return files, subdirs
        for entry in entries:
            kind, detail = _classify(entry)
            if kind == "dir":
                subdirs.append((entry.path, detail, entry.is_symlink()))
            elif kind == "file":
                files.append(_Found(entry.path, entry.is_symlink(), detail))
            else:
                self.skip(entry.path, detail)
        return files, subdirs

    def _why_not_enter(self, cls: str, path: str, key: Key, chain: frozenset[Key], entered: dict[Key, str],
                       is_link: bool) -> str:
        if key in chain:
            return f"symbolic-link loop (back to {entered.get(key) or os.path.realpath(path)})"
        if key in entered:
            return f"duplicate of {entered[key]}"
        other = self.class_of_key.get(key)
        if other is None and is_link:
            other = self._class_containing(os.path.realpath(path))
        if other is not None and other != cls:
            return f"folder of class {other!r} (its images would be labelled {cls!r} too)"
        if _is_image_name(os.path.basename(path)):
            return "a folder named like an image file (not scanned)"
        return ""

    def _class_containing(self, real: str) -> str | None:
        while True:
            if real in self.class_of_real:
                return self.class_of_real[real]
            parent = os.path.dirname(real)
            if parent == real:
                return None
            real = parent

    def _once_each(self, files: list[_Found]) -> list[str]:
        if not any(found.is_link for found in files):
            return [found.path for found in files]  # no links, no duplicates: nothing to stat
        first: dict[Key, _Found] = {}
        kept = []
        for found in files:
            key = found.key
            if key is None:
                st = _follow(found.path)
                key = None if isinstance(st, str) else _key(st)
            earlier = first.setdefault(key, found) if key is not None else found
            if earlier is not found and (found.is_link or earlier.is_link):
                self.skip(found.path, f"duplicate of {earlier.path}")
                continue
            kept.append(found.path)
        return kept


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
        loops = _looping_class_folders(directory, present)  # `ln -s . DIR/loop` is no class
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
        scan = _FolderScan(directory, folders, self._skip)
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
        except _READ_ERRORS as err:
            return _read_error_reason(path, err)
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
        except _READ_ERRORS as err:
            self._skip(path, _read_error_reason(path, err))
            image, target = Image.new("RGB", self.placeholder_size), SKIPPED_TARGET
        if self.transform is not None:
            image = self.transform(image)
        if self.target_transform is not None and target != SKIPPED_TARGET:
            target = self.target_transform(target)
        return (image, target, index) if self.return_index else (image, target)

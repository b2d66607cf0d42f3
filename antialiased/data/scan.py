"""Scanning class folders: every image file once, following links but never a loop or a second path.

:class:`FolderScan` is the walk behind :meth:`antialiased.data.ImageFolderDataset.make_dataset`; each
file or folder it leaves out is reported with its reason.
"""
from __future__ import annotations

import errno
import os
import stat
from typing import Any, Callable, NamedTuple, Sequence

from torchvision.datasets.folder import IMG_EXTENSIONS

__all__ = ["FolderScan", "is_image_name", "looping_class_folders"]

Key = tuple[int, int]  # (st_dev, st_ino): the identity of a real file or folder


class _Found(NamedTuple):
    path: str
    is_link: bool
    key: Key | None  # known for files reached through a link; regular files are stat'ed only if needed


def _key(st: os.stat_result) -> Key:
    return (st.st_dev, st.st_ino)


def is_image_name(name: str) -> bool:
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
    if not is_image_name(entry.name):
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


def looping_class_folders(directory: str, classes: Sequence[str]) -> dict[str, str]:
    """``{path: reason}`` of the class folders that are links back to ``directory`` or above it."""
    above = _ancestor_keys(os.path.realpath(directory), {})
    loops = {}
    for cls in classes:
        path = os.path.join(directory, cls)
        st = _follow(path) if os.path.islink(path) else None
        if isinstance(st, os.stat_result) and _key(st) in above:
            loops[path] = f"symbolic-link loop (back to {os.path.realpath(path)})"
    return loops


class FolderScan:
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
        if is_image_name(os.path.basename(path)):
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

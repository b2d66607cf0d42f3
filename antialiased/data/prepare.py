"""Sorting the flat ILSVRC2012 validation folder into ``<wnid>/`` class folders (the paper's step 0).

Labels come from one of:

- ``LOC_val_solution.csv`` (Kaggle's ImageNet release): ``ImageId,PredictionString`` rows whose
  prediction string starts with the wnid;
- the official devkit: ``ILSVRC2012_validation_ground_truth.txt`` (one ILSVRC2012 class id per
  image, in file order) plus the id -> wnid table, read from the devkit's ``data/meta.mat`` (needs
  SciPy, which is not a dependency) or from a text file ``--synsets`` (either 1000 wnids, line i being
  id i, or ``<id> <wnid>`` lines);
- torchvision's ``meta.bin`` (written by ``torchvision.datasets.ImageNet``), which lists the wnid of
  every validation image.

Files are moved (renamed) inside the validation folder, never deleted or overwritten; a second run
finds them in place and changes nothing.
"""
from __future__ import annotations

import csv
import io
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch

from antialiased.errors import DataError, MissingDependencyError, MissingFileError, OutputError

__all__ = ["LabelFileError", "PrepareReport", "labels_from_solution_csv", "labels_from_ground_truth",
           "read_synsets", "synsets_from_devkit", "labels_from_torchvision_meta", "prepare_val_folder",
           "val_file_name"]

_WNID = re.compile(r"^n\d{8}$")
# A plain file or folder name: no path separator, no '..', not hidden, no NUL or control character.
_PLAIN_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._+-]{0,254}$")
_NAMED = 10  # rejected rows named in a message; the rest are counted
_LABEL_FIX = ("Fix the label file (an ImageId is a file name such as ILSVRC2012_val_00000001, each listed once) "
              "or the folder, and run the command again.")


class LabelFileError(DataError):
    """Rows of a label file (or entries of a labels dict) that cannot be used safely; nothing was moved.

    ``rejected`` lists one line per rejected row, naming it and why.
    """

    def __init__(self, message: str, rejected: list[str] | tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.rejected = list(rejected)

    def __reduce__(self):
        return (type(self), (str(self), self.rejected))


def _rejected(source: str, rejected: list[str]) -> LabelFileError:
    shown = "".join(f"\n  {line}" for line in rejected[:_NAMED])
    more = f"\n  ... and {len(rejected) - _NAMED} more" if len(rejected) > _NAMED else ""
    return LabelFileError(f"{source}: {len(rejected)} row(s) rejected, nothing was moved:{shown}{more}\n{_LABEL_FIX}",
                          rejected)


def val_file_name(number: int) -> str:
    """``ILSVRC2012_val_00000001.JPEG`` for image 1."""
    return f"ILSVRC2012_val_{number:08d}.JPEG"


def _check_wnid(wnid: str, where: str) -> str:
    if not _WNID.match(wnid):
        raise DataError(f"{where}: {wnid!r} is not a WordNet id (nXXXXXXXX); {_LABEL_FIX}")
    return wnid


def _read_text(path: Path, what: str) -> str:
    if not path.is_file():
        raise MissingFileError(f"{what} {str(path)!r} not found")
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"cannot read {what} {str(path)!r}: {err}") from err


def _solution_rows(path: Path) -> list[tuple[int, list[str]]]:
    """``(line number, fields)`` of every non-empty row after the header of LOC_val_solution.csv."""
    text = _read_text(path, "solution file (LOC_val_solution.csv)")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        rows = [(reader.line_num, row) for row in reader]
    except csv.Error as err:
        raise DataError(f"{path}: not a CSV file ({err}); expected Kaggle's LOC_val_solution.csv") from err
    if not rows or not rows[0][1] or rows[0][1][0].strip() != "ImageId":
        raise DataError(f"{path}: expected the header 'ImageId,PredictionString' of LOC_val_solution.csv")
    return [(line, row) for line, row in rows[1:] if row]


def labels_from_solution_csv(path: str | os.PathLike) -> dict[str, str]:
    """``{image file name: wnid}`` from Kaggle's ``LOC_val_solution.csv``.

    Every row is checked before anything is returned: an ImageId must be a plain file name (no path)
    listed once, and its label a WordNet id. :class:`LabelFileError` names every rejected row.
    """
    path = Path(path)
    labels: dict[str, str] = {}
    lines: dict[str, list[int]] = {}
    rejected = []
    for line, row in _solution_rows(path):
        if len(row) < 2 or not row[1].split():
            rejected.append(f"line {line}: expected 'ImageId,wnid ...', got {row!r}")
            continue
        name, wnid = row[0].strip() + ".JPEG", row[1].split()[0]
        reason = _unsafe_name(name) or ("" if _WNID.match(wnid) else f"{wnid!r} is not a WordNet id (nXXXXXXXX)")
        if reason:
            rejected.append(f"line {line}: ImageId {name!r}: {reason}")
        lines.setdefault(name, []).append(line)
        labels[name] = wnid
    rejected += [f"lines {', '.join(map(str, at))}: ImageId {name!r} is listed {len(at)} times (duplicate rows "
                 f"would relabel the image)" for name, at in lines.items() if len(at) > 1]
    if rejected:
        raise _rejected(str(path), rejected)
    return labels


def read_synsets(path: str | os.PathLike) -> dict[int, str]:
    """ILSVRC2012 class id (1-based) -> wnid from a text file: ``wnid ...`` lines (line i = id i) or ``id wnid``."""
    path = Path(path)
    table: dict[int, str] = {}
    for line_no, line in enumerate(_read_text(path, "synsets file").splitlines(), start=1):
        tokens = line.replace(",", " ").split()
        if not tokens:
            continue
        if tokens[0].isdigit() and len(tokens) > 1:
            table[int(tokens[0])] = _check_wnid(tokens[1], f"{path}:{line_no}")
        else:
            table[line_no] = _check_wnid(tokens[0], f"{path}:{line_no}")
    return table


def synsets_from_devkit(devkit: str | os.PathLike) -> dict[int, str]:
    """ILSVRC2012 id -> wnid of the 1000 leaf classes, from ``<devkit>/data/meta.mat`` (needs SciPy)."""
    meta = Path(devkit) / "data" / "meta.mat"
    if not meta.is_file():
        raise MissingFileError(f"{str(meta)!r} not found: pass the unpacked ILSVRC2012_devkit_t12 folder")
    try:
        import scipy.io
    except ImportError:
        raise MissingDependencyError(
            f"reading {meta} needs SciPy (MATLAB file), which antialiased does not depend on. Either "
            f"`pip install scipy`, or pass --synsets FILE with the id -> wnid table (1000 lines, line i = the "
            f"wnid of ILSVRC2012 id i), or use LOC_val_solution.csv (--solution)") from None
    try:
        synsets = scipy.io.loadmat(str(meta), squeeze_me=True)["synsets"]
        # fields: ILSVRC2012_ID, WNID, words, gloss, num_children, ...; leaves are the 1000 classes
        return {int(s[0]): _check_wnid(str(s[1]), str(meta)) for s in synsets if int(s[4]) == 0}
    except (ValueError, KeyError, IndexError, TypeError, OSError) as err:
        raise DataError(f"cannot read the synsets of {meta}: {err} (is it the ILSVRC2012 devkit's meta.mat?)") from err


def labels_from_ground_truth(ground_truth: str | os.PathLike, synsets: dict[int, str]) -> dict[str, str]:
    """``{image file name: wnid}`` from ``ILSVRC2012_validation_ground_truth.txt`` and an id -> wnid table."""
    path = Path(ground_truth)
    text = _read_text(path, "ground-truth file (ILSVRC2012_validation_ground_truth.txt from the devkit's data/)")
    labels: dict[str, str] = {}
    for number, line in enumerate(text.split(), start=1):
        if not line.isdigit() or int(line) not in synsets:
            raise DataError(f"{path}: line {number} holds {line!r}, not an ILSVRC2012 class id of the synsets "
                            f"table; {_LABEL_FIX}")
        labels[val_file_name(number)] = synsets[int(line)]
    return labels


def labels_from_torchvision_meta(path: str | os.PathLike) -> dict[str, str]:
    """``{image file name: wnid}`` from torchvision's ``meta.bin`` ((wnid_to_classes, val_wnids))."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"torchvision meta file {str(path)!r} not found")
    try:
        _, val_wnids = torch.load(path, weights_only=True)
        val_wnids = [str(w) for w in val_wnids]
    except Exception as err:  # a damaged pickle raises many kinds; all mean the same to the user
        raise DataError(f"cannot read torchvision meta file {str(path)!r} ({type(err).__name__}: {err}); it is "
                        f"written by torchvision.datasets.ImageNet: delete it and let torchvision rebuild it, "
                        f"or use --solution / --ground-truth") from err
    return {val_file_name(i): _check_wnid(w, str(path)) for i, w in enumerate(val_wnids, start=1)}


def _unsafe_name(name: str) -> str:
    """Why ``name`` is not a plain file name (empty when it is)."""
    if _PLAIN_NAME.match(name) and ".." not in name:
        return ""
    return ("not a plain file name (an ImageId is a name like ILSVRC2012_val_00000001: letters, digits, "
            "'.', '_', '-', '+'; no path, no '..', not hidden)")


@dataclass
class PrepareReport:
    """What :func:`prepare_val_folder` did (or, with ``dry_run``, would do)."""

    moved: int = 0
    already_in_place: int = 0
    missing: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    classes: int = 0
    left_in_folder: list[str] = field(default_factory=list)
    dry_run: bool = False

    @property
    def ok(self) -> bool:
        return not self.missing and not self.conflicts

    def summary(self) -> str:
        verb = "would move" if self.dry_run else "moved"
        lines = [f"{verb} {self.moved} image(s), {self.already_in_place} already in place, "
                 f"{self.classes} class folder(s)"]
        if self.missing:
            lines.append(f"MISSING: {len(self.missing)} labelled image(s) not found, e.g. {self.missing[0]}")
        if self.conflicts:
            lines.append(f"CONFLICT: {len(self.conflicts)} image(s) exist both flat and in their class folder "
                         f"(left untouched), e.g. {self.conflicts[0]}")
        if self.left_in_folder:
            lines.append(f"{len(self.left_in_folder)} file(s) without a label left where they are, "
                         f"e.g. {self.left_in_folder[0]}")
        return "\n".join(lines)


def prepare_val_folder(val_dir: str | os.PathLike, labels: dict[str, str], *, dry_run: bool = False,
                       expected: int | None = None) -> PrepareReport:
    """Move ``val_dir/<file>`` to ``val_dir/<wnid>/<file>`` for every labelled file.

    Every entry is checked before anything moves; if any is unsafe, :class:`LabelFileError` names
    them and nothing is moved. Unsafe: a file name that is not a plain name (a path, '..', hidden),
    a class that is not a plain folder name, a file that is a folder, a symbolic link that leads out
    of ``val_dir`` (or a relative one, whose meaning would change once moved), a class folder that
    is not a folder or lies outside ``val_dir``. Idempotent: files already in their class folder are
    counted, not touched. Nothing is ever deleted or overwritten (a file present in both places is
    reported as a conflict). ``expected``: the number of labels to insist on (50,000 for ILSVRC2012).

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as d:
        ...     _ = open(os.path.join(d, val_file_name(1)), "wb").write(b"jpeg bytes")
        ...     first = prepare_val_folder(d, {val_file_name(1): "n01440764"})
        ...     second = prepare_val_folder(d, {val_file_name(1): "n01440764"})
        ...     (first.moved, second.moved, second.already_in_place)
        (1, 0, 1)
    """
    val_dir = Path(val_dir)
    if not val_dir.is_dir():
        raise MissingFileError(f"validation folder {str(val_dir)!r} does not exist")
    if expected is not None and len(labels) != expected:
        raise DataError(f"the label file lists {len(labels)} images, expected {expected} (pass --expect "
                        f"{len(labels)}, or --expect 0 to accept any number, if that is the right file)")
    real_root = os.path.realpath(val_dir)
    rejected = [r for name, wnid in sorted(labels.items()) if (r := _unsafe_entry(val_dir, real_root, name, wnid))]
    if rejected:
        raise _rejected(f"labels for {val_dir}", rejected)
    report = PrepareReport(dry_run=dry_run, classes=len(set(labels.values())))
    _move(_plan(val_dir, labels, report), report, dry_run)
    labelled = set(labels)
    with os.scandir(val_dir) as entries:
        report.left_in_folder = sorted(e.name for e in entries if e.is_file() and e.name not in labelled)
    if not dry_run:
        _verify(val_dir, labels, report)
    return report


def _inside(real_root: str, real_path: str) -> bool:
    return os.path.commonpath([real_root, real_path]) == real_root


def _unsafe_entry(val_dir: Path, real_root: str, name: str, wnid: str) -> str:
    """Why moving ``val_dir/name`` into ``val_dir/wnid/`` is not safe (empty when it is)."""
    reason = _unsafe_name(name)
    if reason:
        return f"ImageId {name!r}: {reason}"
    if _unsafe_name(wnid):
        return f"ImageId {name!r}: class {wnid!r} is not a safe folder name (expected a WordNet id, e.g. n01440764)"
    src, folder = val_dir / name, val_dir / wnid
    if src.is_symlink():
        target, real = os.readlink(src), os.path.realpath(src)
        if not _inside(real_root, real):
            return f"{name!r} is a symbolic link to {real}, outside --val-dir (copy the file in instead of linking it)"
        if not os.path.isabs(target):
            return (f"{name!r} is a relative symbolic link ({target!r}) that would point elsewhere once moved into "
                    f"{wnid}/ (make it absolute, or copy the file)")
    elif src.is_dir():
        return f"{name!r} is a folder, not an image file"
    if folder.is_symlink() or folder.exists():
        if not folder.is_dir():
            return f"class folder {wnid!r} for {name!r} exists and is not a folder"
        if not _inside(real_root, os.path.realpath(folder)):
            return f"class folder {wnid!r} for {name!r} is a link to {os.path.realpath(folder)}, outside --val-dir"
    return ""


def _plan(val_dir: Path, labels: dict[str, str], report: PrepareReport) -> list[tuple[Path, Path]]:
    """The moves to make; files already in place, conflicts and missing files go to ``report``."""
    planned: list[tuple[Path, Path]] = []
    for name, wnid in sorted(labels.items()):
        src, dst = val_dir / name, val_dir / wnid / name
        src_exists, dst_exists = src.exists() or src.is_symlink(), dst.exists() or dst.is_symlink()
        if src_exists and dst_exists:
            report.conflicts.append(str(src))
        elif dst_exists:
            report.already_in_place += 1
        elif src_exists:
            planned.append((src, dst))
        else:
            report.missing.append(name)
    return planned


def _move(planned: list[tuple[Path, Path]], report: PrepareReport, dry_run: bool) -> None:
    for src, dst in planned:
        if not dry_run:
            try:
                dst.parent.mkdir(exist_ok=True)
                if dst.exists() or dst.is_symlink():  # appeared meanwhile: never overwrite
                    report.conflicts.append(str(src))
                    continue
                os.rename(src, dst)
            except OSError as err:
                raise OutputError(f"could not move {src} to {dst}: {err.strerror or err}; {report.moved} image(s) "
                                  f"were moved before it. Fix that and run the same command again: it goes on "
                                  f"where it stopped") from err
        report.moved += 1


def _verify(val_dir: Path, labels: dict[str, str], report: PrepareReport) -> None:
    """Every labelled image that was found must now be in its class folder."""
    absent = [n for n, w in labels.items() if n not in report.missing and str(val_dir / n) not in report.conflicts
              and not ((val_dir / w / n).exists() or (val_dir / w / n).is_symlink())]
    if absent:
        raise DataError(f"verification failed: {len(absent)} image(s) not in their class folder after moving, "
                        f"e.g. {absent[0]} (was the folder changed meanwhile? Run the same command again)")

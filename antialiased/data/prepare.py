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
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["PrepareReport", "labels_from_solution_csv", "labels_from_ground_truth", "read_synsets",
           "synsets_from_devkit", "labels_from_torchvision_meta", "prepare_val_folder", "val_file_name"]

_WNID = re.compile(r"^n\d{8}$")


def val_file_name(number: int) -> str:
    """``ILSVRC2012_val_00000001.JPEG`` for image 1."""
    return f"ILSVRC2012_val_{number:08d}.JPEG"


def _check_wnid(wnid: str, where: str) -> str:
    if not _WNID.match(wnid):
        raise ValueError(f"{where}: {wnid!r} is not a WordNet id (nXXXXXXXX)")
    return wnid


def labels_from_solution_csv(path: str | os.PathLike) -> dict[str, str]:
    """``{image file name: wnid}`` from Kaggle's ``LOC_val_solution.csv``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"solution file {str(path)!r} not found (LOC_val_solution.csv)")
    labels: dict[str, str] = {}
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if not header or header[0].strip() != "ImageId":
            raise ValueError(f"{path}: expected the header 'ImageId,PredictionString' of LOC_val_solution.csv")
        for line, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) < 2 or not row[1].split():
                raise ValueError(f"{path}:{line}: expected 'ImageId,wnid ...', got {row!r}")
            labels[row[0].strip() + ".JPEG"] = _check_wnid(row[1].split()[0], f"{path}:{line}")
    return labels


def read_synsets(path: str | os.PathLike) -> dict[int, str]:
    """ILSVRC2012 class id (1-based) -> wnid from a text file: ``wnid ...`` lines (line i = id i) or ``id wnid``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"synsets file {str(path)!r} not found")
    table: dict[int, str] = {}
    for line_no, line in enumerate(path.read_text().splitlines(), start=1):
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
        raise FileNotFoundError(f"{str(meta)!r} not found: pass the unpacked ILSVRC2012_devkit_t12 folder")
    try:
        import scipy.io
    except ImportError:
        raise ValueError(f"reading {meta} needs SciPy (MATLAB file), which antialiased does not depend on. "
                         f"Either `pip install scipy`, or pass --synsets FILE with the id -> wnid table "
                         f"(1000 lines, line i = the wnid of ILSVRC2012 id i), or use LOC_val_solution.csv "
                         f"(--solution)") from None
    synsets = scipy.io.loadmat(str(meta), squeeze_me=True)["synsets"]
    # fields: ILSVRC2012_ID, WNID, words, gloss, num_children, ...; leaves are the 1000 classes
    return {int(s[0]): str(s[1]) for s in synsets if int(s[4]) == 0}


def labels_from_ground_truth(ground_truth: str | os.PathLike, synsets: dict[int, str]) -> dict[str, str]:
    """``{image file name: wnid}`` from ``ILSVRC2012_validation_ground_truth.txt`` and an id -> wnid table."""
    path = Path(ground_truth)
    if not path.is_file():
        raise FileNotFoundError(f"ground-truth file {str(path)!r} not found "
                                f"(ILSVRC2012_validation_ground_truth.txt from the devkit's data/ folder)")
    labels: dict[str, str] = {}
    for number, line in enumerate(path.read_text().split(), start=1):
        if not line.isdigit() or int(line) not in synsets:
            raise ValueError(f"{path}: line {number} holds {line!r}, not an ILSVRC2012 class id of the synsets table")
        labels[val_file_name(number)] = synsets[int(line)]
    return labels


def labels_from_torchvision_meta(path: str | os.PathLike) -> dict[str, str]:
    """``{image file name: wnid}`` from torchvision's ``meta.bin`` ((wnid_to_classes, val_wnids))."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"torchvision meta file {str(path)!r} not found")
    _, val_wnids = torch.load(path, weights_only=True)
    return {val_file_name(i): _check_wnid(w, str(path)) for i, w in enumerate(val_wnids, start=1)}


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

    Idempotent: files already in their class folder are counted, not touched. Nothing is ever
    deleted or overwritten (a file present in both places is reported as a conflict). ``expected``:
    the number of labels to insist on (50,000 for ILSVRC2012).

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
        raise FileNotFoundError(f"validation folder {str(val_dir)!r} does not exist")
    if expected is not None and len(labels) != expected:
        raise ValueError(f"the label file lists {len(labels)} images, expected {expected}")
    report = PrepareReport(dry_run=dry_run, classes=len(set(labels.values())))
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
    for src, dst in planned:
        if not dry_run:
            dst.parent.mkdir(exist_ok=True)
            if dst.exists() or dst.is_symlink():  # appeared meanwhile: never overwrite
                report.conflicts.append(str(src))
                continue
            os.rename(src, dst)
        report.moved += 1
    labelled = set(labels)
    with os.scandir(val_dir) as entries:
        report.left_in_folder = sorted(e.name for e in entries if e.is_file() and e.name not in labelled)
    if not dry_run:
        _verify(val_dir, labels, report)
    return report


def _verify(val_dir: Path, labels: dict[str, str], report: PrepareReport) -> None:
    """Every labelled image that was found must now be in its class folder."""
    absent = [n for n, w in labels.items() if n not in report.missing and str(val_dir / n) not in report.conflicts
              and not ((val_dir / w / n).exists() or (val_dir / w / n).is_symlink())]
    if absent:
        raise RuntimeError(f"verification failed: {len(absent)} image(s) not in their class folder after moving, "
                           f"e.g. {absent[0]}")

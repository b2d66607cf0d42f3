"""Bad data suite: every kind of broken, odd or hostile file in one folder, next to valid images.

``CASES`` is the table of injected faults: a case name, a builder that writes the case into a class
folder (returning the paths it made, each with the exact RGB pixels a valid file must decode to, or
``None`` for a file that must be skipped) and the expected skip reason (a regular expression; ``None``
when every file of the case is valid and must decode). Expected pixels are computed here with numpy
from the arrays written into the files (lossless formats; 16-bit PNGs are encoded by hand, not by
Pillow), never by the loader under test.

Per case: survived = every valid file decodes to exactly its pixels and every bad file is skipped
with its reason; strict mode stops at the (first) bad file with the reason and the fix.
"""
from __future__ import annotations

import os
import re
import struct
import warnings
import zlib
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch
from PIL import Image

from antialiased.data import SKIPPED_TARGET, CorruptImageError, ImageFolderDataset

# PIL warns about the images between the limit and twice the limit; the loader skips them anyway.
pytestmark = pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")

# Valid images stay below this; the decompression-bomb cases go above it (set for every test here).
PIXEL_LIMIT = 1000

Made = dict[Path, "np.ndarray | None"]  # file -> expected RGB pixels, or None: must be skipped


# --- writers (independent of the loader under test) ----------------------------------------------

def _rng(name: str) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(name.encode()))


def _png16(path: Path, array: np.ndarray) -> None:
    """A 16-bit PNG encoded by hand (gray: HxW, gray+alpha: HxWx2, RGB: HxWx3, RGBA: HxWx4)."""
    color_type = {1: 0, 2: 4, 3: 2, 4: 6}[1 if array.ndim == 2 else array.shape[2]]
    h, w = array.shape[:2]
    raw = b"".join(b"\x00" + array[y].astype(">u2").tobytes() for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", w, h, 16, color_type, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw))
                     + chunk(b"IEND", b""))


def _gray_to_rgb(gray: np.ndarray) -> np.ndarray:
    return np.repeat(gray[..., None], 3, axis=2).astype(np.uint8)


def _rgb_png(folder: Path, name: str, shape=(6, 7)) -> tuple[Path, np.ndarray]:
    array = _rng(name).integers(0, 256, (*shape, 3), dtype=np.uint8)
    path = folder / name
    Image.fromarray(array, "RGB").save(path)
    return path, array


# --- valid files in unusual modes ----------------------------------------------------------------

def _valid_rgb(folder: Path) -> Made:
    path, array = _rgb_png(folder, "rgb.png")
    return {path: array}


def _valid_rgba(folder: Path) -> Made:
    array = _rng("rgba").integers(0, 256, (5, 6, 4), dtype=np.uint8)
    Image.fromarray(array, "RGBA").save(folder / "rgba.png")
    return {folder / "rgba.png": array[..., :3]}  # alpha dropped, as torchvision's loader does


def _valid_gray_alpha(folder: Path) -> Made:
    array = _rng("la").integers(0, 256, (5, 6, 2), dtype=np.uint8)
    Image.fromarray(array, "LA").save(folder / "gray_alpha.png")
    return {folder / "gray_alpha.png": _gray_to_rgb(array[..., 0])}


def _valid_palette_transparency(folder: Path) -> Made:
    rng = _rng("palette")
    palette = rng.integers(0, 256, (256, 3), dtype=np.uint8)
    index = rng.integers(0, 256, (6, 5), dtype=np.uint8)
    image = Image.fromarray(index, "P")
    image.putpalette(palette.tobytes())
    image.save(folder / "palette.png", transparency=bytes(rng.integers(0, 256, 256, dtype=np.uint8)))
    return {folder / "palette.png": palette[index]}


def _valid_cmyk(folder: Path) -> Made:
    cmyk = _rng("cmyk").integers(0, 256, (4, 6, 4), dtype=np.uint8)
    Image.fromarray(cmyk, "CMYK").save(folder / "cmyk.tif")
    c, k = cmyk[..., :3].astype(np.int64), cmyk[..., 3:].astype(np.int64)
    # (255 - c) * (255 - k) / 255 with Pillow's rounding (x * y + 128, then (t + (t >> 8)) >> 8), which
    # torchvision's loader uses too
    t = c * (255 - k) + 128
    return {folder / "cmyk.tif": ((255 - k) - (((t >> 8) + t) >> 8)).astype(np.uint8)}


def _valid_gray(folder: Path) -> Made:
    gray = _rng("gray").integers(0, 256, (7, 5), dtype=np.uint8)
    Image.fromarray(gray, "L").save(folder / "gray.png")
    return {folder / "gray.png": _gray_to_rgb(gray)}


def _valid_bilevel(folder: Path) -> Made:
    bits = _rng("bilevel").integers(0, 2, (8, 9), dtype=np.uint8).astype(bool)
    Image.fromarray(bits).save(folder / "bilevel.png")
    return {folder / "bilevel.png": _gray_to_rgb(bits * 255)}


def _valid_gray16_png(folder: Path) -> Made:
    # the full 16-bit range, so an image clipped at 255 (all white) cannot pass
    gray = _rng("gray16").integers(0, 65536, (6, 8), dtype=np.uint16)
    gray[0, :4] = [0, 255, 256, 65535]
    _png16(folder / "gray16.png", gray)
    return {folder / "gray16.png": _gray_to_rgb(gray >> 8)}


def _valid_gray16_bigendian_tiff(folder: Path) -> Made:
    gray = _rng("gray16b").integers(0, 65536, (5, 4), dtype=np.uint16)
    image = Image.fromarray(gray.astype(">u2"))
    assert image.mode == "I;16B"
    image.save(folder / "gray16b.tif")
    return {folder / "gray16b.tif": _gray_to_rgb(gray >> 8)}


def _valid_gray16_pgm(folder: Path) -> Made:  # Pillow opens 16-bit PGM as mode "I"
    gray = _rng("pgm16").integers(0, 65536, (3, 5), dtype=np.uint16)
    (folder / "gray16.pgm").write_bytes(b"P5 5 3 65535\n" + gray.astype(">u2").tobytes())
    return {folder / "gray16.pgm": _gray_to_rgb(gray >> 8)}


def _valid_rgb16_png(folder: Path) -> Made:
    rgb = _rng("rgb16").integers(0, 65536, (4, 5, 3), dtype=np.uint16)
    _png16(folder / "rgb16.png", rgb)
    return {folder / "rgb16.png": (rgb >> 8).astype(np.uint8)}


def _valid_gray_alpha16_png(folder: Path) -> Made:
    la = _rng("la16").integers(0, 65536, (4, 5, 2), dtype=np.uint16)
    _png16(folder / "gray_alpha16.png", la)
    return {folder / "gray_alpha16.png": _gray_to_rgb(la[..., 0] >> 8)}


def _valid_float_tiff(folder: Path) -> Made:  # mode "F": 0.0 .. 1.0 maps to 0 .. 255
    values = _rng("float").random((4, 6)).astype(np.float32)
    values[0, :4] = [0.0, 1.0, -0.5, 2.0]  # out of range: clipped
    Image.fromarray(values, "F").save(folder / "float.tif")
    expected = np.rint(np.clip(values.astype(np.float64), 0, 1) * 255)
    return {folder / "float.tif": _gray_to_rgb(expected.astype(np.uint8))}


# --- files that must be skipped ------------------------------------------------------------------

def _zero_byte(folder: Path) -> Made:
    (folder / "empty.JPEG").write_bytes(b"")
    return {folder / "empty.JPEG": None}


def _truncated_png(folder: Path) -> Made:
    path, _ = _rgb_png(folder, "whole.png", shape=(24, 30))
    data = path.read_bytes()
    path.unlink()
    (folder / "truncated.png").write_bytes(data[: len(data) // 2])
    return {folder / "truncated.png": None}


def _truncated_jpeg(folder: Path) -> Made:
    array = _rng("jpeg").integers(0, 256, (24, 30, 3), dtype=np.uint8)
    Image.fromarray(array).save(folder / "whole.jpg", quality=95)
    data = (folder / "whole.jpg").read_bytes()
    (folder / "whole.jpg").unlink()
    (folder / "truncated.jpg").write_bytes(data[: len(data) - 40])
    return {folder / "truncated.jpg": None}


def _random_bytes(folder: Path) -> Made:
    (folder / "noise.JPEG").write_bytes(_rng("noise").integers(0, 256, 3000, dtype=np.uint8).tobytes())
    return {folder / "noise.JPEG": None}


def _text_as_image(folder: Path) -> Made:
    (folder / "readme.png").write_text("this is a text file with an image extension\n")
    return {folder / "readme.png": None}


def _not_an_image(folder: Path) -> Made:
    (folder / "notes.txt").write_text("not an image")
    return {folder / "notes.txt": None}


def _folder_named_like_image(folder: Path) -> Made:
    (folder / "album.jpg").mkdir()
    _rgb_png(folder / "album.jpg", "inside.png")  # not scanned: the folder is reported, not walked
    return {folder / "album.jpg": None}


def _over_bomb_limit(folder: Path) -> Made:  # > limit: Pillow only warns
    Image.new("RGB", (40, 30), (1, 2, 3)).save(folder / "big.png")
    return {folder / "big.png": None}


def _far_over_bomb_limit(folder: Path) -> Made:  # > 2 x limit: Pillow refuses to open it
    Image.new("RGB", (50, 50), (1, 2, 3)).save(folder / "huge.png")
    return {folder / "huge.png": None}


def _folder_link_loop(folder: Path) -> Made:
    os.symlink(".", folder / "loop")
    return {folder / "loop": None}


def _folder_link_to_ancestor(folder: Path) -> Made:
    os.symlink("../..", folder / "up")  # the dataset's parent: every class, and more, again
    return {folder / "up": None}


def _file_link_loop(folder: Path) -> Made:
    os.symlink("ping.png", folder / "pong.png")
    os.symlink("pong.png", folder / "ping.png")
    os.symlink("self.png", folder / "self.png")
    return {folder / "ping.png": None, folder / "pong.png": None, folder / "self.png": None}


def _dangling_link(folder: Path) -> Made:
    os.symlink("gone.png", folder / "dangling.png")
    return {folder / "dangling.png": None}


def _duplicate_file_link(folder: Path) -> Made:
    path, array = _rgb_png(folder, "dup_target.png")
    os.symlink("dup_target.png", folder / "dup_zlink.png")  # sorts after its target
    return {path: array, folder / "dup_zlink.png": None}


def _duplicate_folder_link(folder: Path) -> Made:
    (folder / "sub").mkdir()
    path, array = _rgb_png(folder / "sub", "in_sub.png")
    os.symlink("sub", folder / "sub_zlink")
    return {path: array, folder / "sub_zlink": None}


def _link_into_other_class(folder: Path) -> Made:
    os.symlink("../other", folder / "others")  # would count class 'other' images under this class
    return {folder / "others": None}


Builder = Callable[[Path], Made]

# (case, builder, expected skip reason as a regular expression, or None: every file is valid)
CASES: list[tuple[str, Builder, str | None]] = [
    ("rgb", _valid_rgb, None),
    ("rgba", _valid_rgba, None),
    ("gray+alpha", _valid_gray_alpha, None),
    ("palette with transparency", _valid_palette_transparency, None),
    ("cmyk", _valid_cmyk, None),
    ("grayscale", _valid_gray, None),
    ("bilevel", _valid_bilevel, None),
    ("16-bit gray png", _valid_gray16_png, None),
    ("16-bit gray big-endian tiff", _valid_gray16_bigendian_tiff, None),
    ("16-bit gray pgm (mode I)", _valid_gray16_pgm, None),
    ("16-bit rgb png", _valid_rgb16_png, None),
    ("16-bit gray+alpha png", _valid_gray_alpha16_png, None),
    ("float tiff (mode F)", _valid_float_tiff, None),
    ("zero-byte", _zero_byte, r"empty file \(0 bytes\)$"),
    ("truncated png", _truncated_png, r"truncated image: "),
    ("truncated jpeg", _truncated_jpeg, r"truncated image: "),
    ("random bytes", _random_bytes, r"cannot identify image file$"),
    ("text with an image extension", _text_as_image, r"cannot identify image file$"),
    ("not an image file", _not_an_image, r"not an image file$"),
    ("folder named like an image", _folder_named_like_image, r"a folder named like an image file"),
    ("over the bomb limit", _over_bomb_limit, r"over the decompression-bomb limit \(1200 pixels > 1000\)$"),
    ("far over the bomb limit", _far_over_bomb_limit,
     r"over the decompression-bomb limit \(2500 pixels > 1000\)$"),
    ("folder symlink loop", _folder_link_loop, r"symbolic-link loop"),
    ("folder symlink to an ancestor", _folder_link_to_ancestor, r"symbolic-link loop"),
    ("file symlink loop", _file_link_loop, r"symbolic-link loop$"),
    ("dangling symlink", _dangling_link, r"dangling symbolic link"),
    ("duplicate file link", _duplicate_file_link, r"duplicate of .*dup_target\.png$"),
    ("duplicate folder link", _duplicate_folder_link, r"duplicate of .*sub$"),
    ("folder link into another class", _link_into_other_class, r"folder of class 'other'"),
]
CASE_IDS = [name for name, _, _ in CASES]


@pytest.fixture(autouse=True)
def _small_pixel_limit(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", PIXEL_LIMIT)


def _build(root: Path, cases=CASES) -> tuple[Path, Made, dict[Path, str]]:
    """``root/mixed/`` holds every case; ``root/other/`` one valid image. Returns the files and reasons."""
    (root / "mixed").mkdir(parents=True)
    (root / "other").mkdir()
    made: Made = dict([_rgb_png(root / "other", "other.png")])
    reasons: dict[Path, str] = {}
    for _, builder, reason in cases:
        files = builder(root / "mixed")
        made.update(files)
        reasons.update({path: reason for path, pixels in files.items() if pixels is None})
    return root, made, reasons


def _decode_all(ds: ImageFolderDataset) -> dict[str, tuple[np.ndarray | None, int]]:
    out = {}
    for i, (path, _) in enumerate(ds.samples):
        image, target = ds[i]
        out[path] = (None if target == SKIPPED_TARGET else np.asarray(image), target)
    return out


def _check(ds: ImageFolderDataset, made: Made, reasons: dict[Path, str]) -> None:
    decoded = _decode_all(ds)
    valid = {str(p): pixels for p, pixels in made.items() if pixels is not None}
    assert sorted(p for p, (pixels, _) in decoded.items() if pixels is not None) == sorted(valid)
    for path, expected in valid.items():
        pixels, target = decoded[path]
        assert pixels.dtype == np.uint8 and pixels.shape == expected.shape, path
        np.testing.assert_array_equal(pixels, expected, err_msg=path)
        assert ds.classes[target] == Path(path).relative_to(ds.root).parts[0]
    assert sorted(ds.skipped) == sorted(map(str, reasons)), "skipped exactly the bad files, each once"
    assert sorted(ds.skip_reasons) == sorted(map(str, reasons))
    for path, pattern in reasons.items():
        assert re.match(pattern, ds.skip_reasons[str(path)]), (path, ds.skip_reasons[str(path)])


def test_every_case_in_one_folder(tmp_path):
    root, made, reasons = _build(tmp_path / "data")
    ds = ImageFolderDataset(root)
    _check(ds, made, reasons)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_each_case_alone(case, tmp_path):
    root, made, reasons = _build(tmp_path / "data", [case])
    _check(ImageFolderDataset(root), made, reasons)


@pytest.mark.parametrize("case", [c for c in CASES if c[2] is not None], ids=[c[0] for c in CASES if c[2]])
def test_strict_stops_at_the_bad_file(case, tmp_path):
    root, _, reasons = _build(tmp_path / "data", [case])
    with pytest.raises(CorruptImageError) as err:
        ds = ImageFolderDataset(root, strict=True)  # scan-time faults stop here
        for i in range(len(ds)):  # decode-time faults here
            ds[i]
    message = str(err.value)
    assert "\n" not in message and "run without --strict to skip" in message
    assert err.value.path in map(str, reasons) and err.value.path in message
    assert re.match(reasons[Path(err.value.path)], err.value.reason) and err.value.reason in message


def test_strict_stops_at_the_first_bad_file(tmp_path):
    root, _, reasons = _build(tmp_path / "data")
    with pytest.raises(CorruptImageError) as err:
        ImageFolderDataset(root, strict=True)
    assert err.value.path in map(str, reasons)


def test_reasons_of_failures_inside_worker_processes(tmp_path):
    """Decoding fails in DataLoader workers; the main process re-derives each reason by index."""
    root, made, reasons = _build(tmp_path / "data")
    ds = ImageFolderDataset(root, transform=lambda im: torch.zeros(1), return_index=True)
    scan_time = dict(ds.skip_reasons)
    loader = torch.utils.data.DataLoader(ds, batch_size=4, num_workers=2)
    failed = [int(i) for _, targets, indices in loader for t, i in zip(targets, indices) if t == SKIPPED_TARGET]
    assert ds.skip_reasons == scan_time  # the workers' records stay in the workers
    decode_time = {ds.samples[i][0]: ds.skip_reason(i) for i in failed}
    assert sorted(scan_time.keys() | decode_time.keys()) == sorted(map(str, reasons))
    for path, reason in decode_time.items():
        assert re.match(reasons[Path(path)], reason), (path, reason)
    assert ds.skip_report(failed) == {**scan_time, **decode_time}


def test_no_warnings_while_decoding(tmp_path):
    root, made, _ = _build(tmp_path / "data", [c for c in CASES if c[2] is None])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _decode_all(ImageFolderDataset(root))
    assert [str(w.message) for w in caught] == []


@pytest.mark.filterwarnings("ignore::UserWarning")  # PIL's notes on damaged TIFF tags
def test_damaged_files_never_crash_the_loader(tmp_path):
    """Every format cut short at many lengths, and with random bytes overwritten: each file either
    decodes to an RGB image of its size or is skipped with a reason; nothing escapes __getitem__."""
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)
    (tmp_path / "damaged").mkdir()
    for fmt, ext, options in [("PNG", "png", {}), ("JPEG", "jpg", {"quality": 90}), ("PPM", "ppm", {}),
                              ("BMP", "bmp", {}), ("TIFF", "tif", {}), ("WEBP", "webp", {"lossless": True})]:
        Image.fromarray(pixels).save(tmp_path / f"whole.{ext}", format=fmt, **options)
        data = (tmp_path / f"whole.{ext}").read_bytes()
        for i, cut in enumerate(np.linspace(0, len(data) - 1, 12).astype(int)):
            (tmp_path / "damaged" / f"cut{i}.{ext}").write_bytes(data[:cut])
        for i in range(12):
            damaged = bytearray(data)
            for position in rng.integers(0, len(data), 4):
                damaged[position] = rng.integers(0, 256)
            (tmp_path / "damaged" / f"flip{i}.{ext}").write_bytes(bytes(damaged))
    ds = ImageFolderDataset(tmp_path, placeholder_size=(24, 20))
    assert len(ds) == 6 * 24
    for i in range(len(ds)):
        image, target = ds[i]
        assert image.mode == "RGB" and image.size == (24, 20)
        assert (target == SKIPPED_TARGET) == (ds.samples[i][0] in ds.skip_reasons)
    assert all(ds.skip_reasons.values()) and len(ds.skipped) >= 6 * 12 - 6  # nearly every cut fails


def test_strict_error_from_a_worker_process_keeps_its_type_and_message(tmp_path):
    root, _, reasons = _build(tmp_path / "data", [c for c in CASES if c[0] in ("rgb", "truncated png")])
    ds = ImageFolderDataset(root, strict=True)
    with pytest.raises(CorruptImageError) as err:
        list(torch.utils.data.DataLoader(ds, batch_size=2, num_workers=1))
    last_line = str(err.value).strip().splitlines()[-1]  # what the command line shows
    assert "truncated.png: truncated image: " in last_line and "run without --strict to skip" in last_line

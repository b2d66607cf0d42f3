"""benchmarks/fft_stem_share.py: the stem of every FFT model is converted, blurpool's is not; the table's rows."""
from __future__ import annotations

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import fft_stem_share  # noqa: E402
from antialiased.layers import ASAPPool, FLCPool  # noqa: E402


def test_fft_methods_convert_the_patch_stem_and_blurpool_keeps_it_strided():
    stems = {name: fft_stem_share.build(options).features[0] for name, options in fft_stem_share.METHODS.items()}
    assert stems["baseline"][0].stride == stems["blurpool:3"][0].stride == (4, 4)
    for name, pool in (("flc", FLCPool), ("asap", ASAPPool)):
        assert stems[name][0].stride == (1, 1) and any(isinstance(m, pool) for m in stems[name].modules())


def test_table_has_every_method_with_blurpool_as_the_unit(capsys, one_thread):
    assert fft_stem_share.main(["--size", "32", "--batch", "1", "--repeats", "1", "--threads", "1"]) == 0
    rows = {m.group(1): m.groups()[1:] for m in re.finditer(r"^\| `([^`]+)` \| (\d+) \| ([\d.]+)x \| (\d+) \| ([\d.]+)x \|$",
                                                             capsys.readouterr().out, re.M)}
    assert list(rows) == list(fft_stem_share.METHODS)
    assert rows["blurpool:3"][1] == "1.00" and rows["blurpool:3"][3] == "1.00"

"""One name grammar (issue 16 item 1): every name parses into a spec and formats back to itself.

``get_model_spec`` is the only parser and ``ModelSpec.name`` (``format_model_name``) the only
formatter; a spec changed with ``dataclasses.replace`` formats to the name that parses back to it.
"""
from __future__ import annotations

import dataclasses

import pytest

from antialiased.errors import ModelError
from antialiased.models import ModelSpec, get_model_spec, list_models
from antialiased.models.registry import format_model_name


def test_every_listed_name_parses_and_formats_back_to_itself():
    names = list_models()
    assert len(names) > 500
    for name in names:
        spec = get_model_spec(name)
        assert spec.name == str(spec) == name, name
        assert get_model_spec(spec.name) == spec
        task = "segmentation" if spec.family == "torchvision-segmentation" else "classification"
        assert spec.task == task and spec.method == ("blurpool" if spec.antialiased else None)


def test_a_sample_of_timm_names_round_trips():
    timm = pytest.importorskip("timm", reason="timm is an optional dependency (pip install timm)")
    names = list_models(["timm/resnet1*", "timm/efficientnet_b0*", "timm/convnext_atto*"])
    assert len(names) >= 8 * 5 and all(n.startswith("timm/") for n in names)
    tagged = [f"timm/{tag}" for tag in timm.list_pretrained("resnet18.*")[:2]]
    for name in names + tagged + [f"{tagged[0]}_lpf3"]:
        spec = get_model_spec(name)
        assert str(spec) == name and spec.family == "timm" and get_model_spec(str(spec)) == spec


@pytest.mark.parametrize("name", ["resnet18_lpf4", "efficientnet_b0", "wide_resnet50_2_lpf7", "mnasnet0_5_lpf1"])
def test_replace_keeps_the_name_canonical(name):
    spec = get_model_spec(name)
    for size in (1, 3, 7, None):
        changed = dataclasses.replace(spec, filter_size=size)
        assert changed.name == format_model_name(spec.arch, size)
        assert get_model_spec(changed.name) == get_model_spec(changed) == changed
    aps = dataclasses.replace(spec, filter_size=2, method="aps")
    assert aps.name == format_model_name(spec.arch, 2)  # the method is a field, never part of the name
    assert get_model_spec(aps.name, method="aps") == aps and aps.baseline().method is None
    zero = dataclasses.replace(aps, options={"pad_type": "zero"})
    assert zero.name == aps.name and zero.options == (("pad_type", "zero"),) and zero != aps
    assert get_model_spec(zero.name, method="aps", options={"pad_type": "zero"}) == zero


def test_the_grammar_takes_prefixes_dashes_dots_and_only_a_trailing_filter_size():
    assert format_model_name("Unet-resnet34", 3, prefix="smp/") == "smp/Unet-resnet34_lpf3"
    assert format_model_name("resnet50.a1_in1k", prefix="timm/") == "timm/resnet50.a1_in1k"
    # _lpf<N> only at the end, N without leading zeros: anything else is an unknown architecture
    for name in ("resnet18_lpf04", "resnet18_lpf4_lpf4", "resnet18_lpf-1"):
        with pytest.raises(ModelError, match="unknown model"):
            get_model_spec(name)


def test_a_spec_made_by_hand_is_checked_like_a_name():
    assert get_model_spec(ModelSpec("paper", "resnet18", 3)) == get_model_spec("resnet18_lpf3")
    with pytest.raises(ModelError, match="filter size 8 in 'resnet18_lpf8' is out of range"):
        get_model_spec(ModelSpec("paper", "resnet18", 8))
    with pytest.raises(ModelError, match="unknown model 'resnet19_lpf3'"):
        get_model_spec(ModelSpec("paper", "resnet19", 3))

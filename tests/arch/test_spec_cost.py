"""``spec_cost``: parameters, FLOPs and activation bytes, checked against hand counts."""
from __future__ import annotations

import pytest

from nas_med.arch import ArchSpec, HeadSpec, InvalidSpec, StageSpec, baseline_spec, build, count_params, spec_cost


def test_hand_counted_network():
    # conv 3x3 1->8 at 8x8 (no norm, no pool), ReLU, global average pool, linear 8->5
    spec = ArchSpec(1, 5, 8, (StageSpec("simple", 8, norm="none", downsample=False),), None, HeadSpec("gap_linear"))
    cost = spec_cost(spec)
    assert cost["params"] == (9 * 8 + 8) + (8 * 5 + 5)
    assert cost["flops"] == 2 * (8 * 9 * 64) + 2 * (8 * 5)  # a multiply-add counts 2; biases are not counted
    # new tensors: conv 8x8x8, ReLU 8x8x8, pool 8, linear 5 (identities and the flatten view are free)
    assert cost["activation_bytes"] == 4 * (512 + 512 + 8 + 5)


@pytest.mark.parametrize("name", ["minicnn", "vanilla", "resnet18", "efficientnet_b0"])
def test_params_match_the_built_model(name):
    spec = baseline_spec(name, 1, 3, 64)
    assert spec_cost(spec)["params"] == count_params(build(spec))


def test_resnet18_flops_match_the_published_figure():
    flops = spec_cost(baseline_spec("resnet18", 3, 1000, 224))["flops"]
    assert 3.6e9 < flops < 3.7e9  # 1.8 G multiply-adds


def test_cost_grows_with_input_size_and_width():
    small = spec_cost(baseline_spec("minicnn", 1, 2, 32))
    large = spec_cost(baseline_spec("minicnn", 1, 2, 64))
    assert large["params"] == small["params"]
    assert 3.5 < large["flops"] / small["flops"] < 4.5
    assert large["activation_bytes"] > 3 * small["activation_bytes"]


def test_invalid_spec_has_no_cost():
    with pytest.raises(InvalidSpec, match="divisible"):
        spec_cost(baseline_spec("vit_b_16", 3, 2, 40))

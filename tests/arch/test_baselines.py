"""Reference networks: the paper's exact parameter counts, and every one builds and runs at 1/3 channels and
28/64/224 px (or is rejected with a reason where its definition cannot take the size)."""
from __future__ import annotations

import pytest
import torch
import torchvision

from nas_med.arch import BASELINES, InvalidSpec, baseline_spec, build, check, count_params, spec_cost
from nas_med.errors import UserError

PAPER = {"uenc": 18_848_325, "resnet18": 11_179_077, "resnet50": 23_518_277}
# (name, size) pairs whose definition cannot take the size, and the words of the reason
INVALID = {("densenet121", 28): "collapses", ("densenet161", 28): "collapses", ("densenet201", 28): "collapses",
           ("convnext_tiny", 28): "collapses", ("vit_b_16", 28): "divisible by its patch size 16"}
HEAVY = {"uenc", "resnet50", "resnet152", "densenet161", "densenet201", "convnext_tiny", "swin_t", "vit_b_16"}


def test_the_reference_networks_are_all_there():
    assert set(BASELINES) == {"minicnn", "uenc", "resnet18", "resnet50", "vanilla", "resnet152", "densenet121",
                              "densenet161", "densenet201", "efficientnet_b0", "convnext_tiny", "swin_t", "vit_b_16"}


@pytest.mark.parametrize("name", sorted(PAPER))
def test_paper_parameter_counts_are_exact(name):
    spec = baseline_spec(name, in_channels=3, num_classes=5, input_size=224)
    assert count_params(build(spec)) == PAPER[name]
    assert spec_cost(spec)["params"] == PAPER[name]


def test_minicnn_is_close_to_the_paper():
    params = count_params(build(baseline_spec("minicnn", 3, 5, 224)))
    assert params == 949_105
    assert abs(params - 948_293) / 948_293 < 0.001


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
@pytest.mark.parametrize("in_channels, classes", [(1, 2), (3, 7)])
def test_block_spec_resnets_match_torchvision(name, in_channels, classes):
    with torch.device("meta"):
        reference = getattr(torchvision.models, name)(num_classes=classes)
        reference.conv1 = torch.nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
    assert spec_cost(baseline_spec(name, in_channels, classes, 64))["params"] == count_params(reference)


def test_unknown_baseline_suggests_the_closest_name():
    with pytest.raises(UserError, match="Did you mean 'resnet18'"):
        baseline_spec("resnet81")


# Networks whose modules depend on the input size; the others are the same module at every size, so one build
# per (network, channels) serves the three sizes (each size is still validated by ``check``).
SIZE_DEPENDENT = {"vit_b_16", "vanilla"}
_built: dict = {}


def _model(spec):
    key = (spec.name, spec.in_channels, spec.input_size if spec.name in SIZE_DEPENDENT else None)
    if key not in _built:
        _built.clear()  # one network in memory at a time
        _built[key] = build(spec).eval()
    return _built[key]


CASES = [pytest.param(name, channels, size, id=f"{name}-{channels}ch-{size}",
                      marks=[pytest.mark.slow] if name in HEAVY and size == 224 else [])
         for name in sorted(BASELINES) for channels in (1, 3) for size in (28, 64, 224)]


@pytest.mark.parametrize("name, in_channels, size", CASES)
def test_every_baseline_builds_and_runs(name, in_channels, size):
    spec = baseline_spec(name, in_channels, 4, size)
    assert spec.name == name
    if (name, size) in INVALID:
        with pytest.raises(InvalidSpec, match=INVALID[name, size]):
            check(spec)
        return
    check(spec)
    model = _model(spec)
    with torch.no_grad():
        y = model(torch.randn(1, in_channels, size, size))
    assert y.shape == (1, 4)
    assert torch.isfinite(y).all(), f"{name} gave non-finite output at {in_channels}x{size}x{size}"

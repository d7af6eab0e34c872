"""``cam_target_layer``: the deepest module whose map is at least 4x4 (else 2x2), for block specs and torchvision
CNNs."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from nas_med.arch import ArchSpec, StageSpec, StemSpec, baseline_spec, build, cam_target_layer


def _output_sizes(model: nn.Module, modules: list[nn.Module], x: torch.Tensor) -> list[tuple[int, int]]:
    sizes: dict[int, tuple[int, int]] = {}
    hooks = [m.register_forward_hook(lambda m, _i, out, k=i: sizes.__setitem__(k, tuple(out.shape[-2:])))
             for i, m in enumerate(modules)]
    with torch.no_grad():
        model.eval()(x)
    for h in hooks:
        h.remove()
    return [sizes[i] for i in range(len(modules))]


@pytest.mark.parametrize("size, stage", [(28, 1), (64, 3)])  # 28 px: maps 14, 7, 3, 1; 64 px: 32, 16, 8, 4
def test_net_target_is_the_last_stage_of_at_least_4x4(size, stage):
    spec = baseline_spec("minicnn", 1, 2, size)
    model = build(spec)
    target = cam_target_layer(model, spec)
    assert target is model.stages[stage]
    sizes = _output_sizes(model, list(model.stages), torch.randn(1, 1, size, size))
    assert min(sizes[stage]) >= 4
    assert all(min(s) < 4 for s in sizes[stage + 1:])


def test_a_2x2_map_is_the_fallback_when_no_map_is_4x4():
    spec = ArchSpec(1, 2, 4, (StageSpec("simple", 8), StageSpec("simple", 8)), StemSpec("conv", 4))  # 4, 2, 1
    model = build(spec)
    assert cam_target_layer(model, spec, min_side=8) is model.stages[0]


def test_no_target_when_every_map_is_1x1():
    spec = ArchSpec(1, 2, 4, (StageSpec("basic", 8, downsample=False),), StemSpec("resnet", 8))
    assert cam_target_layer(build(spec), spec) is None


def test_the_stem_is_a_target_when_the_stages_collapse():
    spec = ArchSpec(1, 2, 8, (StageSpec("simple", 8), StageSpec("simple", 8), StageSpec("simple", 8)),
                    StemSpec("conv", 4))  # stem 8x8, stages 4, 2, 1
    model = build(spec)
    assert cam_target_layer(model, spec) is model.stages[0]
    assert cam_target_layer(model, spec, min_side=2) is model.stages[1]
    spec = ArchSpec(1, 2, 4, (StageSpec("simple", 8), StageSpec("simple", 8)), StemSpec("conv", 4))  # 4, 2, 1
    model = build(spec)
    assert cam_target_layer(model, spec) is model.stem
    assert cam_target_layer(model, spec, min_side=2) is model.stages[0]


@pytest.mark.parametrize("name, size, path", [
    ("resnet18", 64, "layer3"), ("resnet18", 32, "layer2"), ("densenet121", 64, "features.denseblock3"),
    ("efficientnet_b0", 64, "features.5"), ("efficientnet_b0", 28, "features.3"),
])
def test_torchvision_target_is_the_last_stage_of_at_least_4x4(name, size, path):
    spec = ArchSpec(1, 2, size, torchvision=name)
    model = build(spec)
    target = cam_target_layer(model, spec)
    assert target is model.get_submodule(path)
    assert min(_output_sizes(model, [target], torch.randn(1, 1, size, size))[0]) >= 4


@pytest.mark.parametrize("name", ["swin_t", "vit_b_16"])
def test_token_models_have_no_target(name):
    spec = ArchSpec(3, 2, 64, torchvision=name)
    with torch.device("meta"):
        model = build(spec)
    assert cam_target_layer(model, spec) is None


def test_gradcam_on_the_target_is_not_blank_at_28px():
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    torch.manual_seed(0)
    spec = baseline_spec("minicnn", 1, 2, 28)
    model = build(spec)
    with GradCAM(model=model, target_layers=[cam_target_layer(model, spec)]) as cam:
        maps = cam(input_tensor=torch.randn(2, 1, 28, 28), targets=[ClassifierOutputTarget(0)] * 2)
    assert maps.shape == (2, 28, 28)
    assert (maps.max(axis=(1, 2)) > 0).all()

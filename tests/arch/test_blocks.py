"""Every block type: shapes, strides, norms, activations, kernels, gradients; block-specific behaviour."""
from __future__ import annotations

import pytest
import torch

from nas_med.arch._registry import BLOCKS, make_block, register_block
from nas_med.arch.layers import ACTIVATIONS, KERNELS, NORMS
from nas_med.errors import UserError

ALL_BLOCKS = sorted(BLOCKS)


def test_registry_holds_every_block_type():
    assert set(BLOCKS) >= {"simple", "double", "basic", "bottleneck", "dense", "mbconv", "convnext"}


def _run(block: str, stride: int, **opts) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    module = make_block(block, 3, 8, stride, **opts)
    x = torch.randn(2, 3, 9, 9, requires_grad=True)
    return module, x, module(x)


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("block", ALL_BLOCKS)
def test_block_shape_stride_norm_and_gradient(block, stride, norm):
    module, x, y = _run(block, stride, kernel=3, norm=norm, act="relu", expansion=0)
    assert y.shape[:2] == (2, 8)
    expected = 9 if stride == 1 else (4, 5)  # pool/patchify floor 9/2, strided conv rounds up
    assert y.shape[-1] == expected if stride == 1 else y.shape[-1] in expected
    assert torch.isfinite(y).all()
    y.square().mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert all(p.grad is not None for p in module.parameters())


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("act", list(ACTIVATIONS))
@pytest.mark.parametrize("block", ALL_BLOCKS)
def test_block_kernel_and_activation(block, act, kernel):
    _, _, y = _run(block, 1, kernel=kernel, norm="batch", act=act, expansion=0)
    assert y.shape == (2, 8, 9, 9)
    assert torch.isfinite(y).all()


def test_the_kernel_reaches_the_convolutions():
    for kernel in KERNELS:
        module = make_block("convnext", 8, 8, 1, kernel=kernel, norm="layer", act="gelu", expansion=0)
        assert module.dwconv.kernel_size == (kernel, kernel)


def test_duplicate_registration_is_an_error():
    with pytest.raises(ValueError, match="already registered"):
        register_block("simple")(lambda *a, **k: None)


def test_unknown_block_suggests_the_closest_name():
    with pytest.raises(UserError, match="Did you mean 'bottleneck'"):
        make_block("botleneck", 3, 8, 1)


def test_unknown_norm_and_activation_are_named():
    with pytest.raises(UserError, match="'batchnorm'"):
        make_block("basic", 3, 8, 1, norm="batchnorm")
    with pytest.raises(UserError, match="Did you mean 'gelu'"):
        make_block("basic", 3, 8, 1, act="gelu2")


def test_dense_growth_rate_maps_from_width_and_expansion():
    default = make_block("dense", 8, 16, 1, norm="batch", act="relu", expansion=0)
    transition = default[-1][-1]  # norm, act, 1x1 conv
    assert transition.in_channels == 8 + 4 * (16 // 4) and transition.out_channels == 16
    grown = make_block("dense", 8, 16, 2, norm="batch", act="relu", expansion=6)
    assert grown[-2][-1].in_channels == 8 + 4 * 6
    assert isinstance(grown[-1], torch.nn.AvgPool2d)
    y = grown(torch.randn(1, 8, 8, 8))
    assert y.shape == (1, 16, 4, 4)


def test_mbconv_expands_and_keeps_its_residual():
    block = make_block("mbconv", 8, 8, 1, kernel=3, norm="batch", act="silu", expansion=6).eval()
    assert block.expand[0].out_channels == 48
    assert block.depthwise[0].groups == 48
    with torch.no_grad():
        block.project[0].weight.zero_()
        block.project[1].running_mean.zero_()
        block.project[1].bias.zero_()
    x = torch.randn(2, 8, 6, 6)
    assert torch.allclose(block(x), x)  # the projection adds nothing: only the shortcut remains
    strided = make_block("mbconv", 8, 8, 2, kernel=5, norm="batch", act="silu", expansion=0)
    assert not strided.residual and strided.expand[0].out_channels == 32  # default expand ratio 4


def test_convnext_starts_near_identity_and_patchifies_when_strided():
    block = make_block("convnext", 8, 8, 1, kernel=7, norm="layer", act="gelu", expansion=0)
    x = torch.randn(2, 8, 6, 6)
    assert torch.allclose(block(x), x, atol=1e-4)  # layer scale 1e-6
    assert block.mlp[0].out_channels == 32  # MLP ratio 4
    down = make_block("convnext", 8, 16, 2, kernel=7, norm="layer", act="gelu", expansion=0)
    conv = down.reshape[-1]
    assert (conv.kernel_size, conv.stride) == ((2, 2), (2, 2))
    assert down(x).shape == (2, 16, 3, 3)

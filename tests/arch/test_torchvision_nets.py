"""torchvision networks: adaptation to channels and classes, input-size rules, local weights files."""
from __future__ import annotations

import pytest
import torch
import torchvision

from nas_med.arch import ArchSpec, InvalidSpec, build, check, stage_shapes
from nas_med.arch.torchvision_nets import TORCHVISION_NETS, feature_shape
from nas_med.errors import UserError


def test_supported_names_cover_the_reference_families():
    assert {"resnet18", "resnet152", "densenet121", "densenet201", "efficientnet_b0", "convnext_tiny", "swin_t",
            "vit_b_16", "mobilenet_v3_small"} <= set(TORCHVISION_NETS)
    assert "alexnet" not in TORCHVISION_NETS  # no adapter for its family


def test_unknown_name_suggests_the_closest():
    with pytest.raises(UserError, match="Did you mean 'resnet152'"):
        check(ArchSpec(3, 2, 64, torchvision="resnet125"))


def test_first_conv_and_classifier_are_adapted():
    model = build(ArchSpec(1, 7, 64, torchvision="efficientnet_b0"))
    assert model.features[0][0].in_channels == 1
    assert model.classifier[-1].out_features == 7
    assert model(torch.randn(2, 1, 64, 64)).shape == (2, 7)


def test_vit_takes_the_input_size_and_rejects_others():
    with torch.device("meta"):
        model = build(ArchSpec(1, 2, 48, torchvision="vit_b_16"))
    assert model.image_size == 48 and model.encoder.pos_embedding.shape[1] == 3 * 3 + 1
    assert model.conv_proj.in_channels == 1
    assert feature_shape(ArchSpec(1, 2, 48, torchvision="vit_b_16")) == (768, 3, 3)
    with pytest.raises(InvalidSpec, match="divisible by its patch size 16, got 50"):
        check(ArchSpec(1, 2, 50, torchvision="vit_b_16"))


def test_stage_shapes_of_a_torchvision_cnn():
    shapes = stage_shapes(ArchSpec(1, 2, 64, torchvision="resnet18"))
    assert [s[0] for s in shapes][-4:] == ["layer1", "layer2", "layer3", "layer4"]
    assert shapes[-1][1:] == (512, 2, 2)
    with pytest.raises(InvalidSpec, match="collapses in densenet121 at features.transition3"):
        check(ArchSpec(1, 2, 28, torchvision="densenet121"))


def test_stock_imagenet_weights_load_into_an_adapted_network(tmp_path):
    stock = torchvision.models.resnet18()  # 3 channels, 1000 classes
    path = tmp_path / "resnet18.pth"
    torch.save(stock.state_dict(), path)
    model = build(ArchSpec(1, 5, 64, torchvision="resnet18"), pretrained_path=path)
    assert torch.allclose(model.conv1.weight, stock.conv1.weight.sum(1, keepdim=True), atol=1e-6)
    assert torch.equal(model.layer3[1].conv2.weight, stock.layer3[1].conv2.weight)
    assert model.fc.weight.shape == (5, 512)  # a new, random classifier
    # a gray image repeated on three channels gives the stock network's features
    gray = torch.randn(1, 1, 64, 64)
    model.eval(), stock.eval()
    with torch.no_grad():
        assert torch.allclose(torch.nn.Sequential(*list(model.children())[:-1])(gray),
                              torch.nn.Sequential(*list(stock.children())[:-1])(gray.repeat(1, 3, 1, 1)),
                              atol=1e-4)


def test_own_adapted_weights_load_exactly(tmp_path):
    spec = ArchSpec(1, 5, 64, torchvision="resnet18")
    model = build(spec).eval()
    torch.save({"state_dict": model.state_dict()}, tmp_path / "mine.pt")
    again = build(spec, pretrained_path=tmp_path / "mine.pt").eval()
    x = torch.randn(1, 1, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x), again(x))


def test_weights_of_another_network_are_refused(tmp_path):
    torch.save(torchvision.models.resnet34().state_dict(), tmp_path / "r34.pth")
    with pytest.raises(UserError, match="does not fit resnet18: unexpected key 'layer1.2"):
        build(ArchSpec(3, 5, 64, torchvision="resnet18"), pretrained_path=tmp_path / "r34.pth")
    with pytest.raises(UserError, match="does not exist"):
        build(ArchSpec(3, 5, 64, torchvision="resnet18"), pretrained_path=tmp_path / "missing.pth")

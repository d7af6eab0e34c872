"""Specs built from the registry: every block in a network at 1/3 channels and 28/64/224 px, shape inference,
collapse and malformed specs rejected with their reason, JSON round trip, weights from a file."""
from __future__ import annotations

import pytest
import torch

from nas_med.arch import BLOCKS, ArchSpec, HeadSpec, InvalidSpec, StageSpec, StemSpec, build, check, stage_shapes
from nas_med.arch.heads import HEADS
from nas_med.errors import UserError

ALL_BLOCKS = sorted(BLOCKS)


def _spec(block: str, in_channels: int = 1, size: int = 32, n_stages: int = 2, head: str = "gap_linear",
          stem: StemSpec | None = None, **stage) -> ArchSpec:
    stages = tuple(StageSpec(block, 8 * 2**i, **stage) for i in range(n_stages))
    return ArchSpec(in_channels, 3, size, stages, stem, HeadSpec(head, 16, 0.1))


def _forward_shapes(model, x) -> list[tuple[int, int, int]]:
    shapes = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: shapes.append(tuple(out.shape[1:])))
             for m in [model.stem, *model.stages]]
    with torch.no_grad():
        y = model(x)
    for h in hooks:
        h.remove()
    return y, shapes


@pytest.mark.parametrize("size", [28, 64, 224])
@pytest.mark.parametrize("in_channels", [1, 3])
@pytest.mark.parametrize("block", ALL_BLOCKS)
def test_every_block_builds_and_runs_in_a_network(block, in_channels, size):
    spec = _spec(block, in_channels, size, stem=StemSpec("conv", 8))
    model = build(spec).eval()
    y, shapes = _forward_shapes(model, torch.randn(1, in_channels, size, size))
    assert y.shape == (1, 3)
    assert torch.isfinite(y).all()
    assert shapes == [s[1:] for s in stage_shapes(spec)]  # meta-device inference matches the real run


@pytest.mark.parametrize("head", HEADS)
def test_every_head(head):
    spec = _spec("basic", 3, 28, head=head)
    model = build(spec)
    y = model(torch.randn(2, 3, 28, 28))
    assert y.shape == (2, 3) and torch.isfinite(y).all()
    y.sum().backward()


def test_stage_shapes_without_building():
    spec = _spec("simple", 1, 64, n_stages=3, stem=StemSpec("resnet", 8))
    assert stage_shapes(spec) == [("stem", 8, 16, 16), ("stage0", 8, 8, 8), ("stage1", 16, 4, 4),
                                  ("stage2", 32, 2, 2)]


@pytest.mark.parametrize("block", ALL_BLOCKS)
def test_collapsing_spec_is_rejected_with_its_reason(block):
    spec = _spec(block, 1, 28, n_stages=6)  # 28 -> 14 -> 7 -> 3 -> 1 -> ?
    with pytest.raises(InvalidSpec, match=r"collapses.*28 px") as info:
        check(spec)
    assert "stage" in str(info.value)
    with pytest.raises(InvalidSpec):
        build(spec)


def test_collapse_mentions_the_resnet_stem():
    spec = _spec("basic", 1, 16, n_stages=4, stem=StemSpec("resnet", 8))
    with pytest.raises(InvalidSpec, match="resnet stem"):
        check(spec)


def test_flatten_head_on_a_one_pixel_map_is_still_valid():
    spec = _spec("simple", 1, 28, n_stages=4, head="flatten_linear")
    assert stage_shapes(spec)[-1][2:] == (1, 1)
    assert build(spec)(torch.randn(1, 1, 28, 28)).shape == (1, 3)


@pytest.mark.parametrize("stage, message", [
    (StageSpec("simpel", 8), "Did you mean 'simple'"),
    (StageSpec("simple", 0), "width=0"),
    (StageSpec("simple", 8, depth=0), "depth=0"),
    (StageSpec("simple", 8, kernel=4), "odd number, got 4"),
    (StageSpec("simple", 8, norm="instance"), "'instance'"),
    (StageSpec("simple", 8, act="swish"), "'swish'"),
    (StageSpec("mbconv", 8, expansion=-1), "expansion must be >= 0, got -1"),
])
def test_malformed_stage_is_rejected_naming_the_field(stage, message):
    spec = ArchSpec(1, 2, 32, (stage,))
    with pytest.raises(InvalidSpec, match=message) as info:
        check(spec)
    assert "stages[0]" in str(info.value)


def test_malformed_io_stem_and_head_are_rejected():
    with pytest.raises(InvalidSpec, match="input_size=2"):
        check(_spec("simple", 1, 2))
    with pytest.raises(InvalidSpec, match="at least one stage"):
        check(ArchSpec(1, 2, 32))
    with pytest.raises(InvalidSpec, match="Did you mean 'resnet'"):
        check(_spec("simple", stem=StemSpec("resnt", 8)))
    with pytest.raises(InvalidSpec, match="'gap'"):
        check(ArchSpec(1, 2, 32, (StageSpec("simple", 8),), head=HeadSpec("gap")))


@pytest.mark.parametrize("block", ALL_BLOCKS)
def test_spec_json_round_trip(block):
    spec = _spec(block, 3, 64, stem=StemSpec("resnet", 16), norm="group", act="gelu", kernel=5, expansion=2.5)
    again = ArchSpec.from_json(spec.to_json())
    assert again == spec
    assert sum(p.numel() for p in build(again).parameters()) == sum(p.numel() for p in build(spec).parameters())


def test_spec_file_with_a_wrong_type_names_the_field():
    data = _spec("simple").to_dict()
    data["stages"][1]["width"] = "16"
    with pytest.raises(UserError, match=r"stages\[1\]: 'width' must be int, got '16'"):
        ArchSpec.from_dict(data)


def test_weights_file_round_trip_and_mismatch(tmp_path):
    spec = _spec("basic", 1, 32)
    model = build(spec).eval()
    path = tmp_path / "w.pt"
    torch.save(model.state_dict(), path)
    again = build(spec, pretrained_path=path).eval()
    x = torch.randn(2, 1, 32, 32)
    assert torch.equal(model(x), again(x))
    with pytest.raises(UserError, match="does not fit"):
        build(_spec("basic", 1, 32, n_stages=3), pretrained_path=path)
    (tmp_path / "junk.pt").write_text("not a tensor file")
    with pytest.raises(UserError, match="cannot be read"):
        build(spec, pretrained_path=tmp_path / "junk.pt")

"""Search spaces: shipped files load, sampling gives valid specs or a stated reason, bad files name the field."""
from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest

from nas_med.arch import ArchSpec, InvalidSpec, check, spec_cost
from nas_med.errors import UserError
from nas_med.space import load_space, parse_space, sample, sample_training, space_names

optuna.logging.set_verbosity(optuna.logging.WARNING)
SIZES = (28, 32, 64, 224)


def _study(seed: int = 0) -> optuna.Study:
    return optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))


def test_shipped_spaces():
    assert {"default", "paper", "tiny", "modern"} <= set(space_names())


@pytest.mark.parametrize("name", ["default", "paper", "tiny", "modern"])
def test_300_random_samples_are_valid_or_say_why(name):
    space = load_space(name)
    study = _study()
    valid = 0
    for i in range(300):
        trial = study.ask()
        spec = sample(trial, space, in_channels=1 + 2 * (i % 2), num_classes=2, input_size=SIZES[i % len(SIZES)])
        assert ArchSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec  # JSON-able for user attrs
        try:
            check(spec)
            valid += 1
        except InvalidSpec as exc:
            assert str(exc)
        settings = sample_training(trial, space)
        assert settings["lr"] > 0 and settings["batch_size"] >= 1
        study.tell(trial, 0.0)  # stored distributions must stay compatible across conditional branches
    assert valid >= 270


def test_default_space_stays_cheap():
    space, study = load_space("default"), _study(1)
    flops = [spec_cost(sample(study.ask(), space, in_channels=1, num_classes=2, input_size=64))["flops"]
             for _ in range(150)]
    assert max(flops) <= 3.0e8  # a few seconds per epoch on a laptop CPU
    assert sorted(flops)[len(flops) // 2] <= 6e7


def test_sampling_is_reproducible():
    space = load_space("paper")
    runs = [[sample(s.ask(), space, in_channels=1, num_classes=2, input_size=64) for _ in range(20)]
            for s in (_study(3), _study(3))]
    assert runs[0] == runs[1]


def test_paper_space_keeps_each_family_shape():
    space, study = load_space("paper"), _study(2)
    seen = set()
    for _ in range(200):
        trial = study.ask()
        spec = sample(trial, space, in_channels=3, num_classes=5, input_size=224)
        block = spec.stages[0].block
        seen.add(block)
        assert f"{block}.base_width" in trial.params or len(space.arch["by_block"][block]["base_width"]) == 1
        if block == "simple":
            assert spec.stem is None and all(s.norm == "none" and s.downsample for s in spec.stages)
        elif block == "double":
            assert spec.stem is None and not spec.stages[-1].downsample and spec.stages[0].downsample
        else:
            assert spec.stem.type == "resnet" and not spec.stages[0].downsample and spec.stages[-1].downsample
        if block == "bottleneck":
            assert spec.stem.width in (16, 32, 64)
            assert all(f"bottleneck.depth{i}" in trial.params for i in range(len(spec.stages)))
    assert seen == {"simple", "double", "basic", "bottleneck"}


def test_per_stage_depth_varies_between_stages():
    space = parse_space({"arch": {"block": ["basic"], "stages": [4], "per_stage_depth": [True],
                                  "depth": {"low": 1, "high": 3}}})
    study = _study(4)
    depths = [tuple(s.depth for s in sample(study.ask(), space, in_channels=1, num_classes=2,
                                             input_size=64).stages) for _ in range(20)]
    assert any(len(set(d)) > 1 for d in depths)


def test_list_values_of_zero_and_null_are_accepted():
    space = parse_space({"arch": {"expansion": [0, 4], "input_size": [None, 48], "stem_width": [0, 16]}})
    assert space.arch["expansion"] == [0, 4] and space.arch["input_size"] == [None, 48]


@pytest.mark.parametrize("arch, words", [
    ({"kernal": [3]}, ["kernal", "Did you mean 'kernel'"]),
    ({"norm": ["batchnorm"]}, ["arch.norm[0]", "'batchnorm'", "Did you mean 'batch'"]),
    ({"block": ["simple", "resnet"]}, ["arch.block[1]", "'resnet'"]),
    ({"kernel": [4]}, ["arch.kernel[0]", "4 is not one of [3, 5, 7]"]),
    ({"base_width": [16, -8]}, ["arch.base_width[1]", "-8"]),
    ({"base_width": ["wide"]}, ["arch.base_width[0]", "'wide'"]),
    ({"stages": {"low": 5, "high": 2}}, ["arch.stages", "low 5 is above high 2"]),
    ({"stages": {"low": 1, "hi": 2}}, ["arch.stages", "'hi'"]),
    ({"width_growth": {"low": 0, "high": 2, "log": True}}, ["arch.width_growth.low", "above 0"]),
    ({"dropout": [1.5]}, ["arch.dropout[0]", "1.5"]),
    ({"last_downsample": ["no"]}, ["arch.last_downsample[0]", "true or false", "'no'"]),
    ({"head": []}, ["arch.head", "empty"]),
    ({"block": ["basic"], "by_block": {"dense": {"depth": [2]}}}, ["arch.by_block.dense", "not among"]),
    ({"block": ["basic"], "by_block": {"basic": {"depht": [2]}}}, ["arch.by_block.basic", "'depht'", "'depth'"]),
    ({"block": ["basic"], "by_block": {"basic": {"kernel": [9]}}}, ["arch.by_block.basic.kernel[0]", "9"]),
])
def test_bad_field_is_named_with_its_value(arch, words):
    with pytest.raises(UserError) as info:
        parse_space({"arch": arch})
    for word in words:
        assert word in str(info.value)


def test_bad_train_and_top_level_keys():
    with pytest.raises(UserError, match=r"train.lr\[0\]: must be above 0, got -0.1"):
        parse_space({"train": {"lr": [-0.1]}})
    with pytest.raises(UserError, match="unknown top-level key 'arc'. Did you mean 'arch'"):
        parse_space({"arc": {}})
    with pytest.raises(UserError, match="expected a mapping"):
        parse_space(["block"])


def test_broken_files(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("arch:\n  block: [simple\n  stages: 3\n")
    with pytest.raises(UserError, match=r"bad.yaml' is not valid YAML at line \d+, column \d+"):
        load_space(bad)
    with pytest.raises(UserError, match="does not exist"):
        load_space(tmp_path / "missing.yaml")
    with pytest.raises(UserError, match="Did you mean 'default'"):
        load_space("defualt")


@pytest.mark.parametrize("name", ["default", "paper", "modern"])
def test_a_stored_space_definition_parses_back_to_the_same_space(name):
    space = load_space(name)
    stored = json.loads(json.dumps(space.to_dict()))  # as a study keeps it in its user attrs
    assert parse_space(stored, name) == space


def test_a_study_scored_with_the_old_cam_quality_is_not_resumed():
    from nas_med.search.config import CAM_SCORE, differences

    assert differences({"cam_score": CAM_SCORE}, {"cam_score": CAM_SCORE}) == []
    diff = differences({}, {"cam_score": CAM_SCORE})  # stored before the key existed: the old ROADCombined score
    assert diff and "cam_quality" in diff[0] and CAM_SCORE in diff[0]

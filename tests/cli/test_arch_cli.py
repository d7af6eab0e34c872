"""``nas-med arch list|show|sample``: exact parameter counts, clean one-line errors with exit code 2."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from nas_med.arch import BASELINES, BLOCKS, HEADS, ArchSpec, baseline_spec
from nas_med.cli.main import cli


def run(*args: str):
    return CliRunner().invoke(cli, ["arch", *args])


def assert_clean_error(result, *words: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert "Traceback" not in result.output
    for word in words:
        assert word in lines[0]


@pytest.mark.parametrize("name, params", [("uenc", "18,848,325"), ("resnet18", "11,179,077"),
                                          ("resnet50", "23,518,277"), ("minicnn", "949,105")])
def test_show_prints_the_exact_parameter_count(name, params):
    result = run("show", name, "--in-channels", "3", "--classes", "5", "--size", "224")
    assert result.exit_code == 0, result.output
    assert f"parameters: {params}\n" in result.stdout
    assert "FLOPs: " in result.stdout and "per image" in result.stdout


def test_show_lists_the_feature_map_per_stage():
    result = run("show", "uenc", "--size", "64")
    assert result.exit_code == 0, result.output
    rows = [line.split() for line in result.stdout.splitlines() if line.startswith("stage")]
    assert rows[1:] == [["stage0", "64", "32x32"], ["stage1", "128", "16x16"], ["stage2", "256", "8x8"],
                        ["stage3", "512", "4x4"], ["stage4", "1024", "4x4"]]


def test_show_a_spec_file_and_override_its_io(tmp_path):
    result = run("show", "resnet18", "--in-channels", "1", "--classes", "2", "--size", "64", "--json")
    assert result.exit_code == 0, result.output
    assert ArchSpec.from_json(result.stdout) == baseline_spec("resnet18", 1, 2, 64)
    path = tmp_path / "spec.json"
    path.write_text(result.stdout)
    shown = run("show", str(path), "--size", "32")
    assert shown.exit_code == 0, shown.output
    assert "1 x 32 x 32 -> 2 classes" in shown.stdout
    assert "stage3" in shown.stdout and "1x1" in shown.stdout


def test_show_a_torchvision_network():
    result = run("show", "efficientnet_b0", "--in-channels", "1", "--size", "64")
    assert result.exit_code == 0, result.output
    assert "torchvision efficientnet_b0" in result.stdout and "features.8" in result.stdout


def test_show_errors_are_one_line_with_exit_2(tmp_path):
    assert_clean_error(run("show", "resnt18"), "'resnt18'", "Did you mean 'resnet18'")
    assert_clean_error(run("show", str(tmp_path / "missing.json")), "does not exist")
    (tmp_path / "broken.json").write_text("{not json")
    assert_clean_error(run("show", str(tmp_path / "broken.json")), "not valid JSON")
    spec = baseline_spec("minicnn", 1, 2, 28).to_dict()
    spec["stages"] = spec["stages"] * 2  # 8 pooling stages on 28 px
    (tmp_path / "deep.json").write_text(json.dumps(spec))
    assert_clean_error(run("show", str(tmp_path / "deep.json")), "collapses", "28 px")
    assert_clean_error(run("show", "vit_b_16", "--size", "28"), "divisible by its patch size 16, got 28")


def test_list_names_blocks_heads_and_reference_networks():
    result = run("list")
    assert result.exit_code == 0, result.output
    words = {line.split()[0] for line in result.stdout.splitlines() if line.startswith("  ")}
    assert set(BLOCKS) | set(HEADS) | set(BASELINES) <= words
    assert "Search spaces: " in result.stdout and "paper" in result.stdout


def test_sample_prints_n_summaries():
    result = run("sample", "--space", "tiny", "--n", "5", "--size", "32")
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 6 and lines[-1].startswith("5 of 5 valid at 1 x 32 x 32 (tiny)")
    assert all("params" in line and "gap_linear" in line for line in lines[:5])


def test_sample_reports_invalid_specs_with_their_reason(tmp_path):
    path = tmp_path / "deep.yaml"
    path.write_text("arch:\n  block: [simple]\n  stages: [6]\n")
    result = run("sample", "--space", str(path), "--n", "2", "--size", "28")
    assert result.exit_code == 0, result.output
    assert result.stdout.count("invalid (feature map collapses") == 2
    assert "0 of 2 valid" in result.stdout


@pytest.mark.parametrize("text, words", [
    ("arch:\n  block: [simple\n  stages: 3\n", ["not valid YAML at line"]),
    ("arch:\n  blocks: [simple]\n", ["'blocks'", "Did you mean 'block'"]),
    ("arch:\n  norm: [batch, instance]\n", ["arch.norm[1]", "'instance'"]),
    ("arch:\n  depth: {low: 3, high: 1}\n", ["arch.depth", "low 3 is above high 1"]),
    ("train:\n  lr: [fast]\n", ["train.lr[0]", "'fast'"]),
])
def test_broken_space_file_names_the_field(tmp_path, text, words):
    path = tmp_path / "space.yaml"
    path.write_text(text)
    assert_clean_error(run("sample", "--space", str(path)), *words)


def test_unknown_space_name():
    assert_clean_error(run("sample", "--space", "papr"), "Did you mean 'paper'")

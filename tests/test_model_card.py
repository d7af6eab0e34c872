"""The model card says which model each figure is of, in one number format, without this machine's paths, and its
usage example runs as copied (issue 30)."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


def _usage_code(card: str) -> str:
    blocks = re.findall(r"```python\n(.*?)```", card, flags=re.S)
    assert len(blocks) == 1, "one Python usage example"
    return blocks[0]


def test_the_usage_example_runs_clean_as_copied(breast_minicnn_export, breastmnist_root, tmp_path):
    folder, data, _ = breast_minicnn_export
    card = (folder / "README.md").read_text()
    image = np.load(breastmnist_root / "breastmnist.npz")["test_images"][0]
    Image.fromarray(image).save(tmp_path / "image.png")
    code = _usage_code(card).replace("THIS_FOLDER", str(folder))  # the only edit a user makes: the folder
    assert "torch.no_grad()" in code
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run([sys.executable, "-W", "error", "-X", "dev", "-c", code], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stderr == "", out.stderr[-2000:]
    assert out.stdout.startswith("tensor([") and out.stdout.split(") ", 1)[1].strip() in data.classes, out.stdout


def test_the_card_names_the_model_of_every_figure_in_one_format(breast_minicnn_export, breastmnist_root):
    folder, _, _ = breast_minicnn_export
    card = (folder / "README.md").read_text()
    first = json.loads((folder / "metrics.json").read_text())["test"]["per_seed"][0]
    row = re.search(r"\| \*\*this model: the exported weights \(seed 0\)\*\*[^|]*\| ([0-9.]+) \[[^]]+\] \| ([0-9.]+) \|",
                    card)
    assert row, "the exported weights' row beside the published figures"
    assert row.group(1) == f"{first['auc']:.3f}" and row.group(2) == f"{first['accuracy']:.3f}"
    assert "| metric (test, exported model, at the threshold) |" in card
    assert "| metric | exported model (seed 0) [95% CI] | mean over seeds [95% CI] | std over seeds |" in card
    prose = card.split("```python")[0]  # (the usage code's normalisation constants are rounded to 4 places)
    assert not re.findall(r"\b\d\.\d{5,}\b", prose), "no figure with 5 or more decimals"
    assert str(breastmnist_root) not in card and str(Path.home()) not in card
    assert "(source: `breastmnist.npz`)" in card

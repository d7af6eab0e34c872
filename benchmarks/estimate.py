"""Time estimate: the wall time ``nas-med search`` predicts before its first trial, against the time it takes.

Goal: the estimate printed at the start is within a factor of 2 of the measured wall time
(0.5 <= measured / estimate <= 2).

The script builds an image folder of its own in a temporary directory (no shared data needed): the embedded
synthetic MRI-like images (4 classes: normal, mass, cyst, calcification), each resized to a random width and
height and written as an RGB JPEG. Full run: 4 x 100 = 400 JPEGs of 250-624 px (the issue's brain-MRI folder),
then exactly the issue's command with no ``--size``::

    nas-med search --dataset folder:TMP --trials 10 --storage sqlite:///TMP/nas-med.db --quiet

run as a subprocess (the CLI as a user runs it, its default 8 epochs and 2 torch threads). The script reads the
command's output as it comes, prints its first lines (size line, pre-flight summary, estimate), and measures
the wall time from the estimate line to the end (the trials) and of the whole command. The figure is
``ratio = measured trials time / estimated time``; the whole command's time is printed beside it.
--quick: 4 x 24 JPEGs of 64-120 px, 2 trials of 2 epochs, 4 CAM images. ``--keep DIR`` writes the folder into
DIR and keeps it (to re-run the command by hand); ``--trials`` and ``--epochs`` change the search.

Reproduce:  .venv/bin/python benchmarks/estimate.py            (full, ~5-15 min on 2 shared cores)
            .venv/bin/python benchmarks/estimate.py --quick
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _common


def make_folder(dest: Path, per_class: int, lo: int, hi: int, seed: int = 0) -> Path:
    """``per_class`` RGB JPEGs per synthetic class, each resized to a random width and height in [lo, hi]."""
    import numpy as np
    from PIL import Image

    from nas_med.data import synthetic

    data = synthetic.load(size=128, seed=seed, n_train=per_class * 6, n_val=2, n_test=2)
    rng = np.random.default_rng(seed)
    for k, cls in enumerate(data.classes):
        index = (data.train.labels == k).nonzero().flatten()[:per_class].tolist()
        for j, i in enumerate(index):
            w, h = (int(v) for v in rng.integers(lo, hi + 1, 2))
            img = Image.fromarray(data.train.images[i, 0].numpy()).convert("RGB")
            path = dest / cls / f"{cls}_{j:03d}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            img.resize((w, h), Image.Resampling.BICUBIC).save(path, quality=90)
    return dest


def seconds_of(line: str) -> float:
    """The estimate's seconds from its line: '~6.5 min (390 s)' or '~42 s'."""
    match = re.search(r"~[\d.]+ (?:min|h) \((\d+) s\)", line) or re.search(r"~(\d+) s", line)
    return float(match.group(1)) if match else float("nan")


def main() -> None:
    ap = _common.parser(__doc__)
    ap.add_argument("--keep", default=None, help="build the folder in this directory and keep it")
    ap.add_argument("--trials", type=int, default=None)
    ap.add_argument("--epochs", type=int, default=None)
    args = ap.parse_args()
    _common.setup(args)
    started = time.perf_counter()
    per_class, lo, hi = (24, 64, 120) if args.quick else (100, 250, 624)
    trials = args.trials or (2 if args.quick else 10)
    with tempfile.TemporaryDirectory(prefix="nas-med-estimate-") as tmp:
        folder = Path(args.keep) if args.keep else Path(tmp) / "images"
        if not (folder.is_dir() and any(folder.iterdir())):
            make_folder(folder, per_class, lo, hi, args.seed)
        n = sum(1 for _ in folder.rglob("*.jpg"))
        print(f"folder {folder}: {n} JPEGs, 4 classes, {lo}-{hi} px", flush=True)
        cmd = [sys.executable, "-c", "from nas_med.cli.main import main; main()", "search",
               "--dataset", f"folder:{folder}", "--trials", str(trials), "--storage", f"sqlite:///{tmp}/nas-med.db",
               "--seed", str(args.seed), "--quiet"]
        if args.quick:
            cmd += ["--epochs", "2", "--cam-images", "4"]
        if args.epochs:
            cmd += ["--epochs", str(args.epochs)]
        print("command: nas-med " + " ".join(cmd[3:]), flush=True)
        env = {**os.environ, "NAS_MED_CACHE": f"{tmp}/cache", "PYTHONPATH": str(_common.REPO)}
        t0 = time.perf_counter()
        t_est, estimate, header = None, float("nan"), True
        proc = subprocess.Popen(cmd, cwd=tmp, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for line in proc.stdout:
            line = line.rstrip("\n")
            if header or line.startswith("trial "):
                print(f"  [{time.perf_counter() - t0:6.1f} s] {line}", flush=True)
            if line.startswith("time estimate:"):
                t_est, estimate = time.perf_counter(), seconds_of(line)
            if line.startswith("trial "):
                header = False
        proc.wait()
        end = time.perf_counter()
        if proc.returncode != 0 or t_est is None:
            sys.exit(f"error: the search exited {proc.returncode} or printed no time estimate")
    measured, total = end - t_est, end - t0
    print(f"estimate {estimate:.0f} s; measured: trials {measured:.0f} s, whole command {total:.0f} s "
          f"(ratio {total / estimate:.2f}); size and summary in the first lines above")
    _common.result({"ratio": measured / estimate, "estimate_s": estimate, "measured_s": measured},
                   "goal 0.5 <= ratio <= 2", started)


if __name__ == "__main__":
    main()

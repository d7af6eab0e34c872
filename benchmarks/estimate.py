"""Time estimate: the wall time ``nas-med search`` predicts before its first trial, against the time it takes, and
how its refinements move while the trials run.

Goal: on every dataset the estimate printed at the start is within a factor of 2 of the measured wall time
(0.5 <= measured / estimate <= 2), and the expected total (time spent + "~N s left") never moves by more than
2x between two refinements (the start's estimate, then one per finished trial): max_jump <= 2.

Three searches, each as a user types it (``--quiet``, default workers and threads, as a subprocess):
- ``folder``: an image folder the script builds in a temporary directory (no shared data needed): the embedded
  synthetic MRI-like images (4 classes), each resized to a random width and height and written as an RGB JPEG,
  4 x 100 = 400 JPEGs of 250-624 px (the brain-MRI folder of issue 20), no ``--size`` (128 px chosen);
- ``breastmnist``: BreastMNIST 28 px (../shared/data/breastmnist), default space and settings;
- ``synthetic``: the synthetic default (``nas-med search`` with no ``--dataset``);
each ``--trials 10``. The script reads each command's output as it comes, prints its first lines (size,
parallel, summary, estimate lines) and measures the wall time from the estimate line (baselines and
trials) to the last trial's line (what follows, the front and hints, is not trial time). Figures:
``ratio_<name> = measured / estimated``, ``max_jump`` over all runs.
--quick: the folder at 4 x 24 JPEGs of 64-120 px and the synthetic default at 16 px with the tiny space, 2 trials
of 2 epochs, 4 CAM images (BreastMNIST is left out). ``--keep DIR`` writes the folder into DIR and keeps it;
``--trials`` and ``--epochs`` change the searches; ``--only NAME`` runs one of them.

Reproduce:  .venv/bin/python benchmarks/estimate.py            (full, ~10-25 min on 2 cores)
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
    """The estimate's seconds from its line: '~6.5 min (390 s)', '~42 s' or '~0.43 s'."""
    match = re.search(r"~[\d.]+ (?:min|h) \((\d+) s\)", line) or re.search(r"~([\d.]+) s", line)
    return float(match.group(1)) if match else float("nan")


def run_search(name: str, args: list[str], tmp: str) -> tuple[float, float, list[float]]:
    """Run ``nas-med search ARGS``: (estimate, measured seconds from the estimate line to the end, the expected
    totals: the estimate, then elapsed + "~N s left" after each finished trial)."""
    cmd = [sys.executable, "-c", "from nas_med.cli.main import main; main()", "search", *args,
           "--storage", f"sqlite:///{tmp}/{name}.db", "--quiet"]
    print(f"{name}: nas-med " + " ".join(cmd[3:]), flush=True)
    env = {**os.environ, "NAS_MED_CACHE": f"{tmp}/cache", "PYTHONPATH": str(_common.REPO)}
    t0 = time.perf_counter()
    t_est, estimate, header, totals, last_trial = None, float("nan"), True, [], None
    proc = subprocess.Popen(cmd, cwd=tmp, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in proc.stdout:
        line = line.rstrip("\n")
        now = time.perf_counter()
        if header or line.startswith("trial "):
            print(f"  [{now - t0:6.1f} s] {line}", flush=True)
        if line.startswith("time estimate:"):
            t_est, estimate = now, seconds_of(line)
            totals.append(estimate)
        left = re.search(r"\[~(\d+) s left\]$", line)
        if line.startswith("trial ") and left and t_est is not None:
            totals.append(now - t_est + float(left.group(1)))
        if line.startswith("trial "):
            header, last_trial = False, now
    proc.wait()
    if proc.returncode != 0 or t_est is None or last_trial is None:
        sys.exit(f"error: {name}: the search exited {proc.returncode} or printed no time estimate or no trial")
    measured = last_trial - t_est
    print(f"  {name}: estimate {estimate:.0f} s, measured {measured:.0f} s (estimate to last trial; whole command "
          f"{time.perf_counter() - t0:.0f} s): measured / estimate {measured / estimate:.2f}; expected totals "
          f"{', '.join(f'{t:.0f}' for t in totals)} s; {_common.load()}", flush=True)
    return estimate, measured, totals


def max_jump(totals: list[float]) -> float:
    """The largest factor between two consecutive expected totals."""
    steps = [max(b / a, a / b) for a, b in zip(totals, totals[1:]) if a > 0 and b > 0]
    return max(steps, default=1.0)


def main() -> None:
    ap = _common.parser(__doc__)
    ap.add_argument("--keep", default=None, help="build the folder in this directory and keep it")
    ap.add_argument("--trials", type=int, default=None)
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--only", choices=("folder", "breastmnist", "synthetic"), default=None)
    args = ap.parse_args()
    _common.setup(args)
    from nas_med.search.reproducibility import cpu_name

    print(f"CPU: {cpu_name()}", flush=True)
    started = time.perf_counter()
    per_class, lo, hi = (24, 64, 120) if args.quick else (100, 250, 624)
    trials = args.trials or (2 if args.quick else 10)
    common = ["--trials", str(trials), "--seed", str(args.seed)]
    if args.quick:
        common += ["--epochs", "2", "--cam-images", "4"]
    if args.epochs:
        common += ["--epochs", str(args.epochs)]
    names = [args.only] if args.only else ["folder", "synthetic"] + ([] if args.quick else ["breastmnist"])
    figures, jumps = {}, []
    with tempfile.TemporaryDirectory(prefix="nas-med-estimate-") as tmp:
        for name in names:
            if name == "folder":
                folder = Path(args.keep) if args.keep else Path(tmp) / "images"
                if not (folder.is_dir() and any(folder.iterdir())):
                    make_folder(folder, per_class, lo, hi, args.seed)
                n = sum(1 for _ in folder.rglob("*.jpg"))
                print(f"folder {folder}: {n} JPEGs, 4 classes, {lo}-{hi} px", flush=True)
                extra = ["--dataset", f"folder:{folder}"]
            elif name == "breastmnist":
                extra = ["--dataset", "breastmnist", "--data-root", str(_common.shared_data("breastmnist"))]
            else:
                extra = ["--size", "16", "--space", "tiny"] if args.quick else []
            estimate, measured, totals = run_search(name, [*extra, *common], tmp)
            figures[f"ratio_{name}"] = measured / estimate
            jumps.append(max_jump(totals))
    figures["max_jump"] = max(jumps)
    _common.result(figures, "goal 0.5 <= every ratio <= 2, max_jump <= 2", started)


if __name__ == "__main__":
    main()

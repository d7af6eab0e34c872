"""Reproducibility: the same search, alone, beside busy processes, and with two workers, stores the same trials.

Goal: every trial identical (same slot: state, architecture, the four objective values to the last digit, epochs
trained) in all three runs, and ``nas-med front`` names the same choice: identical_loaded = identical_workers =
1 and same_choice = 1.

Three ``nas-med search`` commands, as a user types them, into fresh sqlite studies: BreastMNIST 28 px
(../shared/data/breastmnist), default space and settings, ``--trials 30 --seed 0``; the second with ``--busy``
CPU-bound processes (default 2) running beside it, the third with ``--workers 2``. Wall times are printed so the
load shows, not as a figure.
--quick: synthetic 16 px, tiny space, 4 trials of 1 epoch in batches of 2.

Reproduce:  .venv/bin/python benchmarks/reproducibility.py          (~25 min on 2 cores)
            .venv/bin/python benchmarks/reproducibility.py --quick
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time

from _common import REPO, parser, result, setup, shared_data

BUSY = "while True:\n    pass\n"


def run(args: list[str], busy: int = 0) -> float:
    procs = [subprocess.Popen([sys.executable, "-c", BUSY]) for _ in range(busy)]
    started = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, "-c", "from nas_med.cli.main import main; main()", *args], cwd=REPO,
                              capture_output=True, text=True)
    finally:
        for p in procs:
            p.kill()
            p.wait()
    if proc.returncode != 0:
        sys.exit(f"nas-med {' '.join(args)} exited {proc.returncode}:\n{proc.stderr[-2000:]}")
    return time.perf_counter() - started


def trials(url: str, study: str) -> dict:
    import optuna

    from nas_med.search import records

    out = {}
    for t in optuna.load_study(study_name=study, storage=url).trials:
        if "given back" in t.user_attrs.get(records.STOP_REASON, ""):
            continue  # a slot handed back to the queue before it started (re-run under the same slot)
        key = t.user_attrs.get(records.SLOT, f"baseline {t.number}")
        out[key] = (t.state.name, t.user_attrs.get(records.SUMMARY), t.values,
                    len(t.user_attrs.get(records.HISTORY) or []))
    return out


def choice(url: str, study: str) -> str:
    proc = subprocess.run([sys.executable, "-c", "from nas_med.cli.main import main; main()", "front", "--study",
                           study, "--storage", url], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "250"})
    found = re.search(r"minimalist choice: trial (\d+)", proc.stdout)
    return found.group(1) if found else "none"


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--busy", type=int, default=2, help="CPU-bound processes beside the second run")
    ap.add_argument("--trials", type=int, default=None, help="trials per run (default 30, --quick 4)")
    args = ap.parse_args()
    started = time.perf_counter()
    setup(args)
    if args.quick:
        common = ["--size", "16", "--space", "tiny", "--epochs", "1", "--trial-batch", "2", "--cam-images", "4"]
        trials_n = args.trials or 4
    else:
        common = ["--dataset", "breastmnist", "--data-root", str(shared_data("breastmnist"))]
        trials_n = args.trials or 30
    common = ["search", *common, "--trials", str(trials_n), "--seed", str(args.seed), "--study", "repro", "--quiet"]
    with tempfile.TemporaryDirectory(prefix="nas-med-repro-") as tmp:
        urls = {name: f"sqlite:///{tmp}/{name}.db" for name in ("alone", "loaded", "workers")}
        for name, extra, busy in (("alone", ["--workers", "1"], 0), ("loaded", ["--workers", "1"], args.busy),
                                  ("workers", ["--workers", "2"], 0)):
            seconds = run([*common, "--storage", urls[name], *extra], busy)
            print(f"{name:8s}: {seconds:.0f} s" + (f" beside {busy} busy process(es)" if busy else ""), flush=True)
        got = {name: trials(url, "repro") for name, url in urls.items()}
        choices = {name: choice(url, "repro") for name, url in urls.items()}
    ref = got["alone"]
    figures = {}
    for name in ("loaded", "workers"):
        same = sum(got[name].get(k) == v for k, v in ref.items())
        figures[f"identical_{name}"] = round(same / max(1, len(ref)), 4)
        print(f"{name}: {same}/{len(ref)} trials identical to the run alone", flush=True)
        for k, v in ref.items():
            if got[name].get(k) != v:
                print(f"  slot {k}: alone {v}\n          {name} {got[name].get(k)}")
    print(f"choice: {choices}")
    figures["same_choice"] = int(len(set(choices.values())) == 1 and "none" not in choices.values())
    result(figures, "goal identical_loaded = identical_workers = same_choice = 1", started)


if __name__ == "__main__":
    main()

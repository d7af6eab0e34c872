"""Throughput of a search: candidates per hour with the default workers and threads vs one trial at a time.

Goal: the default search (on a CPU, for images up to 64 px: one single-threaded trial per core, ``nas_med.search.
parallel``) finishes candidates at least 1.5x as fast as one trial at a time on all the cores (``--workers 1
--threads <cores>``, the default before issue 27), with a best validation AUC within 0.01: ratio >= 1.5 and
auc_gap <= 0.01.

Two ``nas-med search`` commands, as a user types them, into fresh sqlite studies, one after the other: the default
30-trial BreastMNIST 28 px search (../shared/data/breastmnist, default space, pruner and epochs, ``--seed 0``),
then the same with ``--workers 1 --threads <cores>``. Candidates per hour = finished trials (completed, pruned,
failed) / the command's wall time (start-up, estimate and worker start included) x 3600. The two runs use other
thread counts, so their float sums and hence their later proposals differ: the best validation AUCs are compared,
not the trials. The CPU model and the load average at the start and end are printed; run it alone.
--quick: synthetic 16 px, tiny space, 4 trials of 1 epoch, 4 CAM images. ``--size 64`` checks the rule at 64 px.

Reproduce:  .venv/bin/python benchmarks/throughput.py          (~10-20 min on 2 cores)
            .venv/bin/python benchmarks/throughput.py --quick
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
import time

from _common import REPO, load, parser, result, setup, shared_data


def search(args: list[str]) -> tuple[float, str]:
    """Run ``nas-med search ARGS``; its wall time and its ``parallel:`` line."""
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", "from nas_med.cli.main import main; main()", "search", *args],
                          cwd=REPO, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit(f"nas-med search {' '.join(args)} exited {proc.returncode}:\n{proc.stderr[-2000:]}")
    output = proc.stdout + proc.stderr
    line = next((x.strip() for x in output.splitlines() if x.startswith("parallel:")), "parallel: (not printed)")
    return seconds, line


def figures(url: str) -> tuple[int, float]:
    """Finished queued trials and the best validation AUC of the study ``t`` in ``url``."""
    import optuna
    from optuna.trial import TrialState

    from nas_med.search import records

    trials = [t for t in optuna.load_study(study_name="t", storage=url).trials if t.user_attrs.get(records.QUEUED)]
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)]
    aucs = [t.values[0] for t in trials if t.state == TrialState.COMPLETE and t.values]
    return len(finished), max(aucs, default=float("nan"))


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--trials", type=int, default=None, help="trials per run (default 30, --quick 4)")
    ap.add_argument("--size", type=int, default=None, help="image size (default: 28 px, --quick 16 px)")
    args = ap.parse_args()
    started = time.perf_counter()
    setup(args)
    from nas_med.search.reproducibility import cpu_cores, cpu_name

    cores = cpu_cores()
    print(f"CPU: {cpu_name()}, {cores} cores usable", flush=True)
    if args.quick:
        common = ["--size", str(args.size or 16), "--space", "tiny", "--epochs", "1", "--cam-images", "4"]
        trials = args.trials or 4
    else:
        common = ["--dataset", "breastmnist", "--data-root", str(shared_data("breastmnist"))]
        common += ["--size", str(args.size)] if args.size else []
        trials = args.trials or 30
    common += ["--trials", str(trials), "--seed", str(args.seed), "--study", "t", "--quiet"]
    runs = {"default": [], "one_at_a_time": ["--workers", "1", "--threads", str(cores)]}
    rate, best = {}, {}
    with tempfile.TemporaryDirectory(prefix="nas-med-throughput-") as tmp:
        for name, extra in runs.items():
            url = f"sqlite:///{tmp}/{name}.db"
            print(f"{name}: nas-med search {' '.join(common + extra)} ({load()})", flush=True)
            seconds, line = search([*common, "--storage", url, *extra])
            done, best[name] = figures(url)
            rate[name] = done / seconds * 3600
            print(f"  {line}\n  {done} candidates in {seconds:.0f} s: {rate[name]:.0f} per hour; best validation "
                  f"AUC {best[name]:.4f} ({load()})", flush=True)
    ratio = rate["default"] / rate["one_at_a_time"]
    gap = abs(best["default"] - best["one_at_a_time"])
    result({"ratio": ratio, "auc_gap": gap, "per_hour_default": rate["default"],
            "per_hour_one": rate["one_at_a_time"], "best_auc_default": best["default"],
            "best_auc_one": best["one_at_a_time"]}, "goal ratio >= 1.5, auc_gap <= 0.01", started)


if __name__ == "__main__":
    main()

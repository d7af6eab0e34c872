"""Precision: the default search in the default precision (bf16 on CPUs with AMX/AVX-512-BF16) against the same
search in fp32, and the paired validation AUC of bf16 vs fp32 training of the same candidates.

Goals: wall time default / fp32 <= 0.6, best validation AUC within 0.01 of fp32's; the paired bf16 - fp32
validation AUC difference printed with its spread (mean, standard deviation, range).

Both searches are the default ``nas-med search`` (default space, TPE, median pruner, 8 epochs, 16 CAM images) on
BreastMNIST at 64 px (``--size``), 30 trials, seed 0, each in a fresh temporary sqlite storage, one after the
other in this one process. The first runs in the default precision (``--precision auto``); the second, in fp32,
runs the same 30 candidates: the first search's sampled parameters are queued in the second study, so both
train exactly the same architectures and settings (pruning decides per run). Wall time per search: study
creation, data loading, every trial, after an untimed one-trial warm-up search in each precision; candidates
per hour = trials / wall hours. The process's CPU time per search is printed beside it (``cpu_ratio``: less
sensitive to other load on the machine than the wall time, which is the goal's figure).

Paired parity: 5 completed candidates of the first search (spread evenly over their parameter counts), each
trained with seeds 0, 1, 2 in fp32 and in bf16 (same initial weights and batch order per seed), 8 epochs; the
difference of the kept epoch's validation AUC per (candidate, seed) pair.

--quick: the synthetic dataset at 16 px, the tiny space, 3 trials of 1 epoch, 2 candidates x 1 seed.

Reproduce:  .venv/bin/python benchmarks/precision.py              (full, ~15-30 min on 2 cores)
            .venv/bin/python benchmarks/precision.py --size 28    (the 28 px row of README's results table)
            .venv/bin/python benchmarks/precision.py --quick
"""
from __future__ import annotations

import statistics
import time

from _common import parser, result, setup, shared_data, temp_storage


def best_auc(study) -> float:
    from nas_med.select import completed, value

    return max((value(t, "auc") for t in completed(study)), default=float("nan"))


CPU = {}  # search -> process CPU seconds (less sensitive to other load than the wall time)


def default_search(config) -> tuple[object, float]:
    from nas_med.search.runner import search

    start, cpu = time.perf_counter(), time.process_time()
    study = search(config)
    CPU[config.study] = time.process_time() - cpu
    return study, time.perf_counter() - start


def same_trials_search(config, source) -> tuple[object, float]:
    """``config``'s study with ``source``'s sampled parameters queued, in order, then run."""
    from optuna.trial import TrialState

    from nas_med.search.records import QUEUED
    from nas_med.search.runner import prepare, run_queue

    start, cpu = time.perf_counter(), time.process_time()
    session = prepare(config)
    for t in sorted(source.get_trials(deepcopy=False), key=lambda t: t.number):
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL) and t.params:
            session.study.enqueue_trial(dict(t.params), user_attrs={QUEUED: True})
    run_queue(session)
    CPU[config.study] = time.process_time() - cpu
    return session.study, time.perf_counter() - start


def paired(study, data, n_candidates: int, seeds, epochs: int) -> list[tuple[int, int, float, float]]:
    """(trial, seed, fp32 AUC, bf16 AUC) for ``n_candidates`` completed trials spread over their sizes."""
    import torch

    from nas_med.arch import build
    from nas_med.search.records import trial_recipe
    from nas_med.select import completed
    from nas_med.train import train

    done = sorted(completed(study), key=lambda t: t.user_attrs.get("params", 0))
    if not done:
        return []
    k = min(n_candidates, len(done))
    picks = [done[round(i * (len(done) - 1) / max(1, k - 1))] for i in range(k)]
    rows = []
    for t in {t.number: t for t in picks}.values():
        spec, cfg = trial_recipe(t)
        for seed in seeds:
            aucs = []
            for name in ("fp32", "bf16"):
                torch.manual_seed(seed)
                model = build(spec)
                r = train(model, data, type(cfg)(**{**cfg.to_dict(), "epochs": epochs, "seed": seed,
                                                    "precision": name, "device": "cpu"}))
                aucs.append(float(r.val["auc"]))
            rows.append((t.number, seed, aucs[0], aucs[1]))
            print(f"  trial {t.number} ({t.user_attrs.get('params')} params) seed {seed}: fp32 {aucs[0]:.4f} "
                  f"bf16 {aucs[1]:.4f} diff {aucs[1] - aucs[0]:+.4f}", flush=True)
    return rows


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--size", type=int, default=64, help="BreastMNIST image size (28 or 64 for README's rows)")
    ap.add_argument("--trials", type=int, default=30)
    args = ap.parse_args()
    setup(args)
    started = time.perf_counter()
    from nas_med.data import load_dataset
    from nas_med.precision import cpu_bf16_flags, resolve_precision
    from nas_med.search.config import SearchConfig

    if args.quick:
        base = dict(dataset="synthetic", size=16, space="tiny", trials=3, epochs=1, cam_images=4)
        n_cand, seeds, epochs = 2, (0,), 1
    else:
        base = dict(dataset="breastmnist", data_root=str(shared_data("breastmnist")), size=args.size,
                    trials=args.trials)
        n_cand, seeds, epochs = 5, (0, 1, 2), 8
    default = resolve_precision("auto", "cpu").name
    print(f"default precision on this CPU: {default} (bf16 flags: {', '.join(cpu_bf16_flags()) or 'none'})")
    data = load_dataset(base["dataset"], data_root=base.get("data_root"), size=base["size"], seed=args.seed)
    for name in ("auto", "fp32"):  # warm-up, not timed: imports, kernel set-up, first study of the process
        with temp_storage() as url:
            default_search(SearchConfig(**{**base, "trials": 1, "epochs": 1}, seed=args.seed, precision=name,
                                        storage=url, study="warm-up", quiet=True, artifacts=False, pruner="none"))
    arms = {}
    with temp_storage() as url_auto, temp_storage() as url_fp32:
        for name, url in (("auto", url_auto), ("fp32", url_fp32)):
            config = SearchConfig(**base, seed=args.seed, precision=name, storage=url, study=f"precision-{name}",
                                  quiet=True, artifacts=False)
            study, seconds = default_search(config) if name == "auto" else same_trials_search(config, arms["auto"][0])
            n = len(study.trials)
            arms[name] = (study, seconds, best_auc(study), n)
            print(f"{name:>4} ({resolve_precision(name, 'cpu').name}): {n} trials in {seconds:.1f} s "
                  f"({CPU[config.study]:.1f} CPU s) "
                  f"({3600 * n / seconds:.0f} candidates per hour), best validation AUC {arms[name][2]:.4f}",
                  flush=True)
        print("paired validation AUC, bf16 vs fp32 (same candidate, seed and initial weights):")
        rows = paired(arms["auto"][0], data, n_cand, seeds, epochs)
    ratio = arms["auto"][1] / arms["fp32"][1]
    diffs = [b - a for _, _, a, b in rows]
    mean = statistics.fmean(diffs) if diffs else float("nan")
    sd = statistics.stdev(diffs) if len(diffs) > 1 else float("nan")
    if diffs:
        print(f"paired bf16 - fp32 validation AUC: mean {mean:+.4f}, sd {sd:.4f}, range {min(diffs):+.4f} to "
              f"{max(diffs):+.4f} over {len(diffs)} pairs")
    print(f"wall time {default} / fp32: {ratio:.3f}; best validation AUC {arms['auto'][2]:.4f} vs "
          f"{arms['fp32'][2]:.4f}")
    cpu_ratio = CPU["precision-auto"] / CPU["precision-fp32"]
    print(f"CPU time {default} / fp32: {cpu_ratio:.3f}")
    result({"wall_ratio": round(ratio, 4), "cpu_ratio": round(cpu_ratio, 4), "best_auc_diff": round(arms["auto"][2] - arms["fp32"][2], 4),
            "paired_auc_diff_mean": round(mean, 4), "paired_auc_diff_sd": round(sd, 4),
            "candidates_per_hour_default": round(3600 * arms["auto"][3] / arms["auto"][1], 1),
            "candidates_per_hour_fp32": round(3600 * arms["fp32"][3] / arms["fp32"][1], 1)},
           "goal wall_ratio <= 0.6, |best_auc_diff| <= 0.01", started)


if __name__ == "__main__":
    main()

"""Samplers: hypervolume after the same number of trials for TPE, NSGA-II and random search on BreastMNIST.

Goal: the default sampler (TPE) reaches a higher hypervolume than random search after the same number of
trials (tpe_over_random >= 1.0); NSGA-II is reported beside them.

Three ``nas_med.search.search`` runs on BreastMNIST 28 px (``../shared/data/breastmnist``), default search space,
same seed, same trial budget, no pruner (so the samplers alone differ). Hypervolume of each run's completed
candidates on one normalisation fitted to all runs together (``nas_med.report.hypervolume``: losses -AUC,
log10 params, log10 epoch seconds, -CAM quality, scaled to [0, 1], reference point 1.1; exact WFG); the
hypervolume without the noisy epoch-time axis is printed too. NSGA-II uses a population of 12, TPE starts with 8
random trials (``nas_med.search.study.make_sampler``). The whole comparison is repeated for seeds 0, 1, 2 (each
seed: its own normalisation over the three samplers' runs) and the mean hypervolume is reported.

Data: BreastMNIST 28 px (546 train / 78 validation), 8 epochs, 24 trials per sampler, seeds 0, 1, 2.
--quick: tiny space, 1 epoch, 2 trials per sampler.

Reproduce:  .venv/bin/python benchmarks/samplers.py              (full, ~15 min on 2 shared cores)
            .venv/bin/python benchmarks/samplers.py --quick
"""
from __future__ import annotations

import statistics
import time

from _common import parser, result, setup, shared_data, temp_storage

SAMPLERS = ("tpe", "nsga2", "random")


def main() -> int:
    ap = parser(__doc__)
    ap.add_argument("--trials", type=int, default=None, help="trials per sampler (default 24, --quick 2)")
    ap.add_argument("--epochs", type=int, default=None, help="epochs per trial (default 8, --quick 1)")
    ap.add_argument("--seeds", default=None, help="comma-separated seeds (default 0,1,2; --quick: --seed)")
    args = ap.parse_args()
    root = shared_data("breastmnist")
    started = time.perf_counter()
    setup(args)
    from nas_med.report import Scale, hypervolume
    from nas_med.search import SearchConfig, search
    from nas_med.select import completed

    space, epochs, trials = ("tiny", 1, 2) if args.quick else ("default", 8, 24)
    epochs, trials = args.epochs or epochs, args.trials or trials
    seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else ([args.seed] if args.quick else [0, 1, 2])
    print(f"search: breastmnist 28 px from {root}, space {space}, {trials} trials x {epochs} epochs, no pruner, "
          f"seeds {seeds}", flush=True)
    values: dict[tuple[str, int], list] = {}
    for seed in seeds:
        for sampler in SAMPLERS:
            t = time.perf_counter()
            with temp_storage() as url:
                config = SearchConfig(dataset="breastmnist", data_root=str(root), size=28, space=space,
                                      trials=trials, epochs=epochs, study=f"samplers-{sampler}-{seed}", storage=url,
                                      seed=seed, pruner="none", sampler=sampler, device="cpu", quiet=True)
                done = completed(search(config))
            values[sampler, seed] = [t.values for t in done]
            best = max((v[0] for v in values[sampler, seed]), default=float("nan"))
            print(f"  seed {seed} {sampler:>6}: {len(done)} completed, best AUC {best:.4f}, "
                  f"{time.perf_counter() - t:.0f} s", flush=True)
    hv: dict[str, list[float]] = {s: [] for s in SAMPLERS}
    hv3: dict[str, list[float]] = {s: [] for s in SAMPLERS}
    for seed in seeds:
        pooled = [v for s in SAMPLERS for v in values[s, seed]]
        scale = Scale.fit(pooled)
        scale3 = Scale.fit([[v[0], v[1], 1.0, v[3]] for v in pooled])
        for s in SAMPLERS:
            hv[s].append(hypervolume(values[s, seed], scale))
            hv3[s].append(hypervolume([[v[0], v[1], 1.0, v[3]] for v in values[s, seed]], scale3))
    mean = {s: statistics.fmean(v) for s, v in hv.items()}
    mean3 = {s: statistics.fmean(v) for s, v in hv3.items()}
    for s in SAMPLERS:
        print(f"hypervolume {s:>6}: {mean[s]:.4f} (per seed {', '.join(f'{v:.4f}' for v in hv[s])}); "
              f"without epoch time {mean3[s]:.4f}")
    figures = {f"hv_{s}": round(mean[s], 4) for s in SAMPLERS}
    figures["tpe_over_random"] = round(mean["tpe"] / mean["random"], 4) if mean["random"] > 0 else float("nan")
    figures["nsga2_over_random"] = round(mean["nsga2"] / mean["random"], 4) if mean["random"] > 0 else float("nan")
    result(figures, "goal tpe_over_random >= 1.0", started)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

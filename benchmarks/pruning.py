"""Pruning: training epochs spent and hypervolume reached, with and without pruning, at the same trial count.

Goal: pruning spends at least 40 % fewer training epochs (epoch_ratio <= 0.60) while reaching at least 95 % of
the hypervolume of the unpruned search (hv_ratio >= 0.95).

Two ``nas_med.search.search`` runs with the same TPE sampler seed, the same data and the same number of trials:
one with the default median pruner (through the shadow study), one with ``--pruner none``. Epochs are counted from
the ``history`` user attr of every trial (completed, pruned and failed). Hypervolume: completed candidates of
each run, on one normalisation fitted to both runs together (``nas_med.report.hypervolume``: losses -AUC,
log10 params, log10 epoch seconds, -CAM quality, scaled to [0, 1], reference point 1.1; exact WFG). Because the
measured epoch time is noisy on a shared machine, the hypervolume without the epoch-time axis is printed too.

Data: synthetic 32 px, default search space, 8 epochs, 30 trials per run (--pruner picks another pruner).
--quick: 16 px, tiny space, 4 epochs, 5 trials per run (the median pruner may stop only the 5th).

Reproduce:  .venv/bin/python benchmarks/pruning.py            (full, ~20 min on 2 shared cores)
            .venv/bin/python benchmarks/pruning.py --quick
"""
from __future__ import annotations

import time

from _common import epochs_spent, parser, result, setup, temp_storage


def main() -> int:
    ap = parser(__doc__)
    ap.add_argument("--trials", type=int, default=None, help="trials per run (default 30, --quick 5)")
    ap.add_argument("--epochs", type=int, default=None, help="epochs per trial (default 8, --quick 4)")
    ap.add_argument("--pruner", default="median", help="pruner of the pruned run (default median)")
    args = ap.parse_args()
    started = time.perf_counter()
    setup(args)
    from nas_med.report import Scale, hypervolume
    from nas_med.search import SearchConfig, search
    from nas_med.select import completed

    size, space, epochs, trials = (16, "tiny", 4, 5) if args.quick else (32, "default", 8, 30)
    epochs, trials = args.epochs or epochs, args.trials or trials
    print(f"search: synthetic {size} px, space {space}, {trials} trials x {epochs} epochs, TPE seed {args.seed}; "
          f"pruner {args.pruner} vs none", flush=True)
    runs = {}
    for pruner in (args.pruner, "none"):
        t = time.perf_counter()
        with temp_storage() as url:
            config = SearchConfig(dataset="synthetic", size=size, space=space, trials=trials, epochs=epochs,
                                  study=f"pruning-{pruner}", storage=url, seed=args.seed, pruner=pruner,
                                  sampler="tpe", device="cpu", quiet=True)
            study = search(config)
            states = [t.state.name.lower() for t in study.trials]
            runs[pruner] = {"values": [t.values for t in completed(study)], "epochs": epochs_spent(study),
                            "states": {s: states.count(s) for s in sorted(set(states))},
                            "seconds": time.perf_counter() - t}
        print(f"  {pruner:>8}: {runs[pruner]['epochs']} epochs, states {runs[pruner]['states']}, "
              f"{runs[pruner]['seconds']:.0f} s", flush=True)
    pruned, full = runs[args.pruner], runs["none"]
    scale = Scale.fit(pruned["values"] + full["values"])
    hv = {k: hypervolume(r["values"], scale) for k, r in runs.items()}
    no_time = [[v[0], v[1], 1.0, v[3]] for v in pruned["values"] + full["values"]]
    scale3 = Scale.fit(no_time)
    hv3 = {k: hypervolume([[v[0], v[1], 1.0, v[3]] for v in r["values"]], scale3) for k, r in runs.items()}
    epoch_ratio = pruned["epochs"] / max(1, full["epochs"])
    hv_ratio = hv[args.pruner] / hv["none"] if hv["none"] > 0 else float("nan")
    print(f"hypervolume (4 objectives): {args.pruner} {hv[args.pruner]:.4f}, none {hv['none']:.4f}")
    print(f"hypervolume without the epoch-time axis: {args.pruner} {hv3[args.pruner]:.4f}, none {hv3['none']:.4f} "
          f"(ratio {hv3[args.pruner] / max(hv3['none'], 1e-12):.3f})")
    print(f"wall time: {args.pruner} {pruned['seconds']:.0f} s, none {full['seconds']:.0f} s "
          f"(ratio {pruned['seconds'] / full['seconds']:.3f})")
    result({"epoch_ratio": round(epoch_ratio, 4), "hv_ratio": round(hv_ratio, 4)},
           "goal epoch_ratio <= 0.60 and hv_ratio >= 0.95", started)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

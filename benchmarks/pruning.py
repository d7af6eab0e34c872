"""Pruning: hypervolume reached with and without pruning for the same training epochs, and at the same trials.

Goal: with at most 70 % of the unpruned search's training epochs, the pruned search reaches at least 95 % of its
hypervolume (hv_ratio >= 0.95, mean over 8 seeds, 95 % bootstrap interval printed).

Per seed, ``nas_med.search.search`` runs with the same data and sampler seed: unpruned (``--pruner none``, 30
trials), and pruned (the median pruner, the default: through the shadow study, Pareto-aware: a candidate is
stopped only when a completed one with no more parameters and no longer modelled epoch had at least its AUC at
the same epoch; ``--pruner`` picks another) run for 1.5x the trials. The pruned run's trials are taken in order
until they have spent 70 % of the unpruned run's epochs (``--budget``): hv_ratio is the hypervolume of its
completed trials up to there over the unpruned run's. The same figure at the same number of trials (the first
30 of the pruned run, whatever their epochs) is printed beside it, with its epoch ratio. Epochs are counted from
every trial's ``history`` (completed, pruned, failed). Hypervolume: completed candidates, on one normalisation per
seed fitted to all its runs (``nas_med.report.hypervolume``: -AUC, log10 params, log10 epoch seconds, -CAM
quality, scaled to [0, 1], reference point 1.1; exact WFG). Every objective is deterministic (``epoch_seconds``
from the cost model), so a seed's figures repeat exactly; seeds differ a lot, hence 8 and a bootstrap interval.
With --sequential, a third run per seed: the pruned search with ``--trial-batch 0`` (each trial sampled from what
has finished when it starts) for 30 trials: the hypervolume cost of batched, reproducible proposals.

Data: synthetic 32 px, default search space, 8 epochs, 30 trials, seeds 0-7.
--quick: 16 px, tiny space, 4 epochs, 5 trials, one seed.

Reproduce:  .venv/bin/python benchmarks/pruning.py --sequential     (full, ~60-90 min on 2 cores)
            (or seeds in parallel: --seeds 0,1 --rows-out a.json ... then --combine a.json b.json ...)
            .venv/bin/python benchmarks/pruning.py --quick
"""
from __future__ import annotations

import random
import statistics
import time

from _common import parser, result, setup, temp_storage


def ratio_interval(a: list[float], b: list[float], rounds: int = 4000) -> tuple[float, float]:
    """95 % bootstrap interval (over seeds, resampled in pairs) of mean(a) / mean(b)."""
    rng = random.Random(0)
    n, ratios = len(a), []
    for _ in range(rounds):
        idx = [rng.randrange(n) for _ in range(n)]
        den = sum(b[i] for i in idx)
        if den > 0:
            ratios.append(sum(a[i] for i in idx) / den)
    ratios.sort()
    if not ratios:
        return float("nan"), float("nan")
    return ratios[int(0.025 * (len(ratios) - 1))], ratios[int(0.975 * (len(ratios) - 1))]


def run(config) -> list[tuple[str, list | None, int]]:
    """(state, values, epochs trained) of every trial of a search, in budget order (slot)."""
    from nas_med.search import search
    from nas_med.search.records import HISTORY, SLOT

    study = search(config)
    trials = sorted(study.trials, key=lambda t: (t.user_attrs.get(SLOT, -1), t.number))
    return [(t.state.name.lower(), t.values, len(t.user_attrs.get(HISTORY) or [])) for t in trials]


def prefix(trials: list, epochs: float | None = None, count: int | None = None) -> list:
    """The first trials: ``count`` of them, or as many as fit in ``epochs``."""
    out, spent = [], 0
    for t in trials:
        if count is not None and len(out) >= count or epochs is not None and spent + t[2] > epochs:
            break
        out.append(t)
        spent += t[2]
    return out


def done(trials: list) -> list:
    return [t[1] for t in trials if t[0] == "complete"]


def spent(trials: list) -> int:
    return sum(t[2] for t in trials)


def main() -> int:
    ap = parser(__doc__)
    ap.add_argument("--trials", type=int, default=None, help="trials of the unpruned run (default 30, --quick 5)")
    ap.add_argument("--epochs", type=int, default=None, help="epochs per trial (default 8, --quick 4)")
    ap.add_argument("--pruner", default="median", help="pruner of the pruned run (default median)")
    ap.add_argument("--budget", type=float, default=0.70, help="the pruned run's share of the unpruned epochs")
    ap.add_argument("--trial-batch", type=int, default=4, help="trials proposed together (default 4, as search)")
    ap.add_argument("--sequential", action="store_true",
                    help="also run the pruned search with --trial-batch 0: the hypervolume cost of batching")
    ap.add_argument("--seeds", default=None, help="comma-separated seeds (default 0-7; --quick: --seed)")
    ap.add_argument("--rows-out", default=None, help="write the per-seed figures to this JSON file")
    ap.add_argument("--combine", nargs="+", default=None,
                    help="no search: the figures over the per-seed files of several runs (seeds run in parallel)")
    args = ap.parse_args()
    started = time.perf_counter()
    setup(args)
    from nas_med.report import Scale, hypervolume
    from nas_med.search import SearchConfig

    size, space, epochs, trials = (16, "tiny", 4, 5) if args.quick else (32, "default", 8, 30)
    epochs, trials = args.epochs or epochs, args.trials or trials
    seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else ([args.seed] if args.quick else list(range(8)))
    arms = [("none", "none", args.trial_batch, trials), ("pruned", args.pruner, args.trial_batch, trials * 3 // 2)]
    if args.sequential:
        arms.append(("sequential", args.pruner, 0, trials))
    print(f"search: synthetic {size} px, space {space}, {epochs} epochs a trial, TPE; none ({trials} trials) vs "
          f"{args.pruner} ({trials * 3 // 2} trials, cut at {args.budget:.0%} of the unpruned epochs), batches of "
          f"{args.trial_batch}{'; and unbatched' if args.sequential else ''}; seeds {seeds}", flush=True)
    rows: dict[str, list[float]] = {k: [] for k in ("none", "budget", "same", "seq", "e_none", "e_budget", "e_same")}
    seconds: dict[str, float] = {a[0]: 0.0 for a in arms}
    if args.combine:
        import json

        for path in args.combine:
            for key, values in json.loads(open(path).read()).items():
                rows[key] += values
        seeds = []
        args.sequential = bool(rows["seq"])
        print(f"combined {len(rows['none'])} seeds from {len(args.combine)} file(s)")
    for seed in seeds:
        got = {}
        for name, pruner, batch, n in arms:
            t = time.perf_counter()
            with temp_storage() as url:
                got[name] = run(SearchConfig(dataset="synthetic", size=size, space=space, trials=n, epochs=epochs,
                                             study=f"pruning-{name}", storage=url, seed=seed, pruner=pruner,
                                             trial_batch=batch, sampler="tpe", device="cpu", quiet=True,
                                             artifacts=False))
            seconds[name] += time.perf_counter() - t
            states = [s for s, _, _ in got[name]]
            print(f"  seed {seed} {name:>10}: {n} trials, {spent(got[name])} epochs, "
                  f"{ {s: states.count(s) for s in sorted(set(states))} }, {time.perf_counter() - t:.0f} s", flush=True)
        none = got["none"]
        at_budget = prefix(got["pruned"], epochs=args.budget * spent(none))
        same = prefix(got["pruned"], count=len(none))
        parts = {"none": none, "budget": at_budget, "same": same}
        if args.sequential:
            parts["seq"] = got["sequential"]
        scale = Scale.fit([v for p in parts.values() for v in done(p)])
        for key, trials_of in parts.items():
            rows[key].append(hypervolume(done(trials_of), scale))
        for key in ("none", "budget", "same"):
            rows[f"e_{key}"].append(spent(parts[key]))
        print(f"  seed {seed}: hypervolume none {rows['none'][-1]:.4f}; pruned within {args.budget:.0%} of its "
              f"epochs ({len(at_budget)} trials) {rows['budget'][-1]:.4f}; pruned, same {len(none)} trials "
              f"{rows['same'][-1]:.4f} ({spent(same) / spent(none):.2f} of the epochs)"
              + (f"; unbatched {rows['seq'][-1]:.4f}" if args.sequential else ""), flush=True)
    if args.rows_out:
        import json

        with open(args.rows_out, "w") as f:
            json.dump(rows, f)
    hv_ratio = statistics.fmean(rows["budget"]) / statistics.fmean(rows["none"])
    lo, hi = ratio_interval(rows["budget"], rows["none"])
    same_ratio = statistics.fmean(rows["same"]) / statistics.fmean(rows["none"])
    s_lo, s_hi = ratio_interval(rows["same"], rows["none"])
    e_budget = sum(rows["e_budget"]) / sum(rows["e_none"])
    e_same = sum(rows["e_same"]) / sum(rows["e_none"])
    per_seed = ", ".join(f"{a / b:.2f}" for a, b in zip(rows["budget"], rows["none"]))
    print(f"same epochs: {args.pruner} within {args.budget:.0%} of the unpruned epochs (used {e_budget:.3f}) / "
          f"unpruned hypervolume {hv_ratio:.3f} [95 % {lo:.3f}, {hi:.3f}]; per seed {per_seed}")
    print(f"same trials: {args.pruner} / unpruned hypervolume {same_ratio:.3f} [95 % {s_lo:.3f}, {s_hi:.3f}] "
          f"with {e_same:.3f} of the epochs; per seed "
          f"{', '.join(f'{a / b:.2f}' for a, b in zip(rows['same'], rows['none']))}")
    figures = {"hv_ratio": round(hv_ratio, 4), "hv_ratio_low": round(lo, 4), "epoch_ratio": round(e_budget, 4),
               "same_trials_hv_ratio": round(same_ratio, 4), "same_trials_epoch_ratio": round(e_same, 4)}
    if args.sequential:
        b_ratio = statistics.fmean(rows["same"]) / statistics.fmean(rows["seq"])
        b_lo, b_hi = ratio_interval(rows["same"], rows["seq"])
        print(f"batched proposals (batches of {args.trial_batch}) / each trial sampled as it starts, {trials} "
              f"pruned trials: hypervolume {b_ratio:.3f} [95 % {b_lo:.3f}, {b_hi:.3f}]; per seed "
              f"{', '.join(f'{a / b:.2f}' for a, b in zip(rows['same'], rows['seq']))}")
        figures.update(batch_hv_ratio=round(b_ratio, 4), batch_hv_ratio_low=round(b_lo, 4))
    print("wall time: " + ", ".join(f"{k} {v:.0f} s" for k, v in seconds.items()))
    result(figures, f"goal hv_ratio >= 0.95 within epoch_ratio <= {args.budget:.2f}, >= 8 seeds", started)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Pruning replayed: what any pruner can keep of the hypervolume on a fixed sequence of candidates.

``pruning.py`` compares two searches; once one prunes, TPE sees other results and proposes other candidates, so
its figure mixes the pruner's loss with the two trajectories' difference (per seed 0.5-1.3). Here each seed's
search runs once, unpruned, for 1.5x the trials (every trial's per-epoch validation AUC, parameters, modelled
epoch time and CAM quality stored). Pruning rules are then replayed on that fixed sequence, in slot order, each
trial seeing the replay-completed trials of earlier batches as the real search does, with Optuna's own
percentile rule (best AUC so far below the percentile of completed trials at the same epoch, after the warm-up
and ``n_startup`` completed trials) and, where named, nas-med's dominance check (a completed candidate no larger
and no costlier had at least that AUC at that epoch). A pruned trial counts the epochs it trained and adds no
point. Per rule, as ``pruning.py``: the hypervolume of the trials taken in order within 70 % of the unpruned 30
trials' epochs, and of the same 30 trials, over the unpruned 30 trials' hypervolume (one normalisation per seed).

Two bounds frame what a rule can reach: ``oracle`` knows every trial's final four values and stops, after the
warm-up, each trial that is not on the Pareto front of the trials taken so far (the best any rule deciding from
the past can do, short of luck); ``oracle knowing the future`` stops each trial not on the front of the whole
sequence (no real rule can); ``front share`` is how many of the
unpruned 30 trials are on their own four-objective front (a candidate on it cannot be stopped without losing
hypervolume; CAM quality is only known at the end, so no rule can see it while a candidate trains).

Data: synthetic 32 px, default space, 8 epochs, seeds 0-7, as ``pruning.py``.
Reproduce:  .venv/bin/python benchmarks/pruning_replay.py --store DIR   (any folder: its searches are kept and reused)
            .venv/bin/python benchmarks/pruning_replay.py --quick
"""
from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from _common import parser, result, setup
from pruning import ratio_interval


@dataclass(frozen=True)
class Trial:
    slot: int
    values: tuple[float, float, float, float] | None  # auc, params, epoch seconds, cam quality; None: failed
    aucs: tuple[float, ...]                            # validation AUC per epoch


@dataclass(frozen=True)
class Rule:
    name: str
    key: str
    percentile: float | None  # Optuna's: keep the top ``percentile`` % (50: median); None: oracle
    warmup: int = 1
    dominance: bool = True
    startup: int = 4
    future: bool = False  # oracle only: knows which trials end on the front of the whole sequence


RULES = [Rule("median, dominance (default)", "median", 50),
         Rule("median, dominance, warm-up 2", "median_w2", 50, warmup=2),
         Rule("median, dominance, warm-up 4", "median_w4", 50, warmup=4),
         Rule("median, AUC alone", "median_auc", 50, dominance=False),
         Rule("keep top 75 %, dominance", "top75", 75), Rule("keep top 25 %, dominance", "top25", 25),
         Rule("oracle (final values known)", "oracle", None),
         Rule("oracle knowing the future", "oracle_future", None, future=True)]


def search_trials(seed: int, trials: int, size: int, space: str, epochs: int, store: Path | None) -> list[Trial]:
    """The unpruned search of ``seed`` (from ``store`` when it holds it), in slot order."""
    import optuna

    from nas_med.search import SearchConfig, search
    from nas_med.search.records import HISTORY, SLOT

    url = None
    if store is not None:
        store.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{store / f'seed{seed}-{size}-{space}-{epochs}-{trials}.db'}"
    name = "replay"
    study = None
    if url is not None:
        try:
            study = optuna.load_study(study_name=name, storage=url)
            if len([t for t in study.trials if t.state.is_finished()]) < trials:
                study = None
        except KeyError:
            study = None
    if study is None:
        import tempfile

        tmp = tempfile.mkdtemp()
        url = url or f"sqlite:///{tmp}/replay.db"
        study = search(SearchConfig(dataset="synthetic", size=size, space=space, trials=trials, epochs=epochs,
                                    study=name, storage=url, seed=seed, pruner="none", sampler="tpe",
                                    device="cpu", quiet=True, artifacts=False))
    out = []
    for t in sorted(study.trials, key=lambda t: (t.user_attrs.get(SLOT, -1), t.number)):
        aucs = tuple(float(r.get("val_auc", float("nan"))) for r in t.user_attrs.get(HISTORY) or [])
        values = tuple(float(v) for v in t.values) if t.state.name == "COMPLETE" else None
        out.append(Trial(int(t.user_attrs.get(SLOT, t.number)), values, aucs))
    return out


def first_real_prune(seed: int, trials: int, size: int, space: str, epochs: int) -> tuple[int, int] | None:
    """(slot, epochs trained) of the first trial the real pruned search (default median pruner) stops."""
    import tempfile

    from nas_med.search import SearchConfig, search
    from nas_med.search.records import HISTORY, SLOT

    with tempfile.TemporaryDirectory() as tmp:
        study = search(SearchConfig(dataset="synthetic", size=size, space=space, trials=trials, epochs=epochs,
                                    study="real", storage=f"sqlite:///{tmp}/real.db", seed=seed, pruner="median",
                                    sampler="tpe", device="cpu", quiet=True, artifacts=False))
        pruned = sorted((t.user_attrs.get(SLOT, t.number), len(t.user_attrs.get(HISTORY) or []))
                        for t in study.trials if t.state.name == "PRUNED")
    return pruned[0] if pruned else None


def dominates(a: tuple, b: tuple) -> bool:
    """``a`` at least as good as ``b`` on all four objectives (max, min, min, max) and better on one."""
    ge = a[0] >= b[0] and a[1] <= b[1] and a[2] <= b[2] and a[3] >= b[3]
    return ge and a != b


def front(points: list[tuple]) -> list[tuple]:
    return [p for p in points if not any(dominates(q, p) for q in points)]


def replay(trials: list[Trial], rule: Rule, batch: int = 4) -> list[tuple[int, tuple | None]]:
    """(epochs trained, final values or None when pruned/failed) per trial, replaying ``rule``."""
    done: list[tuple[int, Trial]] = []  # (batch index, trial) of replay-completed trials
    out = []
    for t in trials:
        if t.values is None:
            out.append((len(t.aucs), None))
            continue
        visible = [d for b, d in done if b < t.slot // batch]
        stop = None
        if rule.percentile is None:
            # oracle: the front of what is taken so far (or, knowing the future, of the whole sequence)
            taken = [u.values for u in trials if u.values] if rule.future else [d.values for _, d in done] + [t.values]
            if t.values not in front(taken) and len(t.aucs) > rule.warmup:
                stop = rule.warmup
        elif len(visible) >= rule.startup:
            for step in range(rule.warmup, len(t.aucs)):
                reached = [d.aucs[step] for d in visible if step < len(d.aucs)]
                if not reached:
                    continue
                limit = float(np.nanpercentile(np.array(reached), 100 - rule.percentile))
                best = max(t.aucs[: step + 1])
                if not best < limit:
                    continue
                if not rule.dominance or any(
                        step < len(d.aucs) and d.aucs[step] >= t.aucs[step] and d.values[1] <= t.values[1]
                        and d.values[2] <= t.values[2] for d in visible):
                    stop = step
                    break
        if stop is None:
            out.append((len(t.aucs), t.values))
            done.append((t.slot // batch, t))
        else:
            out.append((stop + 1, None))
    return out


def main() -> int:
    ap = parser(__doc__)
    ap.add_argument("--seeds", default=None, help="comma-separated seeds (default 0-7; --quick: --seed)")
    ap.add_argument("--store", default=None, help="folder keeping each seed's unpruned search (reused)")
    ap.add_argument("--budget", type=float, default=0.70, help="share of the unpruned epochs (default 0.70)")
    ap.add_argument("--check", action="store_true", help="also run the real pruned search of each seed and check "
                    "that it stops the same first trial at the same epoch as the replay (on by --quick)")
    args = ap.parse_args()
    started = time.perf_counter()
    setup(args)
    from nas_med.report import Scale, hypervolume

    size, space, epochs, trials = (16, "tiny", 4, 6) if args.quick else (32, "default", 8, 30)
    seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else ([args.seed] if args.quick else list(range(8)))
    store = Path(args.store) if args.store else None
    print(f"search: synthetic {size} px, space {space}, {epochs} epochs a trial, TPE, batches of 4, unpruned "
          f"{trials * 3 // 2} trials; rules replayed within {args.budget:.0%} of the first {trials} trials' epochs; "
          f"seeds {seeds}", flush=True)
    rows: dict[str, dict[str, list[float]]] = {r.name: {"budget": [], "same": [], "e_budget": [], "e_same": []}
                                               for r in RULES}
    base, base_e, share = [], [], []
    for seed in seeds:
        t0 = time.perf_counter()
        seq = search_trials(seed, trials * 3 // 2, size, space, epochs, store)
        first = seq[:trials]
        points = [t.values for t in first if t.values is not None]
        spent_none = sum(len(t.aucs) for t in first)
        replays = {r.name: replay(seq, r) for r in RULES}
        if args.check or args.quick:
            stops = [(t.slot, e) for t, (e, v) in zip(seq, replays[RULES[0].name]) if v is None and t.values]
            real = first_real_prune(seed, len(seq), size, space, epochs)
            print(f"  seed {seed}: first trial stopped, (slot, epochs): replay {stops[0] if stops else None}, "
                  f"real search {real}", flush=True)
            if (stops[0] if stops else None) != real:
                print("the replay does not follow the real pruner", flush=True)
                return 1
        parts: dict[str, list[tuple]] = {}
        for name, rep in replays.items():
            taken, used = [], 0
            for epochs_of, values in rep:
                if used + epochs_of > args.budget * spent_none:
                    break
                taken.append(values)
                used += epochs_of
            parts[name] = [v for v in taken if v is not None]
            rows[name]["e_budget"].append(used)
            rows[name]["e_same"].append(sum(e for e, _ in rep[:trials]))
            parts[name + " same"] = [v for _, v in rep[:trials] if v is not None]
        scale = Scale.fit(points + [v for p in parts.values() for v in p])
        base.append(hypervolume(points, scale))
        base_e.append(spent_none)
        share.append(len(front(points)) / max(1, len(points)))
        for r in RULES:
            rows[r.name]["budget"].append(hypervolume(parts[r.name], scale))
            rows[r.name]["same"].append(hypervolume(parts[r.name + " same"], scale))
        print(f"  seed {seed}: {len(seq)} trials ({time.perf_counter() - t0:.0f} s), front share of the first "
              f"{trials} {share[-1]:.2f}; default rule at the budget {rows[RULES[0].name]['budget'][-1] / base[-1]:.2f}",
              flush=True)
    print(f"front share (trials of the first {trials} on their four-objective front): "
          f"{statistics.fmean(share):.2f} (per seed {', '.join(f'{s:.2f}' for s in share)})")
    figures: dict[str, float] = {"front_share": round(statistics.fmean(share), 3)}
    for r in RULES:
        row = rows[r.name]
        ratio = statistics.fmean(row["budget"]) / statistics.fmean(base)
        lo, hi = ratio_interval(row["budget"], base)
        same = statistics.fmean(row["same"]) / statistics.fmean(base)
        s_lo, s_hi = ratio_interval(row["same"], base)
        e_b, e_s = sum(row["e_budget"]) / sum(base_e), sum(row["e_same"]) / sum(base_e)
        print(f"{r.name:<30} within {args.budget:.0%}: hypervolume {ratio:.3f} [95 % {lo:.3f}, {hi:.3f}] "
              f"(epochs {e_b:.3f}); same {trials} trials: {same:.3f} [{s_lo:.3f}, {s_hi:.3f}] with {e_s:.3f} "
              f"of the epochs", flush=True)
        key = r.key
        figures[f"{key}_hv"] = round(ratio, 4) if math.isfinite(ratio) else float("nan")
        figures[f"{key}_same_epochs"] = round(e_s, 4)
    result(figures, f"goal a rule with hypervolume >= 0.95 within {args.budget:.0%} of the epochs", started)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

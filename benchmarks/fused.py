"""Fused training (``nas_med.fused``): K runs of one architecture trained as one wide network vs one after another.

(a) The final training of a BreastMNIST 28 px choice: the default final recipe (60 epochs, cosine, AdamW, augment
``none`` and ``light``), 2 variants x 3 seeds = 6 runs of one network, trained by ``fit_many`` (fused) and by six
``fit`` calls (separate, ``NAS_MED_FUSE=0``). Figures: the wall-time ratio fused / separate (goal <= 0.4) and each
run's test AUC both ways, with their mean absolute difference (goal <= 0.01); beside them, the ratio of the six as
one wide network on all the threads (what fusion alone gives, without the parallel groups of ``thread_groups``).
(b) ``confirm``'s cross-validation (``nas_med.confirm.cross_validated_auc``): 4 folds of each of 5 candidates (the
default space's search recipe: 8 epochs, Adam 1e-3), fused vs separate; ratio goal <= 0.5.

The choice in (a) is ``--spec`` (default: two ``simple`` stages 16-32 with batch norm, GAP + linear: 4,914
parameters, a typical BreastMNIST choice of the default space); the five candidates of (b) are that network and four
neighbours (other widths, a third stage, a ``basic`` block). Both ways run in the same process one after the other
(separate first), with ``--threads`` torch threads; the CPU model and load are printed.

--quick (CI): 2 variants x 2 seeds x 2 epochs on 160 training images; 2 candidates x 2 folds x 1 epoch.

Reproduce:  .venv/bin/python benchmarks/fused.py --threads 2     (alone on the machine; ~3 min on 2 cores)
            .venv/bin/python benchmarks/fused.py --quick
"""
from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time

from _common import parser, result, setup, shared_data

SPEC = {"in_channels": 1, "num_classes": 2, "input_size": 28, "head": {"type": "gap_linear"},
        "stages": [{"block": "simple", "width": 16, "norm": "batch"}, {"block": "simple", "width": 32, "norm": "batch"}]}


def cpu_model() -> str:
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown CPU"
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    flags = fields.get("Flags", "").split()
    wanted = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags]
    return f"{fields.get('Model name', '?').strip()} ({', '.join(wanted) or 'no AVX2'})"


def timed(fused: bool, fn):
    os.environ["NAS_MED_FUSE"] = "1" if fused else "0"
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def final_training(spec, data, quick: bool, epochs: int = 60, patience: int = 0):
    """(seconds, test AUCs) of the 6 runs, separate then fused."""
    from nas_med.final.recipe import FinalRecipe, apply_recipe
    from nas_med.fit import fit
    from nas_med.fused import Run, fit_many
    from nas_med.metrics import auc
    from nas_med.train import Normalizer, TrainConfig, predict_probs

    # the bar's 2 variants (augment none / light) x 3 seeds, without a teacher (distillation is its own lever)
    recipe = FinalRecipe(epochs=2 if quick else epochs, patience=0 if quick else patience, distil="off")
    base = TrainConfig(device="cpu")
    seeds = (0, 1) if quick else (0, 1, 2)
    runs = [Run(data, apply_recipe(base, recipe, v), s, None) for v in recipe.variants() for s in seeds]
    normalize = Normalizer(data.train.images)

    def aucs(results):
        return [auc(data.task, data.test.labels.numpy(),
                    predict_probs(r.model, data.test.images, normalize, False).numpy()) for r in results]

    sep_s, sep = timed(False, lambda: [fit(spec, r.data, r.cfg, r.seed) for r in runs])
    fused_s, fused = timed(True, lambda: fit_many(spec, runs))
    with one_group():
        one_s, _ = timed(True, lambda: fit_many(spec, runs))
    names = [f"{v['augment']}/seed {s}" for v in recipe.variants() for s in seeds]
    return sep_s, fused_s, one_s, names, aucs(sep), aucs(fused), runs[0].cfg


@contextlib.contextmanager
def one_group():
    """Every run in one wide network on all the threads (no parallel groups): what fusion alone gives."""
    from nas_med.fused import loop

    groups = loop.thread_groups
    loop.thread_groups = lambda k, size, device: [range(k)]
    try:
        yield
    finally:
        loop.thread_groups = groups


def candidates(spec_dict: dict, quick: bool) -> list[dict]:
    stages = spec_dict["stages"]
    out = [spec_dict,
           {**spec_dict, "stages": [{**s, "width": s["width"] // 2} for s in stages]},
           {**spec_dict, "stages": [*stages, {**stages[-1], "width": 2 * stages[-1]["width"]}]},
           {**spec_dict, "stages": [{**s, "block": "basic"} for s in stages]},
           {**spec_dict, "stages": [{**s, "width": s["width"] * 3 // 2} for s in stages]}]
    return out[:2] if quick else out


def confirm_folds(spec_dict: dict, data, quick: bool):
    import optuna

    from nas_med.confirm import cross_validated_auc
    from nas_med.search import records
    from nas_med.train import TrainConfig

    cfg = TrainConfig(epochs=1 if quick else 8, lr=1e-3, device="cpu")
    trials = [optuna.trial.create_trial(state=optuna.trial.TrialState.COMPLETE, values=[0.5],
                                        user_attrs={records.SPEC: c, records.TRAIN_CONFIG: cfg.to_dict()})
              for c in candidates(spec_dict, quick)]
    folds = 2 if quick else 4
    for i, t in enumerate(trials):
        t.number = i
    sep_s, sep = timed(False, lambda: [cross_validated_auc(t, data, folds) for t in trials])
    fused_s, fused = timed(True, lambda: [cross_validated_auc(t, data, folds) for t in trials])
    return sep_s, fused_s, len(trials), folds, sep, fused


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--spec", default=None, help="the choice as ArchSpec JSON (default: see above)")
    ap.add_argument("--epochs", type=int, default=60, help="epochs of the final recipe in (a) (default 60)")
    ap.add_argument("--patience", type=int, default=0,
                    help="the final recipe's patience in (a) (default 0: every run trains every epoch, as the bar)")
    args = ap.parse_args()
    setup(args)
    print(f"CPU: {cpu_model()}")
    started = time.perf_counter()
    import torch

    from nas_med.arch import ArchSpec, spec_cost
    from nas_med.data import load_dataset

    spec_dict = json.loads(args.spec) if args.spec else SPEC
    spec = ArchSpec.from_dict(spec_dict)
    data = load_dataset("breastmnist", data_root=shared_data("breastmnist"), download=False)
    if args.quick:
        data = data.with_splits(train=data.train.subset(torch.arange(160)))
    print(f"choice: {spec.summary()} ({spec_cost(spec)['params']:,} parameters); {len(data.train)} training images")
    sep_s, fused_s, one_s, names, sep_auc, fused_auc, cfg = final_training(spec, data, args.quick, args.epochs,
                                                                           args.patience)
    print(f"(a) final training, {len(names)} runs of {cfg.epochs} epochs ({cfg.optimizer}, {cfg.schedule}, "
          f"patience {cfg.patience}, precision {cfg.precision}): separate {sep_s:.1f} s, fused {fused_s:.1f} s, ratio "
          f"{fused_s / sep_s:.3f} (fused as one wide network on all {torch.get_num_threads()} threads, without "
          f"parallel groups: {one_s:.1f} s, ratio {one_s / sep_s:.3f})")
    for name, a, b in zip(names, sep_auc, fused_auc):
        print(f"    {name:<16} test AUC separate {a:.4f} fused {b:.4f} ({b - a:+.4f})")
    diff = sum(abs(a - b) for a, b in zip(sep_auc, fused_auc)) / len(names)
    c_sep, c_fused, n_cand, folds, c_sep_auc, c_fused_auc = confirm_folds(spec_dict, data, args.quick)
    print(f"(b) confirm, {n_cand} candidates x {folds} folds: separate {c_sep:.1f} s, fused {c_fused:.1f} s, "
          f"ratio {c_fused / c_sep:.3f}; cross-validated AUCs separate "
          f"{', '.join(f'{a:.4f}' for a in c_sep_auc)}, fused {', '.join(f'{a:.4f}' for a in c_fused_auc)}")
    result({"final_ratio": round(fused_s / sep_s, 3), "auc_mean_abs_diff": round(diff, 4),
            "confirm_ratio": round(c_fused / c_sep, 3)},
           "goal final_ratio <= 0.4, auc_mean_abs_diff <= 0.01, confirm_ratio <= 0.5", started)


if __name__ == "__main__":
    main()

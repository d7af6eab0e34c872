"""Quality: the minimalist choice against ResNet-18 on BreastMNIST (28 and 64 px), and against published figures.

Goal: the minimalist CNN's test AUC is within 0.02 of ResNet-18's trained by nas-med with the same recipe
(auc_gap >= -0.02 at every size), with a small fraction of its parameters; published MedMNIST v2 test AUCs on
BreastMNIST 28 px are printed beside it: ResNet-18 (28) 0.901, AutoKeras 0.871, Google AutoML Vision 0.919.

Per size, a ``nas_med.search.search`` on BreastMNIST (``../shared/data/breastmnist``; default search space, TPE,
median pruner, 8 epochs per candidate, the ``resnet18`` baseline in the same study). Then
``nas_med.retrain.retrain_study`` retrains the minimalist choice (the rule's defaults: fewest parameters within
0.01 validation AUC of the best, CAM quality >= 0), the same rule after ``nas_med.confirm.confirm`` (4-fold
cross-validated AUCs of the near-best front members on train + val: ``nas-med confirm``) and the ResNet-18
baseline with each one's stored recipe (spec,
optimiser settings, the same epochs; best epoch by validation loss) for seeds 0, 1, 2, and tests them on the
test split: AUC mean +- std over seeds with a 95 % bootstrap interval, parameters and epoch time. The published
ResNet-18 was trained 100 epochs with a learning-rate schedule; ours gets the search's short recipe, so compare
the minimalist choice with our ResNet-18 first, and with the published numbers as context.

The figure is the confirmed choice's gap (the workflow README recommends for small validation splits); the
validation-only rule's gap is printed beside it.

Data: BreastMNIST 28 and 64 px (546 train / 78 validation / 156 test), 24 trials per size.
--quick: 28 px only, tiny space, 2 trials x 2 epochs, one seed.

Reproduce:  .venv/bin/python benchmarks/quality.py            (full, ~30 min on 2 shared cores)
            .venv/bin/python benchmarks/quality.py --quick
"""
from __future__ import annotations

import time

from _common import parser, result, setup, shared_data, temp_storage

PUBLISHED = {"ResNet-18 (28)": 0.901, "ResNet-18 (224)": 0.891, "ResNet-50 (28)": 0.857, "auto-sklearn": 0.836,
             "AutoKeras": 0.871, "Google AutoML Vision": 0.919}


def main() -> int:
    ap = parser(__doc__)
    ap.add_argument("--trials", type=int, default=None, help="trials per size (default 24, --quick 2)")
    ap.add_argument("--epochs", type=int, default=None, help="epochs per trial and retraining (default 8, --quick 2)")
    ap.add_argument("--sizes", default=None, help="image sizes (default 28,64, --quick 28)")
    args = ap.parse_args()
    root = shared_data("breastmnist")
    started = time.perf_counter()
    setup(args)
    from nas_med.confirm import confirm
    from nas_med.data import load_dataset
    from nas_med.retrain import retrain_study, retrain_trial
    from nas_med.search import SearchConfig, search

    space, epochs, trials, sizes, seeds, boot = (("tiny", 2, 2, "28", [0], 200) if args.quick
                                                 else ("default", 8, 24, "28,64", [0, 1, 2], 1000))
    epochs, trials = args.epochs or epochs, args.trials or trials
    sizes = [int(s) for s in (args.sizes or sizes).split(",")]
    print(f"breastmnist from {root}; sizes {sizes}; space {space}, {trials} trials x {epochs} epochs + resnet18 "
          f"baseline; retrain seeds {seeds}", flush=True)
    figures: dict[str, float] = {}
    rows = []
    for size in sizes:
        t = time.perf_counter()
        with temp_storage() as url:
            config = SearchConfig(dataset="breastmnist", data_root=str(root), size=size, space=space, trials=trials,
                                  epochs=epochs, study=f"quality-{size}", storage=url, seed=args.seed,
                                  baselines=("resnet18",), pruner="median", sampler="tpe", device="cpu", quiet=True)
            study = search(config)
            search_s = time.perf_counter() - t
            data = load_dataset("breastmnist", data_root=str(root), size=size, seed=args.seed)
            unconfirmed = retrain_trial(study, seeds=seeds, data=data, n_bootstrap=boot, device="cpu")
            t = time.perf_counter()
            aucs = confirm(study, data, folds=2 if args.quick else 4, device="cpu")
            confirm_s = time.perf_counter() - t
            print(f"  {size} px: confirm {confirm_s:.0f} s; cross-validated AUC "
                  + ", ".join(f"trial {n} {a:.4f} (validation {study.trials[n].values[0]:.4f})"
                              for n, a in aucs.items()), flush=True)
            reports = retrain_study(study, seeds=seeds, data=data, n_bootstrap=boot, device="cpu")
        chosen = reports[0]
        resnet = next(r for r in reports if r.kind == "baseline")
        params = {r.name: study.trials[r.trial].user_attrs["params"] for r in (chosen, resnet, unconfirmed)}
        for r in (unconfirmed, chosen, resnet):
            s = r.summary
            label = {id(unconfirmed): "minimalist, validation", id(chosen): "minimalist, confirmed"}
            rows.append((size, r.name if r is resnet else f"{label[id(r)]}, {r.name}", params[r.name], s["auc"],
                         s["accuracy"]["mean"], s["epoch_seconds"]["mean"]))
            print(f"  {size} px {rows[-1][1]:<36} params {params[r.name]:>11,}  test AUC {s['auc']['mean']:.4f} "
                  f"+- {s['auc']['std'] if len(seeds) > 1 else 0:.4f} [{s['auc']['ci_low']:.3f}, "
                  f"{s['auc']['ci_high']:.3f}]  acc {s['accuracy']['mean']:.3f}  epoch "
                  f"{s['epoch_seconds']['mean']:.3f} s", flush=True)
        print(f"  {size} px: search {search_s:.0f} s, {len(study.trials)} trials; architecture of the choice: "
              f"{chosen.spec.summary()} (validation rule alone: {unconfirmed.spec.summary()})", flush=True)
        a, b = chosen.summary["auc"]["mean"], resnet.summary["auc"]["mean"]
        figures[f"auc{size}_gap_unconfirmed"] = round(unconfirmed.summary["auc"]["mean"] - b, 4)
        figures[f"auc{size}_minimalist"] = round(a, 4)
        figures[f"auc{size}_resnet18"] = round(b, 4)
        figures[f"auc{size}_gap"] = round(a - b, 4)
        figures[f"params{size}_ratio"] = round(params[chosen.name] / params[resnet.name], 5)
        figures[f"epoch{size}_ratio"] = round(chosen.summary["epoch_seconds"]["mean"]
                                              / resnet.summary["epoch_seconds"]["mean"], 4)
    if 28 in sizes:
        a = figures["auc28_minimalist"]
        print("published test AUC on BreastMNIST 28 px (MedMNIST v2): "
              + ", ".join(f"{k} {v:.3f} ({a - v:+.3f})" for k, v in PUBLISHED.items())
              + " (in brackets: the minimalist choice minus it)")
    result(figures, "goal auc_gap >= -0.02 at every size", started)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

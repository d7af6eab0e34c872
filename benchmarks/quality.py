"""Quality: the whole default pipeline on BreastMNIST 28 and 64 px against ResNet-18 and the published figures.

Per size: ``nas_med.search.search`` (default space, TPE, median pruner, 30 trials of the 8-epoch search recipe,
the ``resnet18`` baseline in the same study) -> ``nas_med.confirm.confirm`` (4-fold cross-validated AUCs) ->
the final training (``nas_med.final.FinalRecipe`` defaults: AdamW 1e-3, wd 0.05, 10 % linear warm-up + cosine,
60 epochs, batch 32, best validation loss, augmentation ``none`` or ``light`` settled per model on validation
loss, one seed per variant first and more only while two stay close, ``nas_med.final.settle``, printed) of the
confirmed minimalist choice and of ResNet-18 with the same recipe, seeds 0, 1, 2, tested on the test split -> a
``--folds``-fold ensemble of the choice (``export_study(folds=K)``, one seed) exported and tested. Prints test AUC
mean, std over seeds and the 95 % bootstrap interval over test images, parameters (the ensemble's total), wall
time of each stage (the final training's as ``final{size}_seconds`` too, with its number of training runs), and
the published MedMNIST v2 figures (``nas_med.published``) beside them.

The bar (issue 19): minimalist mean >= 0.91 at 28 px with <= 225,000 parameters, whole flow <= 30 min,
ResNet-18 with the same recipe >= 0.88, minimalist >= 0.91 at 64 px.

Data: BreastMNIST 28 and 64 px (546 train / 78 validation / 156 test) from ../shared/data/breastmnist.
--quick: 28 px only, tiny space, 2 trials x 2 epochs, a 2-epoch final recipe, one seed, 2 folds.

Reproduce:  .venv/bin/python benchmarks/quality.py            (full; see benchmarks/README.md for timings)
            .venv/bin/python benchmarks/quality.py --quick
"""
from __future__ import annotations

import time
from pathlib import Path

from _common import parser, result, setup, shared_data, temp_storage


def _line(size: int, label: str, r, params: int) -> str:
    a = r.summary["auc"]
    std = a["std"] if a["std"] == a["std"] else 0.0
    line = (f"  {size} px {label:<44} params {params:>11,}  test AUC {a['mean']:.4f} +- {std:.4f} "
            f"[{a['ci_low']:.3f}, {a['ci_high']:.3f}] (seeds {r.seeds})")
    if r.settled:  # nas_med.final.settle: the final recipe's lr and augmentation, chosen on validation
        tried = ", ".join(f"lr {row['lr']:g} {row['augment']} {row['val_loss']:.4f} (seeds {row.get('seeds')})"
                          + (" (kept)" if row["chosen"] else "") for row in r.settled)
        line += f"\n  {size} px   settled on mean validation loss: {tried}"
    return line


def main() -> int:
    ap = parser(__doc__)
    ap.add_argument("--trials", type=int, default=None, help="search trials per size (default 30, --quick 2)")
    ap.add_argument("--epochs", type=int, default=None, help="epochs per search trial (default 8, --quick 2)")
    ap.add_argument("--sizes", default=None, help="image sizes (default 28,64, --quick 28)")
    ap.add_argument("--resnet-sizes", default=None, help="sizes at which ResNet-18 gets the final training too "
                                                         "(default: every size; its 64 px run takes ~15 min a seed)")
    ap.add_argument("--folds", type=int, default=None, help="members of the exported ensemble (default 5, "
                                                             "--quick 2; 1: none)")
    args = ap.parse_args()
    root = shared_data("breastmnist")
    started = time.perf_counter()
    setup(args)
    import tempfile

    from nas_med.arch import count_params
    from nas_med.confirm import confirm
    from nas_med.data import load_dataset
    from nas_med.export import export_study
    from nas_med.final import FinalRecipe, retrain_study
    from nas_med.published import published_rows
    from nas_med.search import SearchConfig, search

    space, epochs, trials, sizes, seeds, boot, folds = (("tiny", 2, 2, "28", [0], 200, 2) if args.quick
                                                        else ("default", 8, 30, "28,64", [0, 1, 2], 1000, 5))
    epochs, trials, folds = args.epochs or epochs, args.trials or trials, args.folds or folds
    recipe = FinalRecipe(epochs=2) if args.quick else FinalRecipe()
    sizes = [int(s) for s in (args.sizes or sizes).split(",")]
    resnet_sizes = sizes if args.resnet_sizes is None else [int(s) for s in args.resnet_sizes.split(",")]
    print(f"breastmnist from {root}; sizes {sizes}; space {space}, {trials} trials x {epochs} epochs + resnet18 "
          f"baseline; final recipe {recipe.to_dict()}; seeds {seeds}; ensemble of {folds}", flush=True)
    figures: dict[str, float] = {}
    for size in sizes:
        flow = time.perf_counter()
        with temp_storage() as url:
            config = SearchConfig(dataset="breastmnist", data_root=str(root), size=size, space=space, trials=trials,
                                  epochs=epochs, study=f"quality-{size}", storage=url, seed=args.seed,
                                  baselines=("resnet18",), pruner="median", sampler="tpe", device="cpu", quiet=True)
            study = search(config)
            search_s = time.perf_counter() - flow
            data = load_dataset("breastmnist", data_root=str(root), size=size, seed=args.seed)
            t = time.perf_counter()
            confirm(study, data, folds=2 if args.quick else 4, device="cpu")
            confirm_s = time.perf_counter() - t
            t = time.perf_counter()
            reports = retrain_study(study, seeds=seeds, data=data, n_bootstrap=boot, device="cpu", recipe=recipe,
                                    baselines=size in resnet_sizes)
            final_s = time.perf_counter() - t
            chosen = reports[0]
            resnet = next((r for r in reports if r.kind == "baseline"), None)
            p_chosen = count_params_of(chosen, count_params)
            ens, ens_s, card_published = None, 0.0, False
            if folds > 1:
                t = time.perf_counter()
                with tempfile.TemporaryDirectory() as tmp:
                    ens = export_study(study, f"{tmp}/model", seeds=1, n_bootstrap=boot, data=data, cam_images=4,
                                       recipe=recipe, folds=folds).report
                    card = Path(tmp, "model", "README.md").read_text(encoding="utf-8")
                    card_published = "Beside the published figures" in card and f"{folds}-fold ensemble" in card
                ens_s = time.perf_counter() - t
        flow_s = time.perf_counter() - flow - ens_s
        print(_line(size, f"minimalist (confirmed), {chosen.spec.summary()}", chosen, p_chosen), flush=True)
        if resnet is not None:
            print(_line(size, "resnet18, same final recipe", resnet, count_params_of(resnet, count_params)), flush=True)
        else:
            print(f"  {size} px resnet18, same final recipe: not run (--resnet-sizes {args.resnet_sizes})", flush=True)
        if ens is not None:
            print(_line(size, f"minimalist, {folds}-fold ensemble (train+val)", ens, p_chosen * folds), flush=True)
            shown = ("yes" if card_published else "no") if published_rows("breastmnist", size) else \
                "nothing to show (the published figures are for 28 px)"
            print(f"  {size} px the ensemble's model card shows the published figures beside it: {shown}", flush=True)
        print(f"  {size} px wall time: search {search_s:.0f} s ({len(study.trials)} trials), confirm {confirm_s:.0f} s, "
              f"final training {final_s:.0f} s ({len(seeds)} seeds x {len(reports)} models, "
              f"{sum(training_runs(r) for r in reports)} training runs with settling), ensemble {ens_s:.0f} s; "
              f"whole flow (search -> confirm -> final training, no ensemble) {flow_s / 60:.1f} min", flush=True)
        for r in published_rows("breastmnist", size):
            print(f"  {size} px published {r['method']:<22} test AUC {r['auc']:.3f} "
                  f"(minimalist {chosen.summary['auc']['mean'] - r['auc']:+.3f})", flush=True)
        figures[f"auc{size}_minimalist"] = round(chosen.summary["auc"]["mean"], 4)
        figures[f"auc{size}_minimalist_std"] = round(chosen.summary["auc"]["std"], 4) if len(seeds) > 1 else 0.0
        if resnet is not None:
            figures[f"auc{size}_resnet18"] = round(resnet.summary["auc"]["mean"], 4)
        figures[f"params{size}_minimalist"] = p_chosen
        figures[f"flow{size}_minutes"] = round(flow_s / 60, 2)
        figures[f"final{size}_seconds"] = round(final_s)  # the choice's and the baseline's final training
        if ens is not None:
            figures[f"auc{size}_ensemble"] = round(ens.summary["auc"]["mean"], 4)
    result(figures, "goal auc28_minimalist >= 0.91, params28_minimalist <= 225000, flow28_minutes <= 30, "
                    "auc28_resnet18 >= 0.88, "
                    "auc64_minimalist >= 0.91", started)
    return 0


def training_runs(report) -> int:
    """The runs of the final training of one model: every settled variant's seeds, and the reported seeds that
    settling did not train already."""
    kept = next((row.get("seeds", report.seeds) for row in report.settled if row["chosen"]), [])
    return sum(len(row.get("seeds", report.seeds)) for row in report.settled) + len(set(report.seeds) - set(kept))


def count_params_of(report, count_params) -> int:
    from nas_med.arch import build

    return count_params(build(report.spec))


if __name__ == "__main__":
    raise SystemExit(main())

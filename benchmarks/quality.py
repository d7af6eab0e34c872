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

Levers (issue 28; after the flow, per size, unless --no-levers), each measured against the choice trained with the
default final recipe and tested without test-time flips, on the same seeds (paired differences, mean +- std):
  flips        the default recipe's test-time flips (settled on validation; the test AUC with and without them is
               recorded for the same models, never used to choose),
  distillation the study's best front member as teacher, T=4 w=0.5 or none settled on validation (the default
               final recipe's ``distil`` since issue 28; measured against the same choice trained with
               ``--no-distil``, both without test-time flips),
  fidelity     ``--final-fidelity``: the near-best candidates trained once with the final recipe before the rule picks
               (when it picks the same trial the effect is 0 by construction and nothing is retrained),
  all three    what ``export --final-fidelity`` ships (single network; distillation is the default), the headline figure,
beside the published MedMNIST v2 figures and the best MedMNIST+ figure (``nas_med.published``).

--dataset pneumoniamnist|retinamnist (28 px by default) reads ``<name>.npz`` from --data-root (default
../shared/data/<name>); this machine has no network, so a missing file is an error (exit 2), not a download.

Reproduce:  .venv/bin/python benchmarks/quality.py            (full; see benchmarks/README.md for timings)
            .venv/bin/python benchmarks/quality.py --dataset retinamnist --data-root DIR --resnet-sizes none
            .venv/bin/python benchmarks/quality.py --quick
"""
from __future__ import annotations

import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

from _common import SHARED, parser, result, setup, temp_storage

DATASETS = ("breastmnist", "pneumoniamnist", "retinamnist")


def data_root(dataset: str, given: str | None, sizes: list[int]) -> Path:
    """The folder holding ``dataset`` at every size, or exit 2 saying which file is missing and where."""
    from nas_med.data.medmnist import file_names, find_file

    root = Path(given) if given else SHARED / "data" / dataset
    for size in sizes:
        if find_file(dataset, [size], [root]) is None:
            names = file_names(dataset, size)
            print(f"error: {dataset} at {size} px: '{root / names[0]}' does not exist (nor "
                  f"{', '.join(names[1:]) or 'any other name for it'}). This benchmark does not download: put the "
                  f"MedMNIST file there or pass --data-root DIR.", file=sys.stderr)
            raise SystemExit(2)
    return root


def _line(size: int, label: str, r, params: int) -> str:
    a = r.summary["auc"]
    std = a["std"] if a["std"] == a["std"] else 0.0
    line = (f"  {size} px {label:<44} params {params:>11,}  test AUC {a['mean']:.4f} +- {std:.4f} "
            f"[{a['ci_low']:.3f}, {a['ci_high']:.3f}] (seeds {r.seeds})")
    if r.settled:  # nas_med.final.settle: the final recipe's lr and augmentation, chosen on validation
        tried = ", ".join(f"lr {row['lr']:g} {row['augment']}" + (f" distil {row['distil']}" if "distil" in row else "")
                          + f" {row['val_loss']:.4f} (seeds {row.get('seeds')})"
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
    ap.add_argument("--dataset", default="breastmnist", choices=DATASETS, help="MedMNIST set (default breastmnist)")
    ap.add_argument("--data-root", default=None, help="folder of its .npz files (default ../shared/data/<dataset>)")
    ap.add_argument("--no-levers", action="store_true", help="skip the issue-28 levers (flips, distillation, fidelity)")
    args = ap.parse_args()
    dataset = args.dataset
    default_sizes = "28" if args.quick or dataset != "breastmnist" else "28,64"
    root = data_root(dataset, args.data_root, [int(s) for s in (args.sizes or default_sizes).split(",")])
    started = time.perf_counter()
    setup(args)
    import tempfile

    from nas_med.arch import count_params
    from nas_med.confirm import confirm
    from nas_med.data import load_dataset
    from nas_med.export import export_study
    from nas_med.final import FinalRecipe, retrain_study
    from nas_med.published import MEDMNIST_PLUS, published_rows
    from nas_med.search import SearchConfig, search

    space, epochs, trials, sizes, seeds, boot, folds = (("tiny", 2, 2, "28", [0], 200, 2) if args.quick
                                                        else ("default", 8, 30, default_sizes, [0, 1, 2], 1000, 5))
    epochs, trials, folds = args.epochs or epochs, args.trials or trials, args.folds or folds
    recipe = FinalRecipe(epochs=2) if args.quick else FinalRecipe()
    sizes = [int(s) for s in (args.sizes or sizes).split(",")]
    resnet_sizes = (sizes if args.resnet_sizes is None else [] if args.resnet_sizes == "none"
                    else [int(s) for s in args.resnet_sizes.split(",")])
    print(f"{dataset} from {root}; sizes {sizes}; space {space}, {trials} trials x {epochs} epochs + resnet18 "
          f"baseline; final recipe {recipe.to_dict()}; seeds {seeds}; ensemble of {folds}", flush=True)
    figures: dict[str, float] = {}
    for size in sizes:
        flow = time.perf_counter()
        with temp_storage() as url:
            config = SearchConfig(dataset=dataset, data_root=str(root), size=size, space=space, trials=trials,
                                  epochs=epochs, study=f"quality-{size}", storage=url, seed=args.seed,
                                  baselines=("resnet18",), pruner="median", sampler="tpe", device="cpu", quiet=True)
            study = search(config)
            search_s = time.perf_counter() - flow
            data = load_dataset(dataset, data_root=str(root), size=size, seed=args.seed, download=False)
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
            lever_lines: list[str] = []
            lever_s = 0.0
            if not args.no_levers:
                t = time.perf_counter()
                figures.update(levers(study, data, chosen, recipe, seeds, boot, size, lever_lines))
                lever_lines.append(f"  {size} px levers took {time.perf_counter() - t:.0f} s (not in the flow's time)")
                lever_s = time.perf_counter() - t  # kept out of the flow's time
        flow_s = time.perf_counter() - flow - ens_s - lever_s
        print(_line(size, f"minimalist (confirmed), {chosen.spec.summary()}", chosen, p_chosen), flush=True)
        if resnet is not None:
            print(_line(size, "resnet18, same final recipe", resnet, count_params_of(resnet, count_params)), flush=True)
        else:
            print(f"  {size} px resnet18, same final recipe: not run (--resnet-sizes {args.resnet_sizes})", flush=True)
        if ens is not None:
            print(_line(size, f"minimalist, {folds}-fold ensemble (train+val)", ens, p_chosen * folds), flush=True)
            shown = ("yes" if card_published else "no") if published_rows(dataset, size) else \
                "nothing to show (the published figures are for 28 px)"
            print(f"  {size} px the ensemble's model card shows the published figures beside it: {shown}", flush=True)
        print(f"  {size} px wall time: search {search_s:.0f} s ({len(study.trials)} trials), confirm {confirm_s:.0f} s, "
              f"final training {final_s:.0f} s ({len(seeds)} seeds x {len(reports)} models, "
              f"{sum(training_runs(r) for r in reports)} training runs with settling), ensemble {ens_s:.0f} s; "
              f"whole flow (search -> confirm -> final training, no ensemble) {flow_s / 60:.1f} min", flush=True)
        for r in published_rows(dataset, size):
            print(f"  {size} px published {r['method']:<22} test AUC {r['auc']:.3f} "
                  f"(minimalist {chosen.summary['auc']['mean'] - r['auc']:+.3f})", flush=True)
        plus = MEDMNIST_PLUS.get(dataset, {}).get(size)
        if plus is not None:
            print(f"  {size} px published MedMNIST+ best (large pretrained) test AUC {plus:.3f} "
                  f"(minimalist {chosen.summary['auc']['mean'] - plus:+.3f})", flush=True)
        for line in lever_lines:
            print(line, flush=True)
        figures[f"auc{size}_minimalist"] = round(chosen.summary["auc"]["mean"], 4)
        figures[f"auc{size}_minimalist_std"] = round(chosen.summary["auc"]["std"], 4) if len(seeds) > 1 else 0.0
        if resnet is not None:
            figures[f"auc{size}_resnet18"] = round(resnet.summary["auc"]["mean"], 4)
        figures[f"params{size}_minimalist"] = p_chosen
        figures[f"flow{size}_minutes"] = round(flow_s / 60, 2)
        figures[f"final{size}_seconds"] = round(final_s)  # the choice's and the baseline's final training
        if ens is not None:
            figures[f"auc{size}_ensemble"] = round(ens.summary["auc"]["mean"], 4)
    if dataset == "breastmnist":
        goal = ("goal auc28_minimalist >= 0.91, params28_minimalist <= 225000, flow28_minutes <= 30, "
                "auc28_resnet18 >= 0.88, auc64_minimalist >= 0.91; issue 28: auc28_all_levers >= 0.925 with "
                "params28_all_levers <= 100000")
    else:
        line = {r["method"]: r["auc"] for r in published_rows(dataset, 28)}
        goal = (f"goal {dataset}: auc28_all_levers >= {line.get('ResNet-18 (28)')}, the published ResNet-18 at 28 px, "
                f"aiming at {line.get('Google AutoML Vision')}, Google AutoML Vision")
    result(figures, goal, started)
    return 0


def _aucs(report) -> list[float]:
    return [float(r["auc"]) for r in report.per_seed]


def _plain(report) -> list[float]:
    """Per-seed test AUCs of ``report``'s models without test-time flips."""
    per = report.test_flips.get("test_auc_per_seed")
    return list(per["off"]) if per else _aucs(report)


def _effect(size: int, label: str, after: list[float], before: list[float], note: str = "",
            lines: list[str] | None = None) -> float:
    diffs = [a - b for a, b in zip(after, before)]
    mean = statistics.fmean(diffs)
    std = statistics.stdev(diffs) if len(diffs) > 1 else 0.0
    lines.append(f"  {size} px lever {label:<13} test AUC {statistics.fmean(after):.4f} vs {statistics.fmean(before):.4f}"
                 f": {mean:+.4f} +- {std:.4f} (paired over seeds, per seed {[round(d, 4) for d in diffs]}){note}")
    return mean


def levers(study, data, chosen, recipe, seeds, boot, size, lines: list[str]) -> dict[str, float]:
    """Each issue-28 lever's effect on the test AUC of the chosen network (see the module docstring); the lines to
    print are appended to ``lines``."""
    from nas_med.arch import count_params
    from nas_med.final import retrain_trial
    from nas_med.final.fidelity import choose_at_final_fidelity
    from nas_med.final.recipe import DISTIL_GRID

    out, base = {}, _plain(chosen)
    flips = chosen.test_flips
    if flips.get("test_auc_per_seed"):
        out[f"flips{size}_effect"] = round(_effect(size, "flips", flips["test_auc_per_seed"]["on"], base,
                                                   f"; kept on validation: {flips['chosen']} ({flips['why']})", lines), 4)
    t = time.perf_counter()  # the flow's recipe distils (settled on validation) unless told not to: its effect
    distilled = chosen if recipe.distils() else retrain_trial(study, chosen.trial, seeds, data, boot, device="cpu",
                                                              recipe=replace(recipe, distil=DISTIL_GRID))
    alone = retrain_trial(study, chosen.trial, seeds, data, boot, device="cpu",
                          recipe=replace(recipe, distil="off", test_flips="off"))
    d = distilled.distil
    self_taught = " = the choice: self-distillation" if d["teacher"]["trial"] == chosen.trial else ""
    note = (f"; teacher trial {d['teacher']['trial']}{self_taught} ({d['teacher']['params']:,} parameters), kept "
            f"{d['kept']}, "
            f"validation AUC gain {d.get('val_auc_gain')}; {time.perf_counter() - t:.0f} s")
    out[f"distil{size}_effect"] = round(_effect(size, "distillation", _plain(distilled), _aucs(alone), note,
                                                lines), 4)
    t = time.perf_counter()
    pick, record = choose_at_final_fidelity(study, data, recipe, device="cpu")
    cost = time.perf_counter() - t
    if pick.trial.number == chosen.trial:
        lines.append(f"  {size} px lever fidelity      the final fidelity keeps trial {chosen.trial}: effect 0 by "
                     f"construction ({record['why']}; {cost:.0f} s)")
        out[f"fidelity{size}_effect"] = 0.0
    else:
        other = retrain_trial(study, pick.trial.number, seeds, data, boot, device="cpu",
                              recipe=replace(recipe, test_flips="off"))
        out[f"fidelity{size}_effect"] = round(_effect(size, "fidelity", _aucs(other), base,
                                                      f"; trial {pick.trial.number} instead of {chosen.trial}; "
                                                      f"{cost:.0f} s to choose", lines), 4)
    everything = chosen if pick.trial.number == chosen.trial and recipe.distils() else retrain_trial(
        study, pick.trial.number, seeds, data, boot, device="cpu", recipe=replace(recipe, distil=DISTIL_GRID))
    params = count_params_of(everything, count_params)
    a = everything.summary["auc"]
    lines.append(f"  {size} px all three levers (export --final-fidelity, distillation by default): trial {pick.trial.number}, "
                 f"{params:,} parameters, test AUC {a['mean']:.4f} +- {a['std'] if a['std'] == a['std'] else 0:.4f} "
                 f"[{a['ci_low']:.3f}, {a['ci_high']:.3f}]")
    out[f"auc{size}_all_levers"] = round(a["mean"], 4)
    out[f"params{size}_all_levers"] = params
    return out


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

"""``nas-med export``: retrain the chosen trial, test it and write a self-contained model folder."""
from __future__ import annotations

import click

from ..defaults import DEFAULT_COVERAGE
from .front import RULE_HELP, print_wide, retrain_table, rule_options, wide_console
from .options import old_spelling, parse_folds, recipe_options, storage_option

EXPORT_HELP = ("The study stores no weights, so export trains: the chosen trial is retrained --seeds times (its own "
               "seed first, then the following ones), every seed is tested, and the first seed's model is exported "
               "(--seeds 1 trains once, with the trial's own seed). The folder is written beside --out and renamed "
               "into place, so a failure leaves nothing behind. " + RULE_HELP)


@click.command("export", epilog=EXPORT_HELP)
@click.option("--study", "study_name", required=True, help="Study name.")
@storage_option()
@click.option("--out", required=True, type=click.Path(file_okay=True, dir_okay=True),
              help="Folder to write (must not exist or be empty, unless --force).")
@rule_options
@click.option("--seeds", type=int, default=3, show_default=True, help="Retraining seeds (the first is exported).")
@click.option("--force", is_flag=True, help="Replace a non-empty --out folder.")
@click.option("--bootstrap", "n_bootstrap", type=int, default=1000, show_default=True,
              help="Bootstrap resamples of test images for the 95% intervals.")
@click.option("--cam-images", type=int, default=16, show_default=True,
              help="Test images shown (and scored) in the model card's Grad-CAM grid.")
@click.option("--device", default=None, help="Training device (default: the trial's, usually auto).")
@click.option("--precision", default=None, help="Training precision: auto, fp32, bf16 or fp16 (default: the "
                                                "trial's, usually auto). The exported weights are fp32 whatever it is.")
@click.option("--target-sensitivity", type=float, default=None,
              help="Binary tasks: the threshold is the highest with at least this validation sensitivity of the "
                   "positive class (default: Youden's J).")
@click.option("--calibration-folds", type=int, default=None, metavar="K",
              help="Fit temperature, threshold and prediction sets on the out-of-fold predictions of K models of "
                   "the same recipe over train + val (K extra trainings); 0: on the validation split. [default: 5 "
                   "where the validation split is small (under 200 images or 30 of a class), else 0]")
@click.option("--coverage", type=float, default=DEFAULT_COVERAGE, show_default=True,
              help="Share of images whose prediction set holds the true class (split conformal), in (0, 1).")
@click.option("--metadata", type=click.Path(dir_okay=False), default=None,
              help="CSV of attributes per image (a filename or index column and columns such as sex, age, site): "
                   "the card gives AUC, sensitivity and specificity per subgroup of the test split.")
@click.option("--distil/--no-distil", default=None,
              help="Distil (the default final recipe does): train the study's best front member (highest validation "
                   "AUC; the fold ensemble with --ensemble) with the final recipe as a teacher, and let validation "
                   "decide whether the exported model learns from its soft targets (T=4, w=0.5) or not; the export "
                   "stays the chosen network alone. --no-distil: no teacher. [default: the recipe's 'distil']")
@click.option("--final-fidelity", is_flag=True,
              help="Choose at the final fidelity: train each near-best candidate (those `confirm` kept, else the "
                   "rule's near-best set) once with the final recipe and let the rule pick on those validation "
                   "AUCs (one extra final-recipe run per candidate). The card says which fidelity decided.")
@recipe_options
def export_command(study_name: str, storage: str | None, out: str, rule, trial_number: int | None, seeds: int, force: bool, n_bootstrap: int,
                   cam_images: int, device: str | None, precision: str | None,
                   target_sensitivity: float | None, calibration_folds: int | None, coverage: float,
                   metadata: str | None, distil: bool | None, final_fidelity: bool, recipe: str, ensemble: str | None,
                   old_folds: str | None) -> None:
    """Export the minimalist choice (or --trial N) as spec.json, safetensors, TorchScript, ONNX, preprocessing
    and a model card."""
    from ..confirm import is_confirmed, small_validation
    from ..conformal import check_coverage
    from ..crossfit import check_calibration_folds
    from ..export import export_study
    from ..final.recipe import check_recipe_name
    from ..search.study import load_nas_study
    from ..select import choose
    from .stages import stage_progress

    ensemble = old_spelling(ensemble, old_folds, "export --folds", "--ensemble",
                            "the members of a fold ensemble; confirm's cross-validation folds are --cv-folds")
    k = parse_folds(ensemble)  # bad --ensemble / --recipe: one line, exit 2, before the study is opened
    check_recipe_name(recipe)
    if calibration_folds is not None:
        check_calibration_folds(calibration_folds)
    check_coverage(coverage)
    study = load_nas_study(study_name, storage)
    console = wide_console()
    small = small_validation(study)
    if small and trial_number is None:
        choice = choose(study, None, rule)
        if not is_confirmed(study, choice.trial.number):
            click.echo(f"Warning: exporting trial {choice.trial.number}, an unconfirmed choice: {small}, so one "
                       f"run's AUC may have picked it by luck. Run `nas-med confirm --study {study_name}` first "
                       "to choose on cross-validated AUCs.", err=True)
    with stage_progress(study, device):
        result = export_study(study, out, trial_number=trial_number, seeds=seeds, force=force,
                              n_bootstrap=n_bootstrap, device=device, cam_images=cam_images,
                              rule=rule,
                              target_sensitivity=target_sensitivity, precision=precision,
                              recipe=recipe, folds=k, calibration_folds=calibration_folds, coverage=coverage,
                              metadata=metadata, distil=distil, final_fidelity=final_fidelity)
    console.print(f"{'★ minimalist choice' if trial_number is None else 'chosen'}: {result.choice.reason}",
                  soft_wrap=True)
    print_wide(console, retrain_table([result.report]))
    files = ", ".join(sorted(p.name for p in result.path.iterdir()))
    console.print(f"exported trial {result.choice.trial.number} (seed {result.report.seeds[0]}) to {result.path}: "
                  f"{files}", soft_wrap=True)
    _print_operating_point(console, result.path)
    console.print("parity with the PyTorch model (max abs diff): "
                  + ", ".join(f"{k} {v:.1e}" for k, v in result.parity.items()), soft_wrap=True)


def _print_operating_point(console, folder) -> None:
    from ..export.load import read_json

    op = read_json(folder / "operating_point.json")
    test = op.get("test") or {}
    ece = op.get("ece") or {}
    calib = "" if not ece else (f"; ECE on test {ece['test_before']:.3f} -> {ece['test_after']:.3f} "
                                f"(temperature {op['temperature']:.2f})")
    if op.get("positive_class") is not None:
        console.print(f"operating point: {op['positive_class']} when p >= {op['threshold']:.4f} ({op['rule']}); "
                      f"test sensitivity {test['sensitivity']:.4f} ({test['true_positives']} of "
                      f"{test['positives']}), specificity {test['specificity']:.4f}{calib}", soft_wrap=True,
                      highlight=False, markup=False)
    elif calib:
        console.print(f"calibration{calib}", soft_wrap=True, highlight=False, markup=False)
    conf = op.get("conformal")
    if conf:
        console.print(f"prediction sets at {conf['coverage']:.0%} coverage (calibrated on {conf['calibrated_on']}): "
                      f"test coverage {conf['test']['coverage']:.3f}, mean set size "
                      f"{conf['test']['mean_set_size']:.2f}", soft_wrap=True, highlight=False, markup=False)


def register(cli: click.Group) -> None:
    cli.add_command(export_command)

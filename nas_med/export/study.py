"""``export_study``: retrain the chosen trial of a study, test it and write its folder."""
from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

import optuna

from ..conformal import DEFAULT_COVERAGE, check_coverage
from ..crossfit import calibration_folds_for, check_calibration_folds, out_of_fold
from ..data.types import Dataset
from ..errors import UserError, disk_full
from ..final import FinalPlan, TestReport, study_recipe, train_final, training_data
from ..final.fidelity import choose_at_final_fidelity
from ..final.recipe import DISTIL_GRID
from ..progress import emit
from ..search import records
from ..search.records import load_study_data, stored_config
from ..select import Choice, Rule, choose, completed, value
from ..train import TrainConfig
from .card import CardContext
from .subgroups import read_metadata
from .write import check_target, make_temp, publish, remove_empty, write_export

__all__ = ["ExportResult", "export_study"]

log = logging.getLogger(__name__)


@dataclass
class ExportResult:
    """Where the folder is, what was exported and why, its test report and the measured parity."""

    path: Path
    choice: Choice
    report: TestReport
    parity: dict[str, float]
    cam_quality: float


def _epoch_rows(study: optuna.Study, t) -> dict:
    """The objective's epoch seconds (modelled or measured) and, where modelled, the measured ones beside it;
    the study's reproducibility record."""
    from ..search.reproducibility import study_note

    device, measured = t.user_attrs.get(records.DEVICE, "?"), records.measured_epoch_seconds(t)
    if measured is None:
        return {f"epoch seconds ({device})": f"{value(t, 'epoch_seconds'):.3f}"}
    note = study_note(study)
    return {"epoch seconds (cost model, the search's objective)": f"{value(t, 'epoch_seconds'):.3f}",
            f"epoch seconds measured ({device})": f"{measured:.3f}", **({"search record": note} if note else {})}


def _card_context(study: optuna.Study, choice: Choice, own_seed: int, fidelity: dict | None = None) -> CardContext:
    cfg = stored_config(study)
    t = choice.trial
    objectives = {"validation AUC": f"{value(t, 'auc'):.3f}", "parameters": f"{int(value(t, 'params')):,}",
                  "FLOPs": "-" if records.flops(t) is None else f"{records.flops(t):,}",
                  **_epoch_rows(study, t),
                  f"CAM quality ({cfg.get('cam_method', 'gradcam')}, ROAD, {cfg.get('cam_images')} val images)":
                      f"{value(t, 'cam_quality'):+.3f}"}
    if t.user_attrs.get(records.MASK_ENERGY) is not None:  # datasets with lesion masks
        objectives["mask energy (share of the CAM inside the lesion masks)"] = f"{t.user_attrs[records.MASK_ENERGY]:.3f}"
    baselines = [{"name": records.baseline_name(b), "trial": b.number, "auc": value(b, "auc"),
                  "params": int(value(b, "params")), "epoch_seconds": value(b, "epoch_seconds"),
                  "cam_quality": value(b, "cam_quality")}
                 for b in completed(study, baselines=True) if b.number != t.number]
    return CardContext(study.study_name, t.number, value(t, "auc"), records.kind(t), choice.reason, cfg.get("dataset"),
                       cfg.get("fraction", 1.0), objectives, baselines, own_seed,
                       {k: cfg.get(k) for k in ("dataset", "fraction", "size", "channels", "seed", "space", "epochs",
                                                "sampler", "pruner", "cam_method", "cam_images", "versions")},
                       fidelity or {})


def export_study(study: optuna.Study, out: str | Path, *, trial_number: int | None = None,
                 seeds: int | Sequence[int] = 3, force: bool = False, n_bootstrap: int = 1000,
                 device: str | None = None, data: Dataset | None = None, cam_images: int = 16,
                 rule: Rule | None = None, precision: str | None = None, target_sensitivity: float | None = None,
                 recipe="final", folds: int | None = None, calibration_folds: int | None = None,
                 coverage: float = DEFAULT_COVERAGE, metadata: str | Path | None = None,
                 distil: bool | None = None, final_fidelity: bool = False) -> ExportResult:
    """Retrain the chosen trial (``trial_number`` or the minimalist choice under ``rule``), test it and write the
    folder ``out``.

    Checks ``out`` before training (exists and non-empty without ``force``, or not writable: UserError); writes
    into a temporary folder beside it and renames it into place, so a failure leaves nothing behind. The model
    is trained with the study's final recipe (``recipe="search"``: the trial's search config); ``folds`` K > 1
    exports a K-fold ensemble (``nas_med.final.ensemble``). Temperature, threshold and the prediction sets at
    ``coverage`` are fitted on the out-of-fold predictions of ``calibration_folds`` models of the same recipe
    (``nas_med.crossfit``; 0: on the validation split; None: K = 5 where the validation split is small);
    ``metadata`` (a CSV, ``export.subgroups``) adds figures per subgroup of the test split to the card; ``distil``
    True settles distillation from the study's best front member on validation (``DISTIL_GRID``, where the recipe
    lists no ``distil`` values of its own; ``nas_med.final.teacher``), False trains without a teacher, None keeps
    the recipe's ``distil`` (the default recipe settles it); ``final_fidelity`` (without ``trial_number``)
    trains the near-best candidates once with the final recipe before the rule picks (``nas_med.final.fidelity``)."""
    out = Path(out)
    if precision is not None:
        from ..errors import look_up
        from ..precision import PRECISIONS

        look_up(precision, PRECISIONS, "precision")
    if cam_images < 2:
        raise UserError(f"--cam-images must be at least 2, got {cam_images}.")
    if target_sensitivity is not None and not 0 < target_sensitivity <= 1:
        raise UserError(f"--target-sensitivity must be in (0, 1], got {target_sensitivity}.")
    if calibration_folds is not None:
        check_calibration_folds(calibration_folds)
    check_coverage(coverage)
    check_target(out, force)
    choice = choose(study, trial_number, rule)
    final = study_recipe(study, recipe, folds)
    if distil is False and final is not None:
        final = replace(final, distil="off")
    if distil:
        if final is None:
            raise UserError("--distil trains with the final recipe; it cannot be used with --recipe search.")
        if not final.distils():
            final = replace(final, distil=DISTIL_GRID)
    if final_fidelity and final is None:
        raise UserError("--final-fidelity compares candidates trained with the final recipe; it cannot be used with "
                        "--recipe search.")
    plan = FinalPlan(final, seeds, n_bootstrap, device, precision, keep_model=True)
    tmp, created = make_temp(out)
    try:
        data = data if data is not None else load_study_data(study)
        subgroups = None if metadata is None else read_metadata(
            metadata, (data.info.split_files or {}).get("test"), len(data.test))  # checked before training
        fidelity = None
        if final_fidelity and trial_number is None and final is not None:
            choice, fidelity = choose_at_final_fidelity(study, data, final, rule, device, precision)
        report = train_final(study, choice, plan, data)
        trained_on = training_data(data, plan)
        calibration_folds = calibration_folds_for(trained_on, calibration_folds)
        held_out = (out_of_fold(report.spec, trained_on, TrainConfig.from_dict(report.train_config), calibration_folds,
                                bool(report.test_flips.get("chosen"))) if calibration_folds else None)
        method = stored_config(study).get("cam_method", "gradcam")
        emit("export", 1, 1, "writing the folder: TorchScript, ONNX and parity, temperature, threshold and "
             "prediction sets on held-out predictions, test figures, CAM grid, model card")
        parity, cam_quality = write_export(tmp, report, trained_on,
                                           card=_card_context(study, choice, report.train_config["seed"], fidelity),
                                           cam_method=method, cam_images=cam_images,
                                           target_sensitivity=target_sensitivity, held_out=held_out,
                                           coverage=coverage, subgroups=subgroups)
        check_target(out, force)  # the target may have changed while training
        publish(tmp, out)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        remove_empty(created)
        full = disk_full(exc, f"--out '{out}'", "; nothing was written (the partial folder was removed)")
        if full is not None:
            raise full from None
        raise
    log.info("exported trial %d to %s", choice.trial.number, out)
    report.model = None
    return ExportResult(out, choice, report, parity, cam_quality)

"""``nas-med confirm``: cross-validate the near-best front members so the minimalist rule can trust them."""
from __future__ import annotations

import click

from ..defaults import DEFAULT_FOLDS, DEFAULT_MAX_CANDIDATES
from ..select import DEFAULT_AUC_TOLERANCE, Rule
from .options import old_spelling, storage_option


@click.command("confirm")
@click.option("--study", "study_name", required=True, help="Study name.")
@storage_option()
@click.option("--cv-folds", "folds", type=int, default=None,
              help=f"Cross-validation folds: stratified over the training and validation images pooled, a patient "
                   f"group in one fold (old spelling: --folds; export's ensemble members are --ensemble). "
                   f"[default: {DEFAULT_FOLDS}]")
@click.option("--folds", "old_folds", type=int, default=None, hidden=True, help="Old spelling of --cv-folds.")
@click.option("--max-candidates", type=click.IntRange(min=1), default=DEFAULT_MAX_CANDIDATES, show_default=True,
              help="At most this many near-best front members, best validation AUC first.")
@click.option("--auc-tolerance", type=float, default=DEFAULT_AUC_TOLERANCE, show_default=True,
              help="Minimalist rule: AUC tolerance below the best (near-best = within it plus one standard error).")
@click.option("--device", default=None, help="Device (default: the trials', usually auto).")
def confirm_command(study_name: str, storage: str | None, folds: int | None, old_folds: int | None,
                    max_candidates: int, auc_tolerance: float, device: str | None) -> None:
    """Re-score the near-best Pareto-front members by K-fold cross-validation on train + val.

    A small validation split makes one run's AUC noisy; the cross-validated AUCs are stored on the study and
    from then on `front`, `export`, `report` and `retrain` apply the minimalist rule to them."""
    from ..confirm import confirm
    from ..search.study import load_nas_study
    from ..select import completed, value
    from .front import print_front, wide_console
    from .stages import stage_progress

    folds = old_spelling(folds, old_folds, "confirm --folds", "--cv-folds",
                         "cross-validation folds; export's ensemble members are --ensemble")
    folds = DEFAULT_FOLDS if folds is None else folds
    study = load_nas_study(study_name, storage)
    with stage_progress(study, device):
        aucs = confirm(study, folds=folds, auc_tolerance=auc_tolerance, max_candidates=max_candidates,
                       device=device)
    by_number = {t.number: t for t in completed(study)}
    for number, cv in aucs.items():
        click.echo(f"trial {number}: validation AUC {value(by_number[number], 'auc'):.4f}, {folds}-fold "
                   f"cross-validated AUC {cv:.4f}")
    rule = Rule(auc_tolerance)
    print_front(study, wide_console(), rule)
    from ..dashboard import mark_choice

    mark_choice(study, rule)


def register(cli: click.Group) -> None:
    cli.add_command(confirm_command)

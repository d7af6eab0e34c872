"""``nas-med evaluate``: an exported model on another dataset with the same classes (external validation)."""
from __future__ import annotations

import click


@click.command("evaluate")
@click.argument("model_dir", type=click.Path())
@click.option("--dataset", required=True, help="A MedMNIST 2D name, radimagenet-msk or folder:PATH whose class "
                                               "names are the model's (matched by name, in any order).")
@click.option("--data-root", type=click.Path(file_okay=False), default=None,
              help="Folder holding the dataset files (MedMNIST .npz, RadImageNet tree).")
@click.option("--split", default=None, metavar="test|val|train|all",
              help="Images to evaluate on. [default: all for folder:PATH, test for fixed splits]")
@click.option("--name", default=None, help="Name of the record (evaluations/NAME.json). [default: dataset-split]")
@click.option("--metadata", type=click.Path(dir_okay=False), default=None,
              help="CSV of attributes per image for subgroup figures: a filename (folder datasets) or index column "
                   "and columns such as sex, age (cut into quartile bands), site, device.")
@click.option("--bootstrap", "n_bootstrap", type=int, default=1000, show_default=True,
              help="Bootstrap resamples for the intervals.")
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None,
              help="Cache of downloads and prepared tensors. [default: $NAS_MED_CACHE or ~/.cache/nas-med]")
@click.option("--download/--no-download", default=True, show_default=True,
              help="Download a missing MedMNIST file into the cache.")
def evaluate_command(model_dir: str, dataset: str, data_root: str | None, split: str | None, name: str | None,
                     metadata: str | None, n_bootstrap: int, cache_dir: str | None, download: bool) -> None:
    """Test the model exported in MODEL_DIR on another dataset: AUC, sensitivity and specificity with bootstrap
    intervals at the stored operating point and at the best threshold for that data, calibration and prediction
    sets there. Writes MODEL_DIR/evaluations/NAME.json and a card section; the weights are never changed."""
    from ..export.evaluate import evaluate

    result = evaluate(model_dir, dataset, data_root=data_root, split=split, name=name, n_bootstrap=n_bootstrap,
                      cache_dir=cache_dir, download=download, metadata=metadata)
    r = result.record
    m = r.get("at_stored_threshold") or r["at_argmax"]

    def ci(entry: dict) -> str:
        lo, hi = entry["ci"]
        if entry["value"] is None:
            return "n/a"
        return f"{entry['value']:.4f}" + ("" if lo is None or lo != lo else f" [{lo:.4f}, {hi:.4f}]")

    click.echo(f"{r['dataset']} ({r['split']}, {r['n']} images): AUC {ci(m['auc'])}; sensitivity "
               f"{ci(m['sensitivity'])}, specificity {ci(m['specificity'])}"
               + (f" at the stored threshold {r['at_stored_threshold']['threshold']:.4f}"
                  if "at_stored_threshold" in r else " (argmax)"))
    if "at_best_threshold" in r:
        b = r["at_best_threshold"]
        click.echo(f"best threshold for this data {b['threshold']:.4f} (Youden's J here, optimistic): sensitivity "
                   f"{ci(b['sensitivity'])}, specificity {ci(b['specificity'])}")
    cal = r["calibration"]
    click.echo(f"calibration: ECE {cal['ece_unscaled']:.4f} unscaled, {cal['ece_at_stored_temperature']:.4f} at the "
               f"stored temperature {cal['stored_temperature']:.3f} (this data would want "
               f"{cal['temperature_this_data_wants']:.3f})")
    if "prediction_sets" in r:
        p = r["prediction_sets"]
        click.echo(f"prediction sets at {p['coverage']:.0%}: coverage here {p['empirical_coverage']:.4f}, mean size "
                   f"{p['mean_set_size']:.2f}")
    over = r["model_data_overlap"]
    if isinstance(over, dict):
        copies = ", ".join(f"{over[s]} of its {s}" for s in ("train", "val", "test") if s in over)
        click.echo(f"copies of the model's own images among these (pHash, <= {over['threshold']} bits): {copies}")
    else:
        click.echo(f"copies of the model's own images: {over}")
    for g in r.get("subgroups") or []:
        click.echo(f"  {g['attribute']} = {g['value']}: {g['n']} images, AUC {ci(g['auc'])}, sensitivity "
                   f"{ci(g['sensitivity'])}, specificity {ci(g['specificity'])}"
                   + ("  (too few to say)" if g["too_small"] else ""))
    click.echo(f"written: {result.path} (and the card's External evaluations section)")


def register(cli: click.Group) -> None:
    cli.add_command(evaluate_command)

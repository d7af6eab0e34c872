"""``nas-med predict``: class probabilities for image files from an exported model folder."""
from __future__ import annotations

import json

import click


@click.command("predict")
@click.argument("folder", type=click.Path())
@click.argument("images", nargs=-1, required=True, type=click.Path())
@click.option("--cam-out", type=click.Path(file_okay=False), default=None,
              help="Write a Grad-CAM overlay of the predicted class per image into this folder.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON list instead of text lines.")
@click.option("--threshold", type=float, default=None,
              help="Binary models: call the positive class when its probability is at least this (default: the "
                   "threshold stored in operating_point.json, chosen on validation).")
@click.option("--coverage", type=float, default=None,
              help="Share of images whose prediction set should hold the true class, in (0, 1) (default: the "
                   "coverage stored at export, 0.9).")
def predict_command(folder: str, images: tuple[str, ...], cam_out: str | None, as_json: bool,
                    threshold: float | None, coverage: float | None) -> None:
    """Print class probabilities for IMAGES (PNG/JPEG) with the model exported in FOLDER.

    Each image is converted to the model's channels and size and normalised as in preprocessing.json.
    Probabilities are a softmax over classes (per-label sigmoids for multi-label tasks) of the logits divided
    by the temperature fitted on validation (operating_point.json). A binary model calls its positive class
    when that class's probability is at least the threshold; other models take the most probable class. With
    each image comes its prediction set: the classes a split-conformal rule keeps so that the set holds the true
    class for the stored share (--coverage) of images."""
    from ..export import predict_images

    rows = predict_images(folder, images, cam_out, threshold=threshold, coverage=coverage)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        probs = "  ".join(f"{c} {p:.4f}" for c, p in row["probabilities"].items())
        pred = row["prediction"] if isinstance(row["prediction"], str) else ",".join(row["prediction"]) or "-"
        cam = f"  (CAM: {row['cam']})" if row["cam"] else ""
        rule = (f" (p({row['positive_class']}) >= {row['threshold']:.4f})"
                if row.get("threshold") is not None and pred == row.get("positive_class") else
                f" (p({row['positive_class']}) < {row['threshold']:.4f})" if row.get("threshold") is not None else "")
        sets = ("" if "prediction_set" not in row else
                f"  set at {row['coverage']:.0%}: {{{', '.join(row['prediction_set'])}}}")
        click.echo(f"{row['image']}: {probs}  -> {pred}{rule}{sets}{cam}")


def register(cli: click.Group) -> None:
    cli.add_command(predict_command)

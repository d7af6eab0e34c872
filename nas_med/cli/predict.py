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
def predict_command(folder: str, images: tuple[str, ...], cam_out: str | None, as_json: bool) -> None:
    """Print class probabilities for IMAGES (PNG/JPEG) with the model exported in FOLDER.

    Each image is converted to the model's channels and size and normalised as in preprocessing.json.
    Probabilities are a softmax over classes for single-label tasks (they sum to 1) and per-label sigmoids
    for multi-label tasks."""
    from ..export import predict_images

    rows = predict_images(folder, images, cam_out)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        probs = "  ".join(f"{c} {p:.4f}" for c, p in row["probabilities"].items())
        pred = row["prediction"] if isinstance(row["prediction"], str) else ",".join(row["prediction"]) or "-"
        cam = f"  (CAM: {row['cam']})" if row["cam"] else ""
        click.echo(f"{row['image']}: {probs}  -> {pred}{cam}")


def register(cli: click.Group) -> None:
    cli.add_command(predict_command)

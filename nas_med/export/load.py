"""Reading an exported folder back: the model (``load``), its preprocessing, and predictions for image files.

Imports torch, safetensors, PIL and the arch package only (no Optuna), so that a deployed model loads light.
Every model input is normalised float (B, C, H, W): ``(uint8 / 255 - mean) / std`` per channel; outputs are logits.
"""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from ..arch import ArchSpec, build, cam_target_layer
from ..arch.flip import unwrap_flips
from ..errors import UserError
from ..metrics import decide
from ..train import Normalizer
from .checks import check_folder, check_operating_point, check_state, read_ensemble, read_flips, read_json

__all__ = ["EVALUATIONS", "EXAMPLES", "FILES", "ONNX_OPSET", "PARITY_TOLERANCE", "load", "normalise", "predict_images",
           "read_operating_point", "read_preprocessing", "read_spec"]

FILES = ("spec.json", "model.safetensors", "model.torchscript.pt", "model.onnx", "preprocessing.json", "README.md",
         "cam_grid.png", "metrics.json", "operating_point.json", "reliability.png", "data_hashes.json")
EVALUATIONS = "evaluations"  # the sub-folder ``nas-med evaluate`` writes its records into (export.evaluate)
EXAMPLES = "examples"  # a few test images as PNG files, to try ``nas-med predict`` on at once (export.write)
PARITY_TOLERANCE = 1e-4
PREDICT_BATCH = 64  # images per forward pass of ``predict_images``
ONNX_OPSET = 17


def _folder(path: str | Path, needs: Sequence[str]) -> Path:
    folder = Path(path)
    if not folder.is_dir():
        raise UserError(f"'{path}' is not an exported model folder (no such folder).")
    for name in needs:
        if not (folder / name).is_file():
            raise UserError(f"'{path}' is not an exported model folder: {name} is missing.")
    return folder


def load(path: str | Path) -> nn.Module:
    """The exported model in ``path`` on the CPU in eval mode: ``build(spec.json)`` + ``model.safetensors``
    (read with safetensors, never with pickle). It takes normalised float input; see ``preprocessing.json``."""
    return _load(path)[0]


def _load(path: str | Path) -> tuple[nn.Module, ArchSpec]:
    """``load`` and the folder's checked spec, from one read of the folder."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = _folder(path, ("spec.json", "model.safetensors"))
    spec = read_spec(folder)
    members, average = read_ensemble(folder)
    average = average if members > 1 else "sigmoid" if _multilabel(folder) else "softmax"
    if members > 1:  # a fold ensemble: one network averaging its members' probabilities
        from ..arch.ensemble import build_ensemble

        model = build_ensemble(spec, members, average)
    else:
        model = build(spec)
    try:
        state = load_file(str(folder / "model.safetensors"), device="cpu")
    except (SafetensorError, OSError) as exc:
        raise UserError(f"cannot read the weights in '{folder / 'model.safetensors'}': {exc}") from None
    check_state(state, folder / "model.safetensors")
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise UserError(f"the weights in '{folder}' do not fit spec.json (missing: {missing[:3]}, "
                        f"unexpected: {unexpected[:3]}).")
    if read_flips(folder):  # test-time flips: the forward averages over the image and its mirror
        from ..arch.flip import FlipAverage

        model = FlipAverage(model, average)
    return model.eval(), spec


def _multilabel(folder: Path) -> bool:
    pre = folder / "preprocessing.json"
    return pre.is_file() and read_json(pre).get("task") == "multilabel"


def read_spec(path: str | Path) -> ArchSpec:
    """The ``spec.json`` of an exported folder, checked against its preprocessing and weights (``checks``)."""
    return check_folder(_folder(path, ("spec.json",)))


def read_preprocessing(path: str | Path) -> dict:
    """The ``preprocessing.json`` of an exported folder."""
    folder = _folder(path, ("preprocessing.json",))
    return read_json(folder / "preprocessing.json")  # size and depth bounded


def normalise(images: torch.Tensor, pre: dict) -> torch.Tensor:
    """uint8 images standardised with the folder's stored statistics (``train.Normalizer``, the one normaliser)."""
    return Normalizer(stats=pre)(images)


def _read(path: Path, size: int, channels: int) -> np.ndarray:
    from ..data.decode import read_image

    try:
        return read_image(path, size, channels)
    except Exception as exc:  # noqa: BLE001 - PIL raises many types for a file it cannot decode
        raise UserError(f"cannot read image '{path}': {exc}") from None


def read_operating_point(path: str | Path) -> dict:
    """``operating_point.json`` (temperature, positive class, threshold) checked against the preprocessing; an
    export written before operating points existed has none: temperature 1, argmax."""
    folder = _folder(path, ("preprocessing.json",))
    if not (folder / "operating_point.json").is_file():
        return {"temperature": 1.0, "positive_index": None, "threshold": None}
    return check_operating_point(read_json(folder / "operating_point.json"), read_preprocessing(folder),
                                 str(folder / "operating_point.json"))


def predict_images(path: str | Path, images: Sequence[str | Path], cam_out: str | Path | None = None,
                   cam_method: str = "gradcam", threshold: float | None = None,
                   coverage: float | None = None) -> list[dict]:
    """Class probabilities for image files (PNG/JPEG) with the exported model in ``path``: softmax (sigmoid for
    multi-label) of the logits divided by the stored temperature. Binary tasks call the positive class when its
    probability is at least the stored threshold (``threshold`` overrides it); others take the argmax. Each image
    is converted to the model's channels and size. With ``cam_out``, a CAM overlay of the predicted class is
    written there per image (``<name>.cam.png``). Returns one dict per image: image, probabilities {class: p},
    prediction, cam (path or None), for binary tasks positive_class and threshold, and where the folder holds
    conformal scores prediction_set (the classes in the split-conformal set at ``coverage``, default the stored
    one) and coverage."""
    from ..conformal import check_coverage, prediction_sets, quantile

    if coverage is not None:
        check_coverage(coverage)
    pre = read_preprocessing(path)
    op = read_operating_point(path)
    conformal = op.get("conformal")
    if conformal is not None:
        from ..conformal import check_record

        check_record(conformal, str(Path(path) / "operating_point.json"))
    if coverage is not None and not conformal:
        raise UserError(f"--coverage: the model in '{path}' stores no prediction-set calibration (exported before "
                        "prediction sets, or a multi-label model); export it again.")
    positive = op.get("positive_index")
    if threshold is not None and not 0 <= threshold <= 1:
        raise UserError(f"--threshold must be in [0, 1], got {threshold}.")
    if threshold is not None and positive is None:
        raise UserError("--threshold applies to binary models with a positive class; this one has none.")
    threshold = op.get("threshold") if threshold is None else float(threshold)
    model, spec = _load(path)  # the folder is checked once
    if not images:
        raise UserError("give at least one image file.")
    paths = [Path(p) for p in images]
    for p in paths:  # every file is checked before the first one is predicted
        if not p.is_file():
            raise UserError(f"image '{p}' does not exist." if not p.exists() else f"image '{p}' is not a file.")
    multilabel = pre["task"] == "multilabel"
    classes = pre["class_names"]
    level = None if not conformal else float(conformal["coverage"]) if coverage is None else coverage
    qhat = None if not conformal else quantile(np.asarray(conformal["scores"]), level)
    net = unwrap_flips(model)  # CAMs of the network itself (test-time flips would run its layer twice)
    cams = _CamWriter(net, cam_target_layer(net, spec), Path(cam_out), cam_method) if cam_out else None
    out = []
    with cams if cams is not None else contextlib.nullcontext():
        for start in range(0, len(paths), PREDICT_BATCH):  # bounded memory whatever the number of images
            batch = paths[start:start + PREDICT_BATCH]
            pixels = torch.from_numpy(np.stack([_read(p, pre["input_size"], pre["channels"]) for p in batch]))
            x = normalise(pixels, pre)
            with torch.no_grad():
                logits = model(x).float()
            z = logits.double() / float(op.get("temperature") or 1.0)  # the same arithmetic as the export's figures
            probs = (torch.sigmoid(z) if multilabel else torch.softmax(z, 1)).numpy()
            finite = np.isfinite(probs).all(1)
            if not finite.all():
                bad = batch[int(np.flatnonzero(~finite)[0])]
                raise UserError(f"the model in '{path}' gives non-finite outputs (NaN or infinity) for image "
                                f"'{bad}'; no class is given for it.")
            chosen = decide(probs, positive, threshold)
            sets = None if qhat is None else prediction_sets(probs, qhat)
            written = cams.write(x, pixels, [int(c) for c in chosen], batch) if cams is not None else \
                [None] * len(batch)
            for i, p in enumerate(batch):
                row = probs[i].tolist()
                pred = [c for c, v in zip(classes, row) if v >= 0.5] if multilabel else classes[int(chosen[i])]
                entry = {"image": str(p), "probabilities": dict(zip(classes, row)), "prediction": pred,
                         "cam": written[i]}
                if positive is not None:
                    entry.update(positive_class=classes[positive], threshold=threshold)
                if sets is not None:
                    entry.update(prediction_set=[c for c, inside in zip(classes, sets[i]) if inside], coverage=level)
                out.append(entry)
    return out


class _CamWriter:
    """CAM overlays written into ``out`` batch by batch; on any failure (a full disk, a bad image later on)
    every overlay written so far is removed again, and the folder too when this run made it."""

    def __init__(self, model: nn.Module, layer: nn.Module | None, out: Path, method: str):
        self.model, self.layer, self.out, self.method = model, layer, out, method
        self.written: list[Path] = []
        self.used: set[str] = set()
        self.made: list[Path] = []

    def __enter__(self) -> _CamWriter:
        missing = [p for p in (self.out, *self.out.parents) if not p.exists()]
        try:
            self.out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"cannot create --cam-out '{self.out}': {exc.strerror or exc}.") from None
        self.made = missing  # deepest first
        return self

    def write(self, x: torch.Tensor, pixels: torch.Tensor, targets: list[int], paths: list[Path]) -> list[str]:
        from PIL import Image

        from ..objectives.cam import compute_cams
        from ..objectives.overlay import cam_overlay

        cams = compute_cams(self.model, x, targets, self.method, layer=self.layer)
        names = []
        for i, (p, cam) in enumerate(zip(paths, cams)):
            name = f"{p.stem}.cam.png" if p.stem not in self.used else f"{p.stem}-{len(self.written)}.cam.png"
            self.used.add(p.stem)
            img = Image.fromarray(cam_overlay(pixels[i].numpy(), cam))
            factor = max(1, 224 // max(img.size))
            target = self.out / name
            self.written.append(target)
            try:
                img.resize((img.width * factor, img.height * factor), Image.NEAREST).save(target, format="PNG")
            except OSError as exc:
                raise UserError(f"cannot write the CAM overlay '{target}': {exc.strerror or exc}.") from None
            names.append(str(target))
        return names

    def __exit__(self, kind, exc, tb) -> None:
        if kind is None:
            return
        for path in self.written:
            path.unlink(missing_ok=True)
        for folder in self.made:
            try:
                folder.rmdir()
            except OSError:
                break

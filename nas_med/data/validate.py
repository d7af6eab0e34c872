"""Content checks of a dataset at the boundary, before anything is trained or written.

Raw arrays (an ``.npz`` of images and labels) are checked and converted by ``images_to_uint8`` and
``labels_to_tensor``; a built ``Dataset`` is checked as a whole by ``check_dataset`` (``load_dataset`` calls it
for every source). Each problem raises one UserError that names the bad value and states the rule.

Image values: unsigned/signed integers must lie in 0..255; float images whose values all lie in [0, 1] are
rescaled to 0..255 (x 255, rounded) with one warning; float images of whole values in 0..255 are taken as
they are; anything else (fractional values above 1, which would train on near-black images, NaN,
infinities, negative values, values above 255, booleans) is refused.
"""
from __future__ import annotations

import logging

import numpy as np
import torch

from ..errors import UserError
from .types import Dataset

log = logging.getLogger(__name__)

__all__ = ["check_dataset", "images_to_uint8", "labels_to_tensor"]


def _span(values: np.ndarray) -> tuple[float, float]:
    return float(values.min()), float(values.max())


def images_to_uint8(images: np.ndarray, where: str, notes: list[str] | None = None) -> np.ndarray:
    """``images`` as uint8 (see the module doc for the rule); ``where`` names the array in messages. The
    rescaling notice is logged, or appended to ``notes`` for the caller to log once everything passed."""
    if images.dtype == np.uint8:
        return images
    if images.size == 0:
        return images.astype(np.uint8)
    if images.dtype == np.bool_ or not (np.issubdtype(images.dtype, np.integer)
                                        or np.issubdtype(images.dtype, np.floating)):
        raise UserError(f"{where} has dtype {images.dtype}; images must be integers in 0..255 or floats in "
                        f"[0, 1] or whole values 0..255.")
    if np.issubdtype(images.dtype, np.floating):
        finite = np.isfinite(images)
        if not finite.all():
            bad = images[~finite].flat[0]
            raise UserError(f"{where} holds {int((~finite).sum())} non-finite values (first: {bad}); images must "
                            f"be finite.")
        low, high = _span(images)
        if low >= 0 and high <= 1:
            source = where.rsplit(" ", 1)[0] if " " in where else where
            note = f"{source} holds float images in [0, 1] ({images.dtype}): rescaled to 0..255 (x 255, rounded)"
            if notes is None:
                log.warning("%s", note)
            elif note not in notes:  # one line per file, once the whole file has passed its checks
                notes.append(note)
            return np.rint(images * 255).astype(np.uint8)
        whole = bool(np.all(images == np.rint(images)))
        if low >= 0 and high <= 255 and whole:  # 8-bit pixel values saved as floats
            return images.astype(np.uint8)
        kind = "fractional " if low >= 0 and high <= 255 else ""
        raise UserError(f"{where} holds {kind}float values from {low:g} to {high:g}; float images must lie in "
                        f"[0, 1] (rescaled to 0..255) or hold whole pixel values 0..255 (rescale them first).")
    low, high = _span(images)
    if low < 0 or high > 255:
        raise UserError(f"{where} ({images.dtype}) holds values from {low:g} to {high:g}; integer images must lie "
                        f"in 0..255 (rescale 16-bit images to 8 bits first).")
    return images.astype(np.uint8)


def labels_to_tensor(labels: np.ndarray, n_images: int, task: str, num_classes: int, where: str) -> torch.Tensor:
    """Labels of one split as int64 (N,) (binary, multi-class) or float32 0/1 (N, L) (multi-label)."""
    labels = np.asarray(labels)
    if labels.ndim == 0 or len(labels) != n_images:
        count = "a single value" if labels.ndim == 0 else f"{len(labels)} labels"
        raise UserError(f"{where} has {count} for {n_images} images; every image needs one label.")
    if labels.dtype == np.bool_:
        labels = labels.astype(np.int64)
    if not (np.issubdtype(labels.dtype, np.integer) or np.issubdtype(labels.dtype, np.floating)):
        raise UserError(f"{where} has dtype {labels.dtype}; labels must be integers.")
    if np.issubdtype(labels.dtype, np.floating):
        finite = np.isfinite(labels)
        if not finite.all() or (labels != np.round(labels)).any():
            bad = labels[~finite].flat[0] if not finite.all() else labels[labels != np.round(labels)].flat[0]
            raise UserError(f"{where} holds the non-integer label {bad}; labels must be integers.")
    if task == "multilabel":
        flat = labels.reshape(len(labels), -1)
        if flat.shape[1] != num_classes:
            raise UserError(f"{where} has shape {labels.shape}; multi-label labels need one 0/1 column per label "
                            f"({num_classes}).")
        bad = flat[(flat != 0) & (flat != 1)]
        if bad.size:
            raise UserError(f"{where} holds the value {bad.flat[0]:g}; multi-label labels must be 0 or 1.")
        return torch.from_numpy(flat.astype(np.float32))
    if labels.ndim > 2 or (labels.ndim == 2 and labels.shape[1] != 1):
        raise UserError(f"{where} has shape {labels.shape}; {task} labels need shape ({n_images},) or "
                        f"({n_images}, 1): one class index per image.")
    flat = labels.reshape(len(labels))
    _check_range(flat, num_classes, where)
    return torch.from_numpy(flat.astype(np.int64))


def _check_range(flat: np.ndarray, num_classes: int, where: str) -> None:
    if flat.size == 0:
        return
    low, high = _span(flat)
    if low < 0 or high >= num_classes:
        bad = low if low < 0 else high
        raise UserError(f"{where} holds the label {bad:g}, outside 0..{num_classes - 1} (labels must be class "
                        f"indices in [0, {num_classes}) for {num_classes} classes).")


def check_dataset(data: Dataset) -> Dataset:
    """Check a built dataset as a whole; returns it unchanged or raises UserError stating the rule broken.

    Rules: images (N, C, H, W) uint8 with C 1 or 3 and one size for all splits; labels of each split as many as
    its images, class indices in [0, num_classes) (multi-label: an (N, L) 0/1 matrix); every split non-empty;
    every class (multi-label: every label as a positive) present in train and in validation (AUC needs it).
    """
    name = data.name
    if data.task not in ("binary", "multiclass", "multilabel"):
        raise UserError(f"dataset '{name}' has the unknown task '{data.task}'.")
    if data.num_classes < 2:
        raise UserError(f"dataset '{name}' has {data.num_classes} class(es) {data.classes}; at least two are needed.")
    shapes = {}
    for split_name, split in data.splits.items():
        where = f"dataset '{name}', {split_name} split"
        images, labels = split.images, split.labels
        if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.ndim != 4:
            got = f"{getattr(images, 'dtype', type(images).__name__)} {tuple(getattr(images, 'shape', ()))}"
            raise UserError(f"{where}: images must be a uint8 (N, C, H, W) tensor, got {got}.")
        if images.shape[1] not in (1, 3):
            raise UserError(f"{where}: images have {images.shape[1]} channels; 1 or 3 are supported.")
        if len(images) == 0:
            raise UserError(f"{where} is empty; train, val and test each need at least one image.")
        if len(labels) != len(images):
            raise UserError(f"{where} has {len(labels)} labels for {len(images)} images; every image needs one "
                            f"label.")
        if data.task == "multilabel":
            if labels.ndim != 2 or labels.shape[1] != data.num_classes:
                raise UserError(f"{where}: labels have shape {tuple(labels.shape)}; multi-label labels need "
                                f"({len(images)}, {data.num_classes}).")
            bad = labels[(labels != 0) & (labels != 1)]
            if bad.numel():
                raise UserError(f"{where} holds the label value {float(bad[0]):g}; multi-label labels must be 0 "
                                f"or 1.")
        else:
            if labels.ndim != 1 or labels.dtype.is_floating_point or labels.dtype == torch.bool:
                raise UserError(f"{where}: labels must be a ({len(images)},) integer tensor of class indices, got "
                                f"{labels.dtype} {tuple(labels.shape)}.")
            _check_range(labels.numpy(), data.num_classes, where)
        shapes[split_name] = tuple(images.shape[1:])
    if len(set(shapes.values())) > 1:
        raise UserError(f"dataset '{name}': the splits' images differ in shape "
                        f"({', '.join(f'{k} {v}' for k, v in shapes.items())}); all splits need one shape.")
    counts = data.class_counts()
    for split_name in ("train", "val"):
        missing = [c for c, n in zip(data.classes, counts[split_name], strict=True) if n == 0]
        if missing:
            what = "label" if data.task == "multilabel" else "class"
            raise UserError(f"dataset '{name}': the {split_name} split has no image of {what} "
                            f"{', '.join(repr(m) for m in missing)}; every {what} needs at least one image in "
                            f"train and in val (AUC is undefined without it).")
    return data

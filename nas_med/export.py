"""An exported model: a folder that stands on its own, written atomically, and loaded back without pickle.

The study stores no weights, so ``export_study`` trains: it retrains the chosen trial's spec with its training
config (epochs included) and ``seeds`` seeds (the trial's own seed first; the others measure the spread), tests
every seed, and exports the first seed's model. The folder holds

* ``spec.json`` (the ArchSpec) and ``model.safetensors`` (weights): ``load(folder)`` rebuilds the model from these;
* ``model.torchscript.pt`` (traced, eval mode) and ``model.onnx`` (dynamic batch, checked with ONNX Runtime);
  all three give the same logits within ``PARITY_TOLERANCE`` (checked before the folder is published);
* ``preprocessing.json``: input size, channels, normalisation, class names, task, output activation;
* ``README.md`` (model card), ``cam_grid.png`` (Grad-CAMs on test images) and ``metrics.json`` (test report).

Every model input is normalised float (B, C, H, W): ``(uint8 / 255 - mean) / std`` per channel; outputs are logits.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import optuna
import torch
from torch import nn

from .arch import ArchSpec, build
from .data.types import Dataset
from .errors import UserError
from .retrain import TestReport, json_safe, load_study_data, retrain_and_test, seed_list, trial_name, trial_recipe
from .select import DEFAULT_AUC_TOLERANCE, DEFAULT_CAM_FLOOR, Choice, choose, completed, is_baseline, value

__all__ = ["ExportResult", "FILES", "PARITY_TOLERANCE", "export_study", "load", "predict_images",
           "read_preprocessing", "write_export"]

log = logging.getLogger(__name__)
FILES = ("spec.json", "model.safetensors", "model.torchscript.pt", "model.onnx", "preprocessing.json", "README.md",
         "cam_grid.png", "metrics.json")
PARITY_TOLERANCE = 1e-4
ONNX_OPSET = 17
NO_LICENCE = "not recorded by the loader; check the terms of the source"


@dataclass
class ExportResult:
    """Where the folder is, what was exported and why, its test report and the measured parity."""

    path: Path
    choice: Choice
    report: TestReport
    parity: dict[str, float]
    cam_quality: float


# ---- loading -------------------------------------------------------------------------------------------------

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
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = _folder(path, ("spec.json", "model.safetensors"))
    spec = ArchSpec.from_json((folder / "spec.json").read_text(encoding="utf-8"))
    model = build(spec)
    try:
        state = load_file(str(folder / "model.safetensors"), device="cpu")
    except (SafetensorError, OSError) as exc:
        raise UserError(f"cannot read the weights in '{folder / 'model.safetensors'}': {exc}") from None
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise UserError(f"the weights in '{folder}' do not fit spec.json (missing: {missing[:3]}, "
                        f"unexpected: {unexpected[:3]}).")
    return model.eval()


def read_preprocessing(path: str | Path) -> dict:
    """The ``preprocessing.json`` of an exported folder."""
    folder = _folder(path, ("preprocessing.json",))
    try:
        return json.loads((folder / "preprocessing.json").read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise UserError(f"'{folder / 'preprocessing.json'}' is not valid JSON: {exc}") from None


def _normalise(images: torch.Tensor, pre: dict) -> torch.Tensor:
    mean = torch.tensor(pre["mean"]).view(1, -1, 1, 1)
    std = torch.tensor(pre["std"]).view(1, -1, 1, 1)
    return (images.float() / 255 - mean) / std


# ---- prediction ----------------------------------------------------------------------------------------------

def _read(path: Path, size: int, channels: int) -> np.ndarray:
    from .data.decode import read_image

    if not path.is_file():
        raise UserError(f"image '{path}' does not exist." if not path.exists() else f"image '{path}' is not a file.")
    try:
        return read_image(path, size, channels)
    except Exception as exc:  # noqa: BLE001 - PIL raises many types for a file it cannot decode
        raise UserError(f"cannot read image '{path}': {exc}") from None


def predict_images(path: str | Path, images: Sequence[str | Path], cam_out: str | Path | None = None,
                   cam_method: str = "gradcam") -> list[dict]:
    """Class probabilities for image files (PNG/JPEG) with the exported model in ``path``: softmax for
    single-label tasks, sigmoid for multi-label. Each image is converted to the model's channels and size.
    With ``cam_out``, a CAM overlay of the predicted class is written there per image (``<name>.cam.png``).
    Returns one dict per image: image, probabilities {class: p}, prediction, cam (path or None)."""
    pre = read_preprocessing(path)
    model = load(path)
    if not images:
        raise UserError("give at least one image file.")
    paths = [Path(p) for p in images]
    pixels = torch.from_numpy(np.stack([_read(p, pre["input_size"], pre["channels"]) for p in paths]))
    x = _normalise(pixels, pre)
    with torch.no_grad():
        logits = model(x).float()
    multilabel = pre["task"] == "multilabel"
    probs = torch.sigmoid(logits) if multilabel else torch.softmax(logits, 1)
    classes = pre["class_names"]
    cams: list[str | None] = [None] * len(paths)
    if cam_out is not None:
        cams = _write_cams(model, x, pixels, probs.argmax(1).tolist(), paths, Path(cam_out), cam_method)
    out = []
    for i, p in enumerate(paths):
        row = probs[i].tolist()
        pred = [c for c, v in zip(classes, row) if v >= 0.5] if multilabel else classes[int(np.argmax(row))]
        out.append({"image": str(p), "probabilities": dict(zip(classes, row)), "prediction": pred, "cam": cams[i]})
    return out


def _write_cams(model: nn.Module, x: torch.Tensor, pixels: torch.Tensor, targets: list[int], paths: list[Path],
                out: Path, method: str) -> list[str]:
    from PIL import Image

    from .objectives.cam import compute_cams
    from .search.artifacts import cam_overlay

    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create --cam-out '{out}': {exc.strerror or exc}.") from None
    cams = compute_cams(model, x, targets, method)
    written, used = [], set()
    for i, (p, cam) in enumerate(zip(paths, cams)):
        name = f"{p.stem}.cam.png" if p.stem not in used else f"{p.stem}-{i}.cam.png"
        used.add(p.stem)
        img = Image.fromarray(cam_overlay(pixels[i].numpy(), cam))
        factor = max(1, 224 // max(img.size))
        img.resize((img.width * factor, img.height * factor), Image.NEAREST).save(out / name)
        written.append(str(out / name))
    return written


# ---- writing -------------------------------------------------------------------------------------------------

def _save_torchscript(model: nn.Module, example: torch.Tensor, path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit is deprecated upstream but still the TorchScript format
        traced = torch.jit.trace(model, example)
        torch.jit.save(traced, str(path))


def _save_onnx(model: nn.Module, example: torch.Tensor, path: Path) -> None:
    import onnx

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (example,), str(path), dynamo=False, input_names=["input"],
                          output_names=["logits"], dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                          opset_version=ONNX_OPSET)
    onnx.checker.check_model(onnx.load(str(path)))


def check_parity(folder: Path, model: nn.Module | None = None, batch: int = 3, seed: int = 0) -> dict[str, float]:
    """Max absolute logit differences between ``load(folder)`` and its TorchScript and ONNX Runtime files (and
    ``model`` when given) on seeded random input; raises RuntimeError above ``PARITY_TOLERANCE``."""
    import onnxruntime as ort

    loaded = load(folder)
    spec = ArchSpec.from_json((folder / "spec.json").read_text(encoding="utf-8"))
    x = torch.randn(batch, spec.in_channels, spec.input_size, spec.input_size,
                    generator=torch.Generator().manual_seed(seed))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.load's deprecation notice
        scripted = torch.jit.load(str(folder / "model.torchscript.pt"))
    with torch.no_grad():
        ref = loaded(x)
        diffs = {"torchscript": (scripted(x) - ref).abs().max().item()}
        if model is not None:
            diffs["in_memory"] = (model(x) - ref).abs().max().item()
    session = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    onnx_out = session.run(None, {"input": x.numpy()})[0]
    diffs["onnxruntime"] = float(np.abs(onnx_out - ref.numpy()).max())
    bad = {k: v for k, v in diffs.items() if not v <= PARITY_TOLERANCE}
    if bad:
        raise RuntimeError(f"exported formats disagree beyond {PARITY_TOLERANCE:g}: {bad}")
    return diffs


def _cam_grid(model: nn.Module, data: Dataset, normalization: dict, method: str, n: int, path: Path) -> float:
    """Save the CAM grid of ``n`` seeded test images; returns their CAM quality (ROAD)."""
    from .objectives.cam import evaluate_cams
    from .search.artifacts import cam_grid

    index = torch.randperm(len(data.test), generator=torch.Generator().manual_seed(0))[:min(n, len(data.test))]
    index = index.sort().values
    images = data.test.images[index]
    masks = None if data.test.masks is None else data.test.masks[index]
    result = evaluate_cams(model, _normalise(images, normalization), masks, method)
    cam_grid(images.numpy(), result.cams).save(path)
    return result.cam_quality


def _preprocessing(spec: ArchSpec, data: Dataset, normalization: dict) -> dict:
    return {"input_size": spec.input_size, "channels": spec.in_channels, "layout": "NCHW",
            "mean": normalization["mean"], "std": normalization["std"],
            "scaling": "x = (pixel / 255 - mean[c]) / std[c] per channel c, pixels 0..255",
            "resize": "bilinear to input_size x input_size; grayscale <-> RGB by luminance / repetition",
            "class_names": list(data.classes), "task": data.task,
            "output": "logits", "activation": "sigmoid" if data.task == "multilabel" else "softmax",
            "input_name": "input", "output_name": "logits"}


def write_export(folder: Path, report: TestReport, data: Dataset, *, card: dict | None = None,
                 cam_method: str = "gradcam", cam_images: int = 16) -> tuple[dict[str, float], float]:
    """Write every file of an export into the existing, empty ``folder`` from ``report`` (which must hold the
    model); returns (parity, test CAM quality). ``card`` adds study context to the model card."""
    from safetensors.torch import save_file

    from . import __version__

    if report.model is None:
        raise ValueError("the report holds no model (retrain with keep_model=True)")
    model = report.model.to("cpu", memory_format=torch.contiguous_format).float().eval()
    spec = report.spec
    (folder / "spec.json").write_text(spec.to_json() + "\n", encoding="utf-8")
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt", "nas_med": __version__})
    os.chmod(folder / "model.safetensors", 0o644)
    example = torch.zeros(1, spec.in_channels, spec.input_size, spec.input_size)
    _save_torchscript(model, example, folder / "model.torchscript.pt")
    _save_onnx(model, example, folder / "model.onnx")
    parity = check_parity(folder, model)
    pre = _preprocessing(spec, data, report.normalization)
    (folder / "preprocessing.json").write_text(json.dumps(pre, indent=2) + "\n", encoding="utf-8")
    cam_quality = _cam_grid(model, data, pre, cam_method, cam_images, folder / "cam_grid.png")
    metrics = {"test": report.to_dict(), "parity": parity, "test_cam_quality": cam_quality,
               "exported_seed": report.seeds[0], **({"study": card} if card else {})}
    (folder / "metrics.json").write_text(json.dumps(json_safe(metrics), indent=2) + "\n", encoding="utf-8")
    (folder / "README.md").write_text(model_card(report, data, pre, parity, cam_quality, cam_method, card or {}),
                                      encoding="utf-8")
    return parity, cam_quality


# ---- the model card ------------------------------------------------------------------------------------------

def _ci(entry: dict | list | None, mean: float | None = None) -> str:
    if isinstance(entry, list):
        lo, hi = entry
    else:
        entry = entry or {}
        lo, hi, mean = entry.get("ci_low"), entry.get("ci_high"), entry.get("mean")
    if mean is None or mean != mean:
        return "n/a"
    band = "" if lo is None or hi is None or lo != lo else f" [{lo:.3f}, {hi:.3f}]"
    return f"{mean:.3f}{band}"


def _num(v) -> str:
    return "n/a" if v is None or v != v else f"{v:.4f}"


def model_card(report: TestReport, data: Dataset, pre: dict, parity: dict, cam_quality: float, cam_method: str,
               card: dict) -> str:
    """The README.md of an exported folder (markdown)."""
    from . import __version__

    spec, first = report.spec, report.per_seed[0]
    classes = ", ".join(data.classes)
    cfg = report.train_config
    objectives = card.get("objectives") or {}
    lines = [f"# nas-med model: {report.name}", "",
             f"A {data.task} image classifier ({classes}) found by neural architecture search with nas-med "
             f"{__version__}" + (f" (study `{card['study']}`)" if card.get("study") else "") + ".", "",
             f"**Architecture:** `{spec.summary()}`", ""]
    if card.get("reason"):
        lines += ["## Why this architecture", "", card["reason"], ""]
    counts = {k: len(v) for k, v in data.splits.items()}
    lines += ["## Data", "",
              f"- dataset: `{card.get('dataset', data.name)}` (source: {data.info.get('source', data.name)})",
              f"- fraction of the training split used: {card.get('fraction', data.info.get('fraction', 1.0)):g}",
              f"- images: {data.size} x {data.size} px, {data.in_channels} channel(s)",
              f"- splits: train {counts['train']}, validation {counts['val']}, test {counts['test']}",
              f"- classes: {classes}",
              f"- licence of the data: {data.info.get('licence') or NO_LICENCE}",
              ""]
    if objectives:
        lines += ["## Objectives of the trial in the study (validation split)", "",
                  "| objective | value |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in objectives.items()]
        lines.append("")
    seeds = ", ".join(str(s) for s in report.seeds)
    lines += ["## Test metrics", "",
              f"Retrained {len(report.seeds)} time(s) from scratch (seeds {seeds}; {cfg.get('epochs')} epochs, "
              f"lr {cfg.get('lr')}, batch {cfg.get('batch_size')}, weight decay {cfg.get('weight_decay')}; the epoch "
              f"with the lowest validation loss kept) and tested on the {report.n_test} test images. Intervals: "
              f"{report.confidence:.0%} bootstrap confidence intervals over test images ({report.n_bootstrap} "
              f"resamples). The exported weights are those of seed {report.seeds[0]}"
              + (" (the trial's own seed)" if card.get("own_seed") == report.seeds[0] else "")
              + f"; its validation AUC is {_num(first.get('val_auc'))}"
              + (f" (the trial's in the study: {card['val_auc']:.4f})." if card.get("val_auc") is not None else "."),
              "",
              f"| metric | exported model (seed {report.seeds[0]}) [95% CI] | mean over seeds [95% CI] | "
              "std over seeds |",
              "|---|---|---|---|"]
    for m in ("auc", "accuracy", "sensitivity", "specificity"):
        s = report.summary[m]
        std = "n/a" if s.get("std") is None or s["std"] != s["std"] else f"{s['std']:.3f}"
        lines.append(f"| {m} | {_ci(first['ci'][m], first[m])} | {_ci(s)} | {std} |")
    lines.append("")
    if card.get("baselines"):
        lines += ["Reference networks in the same study (validation figures from the search, not retrained):", "",
                  "| baseline | trial | AUC | params | epoch s | CAM quality |", "|---|---|---|---|---|---|"]
        lines += [f"| {b['name']} | {b['trial']} | {b['auc']:.4f} | {b['params']:,} | {b['epoch_seconds']:.3f} | "
                  f"{b['cam_quality']:+.3f} |" for b in card["baselines"]]
        lines.append("")
    lines += ["## Explanations", "", "![Grad-CAM overlays on test images](cam_grid.png)", "",
              f"Top rows: test images; bottom rows: {cam_method} overlays for the predicted class. CAM quality "
              f"(ROADCombined, higher is better, ~0 for a random map) on these images: {cam_quality:+.3f}.", "",
              "## Files", "",
              "| file | content |", "|---|---|",
              "| spec.json | the architecture (nas-med ArchSpec) |",
              "| model.safetensors | the weights (safetensors; no pickle) |",
              "| model.torchscript.pt | TorchScript (traced, eval mode) |",
              f"| model.onnx | ONNX opset {ONNX_OPSET}, dynamic batch, input `input`, output `logits` |",
              "| preprocessing.json | input size, channels, normalisation, class names, task |",
              "| metrics.json | the full test report (per seed, intervals) |",
              "| cam_grid.png | Grad-CAM overlays on test images |", "",
              "All three model files take normalised float input (B, C, H, W) and return logits; they agree within "
              f"{PARITY_TOLERANCE:g} (measured: " + ", ".join(f"{k} {v:.1e}" for k, v in parity.items()) + ").", "",
              "## Use", "", "```python", "import nas_med, torch", "",
              "model = nas_med.load(\"THIS_FOLDER\")  # spec.json + model.safetensors, eval mode, CPU",
              f"x = torch.randn(1, {spec.in_channels}, {spec.input_size}, {spec.input_size})  # normalised input",
              f"probs = torch.{'sigmoid(model(x))' if pre['activation'] == 'sigmoid' else 'softmax(model(x), 1)'}",
              "```", "", "```", "nas-med predict THIS_FOLDER image.png [--cam-out cams/]", "```", "",
              f"Preprocessing: resize to {spec.input_size} x {spec.input_size}, {spec.in_channels} channel(s), "
              f"`x = (pixel / 255 - mean) / std` with mean {[round(v, 4) for v in pre['mean']]} and std "
              f"{[round(v, 4) for v in pre['std']]}; {pre['activation']} over the logits.", "",
              "## Limitations", "",
              "A research artefact, not a medical device. Its figures hold for the data above only; the test split "
              "is small, so read the intervals, not the point estimates. Validate on your own data before any use.",
              ""]
    return "\n".join(lines)


# ---- the export as one step ----------------------------------------------------------------------------------

def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _check_target(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise UserError(f"--out '{out}' exists and is not a folder.")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise UserError(f"--out '{out}' exists and is not empty; use --force to replace it.")
    base = _nearest_existing(out.absolute().parent)
    if not base.is_dir():
        raise UserError(f"cannot write --out '{out}': '{base}' is not a folder.")
    if not os.access(base, os.W_OK | os.X_OK):
        raise UserError(f"cannot write --out '{out}': '{base}' is not writable.")


def _make_temp(out: Path) -> tuple[Path, list[Path]]:
    """A fresh temporary folder beside ``out`` (same file system, so publishing is a rename) and the parent
    folders that had to be created for it."""
    parent = out.absolute().parent
    created = []
    probe = parent
    while not probe.exists():
        created.append(probe)
        probe = probe.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=parent)), created
    except OSError as exc:
        _remove_empty(created)
        raise UserError(f"cannot write --out '{out}': {exc.strerror or exc}.") from None


def _remove_empty(folders: list[Path]) -> None:
    for folder in folders:  # deepest first
        try:
            folder.rmdir()
        except OSError:
            break


def _publish(tmp: Path, out: Path) -> None:
    """Move the finished ``tmp`` folder to ``out``; an existing ``out`` is replaced only once the move worked."""
    os.chmod(tmp, 0o755)
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}-{tmp.name[-8:]}")
        os.replace(out, old)
    try:
        os.replace(tmp, out)
    except OSError:
        if old is not None:
            os.replace(old, out)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _card_context(study: optuna.Study, choice: Choice, own_seed: int) -> dict:
    from .search.study import stored_config

    cfg = stored_config(study)
    t = choice.trial
    objectives = {"validation AUC": f"{value(t, 'auc'):.4f}", "parameters": f"{int(value(t, 'params')):,}",
                  "FLOPs": "-" if t.user_attrs.get("flops") is None else f"{t.user_attrs['flops']:,}",
                  f"epoch seconds ({t.user_attrs.get('device', '?')})": f"{value(t, 'epoch_seconds'):.3f}",
                  f"CAM quality ({cfg.get('cam_method', 'gradcam')}, ROAD, {cfg.get('cam_images')} val images)":
                      f"{value(t, 'cam_quality'):+.3f}"}
    baselines = [{"name": b.user_attrs.get("baseline"), "trial": b.number, "auc": value(b, "auc"),
                  "params": int(value(b, "params")), "epoch_seconds": value(b, "epoch_seconds"),
                  "cam_quality": value(b, "cam_quality")}
                 for b in completed(study, baselines=True) if b.number != t.number]
    return {"study": study.study_name, "trial": t.number, "val_auc": value(t, "auc"),
            "kind": "baseline" if is_baseline(t) else "candidate",
            "reason": choice.reason, "dataset": cfg.get("dataset"), "fraction": cfg.get("fraction", 1.0),
            "objectives": objectives, "baselines": baselines, "own_seed": own_seed,
            "search": {k: cfg.get(k) for k in ("dataset", "fraction", "size", "channels", "seed", "space", "epochs",
                                              "sampler", "pruner", "cam_method", "cam_images", "versions")}}


def export_study(study: optuna.Study, out: str | Path, *, trial_number: int | None = None,
                 seeds: int | Sequence[int] = 3, force: bool = False, n_bootstrap: int = 1000,
                 device: str | None = None, data: Dataset | None = None, cam_images: int = 16,
                 auc_tolerance: float = DEFAULT_AUC_TOLERANCE, cam_floor: float | None = DEFAULT_CAM_FLOOR,
                 prefer=None, precision: str | None = None) -> ExportResult:
    """Retrain the chosen trial (``trial_number`` or the minimalist choice), test it and write the folder ``out``.

    Checks ``out`` before training (exists and non-empty without ``force``, or not writable: UserError); writes
    into a temporary folder beside it and renames it into place, so a failure leaves nothing behind."""
    out = Path(out)
    if precision is not None:
        from .errors import look_up
        from .precision import PRECISIONS

        look_up(precision, PRECISIONS, "precision")
    if cam_images < 2:
        raise UserError(f"--cam-images must be at least 2, got {cam_images}.")
    _check_target(out, force)
    choice = choose(study, trial_number, auc_tolerance, cam_floor, prefer)
    spec, cfg = trial_recipe(choice.trial)
    seeds_used = seed_list(seeds, cfg.seed)
    tmp, created = _make_temp(out)
    try:
        data = data if data is not None else load_study_data(study)
        report = retrain_and_test(spec, data, cfg, seeds_used, n_bootstrap, name=trial_name(choice.trial),
                                  keep_model=True, device=device, precision=precision)
        report.trial = choice.trial.number
        report.kind = "baseline" if is_baseline(choice.trial) else "candidate"
        from .search.study import stored_config

        method = stored_config(study).get("cam_method", "gradcam")
        parity, cam_quality = write_export(tmp, report, data, card=_card_context(study, choice, cfg.seed),
                                           cam_method=method, cam_images=cam_images)
        _check_target(out, force)  # the target may have changed while training
        _publish(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        _remove_empty(created)
        raise
    log.info("exported trial %d to %s", choice.trial.number, out)
    report.model = None
    return ExportResult(out, choice, report, parity, cam_quality)

"""Writing an exported folder: the weights and the TorchScript and ONNX files (checked for parity), the
preprocessing, the CAM grid, the metrics and the model card, then published atomically (a temporary folder
beside the target, renamed into place)."""
from __future__ import annotations

import io
import json
import os
import re
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..arch import ArchSpec, cam_target_layer
from ..arch.ensemble import ensemble_keys
from ..arch.flip import FLIP_KEY, flip_keys, unwrap_flips
from ..data.types import Dataset
from ..errors import UserError
from ..final.retrain import TestReport
from ..search.records import json_safe
from .card import CardContext, model_card
from .load import EVALUATIONS, EXAMPLES, FILES, ONNX_OPSET, PARITY_TOLERANCE, load, normalise, read_spec
from .partials import clean_stale_partials, partial_prefix

__all__ = ["check_parity", "check_target", "make_temp", "publish", "remove_empty", "write_export"]


def _save_torchscript(model: nn.Module, example: torch.Tensor, path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit is deprecated upstream but still the TorchScript format
        traced = torch.jit.trace(model, example)
        buffer = io.BytesIO()  # torch's own file writer aborts the process on a full disk: Python writes the file
        torch.jit.save(traced, buffer)
    path.write_bytes(buffer.getvalue())


def _save_onnx(model: nn.Module, example: torch.Tensor, path: Path) -> None:
    import onnx

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        buffer = io.BytesIO()  # (written by Python below: a full disk is then an OSError naming the file)
        torch.onnx.export(model, (example,), buffer, dynamo=False, input_names=["input"],
                          output_names=["logits"], dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                          opset_version=ONNX_OPSET)
    onnx.checker.check_model(onnx.load_from_string(buffer.getvalue()))
    path.write_bytes(buffer.getvalue())


def check_parity(folder: Path, model: nn.Module | None = None, batch: int = 3, seed: int = 0) -> dict[str, float]:
    """Max absolute logit differences between ``load(folder)`` and its TorchScript and ONNX Runtime files (and
    ``model`` when given) on seeded random input; raises RuntimeError above ``PARITY_TOLERANCE``."""
    import onnxruntime as ort

    loaded = load(folder)
    spec = read_spec(folder)
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


def _cam_grid(model: nn.Module, data: Dataset, normalization: dict, method: str, n: int, path: Path,
              op: dict | None = None, layer: nn.Module | None = None) -> tuple[float, float]:
    """Save the CAM grid of ``n`` seeded test images, each captioned with its true and predicted class and the
    predicted class's probability (``op``: the operating point's test arrays); returns their (CAM quality, mask
    energy: NaN without masks). ``layer``: ``arch.cam_target_layer``, as in the search."""
    from ..objectives.cam import evaluate_cams
    from ..objectives.overlay import cam_grid, class_captions

    index = torch.randperm(len(data.test), generator=torch.Generator().manual_seed(0))[:min(n, len(data.test))]
    index = index.sort().values
    images = data.test.images[index]
    masks = None if data.test.masks is None else data.test.masks[index]
    result = evaluate_cams(model, normalise(images, normalization), masks, method, layer)
    captions = None
    if op is not None and op.get("predicted") is not None:
        labels, pred, probs = data.test.labels.numpy(), op["predicted"], op["probs"]
        chosen = index.tolist()
        captions = class_captions(data.classes, labels[chosen], pred[chosen], probs[chosen])
    cam_grid(images.numpy(), result.cams, captions=captions).save(path)
    return result.cam_quality, result.mask_energy


def _preprocessing(spec: ArchSpec, data: Dataset, normalization: dict, flips: bool = False) -> dict:
    return {"input_size": spec.input_size, "channels": spec.in_channels, "layout": "NCHW",
            "mean": normalization["mean"], "std": normalization["std"],
            "scaling": "x = (pixel / 255 - mean[c]) / std[c] per channel c, pixels 0..255",
            "resize": "bilinear to input_size x input_size; grayscale <-> RGB by luminance / repetition",
            "class_names": list(data.classes), "task": data.task,
            "output": "logits", "activation": "sigmoid" if data.task == "multilabel" else "softmax",
            "input_name": "input", "output_name": "logits",
            FLIP_KEY: flips, **({"test_flips_note": "the model averages its probabilities over the image and its "
                                 "horizontal mirror inside its forward (every format alike); feed the image "
                                 "once"} if flips else {})}


def _sorted_header(data: bytes) -> bytes:
    """A safetensors file with its JSON header's keys sorted: safetensors writes its metadata in hash order, so
    two saves of the same weights differed in bytes. Same tensors and offsets; the header padded with spaces to a
    multiple of 8 bytes, as safetensors pads it."""
    size = int.from_bytes(data[:8], "little")
    header = json.dumps(json.loads(data[8:8 + size]), sort_keys=True, separators=(",", ":")).encode()
    header += b" " * (-len(header) % 8)
    return len(header).to_bytes(8, "little") + header + data[8 + size:]


def write_export(folder: Path, report: TestReport, data: Dataset, *, card: CardContext | None = None,
                 cam_method: str = "gradcam", cam_images: int = 16,
                 target_sensitivity: float | None = None, held_out=None,
                 coverage: float | None = None, subgroups: dict[str, list[str]] | None = None
                 ) -> tuple[dict[str, float], float]:
    """Write every file of an export into the existing, empty ``folder`` from ``report`` (which must hold the
    model); returns (parity, test CAM quality). ``card`` adds study context to the model card; ``held_out``
    (``calibration.HeldOut``) is what temperature, threshold and prediction sets are fitted on (default: the
    validation split), ``coverage`` the prediction sets' (default 0.9); ``subgroups`` ({attribute: value per test
    image}, ``subgroups.read_metadata``) adds figures per subgroup of the test split."""
    from safetensors.torch import save

    from .._version import __version__

    if report.model is None:
        raise ValueError("the report holds no model (retrain with keep_model=True)")
    model = report.model.to("cpu", memory_format=torch.contiguous_format).float().eval()
    spec, net = report.spec, unwrap_flips(model)  # the weights are the network's; test-time flips wrap it
    (folder / "spec.json").write_text(json.dumps({**spec.to_dict(), **ensemble_keys(net), **flip_keys(model)},
                                                 indent=2) + "\n", encoding="utf-8")
    state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    (folder / "model.safetensors").write_bytes(_sorted_header(save(state, metadata={"format": "pt",
                                                                                   "nas_med": __version__})))
    os.chmod(folder / "model.safetensors", 0o644)
    example = torch.zeros(1, spec.in_channels, spec.input_size, spec.input_size)
    _save_torchscript(model, example, folder / "model.torchscript.pt")
    _save_onnx(model, example, folder / "model.onnx")
    parity = check_parity(folder, model)
    pre = _preprocessing(spec, data, report.normalization, net is not model)
    (folder / "preprocessing.json").write_text(json.dumps(pre, indent=2) + "\n", encoding="utf-8")
    from ..data.duplicates import DATA_HASHES, hashes_record

    (folder / DATA_HASHES).write_text(json.dumps(hashes_record(data.splits)) + "\n", encoding="utf-8")
    from .operating import OPERATING_FILE, RELIABILITY_FILE, operating_point, reliability_figure

    op, op_arrays = operating_point(model, data, pre, target_sensitivity=target_sensitivity,
                                    n_bootstrap=max(1, report.n_bootstrap), confidence=report.confidence,
                                    held_out=held_out, **({} if coverage is None else {"coverage": coverage}))
    (folder / OPERATING_FILE).write_text(json.dumps(json_safe(op), indent=2) + "\n", encoding="utf-8")
    reliability_figure(op, folder / RELIABILITY_FILE)
    if subgroups is not None and op.get("test"):
        from .subgroups import subgroup_rows

        task = "binary" if data.num_classes == 2 else "multiclass"
        op["subgroups"] = subgroup_rows(task, data.test.labels.numpy(), op_arrays["probs"], subgroups,
                                        op.get("positive_index"), op.get("threshold"), max(1, report.n_bootstrap),
                                        report.confidence)
        (folder / OPERATING_FILE).write_text(json.dumps(json_safe(op), indent=2) + "\n", encoding="utf-8")
    cam_quality, energy = _cam_grid(net, data, pre, cam_method, cam_images, folder / "cam_grid.png", op_arrays,
                                    cam_target_layer(net, spec))
    metrics = {"test": report.to_dict(), "parity": parity, "test_cam_quality": cam_quality,
               "test_mask_energy": None if energy != energy else energy,
               "exported_seed": report.seeds[0], **({"study": card.to_dict()} if card is not None else {})}
    (folder / "metrics.json").write_text(json.dumps(json_safe(metrics), indent=2) + "\n", encoding="utf-8")
    (folder / "README.md").write_text(model_card(report, data, pre, parity, cam_quality, cam_method, card,
                                                 op, mask_energy=energy), encoding="utf-8")
    write_examples(data, folder / EXAMPLES)
    return parity, cam_quality



def write_examples(data: Dataset, folder: Path, per_class: int = 1) -> list[Path]:
    """The first ``per_class`` test images of each class (multi-label: the first test images) as PNG files named
    ``test-INDEX-CLASS.png``, as the exported model reads them."""
    from PIL import Image

    labels = data.test.labels
    if data.task == "multilabel":
        picked = list(range(min(len(data.test), per_class * 2)))
    else:
        picked = sorted(i for c in range(data.num_classes)
                        for i in torch.nonzero(labels == c).flatten()[:per_class].tolist())
    folder.mkdir()
    written = []
    for i in picked:
        image = data.test.images[i].permute(1, 2, 0).numpy()
        name = "" if data.task == "multilabel" else "-" + re.sub(r"[^A-Za-z0-9]+", "_", data.classes[int(labels[i])])
        path = folder / f"test-{i}{name}.png"
        Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(path)
        written.append(path)
    return written



# ---- atomic publishing ---------------------------------------------------------------------------------------

def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_target(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise UserError(f"--out '{out}' exists and is not a folder.")
    if out.is_dir() and any(out.iterdir()):
        if not force:
            raise UserError(f"--out '{out}' exists and is not empty; use --force to replace it.")
        foreign = sorted(p.name + ("/" if p.is_dir() else "") for p in out.iterdir()
                         if (p.name not in FILES or not p.is_file() or p.is_symlink())
                         and not (p.name in (EVALUATIONS, EXAMPLES) and p.is_dir() and not p.is_symlink()))
        if foreign or not (out / "spec.json").is_file():
            shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
            held = f"it holds {shown}" if foreign else "no spec.json"
            raise UserError(f"--out '{out}' is not an exported model folder ({held}); --force replaces only an "
                            "export, so nothing was deleted. Choose another --out or empty it yourself.")
    base = _nearest_existing(out.absolute().parent)
    if not base.is_dir():
        raise UserError(f"cannot write --out '{out}': '{base}' is not a folder.")
    if not os.access(base, os.W_OK | os.X_OK):
        raise UserError(f"cannot write --out '{out}': '{base}' is not writable.")


def make_temp(out: Path) -> tuple[Path, list[Path]]:
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
        clean_stale_partials(out)  # left by killed exports
        return Path(tempfile.mkdtemp(prefix=partial_prefix(out), dir=parent)), created
    except OSError as exc:
        remove_empty(created)
        raise UserError(f"cannot write --out '{out}': {exc.strerror or exc}.") from None


def remove_empty(folders: list[Path]) -> None:
    for folder in folders:  # deepest first
        try:
            folder.rmdir()
        except OSError:
            break


def publish(tmp: Path, out: Path) -> None:
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

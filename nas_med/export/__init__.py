"""An exported model: a folder that stands on its own, written atomically, and loaded back without pickle.

The study stores no weights, so ``export_study`` trains: it retrains the chosen trial's spec with its training
config (epochs included) and ``seeds`` seeds (the trial's own seed first; the others measure the spread), tests
every seed, and exports the first seed's model. The folder holds

* ``spec.json`` (the ArchSpec) and ``model.safetensors`` (weights): ``load(folder)`` rebuilds the model from these;
* ``model.torchscript.pt`` (traced, eval mode) and ``model.onnx`` (dynamic batch, checked with ONNX Runtime);
  all three give the same logits within ``PARITY_TOLERANCE`` (checked before the folder is published);
* ``preprocessing.json``: input size, channels, normalisation, class names, task, output activation;
* ``README.md`` (model card), ``cam_grid.png`` (Grad-CAMs on test images) and ``metrics.json`` (test report).

``load``/``predict_images`` (``export.load``) import no Optuna; ``export_study`` is imported on first use.

Every model input is normalised float (B, C, H, W): ``(uint8 / 255 - mean) / std`` per channel; outputs are logits.
"""
from __future__ import annotations

from .load import FILES, ONNX_OPSET, PARITY_TOLERANCE, load, predict_images, read_preprocessing

__all__ = ["ExportResult", "FILES", "ONNX_OPSET", "PARITY_TOLERANCE", "export_study", "load", "predict_images",
           "read_preprocessing", "write_export"]


def __getattr__(name: str):  # lazy: the study side imports Optuna, the loading side must not
    if name in ("ExportResult", "export_study"):
        from . import study

        return getattr(study, name)
    if name == "write_export":
        from .write import write_export

        return write_export
    raise AttributeError(name)

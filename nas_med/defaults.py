"""Defaults that the library and the command line share, in a module that imports nothing.

``nas-med --help`` shows them, and it must answer before torch, Optuna or numpy is imported: the modules that use
them (``confirm.py``, ``conformal.py``) pull those in, so they read their defaults from here and the command line
does the same.
"""
from __future__ import annotations

__all__ = ["CAM_METHOD_NAMES", "DEFAULT_COVERAGE", "DEFAULT_FOLDS", "DEFAULT_MAX_CANDIDATES", "DUPLICATE_MODES",
           "PRECISIONS"]

DEFAULT_FOLDS = 4  # confirm: cross-validation folds
DEFAULT_MAX_CANDIDATES = 6  # confirm: near-best front members cross-validated at most
DEFAULT_COVERAGE = 0.9  # conformal: share of images whose prediction set holds the true class

# names a command line checks before it imports the modules that own what the names stand for
PRECISIONS = ("auto", "fp32", "bf16", "fp16")  # precision.py
CAM_METHOD_NAMES = ("gradcam", "ablationcam", "gradcam++", "hirescam", "layercam")  # objectives/cam.py CAM_METHODS
DUPLICATE_MODES = ("keep", "group", "drop")  # data/duplicates.py

"""The positive class of a binary task: the class that means "disease", whose recall is the sensitivity.

MedMNIST numbers its classes by its sources, not by meaning: BreastMNIST's class 0 is malignant and class 1
"normal, benign"; PneumoniaMNIST's class 1 is pneumonia. A small table names the positive class of the binary
datasets whose class 1 is not the disease; any other binary dataset takes class 1, unless a class name reads as
a finding (``KEYWORDS``). ``--positive NAME`` on ``nas-med search`` overrides it and is stored on the study.
"""
from __future__ import annotations

from ..errors import UserError

__all__ = ["DEFAULT_POSITIVE", "KEYWORDS", "default_positive", "positive_index", "positive_name"]

DEFAULT_POSITIVE = {"breastmnist": "malignant", "pneumoniamnist": "pneumonia"}
KEYWORDS = ("malignant", "pneumonia", "tumor", "tumour", "cancer", "disease", "abnormal", "lesion", "positive")


def default_positive(name: str, classes: list[str]) -> int:
    """The index of the class meaning disease in a binary dataset ``name`` (class 1 when nothing says so)."""
    wanted = DEFAULT_POSITIVE.get(name.lower())
    if wanted in classes:
        return classes.index(wanted)
    hits = [i for i, c in enumerate(classes) if any(k in c.lower() for k in KEYWORDS)]
    return hits[0] if len(hits) == 1 else 1


def positive_index(task: str, name: str, classes: list[str], given: str | None = None) -> int | None:
    """The positive class index: ``given`` (a class name, or its index as text) or the default; None unless
    the task is binary. A name that is not a class is a UserError."""
    if task != "binary" and len(classes) != 2:
        if given is not None:
            raise UserError(f"--positive applies to binary tasks only; '{name}' is {task} with {len(classes)} "
                            "classes (per-class figures are reported instead).")
        return None
    if given is None:
        return default_positive(name, classes)
    if given in classes:
        return classes.index(given)
    if given.isdigit() and int(given) < len(classes):
        return int(given)
    raise UserError(f"--positive '{given}' is not a class of '{name}' (classes: {', '.join(classes)}).")


def positive_name(classes: list[str], index: int | None) -> str | None:
    return None if index is None else classes[index]

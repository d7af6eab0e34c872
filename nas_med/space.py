"""Search spaces: a YAML file -> a validated ``Space`` -> ``sample(trial, space, ...)`` -> ``ArchSpec``.

This module is the only place that calls ``trial.suggest_*``. A field is a list (a categorical choice), a
mapping ``{low, high, log?, step?}`` (an int or float range) or a single value (fixed).
"""
from __future__ import annotations


from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .arch.blocks import BLOCKS
from .arch.heads import HEADS
from .arch.layers import ACTIVATIONS, KERNELS, NORMS
from .arch.spec import ArchSpec, HeadSpec, StageSpec, StemSpec
from .errors import UserError

SPACES_DIR = Path(__file__).resolve().parent.parent / "search_spaces"

# field -> (kind, allowed values or None, default)
ARCH_FIELDS: dict[str, tuple[str, Any, Any]] = {
    "block": ("choice", BLOCKS, ["simple"]),
    "stages": ("int", None, {"low": 2, "high": 4}),
    "depth": ("int", None, [1]),
    "base_width": ("int", None, [16, 32]),
    "width_growth": ("float", None, [2.0]),
    "kernel": ("int", KERNELS, [3]),
    "norm": ("choice", NORMS, ["batch"]),
    "act": ("choice", ACTIVATIONS, ["relu"]),
    "stem": ("choice", ("none", "conv", "resnet"), ["none"]),
    "head": ("choice", HEADS, ["gap_linear"]),
    "head_hidden": ("int", None, [64]),
    "dropout": ("float", None, [0.0]),
    "expansion": ("float", None, [0]),
    "input_size": ("int", None, [None]),
}
TRAIN_FIELDS: dict[str, tuple[str, Any, Any]] = {
    "lr": ("float", None, [1e-3]),
    "batch_size": ("int", None, [32]),
    "weight_decay": ("float", None, [0.0]),
}


@dataclass(frozen=True)
class Space:
    """A validated search space: per field, a list of choices or a range dict."""

    name: str
    arch: dict[str, Any]
    train: dict[str, Any] = field(default_factory=dict)
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "arch": self.arch, "train": self.train}


def _check_value(path: str, kind: str, allowed, value) -> None:
    if value is None and path.endswith("input_size"):
        return
    if kind == "choice":
        if value not in allowed:
            from .errors import look_up

            try:
                look_up(str(value), allowed, f"value at {path}")
            except UserError as exc:
                raise UserError(f"search space field {path}: {exc}") from None
        return
    number_types = (int,) if kind == "int" else (int, float)
    if isinstance(value, bool) or not isinstance(value, number_types):
        raise UserError(f"search space field {path}: expected {'an integer' if kind == 'int' else 'a number'}, "
                        f"got {value!r}.")
    if allowed is not None and value not in allowed:
        raise UserError(f"search space field {path}: {value!r} is not one of {list(allowed)}.")
    if value < 0 or (kind == "int" and value == 0 and not path.endswith(("expansion", "dropout"))):
        raise UserError(f"search space field {path}: must be positive, got {value!r}.")


def _check_field(section: str, key: str, spec: tuple[str, Any, Any], raw) -> Any:
    kind, allowed, _ = spec
    path = f"{section}.{key}"
    if isinstance(raw, dict):
        extra = set(raw) - {"low", "high", "log", "step"}
        if extra or "low" not in raw or "high" not in raw or kind == "choice":
            raise UserError(f"search space field {path}: a range needs exactly low, high (and optional log, step), "
                            f"got {raw!r}.")
        for bound in ("low", "high"):
            _check_value(f"{path}.{bound}", kind, None, raw[bound])
        if raw["low"] > raw["high"]:
            raise UserError(f"search space field {path}: low {raw['low']!r} is above high {raw['high']!r}.")
        return dict(raw)
    values = raw if isinstance(raw, list) else [raw]
    if not values:
        raise UserError(f"search space field {path}: the list of choices is empty.")
    for i, value in enumerate(values):
        _check_value(f"{path}[{i}]", kind, allowed, value)
    return list(values)


def parse_space(data: Any, name: str = "space") -> Space:
    """Validate a loaded YAML document; a bad field raises UserError naming its path and value."""
    if not isinstance(data, dict):
        raise UserError(f"search space {name}: expected a mapping at the top level, got {type(data).__name__}.")
    unknown = set(data) - {"name", "description", "arch", "train"}
    if unknown:
        raise UserError(f"search space {name}: unknown top-level key '{sorted(unknown)[0]}' "
                        "(valid: name, description, arch, train).")
    sections = {}
    for section, fields_ in (("arch", ARCH_FIELDS), ("train", TRAIN_FIELDS)):
        raw = data.get(section) or {}
        if not isinstance(raw, dict):
            raise UserError(f"search space {name}: '{section}' must be a mapping, got {raw!r}.")
        bad = set(raw) - set(fields_)
        if bad:
            from .errors import look_up

            try:
                look_up(sorted(bad)[0], fields_, f"field in '{section}'")
            except UserError as exc:
                raise UserError(f"search space {name}: {exc}") from None
        sections[section] = {k: _check_field(section, k, fields_[k], raw[k]) for k in raw}
    return Space(str(data.get("name", name)), sections["arch"], sections["train"], str(data.get("description", "")))


def space_names() -> list[str]:
    """The shipped search spaces (files in ``search_spaces/``)."""
    return sorted(p.stem for p in SPACES_DIR.glob("*.yaml"))


def load_space(name_or_path: str | Path = "default") -> Space:
    """A shipped space by name (``default``, ``paper``, ``tiny``) or a YAML file by path."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        candidate = SPACES_DIR / f"{name_or_path}.yaml"
        if not candidate.exists():
            from .errors import look_up

            look_up(str(name_or_path), space_names(), "search space")
        path = candidate
    if not path.is_file():
        raise UserError(f"search space file '{path}' does not exist.")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise UserError(f"search space file '{path}' is not valid YAML: {str(exc).splitlines()[0]}") from None
    return parse_space(data, path.name)


def _suggest(trial, name: str, kind: str, choice):
    if isinstance(choice, dict):
        if kind == "int":
            return trial.suggest_int(name, choice["low"], choice["high"], step=choice.get("step", 1),
                                     log=choice.get("log", False))
        return trial.suggest_float(name, choice["low"], choice["high"], step=choice.get("step"),
                                   log=choice.get("log", False))
    if len(choice) == 1:
        return choice[0]
    return trial.suggest_categorical(name, choice)


def _get(trial, section: dict, fields_: dict, key: str):
    kind, _, default = fields_[key]
    return _suggest(trial, key, kind, section.get(key, default))


def sample(trial, space: Space, *, in_channels: int, num_classes: int, input_size: int) -> ArchSpec:
    """Sample one architecture from ``space`` with ``trial``'s sampler."""
    g = lambda key: _get(trial, space.arch, ARCH_FIELDS, key)  # noqa: E731
    block, n_stages = g("block"), g("stages")
    depth, base, growth = g("depth"), g("base_width"), g("width_growth")
    kernel, norm, act = g("kernel"), g("norm"), g("act")
    stem_type, head_type = g("stem"), g("head")
    hidden = g("head_hidden") if head_type == "gap_mlp" else 0
    dropout = g("dropout") if head_type != "gap_linear" else 0.0
    expansion = g("expansion")
    size = g("input_size") or input_size
    widths = [max(4, int(round(base * growth**i / 4)) * 4) for i in range(n_stages)]
    stages = tuple(StageSpec(block, w, depth, kernel, norm, act, True, expansion) for w in widths)
    stem = None if stem_type == "none" else StemSpec(stem_type, base, norm if norm != "none" else "batch", act)
    return ArchSpec(in_channels, num_classes, int(size), stages, stem, HeadSpec(head_type, hidden, dropout))


def sample_training(trial, space: Space) -> dict[str, Any]:
    """Sample the training settings the space searches (learning rate, batch size, weight decay)."""
    return {key: _get(trial, space.train, TRAIN_FIELDS, key) for key in TRAIN_FIELDS}



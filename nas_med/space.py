"""Search spaces: a YAML file -> a validated ``Space`` -> ``sample(trial, space, ...)`` -> ``ArchSpec``.

This module is the only place that calls ``trial.suggest_*``. A field is a list (a categorical choice), a
mapping ``{low, high, log?, step?}`` (an int or float range) or a single value (fixed).

``arch.by_block`` holds conditional choices: ``by_block: {bottleneck: {base_width: [64, 128]}}`` replaces
``base_width`` whenever ``bottleneck`` is the sampled block. Its Optuna parameters are named
``<block>.<field>`` so that each block keeps its own distribution.
"""
from __future__ import annotations

import sys
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .arch import BLOCKS
from .arch.heads import HEADS
from .arch.layers import ACTIVATIONS, KERNELS, NORMS
from .arch.spec import ArchSpec, HeadSpec, StageSpec, StemSpec
from .augment import POLICIES
from .errors import NumberLoader, UserError, look_up, read_text_limited

__all__ = ["ARCH_FIELDS", "SPACES_DIR", "TRAIN_FIELDS", "Field", "Space", "load_space", "parse_space", "sample",
           "sample_training", "space_names"]

def _spaces_dir() -> Path:
    """search_spaces/ of the source tree (editable install), else the copy a regular install puts in
    ``<prefix>/share/nas-med/search_spaces``."""
    source = Path(__file__).resolve().parent.parent / "search_spaces"
    installed = Path(sys.prefix) / "share" / "nas-med" / "search_spaces"
    return source if source.is_dir() or not installed.is_dir() else installed


SPACES_DIR = _spaces_dir()
MAX_FILE_BYTES = 1 << 20  # a search-space file is a few hundred bytes; anything near a megabyte is a mistake
MAX_DEPTH = 20  # YAML nesting (a space needs 4: arch.by_block.<block>.<field>)
MAX_CHOICES = 1000  # choices in one field


@dataclass(frozen=True)
class Field:
    """One searchable field: its kind (choice, int, float, bool), default, allowed values and bounds."""

    kind: str
    default: Any
    allowed: Collection | None = None
    minimum: float | None = None  # smallest valid value (inclusive)
    below: float | None = None  # values must be strictly below this
    none_ok: bool = False
    above_zero: bool = False  # floats that must be > 0
    maximum: float | None = None  # largest valid value (inclusive): bounds what building a candidate costs


ARCH_FIELDS: dict[str, Field] = {
    "block": Field("choice", ["simple"], BLOCKS),
    "stages": Field("int", {"low": 2, "high": 4}, minimum=1, maximum=16),
    "depth": Field("int", [1], minimum=1, maximum=64),
    "per_stage_depth": Field("bool", [False]),  # sample a depth for every stage (``depth0``, ``depth1``, ...)
    "base_width": Field("int", [16, 32], minimum=1),
    "width_growth": Field("float", [2.0], above_zero=True),
    "kernel": Field("int", [3], KERNELS),
    "norm": Field("choice", ["batch"], NORMS),
    "act": Field("choice", ["relu"], ACTIVATIONS),
    "stem": Field("choice", ["none"], ("none", "conv", "resnet")),
    "stem_width": Field("int", [0], minimum=0),  # 0 = base_width
    "first_downsample": Field("bool", [True]),  # does the first stage halve the map
    "last_downsample": Field("bool", [True]),  # does the last stage halve the map (U-Net encoder: no)
    "head": Field("choice", ["gap_linear"], HEADS),
    "head_hidden": Field("int", [64], minimum=0),
    "dropout": Field("float", [0.0], minimum=0, below=1),
    "expansion": Field("float", [0], minimum=0),  # 0 = the block's default
    "input_size": Field("int", [None], minimum=4, none_ok=True),  # None = the dataset's size
}
TRAIN_FIELDS: dict[str, Field] = {
    "lr": Field("float", [1e-3], above_zero=True),
    "batch_size": Field("int", [32], minimum=1),
    "weight_decay": Field("float", [0.0], minimum=0),
    "augment": Field("choice", ["none"], tuple(POLICIES)),  # nas_med.augment: searched or fixed per space
}
_NOT_BY_BLOCK = ("block",)


@dataclass(frozen=True)
class Space:
    """A validated search space: per field, a list of choices or a range dict (``arch.by_block`` nested)."""

    name: str
    arch: dict[str, Any]
    train: dict[str, Any] = field(default_factory=dict)
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "arch": self.arch, "train": self.train}


def _fail(path: str, message: str) -> UserError:
    return UserError(f"search space field {path}: {message}")


def _check_value(path: str, spec: Field, value: Any) -> None:
    if value is None and spec.none_ok:
        return
    if spec.kind == "choice":
        if not isinstance(value, str) or value not in spec.allowed:  # type: ignore[operator]
            try:
                look_up(str(value), spec.allowed or (), "value")
            except UserError as exc:
                raise _fail(path, str(exc)) from None
        return
    if spec.kind == "bool":
        if not isinstance(value, bool):
            raise _fail(path, f"expected true or false, got {value!r:.120}.")
        return
    number_types = (int,) if spec.kind == "int" else (int, float)
    if isinstance(value, bool) or not isinstance(value, number_types):
        raise _fail(path, f"expected {'an integer' if spec.kind == 'int' else 'a number'}, got {value!r:.120}.")
    if spec.allowed is not None and value not in spec.allowed:
        raise _fail(path, f"{value!r} is not one of {list(spec.allowed)}.")
    if spec.above_zero and value <= 0:
        raise _fail(path, f"must be above 0, got {value!r:.120}.")
    if spec.minimum is not None and value < spec.minimum:
        raise _fail(path, f"must be at least {spec.minimum!r}, got {value!r:.120}.")
    if spec.maximum is not None and value > spec.maximum:
        raise _fail(path, f"must be at most {spec.maximum!r}, got {value!r:.120}.")
    if spec.below is not None and value >= spec.below:
        raise _fail(path, f"must be below {spec.below!r}, got {value!r:.120}.")


def _check_range(path: str, spec: Field, raw: dict) -> dict:
    extra = sorted(set(raw) - {"low", "high", "log", "step"})
    if extra or "low" not in raw or "high" not in raw or spec.kind in ("choice", "bool"):
        what = "a list of choices" if spec.kind in ("choice", "bool") else "exactly low, high (optional log, step)"
        raise _fail(path, f"a range needs {what}, got {raw!r:.120}.")
    for bound in ("low", "high"):
        _check_value(f"{path}.{bound}", spec, raw[bound])
    if raw["low"] is None or raw["high"] is None:
        raise _fail(path, f"a range needs numbers, got {raw!r:.120}.")
    if raw["low"] > raw["high"]:
        raise _fail(path, f"low {raw['low']!r} is above high {raw['high']!r}.")
    if not isinstance(raw.get("log", False), bool):
        raise _fail(f"{path}.log", f"expected true or false, got {raw['log']!r}.")
    step = raw.get("step")
    if step is not None and (isinstance(step, bool) or not isinstance(step, (int, float)) or step <= 0
                             or (spec.kind == "int" and not isinstance(step, int))):
        raise _fail(f"{path}.step", f"expected a positive {'integer' if spec.kind == 'int' else 'number'}, "
                                    f"got {step!r}.")
    if raw.get("log") and (raw["low"] <= 0 or step is not None):
        raise _fail(path, f"a log range needs low > 0 and no step, got {raw!r:.120}.")
    return dict(raw)


def _check_field(path: str, spec: Field, raw: Any) -> Any:
    if isinstance(raw, dict):
        return _check_range(path, spec, raw)
    values = raw if isinstance(raw, list) else [raw]
    if not values:
        raise _fail(path, "the list of choices is empty.")
    if len(values) > MAX_CHOICES:
        raise _fail(path, f"{len(values)} choices; at most {MAX_CHOICES} are allowed.")
    for i, value in enumerate(values):
        _check_value(f"{path}[{i}]", spec, value)
    return list(values)


def _check_section(name: str, path: str, raw: Any, fields_: dict[str, Field]) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise UserError(f"search space {name}: '{path}' must be a mapping, got {raw!r:.80}.")
    for key in raw:
        if key not in fields_:
            try:
                look_up(str(key), fields_, f"field in '{path}'")
            except UserError as exc:
                raise UserError(f"search space {name}: {exc}") from None
    return {k: _check_field(f"{path}.{k}", fields_[k], v) for k, v in raw.items()}


def _check_by_block(name: str, raw: Any, blocks: list) -> dict[str, dict[str, Any]]:
    if not isinstance(raw, dict):
        raise UserError(f"search space {name}: 'arch.by_block' must be a mapping of block names, got {raw!r:.120}.")
    fields_ = {k: v for k, v in ARCH_FIELDS.items() if k not in _NOT_BY_BLOCK}
    checked = {}
    for block, overrides in raw.items():
        path = f"arch.by_block.{block}"
        if block not in blocks:
            raise _fail(path, f"block {block!r} is not among the arch.block choices {blocks}.")
        checked[block] = _check_section(name, path, overrides or {}, fields_)
    return checked


def parse_space(data: Any, name: str = "space") -> Space:
    """Validate a loaded YAML document; a bad field raises UserError naming its path and value."""
    if not isinstance(data, dict):
        raise UserError(f"search space {name}: expected a mapping at the top level, got {type(data).__name__}.")
    for key in data:
        if key not in ("name", "description", "arch", "train"):
            try:
                look_up(str(key), ("name", "description", "arch", "train"), "top-level key")
            except UserError as exc:
                raise UserError(f"search space {name}: {exc}") from None
    for key in ("name", "description"):
        if data.get(key) is not None and (not isinstance(data[key], (str, int, float)) or isinstance(data[key], bool)):
            raise UserError(f"search space {name}: '{key}' must be a text, got {data[key]!r:.80}.")
    for key in ("arch", "train"):
        if data.get(key) is not None and not isinstance(data[key], dict):
            raise UserError(f"search space {name}: '{key}' must be a mapping of fields (field: [choices]), got "
                            f"{type(data[key]).__name__} {data[key]!r:.80}.")
    arch = dict(data.get("arch") or {})
    by_block = arch.pop("by_block", None)
    arch = _check_section(name, "arch", arch, ARCH_FIELDS)
    if by_block is not None:
        blocks = arch.get("block", ARCH_FIELDS["block"].default)
        arch["by_block"] = _check_by_block(name, by_block, blocks if isinstance(blocks, list) else [])
    train = _check_section(name, "train", data.get("train") or {}, TRAIN_FIELDS)
    return Space(str(data.get("name", name)), arch, train, str(data.get("description", "")))


def space_names() -> list[str]:
    """The shipped search spaces (files in ``search_spaces/``)."""
    return sorted(p.stem for p in SPACES_DIR.glob("*.yaml"))


def load_space(name_or_path: str | Path = "default") -> Space:
    """A shipped space by name (``default``, ``paper``, ``tiny``, ...) or a YAML file by path."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        candidate = SPACES_DIR / f"{name_or_path}.yaml"
        if not candidate.exists():
            look_up(str(name_or_path), space_names(), "search space")
        path = candidate
    if not path.is_file():
        raise UserError(f"search space file '{path}' does not exist.")
    text = read_text_limited(path, MAX_FILE_BYTES, f"search space file '{path}'")
    try:
        data = yaml.load(text, Loader=SpaceLoader)  # noqa: S506 - a SafeLoader that refuses aliases
    except yaml.YAMLError as exc:
        raise UserError(f"search space file '{path}' is not valid YAML{_yaml_where(exc)}") from None
    except RecursionError:
        raise UserError(f"search space file '{path}' is nested too deeply.") from None
    return parse_space(data, path.name)


class SpaceLoader(NumberLoader):
    """SafeLoader that refuses aliases (``*name``: a few hundred bytes can expand to gigabytes) and deep nesting."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(None, None, f"aliases (*{event.anchor}) are not allowed in a "
                                              "search space", event.start_mark)
        self._depth = getattr(self, "_depth", 0) + 1
        try:
            if self._depth > MAX_DEPTH:
                raise yaml.composer.ComposerError(None, None, f"nested deeper than {MAX_DEPTH} levels",
                                                  self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _yaml_where(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"{where}: {problem}."


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


def _getter(trial, space: Space, block: str):
    """``get(key, name=key)``: sample field ``key`` as parameter ``name``, honouring ``by_block`` overrides."""
    overrides = space.arch.get("by_block", {}).get(block, {})

    def get(key: str, name: str | None = None):
        spec = ARCH_FIELDS[key]
        if key in overrides:
            return _suggest(trial, f"{block}.{name or key}", spec.kind, overrides[key])
        return _suggest(trial, name or key, spec.kind, space.arch.get(key, spec.default))

    return get


def sample(trial, space: Space, *, in_channels: int, num_classes: int, input_size: int) -> ArchSpec:
    """Sample one architecture from ``space`` with ``trial``'s sampler (check it with ``arch.check``)."""
    block = _suggest(trial, "block", "choice", space.arch.get("block", ARCH_FIELDS["block"].default))
    g = _getter(trial, space, block)
    n_stages = g("stages")
    depths = ([g("depth", f"depth{i}") for i in range(n_stages)] if g("per_stage_depth")
              else [g("depth")] * n_stages)
    base, growth = g("base_width"), g("width_growth")
    kernel, norm, act, expansion = g("kernel"), g("norm"), g("act"), g("expansion")
    first_down, last_down = g("first_downsample"), g("last_downsample")
    stem_type, head_type = g("stem"), g("head")
    stem_width = (g("stem_width") or base) if stem_type != "none" else 0
    hidden = g("head_hidden") if head_type == "gap_mlp" else 0
    dropout = g("dropout") if head_type != "gap_linear" else 0.0
    size = g("input_size") or input_size
    widths = [max(4, int(round(base * growth**i / 4)) * 4) for i in range(n_stages)]
    downs = [first_down if i == 0 else last_down if i == n_stages - 1 else True for i in range(n_stages)]
    stages = tuple(StageSpec(block, w, d, kernel, norm, act, down, float(expansion))
                   for w, d, down in zip(widths, depths, downs, strict=True))
    stem = None if stem_type == "none" else StemSpec(stem_type, stem_width, norm if norm != "none" else "batch", act)
    return ArchSpec(in_channels, num_classes, int(size), stages, stem, HeadSpec(head_type, hidden, float(dropout)))


def sample_training(trial, space: Space) -> dict[str, Any]:
    """Sample the training settings the space searches (learning rate, batch size, weight decay)."""
    return {key: _suggest(trial, key, spec.kind, space.train.get(key, spec.default))
            for key, spec in TRAIN_FIELDS.items()}

"""``ArchSpec``: a candidate network as plain data (JSON round trip, versioned, unknown keys rejected)."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from ..errors import UserError

SPEC_VERSION = 1


class InvalidSpec(UserError):
    """A spec that cannot make a working network (e.g. its feature map collapses); the message says why."""


def _from_dict(cls, data: dict[str, Any], where: str):
    if not isinstance(data, dict):
        raise UserError(f"{where}: expected a mapping, got {data!r}.")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise UserError(f"{where}: unknown key '{unknown[0]}' (valid: {', '.join(sorted(known))}).")
    for f in fields(cls):
        if f.name in data and f.type in _PLAIN_TYPES and not _is_a(data[f.name], _PLAIN_TYPES[f.type]):
            raise UserError(f"{where}: '{f.name}' must be {f.type.replace('|', 'or')}, got {data[f.name]!r}.")
    try:
        return cls(**data)
    except TypeError as exc:  # a required key is missing
        raise UserError(f"{where}: {exc}") from None


_PLAIN_TYPES: dict[str, tuple[type, ...]] = {
    "int": (int,), "float": (int, float), "bool": (bool,), "str": (str,), "str | None": (str, type(None)),
}


def _is_a(value: Any, types: tuple[type, ...]) -> bool:
    return isinstance(value, types) and (bool in types or not isinstance(value, bool))


@dataclass(frozen=True)
class StemSpec:
    """What runs before the first stage: ``conv`` (one conv-norm-act, stride 1) or ``resnet`` (7x7/2 + max pool)."""

    type: str = "conv"
    width: int = 32
    norm: str = "batch"
    act: str = "relu"


@dataclass(frozen=True)
class StageSpec:
    """``depth`` blocks of type ``block`` with ``width`` output channels; the first halves the map if ``downsample``.

    ``expansion`` is block-specific (bottleneck expansion, MBConv expand ratio, dense growth rate); 0 = the
    block's default.
    """

    block: str
    width: int
    depth: int = 1
    kernel: int = 3
    norm: str = "batch"
    act: str = "relu"
    downsample: bool = True
    expansion: float = 0


@dataclass(frozen=True)
class HeadSpec:
    """The classifier: ``gap_linear``, ``gap_mlp`` (``hidden`` units + ``dropout``) or ``flatten_linear``."""

    type: str = "gap_linear"
    hidden: int = 0
    dropout: float = 0.0


@dataclass(frozen=True)
class ArchSpec:
    """A whole network. Either ``stages`` (+ optional ``stem``) built from the block registry, or
    ``torchvision`` naming a torchvision model adapted to ``in_channels`` and ``num_classes``."""

    in_channels: int
    num_classes: int
    input_size: int
    stages: tuple[StageSpec, ...] = ()
    stem: StemSpec | None = None
    head: HeadSpec = field(default_factory=HeadSpec)
    torchvision: str | None = None
    name: str | None = None
    version: int = SPEC_VERSION

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["stages"] = [dict(s) for s in data["stages"]]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ArchSpec:
        if not isinstance(data, dict):
            raise UserError(f"spec: expected a mapping, got {data!r}.")
        data = dict(data)
        version = data.get("version", SPEC_VERSION)
        if version != SPEC_VERSION:
            raise UserError(f"spec version {version!r} is not supported (this nas-med reads version {SPEC_VERSION}).")
        stages = data.get("stages", ())
        if not isinstance(stages, (list, tuple)):
            raise UserError(f"spec: 'stages' must be a list, got {stages!r}.")
        data["stages"] = tuple(_from_dict(StageSpec, s, f"stages[{i}]") for i, s in enumerate(stages))
        if data.get("stem") is not None:
            data["stem"] = _from_dict(StemSpec, data["stem"], "stem")
        if "head" in data:
            data["head"] = _from_dict(HeadSpec, data["head"], "head")
        return _from_dict(cls, data, "spec")

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_json(cls, text: str) -> ArchSpec:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UserError(f"spec is not valid JSON: {exc}") from None
        return cls.from_dict(data)

    def with_io(self, in_channels: int | None = None, num_classes: int | None = None,
                input_size: int | None = None) -> ArchSpec:
        """The same architecture for other input channels, classes or size."""
        from dataclasses import replace

        return replace(self, in_channels=in_channels or self.in_channels,
                       num_classes=num_classes or self.num_classes, input_size=input_size or self.input_size)

    def summary(self) -> str:
        """One short line, e.g. ``stem conv16 | basic x2 w16-32-64 k3 batch relu | gap_linear``."""
        if self.torchvision:
            return f"torchvision {self.torchvision}"
        parts = [f"stem {self.stem.type}{self.stem.width}"] if self.stem else []
        first = self.stages[0] if self.stages else None
        uniform = first is not None and all((s.block, s.depth, s.kernel, s.norm, s.act, s.downsample) ==
                                            (first.block, first.depth, first.kernel, first.norm, first.act, True)
                                            for s in self.stages)
        if uniform:
            widths = "-".join(str(s.width) for s in self.stages)
            parts.append(f"{first.block} x{first.depth} w{widths} k{first.kernel} {first.norm} {first.act}")
        else:
            parts += [f"{s.block} x{s.depth} w{s.width} k{s.kernel} {s.norm} {s.act}" + ("" if s.downsample else " s1")
                      for s in self.stages]
        head = self.head.type + (f"({self.head.hidden})" if self.head.type == "gap_mlp" else "")
        return " | ".join(parts + [head])

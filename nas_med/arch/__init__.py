"""Architectures: the spec, the block registry, ``build`` and the reference networks."""
from .build import InvalidSpec, build, check, stage_shapes
from .spec import ArchSpec, HeadSpec, StageSpec, StemSpec

__all__ = ["ArchSpec", "HeadSpec", "InvalidSpec", "StageSpec", "StemSpec", "build", "check", "stage_shapes"]

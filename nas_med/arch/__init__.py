"""Architectures: the spec, the block registry, ``build``, cost, Grad-CAM target and the reference networks."""
from . import _convnext, _dense, _mbconv, blocks  # noqa: F401  (each registers its blocks)
from ._registry import BLOCKS, register_block
from .baselines import BASELINES, baseline_spec
from .build import InvalidSpec, Net, build, check, stage_shapes
from .cam_target import cam_target_layer
from .cost import count_params, spec_cost
from .heads import HEADS
from .spec import ArchSpec, HeadSpec, StageSpec, StemSpec

__all__ = ["BASELINES", "BLOCKS", "HEADS", "ArchSpec", "HeadSpec", "InvalidSpec", "Net", "StageSpec", "StemSpec",
           "baseline_spec", "build", "cam_target_layer", "check", "count_params", "register_block", "spec_cost",
           "stage_shapes"]

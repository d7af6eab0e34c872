"""The block registry: block factories by name. It imports no block module; each block module imports it
and registers itself, and ``nas_med.arch`` imports every block module (as timm's ``_registry.py``)."""
from __future__ import annotations

from collections.abc import Callable

from torch import nn

from ..errors import look_up

__all__ = ["BLOCKS", "BlockFactory", "make_block", "register_block"]

BlockFactory = Callable[..., nn.Module]
BLOCKS: dict[str, BlockFactory] = {}


def register_block(name: str) -> Callable[[BlockFactory], BlockFactory]:
    """Add a block factory to the registry under ``name`` (a duplicate name is an error)."""

    def add(factory: BlockFactory) -> BlockFactory:
        if name in BLOCKS:
            raise ValueError(f"block '{name}' is already registered")
        BLOCKS[name] = factory
        return factory

    return add


def make_block(name: str, in_ch: int, out_ch: int, stride: int, **opts) -> nn.Module:
    """Build the block registered as ``name``; an unknown name raises UserError with a did-you-mean."""
    if stride not in (1, 2):
        raise ValueError(f"block stride must be 1 or 2, got {stride!r}")
    return BLOCKS[look_up(name, BLOCKS, "block type")](in_ch, out_ch, stride, **opts)

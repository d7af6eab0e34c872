"""nas-med: neural architecture search for small medical image datasets."""
from __future__ import annotations

from ._version import __version__

__all__ = ["__version__", "load"]


def load(path):
    """An exported model folder as an ``nn.Module`` (CPU, eval mode), rebuilt from ``spec.json`` and
    ``model.safetensors`` without pickle. Imported lazily so that ``import nas_med`` stays light."""
    from .export.load import load as _load

    return _load(path)

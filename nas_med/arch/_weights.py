"""Reading local weight files without pickle (``torch.load(..., weights_only=True)``)."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..errors import UserError


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The state_dict in ``path`` (a plain one, or one under a ``state_dict`` key); UserError if unusable."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"weights file '{path}' does not exist.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the user's
        raise UserError(f"weights file '{path}' cannot be read as a state_dict: {str(exc).splitlines()[0]}") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"weights file '{path}' does not hold a state_dict (a mapping of names to tensors).")
    return state


def load_exact(model: nn.Module, path: str | Path) -> None:
    """Load ``path`` into ``model``; every key and shape must match (UserError naming the first mismatch)."""
    try:
        model.load_state_dict(read_state_dict(path))
    except RuntimeError as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        raise UserError(f"weights file '{path}' does not fit this spec: {lines[-1] if lines else exc}") from None

"""What identifies a dataset's content: stored on a study so that resuming it with other data is refused.

The fingerprint holds a BLAKE2 hash of the prepared tensors (images and labels of every split, in order), the
image count of each split, and the source file's path and size when the source is one file (MedMNIST ``.npz``).
"""
from __future__ import annotations

import hashlib
import os

import torch

from .types import Dataset

__all__ = ["data_fingerprint", "fingerprint_differences", "require_same_data"]


def _update(digest, tensor: torch.Tensor) -> None:
    t = tensor.detach().cpu().contiguous()
    digest.update(f"{t.dtype}{tuple(t.shape)}".encode())
    if t.numel():
        digest.update(t.view(-1).view(torch.uint8).numpy().data if t.dtype != torch.bool else
                      t.to(torch.uint8).view(-1).numpy().data)


def data_fingerprint(data: Dataset) -> dict:
    """``{"content": hex, "counts": {split: n}, "source": path, "source_bytes": n}`` of a prepared dataset."""
    digest = hashlib.blake2b(digest_size=16)
    for name, split in data.splits.items():
        digest.update(name.encode())
        _update(digest, split.images)
        _update(digest, split.labels)
    out: dict = {"content": digest.hexdigest(), "counts": {k: len(v) for k, v in data.splits.items()}}
    source = data.info.source or None
    if isinstance(source, str) and os.path.isfile(source):
        out.update(source=source, source_bytes=os.path.getsize(source))
    elif isinstance(source, str):
        out["source"] = source
    return out


def fingerprint_differences(stored: dict | None, given: dict | None) -> list[str]:
    """What differs between two fingerprints, in words (empty when equal, or when either is missing: studies
    created before fingerprints existed resume as before)."""
    if not stored or not given or stored.get("content") == given.get("content"):
        return []
    parts = []
    if stored.get("source") != given.get("source"):
        parts.append(f"source stored {stored.get('source')!r}, given {given.get('source')!r}")
    if stored.get("source_bytes") != given.get("source_bytes") and "source_bytes" in stored:
        parts.append(f"source size stored {stored.get('source_bytes')} bytes, given {given.get('source_bytes')}")
    counts_s, counts_g = stored.get("counts") or {}, given.get("counts") or {}
    for split in ("train", "val", "test"):
        if counts_s.get(split) != counts_g.get(split):
            parts.append(f"{split} images stored {counts_s.get(split)}, given {counts_g.get(split)}")
    parts.append(f"content hash stored {str(stored.get('content'))[:12]}, given {str(given.get('content'))[:12]}")
    return [f"data: other images or labels than the study was created with ({', '.join(parts)})"]


def require_same_data(resolved: dict, data: Dataset, who: str) -> None:
    """UserError when ``data`` is not the data the study of ``resolved`` (its stored config) was made with;
    ``who`` starts the message (e.g. "study 'x' cannot run on this worker's data")."""
    from ..errors import UserError

    diff = fingerprint_differences(resolved.get("data_fingerprint"), data_fingerprint(data))
    if diff:
        raise UserError(f"{who}: {diff[0]}.")

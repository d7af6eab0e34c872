"""Near-duplicate images within and across splits, by a perceptual hash of the uint8 tensors a dataset holds.

The hash is pHash (Zauner 2010, the ``imagehash.phash`` recipe): the grayscale image resized to 32 x 32, its 2-D
DCT-II, the 8 x 8 lowest frequencies compared with their median -> 64 bits. Computed here in one batched pass on
the tensors already in memory (resize with antialiasing, DCT as two matrix products), so every source (npz,
folders, RadImageNet) gets the same check without decoding its files again. Two images are near-duplicates when
their hashes differ in at most ``threshold`` bits (Hamming distance); groups are the connected components of that
relation. ``benchmarks/duplicates.py`` compares what this finds with ``imagehash`` and where false matches start.

What a group means for the splits (``--duplicates``):
- ``keep``: report only;
- ``group``: folder datasets split every group into one split, as a patient group (fixed splits: as ``keep``);
- ``drop``: fixed splits (MedMNIST, RadImageNet) drop from val/test every image that copies a training image,
  and from test those that copy a validation image; folders split by group as ``group`` does.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from ..defaults import DUPLICATE_MODES
from ..errors import UserError

__all__ = ["DEFAULT_THRESHOLD", "DUPLICATE_MODES", "DEFAULT_MODE", "DuplicateReport", "check_mode",
           "DATA_HASHES", "find_groups", "hamming_pairs", "hashes_record", "read_hashes", "merge_groups", "near_copies", "phash", "report_for", "drop_copies_of_earlier_splits"]

HASH_SIDE, LOW = 32, 8
DEFAULT_THRESHOLD = 4  # bits of 64; benchmarks/README.md: where false matches start on BreastMNIST / brain MRI
DEFAULT_MODE = "group"
SPLIT_ORDER = ("train", "val", "test")


def check_mode(mode: str) -> str:
    """``mode`` when it is one of DUPLICATE_MODES; UserError naming it otherwise."""
    if mode not in DUPLICATE_MODES:
        raise UserError(f"--duplicates must be one of {', '.join(DUPLICATE_MODES)}, got '{mode}'.")
    return mode


def _dct_matrix(n: int) -> torch.Tensor:
    """The (unnormalised) DCT-II matrix: row k, column i = cos(pi k (2i + 1) / 2n)."""
    k = torch.arange(n, dtype=torch.float64)[:, None]
    i = torch.arange(n, dtype=torch.float64)[None, :]
    return torch.cos(math.pi * k * (2 * i + 1) / (2 * n))


def phash(images: torch.Tensor, batch: int = 4096) -> np.ndarray:
    """64-bit pHash of every image of a (N, C, H, W) uint8 tensor, as an (N,) uint64 array."""
    if images.ndim != 4:
        raise ValueError(f"expected (N, C, H, W) images, got shape {tuple(images.shape)}")
    d = _dct_matrix(HASH_SIDE)
    weights = 2 ** torch.arange(63, -1, -1, dtype=torch.float64)
    out = np.empty(len(images), dtype=np.uint64)
    for s in range(0, len(images), batch):
        x = images[s:s + batch].double()
        if x.shape[1] == 3:  # ITU-R 601-2 luma, as PIL's convert("L")
            x = (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2])[:, None]
        elif x.shape[1] != 1:
            x = x.mean(1, keepdim=True)
        x = F.interpolate(x, size=(HASH_SIDE, HASH_SIDE), mode="bilinear", antialias=True, align_corners=False)
        low = (d @ x[:, 0] @ d.T)[:, :LOW, :LOW].reshape(len(x), -1)  # (B, 64)
        bits = low > low.median(1, keepdim=True).values
        # exact as integers: split the 64 bits in two 32-bit halves so float64 holds each sum exactly
        hi = (bits[:, :32].double() * weights[:32] / 2 ** 32).sum(1).round().long().numpy().astype(np.uint64)
        lo = (bits[:, 32:].double() * weights[32:]).sum(1).round().long().numpy().astype(np.uint64)
        out[s:s + len(x)] = (hi << np.uint64(32)) | lo
    return out


def _popcount(x: np.ndarray) -> np.ndarray:
    return np.bitwise_count(x) if hasattr(np, "bitwise_count") else np.unpackbits(
        x.view(np.uint8).reshape(*x.shape, 8), axis=-1).sum(-1)


def hamming_pairs(hashes: np.ndarray, threshold: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every pair i < j with Hamming distance <= ``threshold``: (i, j, distance), sorted by (i, j).

    Multi-index hashing: cut the 64 bits into ``threshold + 1`` chunks; two hashes within ``threshold`` bits agree
    exactly on at least one chunk (pigeonhole), so only images sharing a chunk value are compared."""
    hashes = np.asarray(hashes, dtype=np.uint64)
    chunks = min(int(threshold) + 1, 64)
    bounds = np.linspace(0, 64, chunks + 1).round().astype(int)
    found: list[np.ndarray] = []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        key = (hashes >> np.uint64(lo)) & np.uint64((1 << int(hi - lo)) - 1)
        order = np.argsort(key, kind="stable")
        starts = np.flatnonzero(np.r_[True, key[order][1:] != key[order][:-1], True])
        for a, b in zip(starts[:-1], starts[1:]):
            if b - a < 2:
                continue
            members = np.sort(order[a:b])
            dist = _popcount(hashes[members][:, None] ^ hashes[members][None, :])
            i, j = np.nonzero(np.triu(dist <= threshold, 1))
            if len(i):
                found.append(np.stack([members[i], members[j], dist[i, j].astype(np.int64)], 1))
    if not found:
        return (np.empty(0, dtype=np.int64),) * 3
    pairs = np.unique(np.concatenate(found).astype(np.int64), axis=0)
    return pairs[:, 0], pairs[:, 1], pairs[:, 2]


def _components(n: int, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Connected components of the pairs (i, j) over n items: ids 0..G-1 in order of first appearance."""
    parent = np.arange(n)

    def root(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for a, b in zip(np.asarray(i).tolist(), np.asarray(j).tolist()):
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    order: dict[int, int] = {}
    return np.array([order.setdefault(root(a), len(order)) for a in range(n)], dtype=np.int64)


def find_groups(hashes: np.ndarray, threshold: int = DEFAULT_THRESHOLD) -> np.ndarray:
    """Group id per image: images within ``threshold`` bits of each other (transitively) share an id; an image
    with no near copy has a group of its own. Ids are 0..G-1 in order of first appearance."""
    i, j, _ = hamming_pairs(hashes, threshold)
    return _components(len(hashes), i, j)


def near_copies(query: np.ndarray, reference: np.ndarray, threshold: int = DEFAULT_THRESHOLD) -> np.ndarray:
    """(len(query),) bool: which query hashes lie within ``threshold`` bits of some reference hash."""
    query, reference = np.asarray(query, dtype=np.uint64), np.asarray(reference, dtype=np.uint64)
    i, j, _ = hamming_pairs(np.concatenate([reference, query]), threshold)  # i < j: a reference before a query
    hit = np.zeros(len(query), dtype=bool)
    cross = (i < len(reference)) & (j >= len(reference))
    hit[j[cross] - len(reference)] = True
    return hit


def merge_groups(*keys: np.ndarray) -> np.ndarray:
    """One group id per image joining several groupings (e.g. patient ids and duplicate groups): two images share
    an id when any grouping puts them together, directly or through others."""
    n = len(keys[0])
    ii, jj = [], []
    for key in keys:
        _, inverse = np.unique(np.asarray(key), return_inverse=True)
        first = np.full(inverse.max() + 1 if n else 0, -1)
        for a, g in enumerate(inverse.tolist()):
            if first[g] < 0:
                first[g] = a
            else:
                ii.append(first[g])
                jj.append(a)
    return _components(n, np.asarray(ii, dtype=np.int64), np.asarray(jj, dtype=np.int64))


@dataclass(frozen=True)
class DuplicateReport:
    """Near-duplicate groups of a dataset (images of several splits pooled in train, val, test order)."""

    threshold: int
    images: int
    groups: int  # groups of two or more images
    extra_copies: int  # images beyond the first of each group
    cross_split: dict[str, int]  # "train-test" -> groups holding images of both splits
    cross_class: int  # groups whose images carry different labels
    examples: tuple[tuple[str, ...], ...] = ()  # up to 3 groups as "split#index" (or file) names
    dropped: dict[str, int] = field(default_factory=dict)  # split -> images removed by --duplicates drop
    mode: str = "keep"
    fixed_splits: bool = True  # False for a folder, split here (and by group under --duplicates group|drop)
    spanning: int | None = None  # groups with images in two splits or more (cross_split counts pairs of splits)

    def to_dict(self) -> dict:
        return {"threshold": self.threshold, "images": self.images, "groups": self.groups,
                "extra_copies": self.extra_copies, "cross_split": dict(self.cross_split),
                "cross_class": self.cross_class, "examples": [list(e) for e in self.examples],
                "dropped": dict(self.dropped), "mode": self.mode, "fixed_splits": self.fixed_splits,
                "spanning": self.leaked}

    @classmethod
    def from_dict(cls, d: dict) -> DuplicateReport:
        return cls(threshold=int(d["threshold"]), images=int(d["images"]), groups=int(d["groups"]),
                   extra_copies=int(d["extra_copies"]), cross_split=dict(d["cross_split"]),
                   cross_class=int(d["cross_class"]), examples=tuple(tuple(e) for e in d.get("examples", ())),
                   dropped=dict(d.get("dropped", {})), mode=str(d.get("mode", "keep")),
                   fixed_splits=bool(d.get("fixed_splits", True)), spanning=d.get("spanning"))

    @property
    def leaked(self) -> int:
        """Groups that span two splits or more."""
        return sum(self.cross_split.values()) if self.spanning is None else int(self.spanning)

    def line(self) -> str:
        """One line for the pre-flight summary, ``datasets show``, the report and the card."""
        head = (f"near-duplicates (perceptual hash, <= {self.threshold} of 64 bits apart): ")
        if not self.groups:
            return head + f"none among {self.images} images"
        text = (f"{self.groups} group{'s' if self.groups != 1 else ''} ({self.extra_copies} extra "
                f"cop{'ies' if self.extra_copies != 1 else 'y'} among {self.images} images)")
        spans = ", ".join(f"{n} {k}" for k, n in self.cross_split.items() if n)
        text += f"; across splits: {spans}" if spans else "; none spans two splits"
        if self.cross_class:
            text += f"; {self.cross_class} with conflicting labels"
        if self.examples:
            text += f"; e.g. {' = '.join(self.examples[0])}"
        if self.dropped:
            text += ("; copies of earlier splits dropped (--duplicates drop): "
                     + ", ".join(f"{n} from {s}" for s, n in self.dropped.items()))
        elif self.leaked and self.fixed_splits:
            text += "; the published splits are kept as they are (--duplicates drop removes the copies from val/test)"
        elif self.leaked:
            text += "; --duplicates group keeps each group in one split"
        elif not self.fixed_splits and self.mode != "keep":
            text += "; each group kept in one split (--duplicates group)"
        return head + text


def _labels_key(labels: torch.Tensor) -> list:
    return [tuple(r) for r in labels.tolist()] if labels.ndim > 1 else labels.tolist()


def report_for(images: dict[str, torch.Tensor], labels: dict[str, torch.Tensor], threshold: int = DEFAULT_THRESHOLD,
               names: dict[str, list[str]] | None = None, mode: str = "keep",
               dropped: dict[str, int] | None = None, hashes: dict[str, np.ndarray] | None = None,
               fixed_splits: bool = True) -> DuplicateReport:
    """The duplicate groups of named splits (``images[split]`` uint8 (N, C, H, W)); ``names`` gives file names
    for the examples (else ``split#index``)."""
    splits = [s for s in images if len(images[s])]
    h = np.concatenate([hashes[s] if hashes else phash(images[s]) for s in splits]) if splits else np.empty(0)
    split_of = np.concatenate([[k] * len(images[s]) for k, s in enumerate(splits)]) if splits else np.empty(0)
    index_of = np.concatenate([np.arange(len(images[s])) for s in splits]) if splits else np.empty(0)
    label_of = sum((_labels_key(labels[s]) for s in splits), [])
    gid = find_groups(h, threshold) if len(h) else np.empty(0, dtype=np.int64)
    members: dict[int, list[int]] = {}
    for i, g in enumerate(gid.tolist()):
        members.setdefault(g, []).append(i)
    dups = [m for m in members.values() if len(m) > 1]
    cross: dict[str, int] = {}
    for a in range(len(splits)):
        for b in range(a + 1, len(splits)):
            cross[f"{splits[a]}-{splits[b]}"] = sum(1 for m in dups if {a, b} <= {int(split_of[i]) for i in m})

    def name(i: int) -> str:
        s, k = splits[int(split_of[i])], int(index_of[i])
        return f"{s}:{names[s][k]}" if names and s in names else f"{s}#{k}"

    spanning = [m for m in dups if len({int(split_of[i]) for i in m}) > 1]
    examples = tuple(tuple(name(i) for i in m[:4]) for m in (spanning + [m for m in dups if m not in spanning])[:3])
    return DuplicateReport(threshold=threshold, images=len(h), groups=len(dups),
                           extra_copies=sum(len(m) - 1 for m in dups), cross_split=cross,
                           cross_class=sum(1 for m in dups if len({label_of[i] for i in m}) > 1),
                           examples=examples, dropped=dict(dropped or {}), mode=mode,
                           fixed_splits=fixed_splits, spanning=len(spanning))


DATA_HASHES = "data_hashes.json"  # in an exported folder: the pHash of every image it was trained and tested on


def hashes_record(splits: dict) -> dict:
    """The pHashes of every split's images (``Split`` objects), as the JSON an export keeps so that ``evaluate``
    can find copies of the model's own images in other data without the images themselves."""
    return {"hash": "pHash, 64 bits as 16 hex digits (nas_med.data.duplicates.phash)", "threshold": DEFAULT_THRESHOLD,
            "splits": {name: [f"{int(v):016x}" for v in phash(split.images)] for name, split in splits.items()}}


def read_hashes(record: dict) -> dict[str, np.ndarray]:
    """The split -> uint64 hashes of a ``hashes_record``."""
    return {name: np.array([int(v, 16) for v in values], dtype=np.uint64)
            for name, values in (record.get("splits") or {}).items()}


def drop_copies_of_earlier_splits(images: dict[str, torch.Tensor], threshold: int = DEFAULT_THRESHOLD
                                  ) -> dict[str, np.ndarray]:
    """Per split, the indices to keep: an image of val is dropped when it is a near copy of a training image,
    one of test when it copies a training or validation image (splits in SPLIT_ORDER; train is never touched)."""
    order = [s for s in SPLIT_ORDER if s in images]
    h = np.concatenate([phash(images[s]) for s in order])
    split_of = np.concatenate([[k] * len(images[s]) for k, s in enumerate(order)]).astype(np.int64)
    i, j, _ = hamming_pairs(h, threshold)  # i < j: split_of[i] <= split_of[j]
    drop = np.zeros(len(h), dtype=bool)
    drop[j[split_of[i] < split_of[j]]] = True
    offsets = np.cumsum([0] + [len(images[s]) for s in order])
    return {s: np.flatnonzero(~drop[offsets[k]:offsets[k + 1]]) for k, s in enumerate(order)}

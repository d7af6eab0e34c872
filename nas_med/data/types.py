"""The prepared form of every dataset: uint8 image tensors in memory, split into train/val/test."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Literal

import torch

if TYPE_CHECKING:
    from .duplicates import DuplicateReport

Task = Literal["binary", "multiclass", "multilabel"]
TASKS: tuple[str, ...] = ("binary", "multiclass", "multilabel")


@dataclass
class Split:
    """One split. ``images`` (N, C, H, W) uint8; ``labels`` (N,) int64, or (N, L) float 0/1 for multi-label;
    ``masks`` (N, H, W) bool ground-truth lesion masks when the source has them; ``groups`` (N,) int64 patient
    group ids (shared across the splits of one dataset) when the source names them (a folder's --group-regex)."""

    images: torch.Tensor
    labels: torch.Tensor
    masks: torch.Tensor | None = None
    groups: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def subset(self, index: torch.Tensor) -> Split:
        """The images at ``index`` (a 1-D long tensor), in that order."""
        masks = None if self.masks is None else self.masks[index]
        groups = None if self.groups is None else self.groups[index]
        return Split(self.images[index], self.labels[index], masks, groups)


@dataclass
class DatasetInfo:
    """What is known of a dataset beyond its images: where it came from and what loading decided. Every loader
    fills what its source has; the rest keeps its default."""

    source: str = ""                                 # the file, folder or listing the images came from
    licence: str = ""
    seed: int | None = None                          # the seed of a folder's or listing's split
    fraction: float = 1.0                            # share of the training split kept (--fraction)
    positive: int | None = None                      # index of the positive class (binary tasks)
    pooled: bool = False                             # train holds train + val (a fold ensemble's data)
    split_files: dict[str, list[str]] | None = None  # a folder's file names per split, relative to the folder
    group_key: str | None = None                     # what groups images into patients (--group-regex or CSV)
    duplicates: DuplicateReport | None = None        # near-duplicate groups (data.duplicates)
    duplicates_mode: str = "keep"                    # keep, group or drop (--duplicates)
    files: int | None = None                         # image files found (folders)
    unreadable: int = 0                              # files that could not be decoded
    pool: int | None = None                          # images the split was drawn from (listings)
    split_ratios: list[float] | None = None
    file_size: int | None = None                     # the image size of the MedMNIST file read
    medmnist_task: str | None = None                 # MedMNIST's own task name
    protocol: str | None = None                      # how a listing's splits follow its paper


@dataclass
class Dataset:
    """A dataset ready for training: three splits, class names and the task type."""

    name: str
    task: Task
    classes: list[str]
    train: Split
    val: Split
    test: Split
    info: DatasetInfo = field(default_factory=DatasetInfo)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def in_channels(self) -> int:
        return int(self.train.images.shape[1])

    @property
    def size(self) -> int:
        return int(self.train.images.shape[-1])

    @property
    def splits(self) -> dict[str, Split]:
        return {"train": self.train, "val": self.val, "test": self.test}

    def class_counts(self) -> dict[str, list[int]]:
        """Images per class in each split (for multi-label: positives per label)."""
        out = {}
        for name, split in self.splits.items():
            if self.task == "multilabel":
                out[name] = [int(v) for v in split.labels.sum(0).tolist()]
            else:
                out[name] = [int(v) for v in torch.bincount(split.labels, minlength=self.num_classes).tolist()]
        return out

    def with_splits(self, **splits: Split) -> Dataset:
        """A copy with some splits replaced."""
        return replace(self, **splits)  # type: ignore[arg-type]

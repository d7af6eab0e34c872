"""radimagenet-msk: the miniature tree and CSV listings, the paper's protocol and its table arithmetic."""
from __future__ import annotations

import csv

import pytest
import torch

from nas_med.data import load_dataset, radimagenet
from nas_med.errors import UserError

PAPER_TABLE = [(0.10, 34_882, 10_464), (0.05, 17_441, 5_232), (0.03, 10_464, 3_139), (0.01, 3_488, 1_046),
               (0.005, 1_744, 523)]


@pytest.mark.parametrize("fraction,train,val", PAPER_TABLE)
def test_protocol_sizes_reproduce_the_paper_table(fraction, train, val):
    assert radimagenet.protocol_sizes(348_824, fraction) == (train, val)


def test_full_fraction_keeps_whole_splits():
    assert radimagenet.protocol_sizes(348_824, 1.0) == (348_824, None)


def test_tree_gives_five_classes_and_65_25_10(msk_tree):
    data = load_dataset("radimagenet-msk", data_root=msk_tree)
    assert data.classes == ["ankle", "hip", "knee", "shoulder", "spine"]
    assert data.task == "multiclass"
    assert data.info.pool == 200  # brain, CT and US images ignored
    counts = data.class_counts()
    assert counts == {"train": [26] * 5, "val": [10] * 5, "test": [4] * 5}
    assert data.train.images.dtype == torch.uint8 and data.train.images.shape[1:] == (1, 8, 8)


def test_fraction_follows_the_protocol(msk_tree, ident):
    full = load_dataset("radimagenet-msk", data_root=msk_tree, seed=3)
    half = load_dataset("radimagenet-msk", data_root=msk_tree, seed=3, fraction=0.5)
    assert len(half.train) == 65  # floor(0.5 * 130)
    assert len(half.val) == 19  # floor(0.3 * 65)
    assert len(half.test) == 20  # test stays whole
    assert all(c >= 12 for c in half.class_counts()["train"])
    ids = {name: set(ident(s.images)) for name, s in half.splits.items()}
    full_ids = {name: set(ident(s.images)) for name, s in full.splits.items()}
    assert ids["train"] <= full_ids["train"] and ids["val"] <= full_ids["val"]
    assert ids["test"] == full_ids["test"]
    assert not ids["train"] & ids["val"] and not ids["train"] & ids["test"] and not ids["val"] & ids["test"]


def test_only_chosen_images_are_decoded_and_second_load_uses_cache(msk_tree, count_opens):
    first = load_dataset("radimagenet-msk", data_root=msk_tree, fraction=0.5, size=16)
    assert count_opens[0] == 65 + 19 + 20
    second = load_dataset("radimagenet-msk", data_root=msk_tree, fraction=0.5, size=16)
    assert count_opens[0] == 65 + 19 + 20  # nothing decoded again
    assert torch.equal(first.train.images, second.train.images)
    assert torch.equal(first.test.labels, second.test.labels)
    assert second.size == 16


def test_anatomy_aliases(tmp_path, msk_builder):
    root = msk_builder(tmp_path / "r", per_pathology=3, anatomies=("ankle_foot", "hip", "knee", "shoulder", "spine"))
    data = load_dataset("radimagenet-msk", data_root=root / "radiology_ai")
    assert data.classes[0] == "ankle" and data.info.pool == 30


def test_missing_anatomy_is_named(tmp_path, msk_builder):
    root = msk_builder(tmp_path / "r", per_pathology=3, anatomies=("af", "knee", "shoulder", "spine"))
    with pytest.raises(UserError, match="'hip'"):
        load_dataset("radimagenet-msk", data_root=root)


def _write_csv(path, rows, columns=("filename", "label")):
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(columns)
        writer.writerows(rows)


def test_csv_listing(msk_tree):
    mr = msk_tree / "radiology_ai" / "MR"
    rows = []
    for anatomy, label in [("af", "af-soft tissue fluid"), ("hip", "hip-normal"), ("knee", "knee-normal"),
                           ("shoulder", "shoulder-normal"), ("spine", "spine-normal")]:
        files = sorted((mr / anatomy / "normal").glob("*.png"))[:8]
        rows += [(f.relative_to(msk_tree).as_posix(), label) for f in files]
    brain = sorted((mr / "brain" / "normal").glob("*.png"))[0]
    lung = sorted((msk_tree / "radiology_ai" / "CT" / "lung" / "nodule").glob("*.png"))[0]
    extra = [(brain.relative_to(msk_tree).as_posix(), "brain-normal"),
             (lung.relative_to(msk_tree).as_posix(), "lung-nodule")]
    _write_csv(msk_tree / "RadiologyAI_train.csv", rows[:30] + extra)
    _write_csv(msk_tree / "RadiologyAI_val.csv", rows[30:])
    data = load_dataset("radimagenet-msk", data_root=msk_tree)
    assert data.info.pool == 40  # the CSV rows, not the 200 files of the tree
    assert sum(len(s) for s in data.splits.values()) == 40
    assert data.class_counts()["train"] == [5] * 5  # round(0.65 * 8)


def test_csv_without_expected_columns(msk_tree):
    _write_csv(msk_tree / "RadiologyAI_train.csv", [("a.png", "knee-normal")], columns=("path", "class"))
    with pytest.raises(UserError, match="filename,label"):
        load_dataset("radimagenet-msk", data_root=msk_tree)


def test_data_root_required_and_checked(tmp_path):
    with pytest.raises(UserError, match="--data-root"):
        load_dataset("radimagenet-msk")
    with pytest.raises(UserError, match="no RadImageNet data"):
        load_dataset("radimagenet-msk", data_root=tmp_path)
    with pytest.raises(UserError, match="does not exist"):
        load_dataset("radimagenet-msk", data_root=tmp_path / "nope")


def test_fraction_too_small_for_every_class(msk_tree):
    with pytest.raises(UserError, match="--fraction 0.02"):
        load_dataset("radimagenet-msk", data_root=msk_tree, fraction=0.02)  # 2 images for 5 classes

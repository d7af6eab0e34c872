"""folder:PATH datasets: listing, stratified and group-aware splits, decoding, unreadable files, cache."""
from __future__ import annotations

import logging
import os

import pytest
import torch

from nas_med.data import load_dataset
from nas_med.errors import UserError


@pytest.fixture
def tree(tmp_path, make_image):
    """Class 'benign' 30 PNG + 6 JPEG, class 'malignant' 20 PNG; file p<patient>_<k>: 3 images per patient."""
    root = tmp_path / "images"
    ident = 0
    for cls, patients in (("benign", 10), ("malignant", 7)):
        for p in range(patients):
            for k in range(3):
                if cls == "malignant" and p == 6 and k > 1:
                    continue
                make_image(root / cls / f"p{ident // 3:03d}_{k}.png", ident)
                ident += 1
    for k in range(6):  # JPEG: lossy, so they carry no identity; a sub-folder of a class counts too
        make_image(root / "benign" / "extra" / f"q{k}.jpg", 500 + k)
    return root


def test_classes_counts_and_stratified_split(tree):
    data = load_dataset(f"folder:{tree}")
    assert data.classes == ["benign", "malignant"] and data.task == "binary"
    assert data.name == f"folder:{tree}"
    counts = data.class_counts()
    assert [sum(c) for c in zip(*counts.values())] == [36, 20]
    for k, n in enumerate((36, 20)):
        assert abs(counts["train"][k] - 0.7 * n) <= 1
        assert abs(counts["val"][k] - 0.15 * n) <= 1
    assert data.train.images.dtype == torch.uint8 and data.train.images.shape[1:] == (1, 12, 12)
    assert data.train.labels.dtype == torch.int64


def test_split_ratios_and_seed(tree):
    a = load_dataset(f"folder:{tree}", seed=1, split_ratios=(0.5, 0.25, 0.25))
    b = load_dataset(f"folder:{tree}", seed=1, split_ratios=(0.5, 0.25, 0.25))
    c = load_dataset(f"folder:{tree}", seed=2, split_ratios=(0.5, 0.25, 0.25))
    assert len(a.train) == 28 and len(a.val) == 14 and len(a.test) == 14
    assert torch.equal(a.train.images, b.train.images)
    assert not torch.equal(a.train.images, c.train.images)


def _patients(split, ident):
    return {i // 3 for i in ident(split.images) if i < 500}


def test_group_regex_keeps_each_patient_in_one_split(tree, ident):
    plain = load_dataset(f"folder:{tree}", seed=0)
    sets = [_patients(s, ident) for s in plain.splits.values()]
    assert sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2]  # without a group key patients leak
    for seed in range(3):
        data = load_dataset(f"folder:{tree}", seed=seed, group_regex=r"([pq]\d+)")
        sets = [_patients(s, ident) for s in data.splits.values()]
        assert not sets[0] & sets[1] and not sets[0] & sets[2] and not sets[1] & sets[2]
        assert sum(len(s) for s in data.splits.values()) == 56


def test_group_regex_errors(tree):
    with pytest.raises(UserError, match=r"'\(p\\d\+'"):
        load_dataset(f"folder:{tree}", group_regex=r"(p\d+")
    with pytest.raises(UserError, match="does not match the file 'extra/q0.jpg'"):
        load_dataset(f"folder:{tree}", group_regex=r"^p\d+")


def test_group_csv(tree, tmp_path, ident):
    files = sorted(p for p in tree.rglob("*") if p.is_file())
    table = tmp_path / "groups.csv"
    lines = ["filename,group"] + [f"{p.relative_to(tree).as_posix()},{p.name.split('_')[0]}" for p in files]
    table.write_text("\n".join(lines) + "\n")
    data = load_dataset(f"folder:{tree}", seed=1, group_csv=table)
    sets = [_patients(s, ident) for s in data.splits.values()]
    assert not sets[0] & sets[1] and not sets[0] & sets[2] and not sets[1] & sets[2]
    table.write_text("\n".join(lines[:-1]) + "\n")  # one file without a group
    with pytest.raises(UserError, match="no group for 1 of 56"):
        load_dataset(f"folder:{tree}", group_csv=table)
    table.write_text("file,patient\na.png,1\n")
    with pytest.raises(UserError, match="filename,group"):
        load_dataset(f"folder:{tree}", group_csv=table)


def test_resize_while_decoding_and_channels(tmp_path, make_image):
    root = tmp_path / "mixed"
    for k in range(6):
        make_image(root / "a" / f"{k}.png", k, size=(40, 30))
        make_image(root / "b" / f"{k}.png", 10 + k, size=(33, 33), mode="RGB")
    data = load_dataset(f"folder:{root}", size=16)
    assert data.train.images.shape[1:] == (3, 16, 16)  # one RGB image makes the set RGB
    gray = load_dataset(f"folder:{root}", size=16, channels=1)
    assert gray.train.images.shape[1:] == (1, 16, 16)
    native = load_dataset(f"folder:{root}")
    assert native.train.images.shape[-2:] == (30, 40) or native.train.images.shape[-2:] == (33, 33)


def test_gray_saved_as_rgb_counts_as_gray(tmp_path, make_image):
    root = tmp_path / "rgbgray"
    for k in range(8):
        for cls in "ab":
            path = make_image(root / cls / f"{k}.png", k)
            from PIL import Image
            Image.open(path).convert("RGB").save(path)
    assert load_dataset(f"folder:{root}").in_channels == 1


def test_unreadable_files_skipped_with_one_warning(tree, caplog):
    (tree / "benign" / "broken.png").write_bytes(b"not a png at all")
    (tree / "malignant" / "truncated.jpg").write_bytes(b"\xff\xd8\xff\xe0garbage")
    with caplog.at_level(logging.WARNING, logger="nas_med"):
        data = load_dataset(f"folder:{tree}")
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "skipped 2 of 58" in warnings[0].getMessage()
    assert sum(len(s) for s in data.splits.values()) == 56


def test_only_unreadable_images(tmp_path):
    for cls in "ab":
        (tmp_path / "bad" / cls).mkdir(parents=True)
        (tmp_path / "bad" / cls / "x.png").write_bytes(b"junk")
    with pytest.raises(UserError, match="none of the 2 image files"):
        load_dataset(f"folder:{tmp_path / 'bad'}")


def test_class_with_only_unreadable_images(tree):
    (tree / "empty").mkdir()
    (tree / "empty" / "x.png").write_bytes(b"junk")
    with pytest.raises(UserError, match="'.*empty' has no readable images"):
        load_dataset(f"folder:{tree}")


def test_bad_folders(tmp_path, make_image):
    with pytest.raises(UserError, match="does not exist"):
        load_dataset(f"folder:{tmp_path / 'missing'}")
    with pytest.raises(UserError, match="needs a path"):
        load_dataset("folder:")
    (tmp_path / "flat").mkdir()
    with pytest.raises(UserError, match="no class sub-folders"):
        load_dataset(f"folder:{tmp_path / 'flat'}")
    make_image(tmp_path / "one" / "only" / "a.png", 1)
    with pytest.raises(UserError, match="single class 'only'"):
        load_dataset(f"folder:{tmp_path / 'one'}")
    make_image(tmp_path / "one" / "other" / "b.png", 2)
    (tmp_path / "one" / "none").mkdir()
    (tmp_path / "one" / "none" / "notes.txt").write_text("x")
    with pytest.raises(UserError, match="class folder '.*none' has no images"):
        load_dataset(f"folder:{tmp_path / 'one'}")


def test_too_few_images_for_the_split(tmp_path, make_image):
    for cls in "ab":
        make_image(tmp_path / "tiny" / cls / "1.png", 1)
    with pytest.raises(UserError, match="split is empty"):
        load_dataset(f"folder:{tmp_path / 'tiny'}")


def test_second_load_does_not_decode(tree, count_opens):
    first = load_dataset(f"folder:{tree}", size=8)
    assert count_opens[0] == 56
    second = load_dataset(f"folder:{tree}", size=8)
    other_seed = load_dataset(f"folder:{tree}", size=8, seed=5, fraction=0.5)
    assert count_opens[0] == 56  # same files and size: read from the cache, whatever the split settings
    assert torch.equal(first.train.images, second.train.images)
    assert len(other_seed.train) < len(first.train)
    load_dataset(f"folder:{tree}", size=10)
    assert count_opens[0] == 2 * 56  # another size decodes again


def test_changed_file_invalidates_the_cache(tree, count_opens, make_image):
    load_dataset(f"folder:{tree}")
    target = tree / "benign" / "p000_0.png"
    make_image(target, 0, size=(12, 12), seed=99)
    os.utime(target, ns=(1, 1))
    load_dataset(f"folder:{tree}")
    assert count_opens[0] == 2 * 56


def test_dicom(tmp_path):
    pydicom = pytest.importorskip("pydicom")
    import numpy as np
    from pydicom.dataset import Dataset as DicomDataset
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    for cls in "ab":
        for k in range(5):
            meta = FileMetaDataset()
            meta.TransferSyntaxUID = ExplicitVRLittleEndian
            meta.MediaStorageSOPClassUID = generate_uid()
            meta.MediaStorageSOPInstanceUID = generate_uid()
            ds = DicomDataset()
            ds.file_meta = meta
            ds.Rows, ds.Columns = 10, 10
            ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
            ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
            ds.PixelData = (np.arange(100, dtype=np.uint16) * (k + 1)).tobytes()
            path = tmp_path / "dcm" / cls / f"{k}.dcm"
            path.parent.mkdir(parents=True, exist_ok=True)
            pydicom.dcmwrite(path, ds, enforce_file_format=True)
    # the ten ramps are near-duplicates of each other once scaled to 8 bits: keep them apart from --duplicates
    data = load_dataset(f"folder:{tmp_path / 'dcm'}", duplicates="keep")
    assert sum(len(s) for s in data.splits.values()) == 10
    assert int(data.train.images.max()) == 255

"""The pre-flight summary of a folder: counts per class and split, sizes, channels, imbalance, duplicates by
content hash across splits (planted), skipped and ignored files; headers only, cached."""
from __future__ import annotations

import shutil

from nas_med.data import load_dataset
from nas_med.data import summary as summary_mod
from nas_med.data.summary import scan_folder, summarize, summary_lines


def _tree(root, make_image, per_class=(30, 8)):
    """Class 'common' ``per_class[0]`` PNGs, 'rare' ``per_class[1]``, mixed sizes; 4 planted duplicates."""
    for k, n in enumerate(per_class):
        cls = ("common", "rare")[k]
        for i in range(n):
            make_image(root / cls / f"{cls}{i:02d}.png", 1000 * k + i, size=(16 + i % 5, 16 + (i * 3) % 7))
    for i in range(4):  # byte-identical copies of common00..03
        shutil.copy(root / "common" / f"common{i:02d}.png", root / "common" / f"copy{i}.png")
    (root / "common" / "broken.png").write_bytes(b"not a png")
    (root / "rare" / "notes.txt").write_text("not an image")
    return root


def test_counts_sizes_imbalance_and_planted_duplicates(tmp_path, make_image):
    root = _tree(tmp_path / "f", make_image)
    scan = scan_folder(root)
    data = load_dataset(f"folder:{root}", size=16, seed=0)
    s = summarize(scan, data)
    assert s["classes"] == ["common", "rare"] and s["per_class"] == [34, 8]
    assert {k: sum(v) for k, v in s["split_counts"].items()} == {"train": len(data.train), "val": len(data.val),
                                                                 "test": len(data.test)}
    assert s["sizes"]["min_side"] == 16 and s["sizes"]["max_side"] == 20 and s["modes"] == {"L": 34 + 8}
    assert s["imbalance"]["rarest"] == "rare" and s["imbalance"]["suggest_weighting"]  # 8 / 34 < 1/3
    d = s["duplicates"]
    assert d["groups"] == 4 and d["extra_copies"] == 4 and not d["cross_class"]
    split_of = {f: k for k, files in data.info.split_files.items() for f in files}
    expected = sum(split_of[f"common/common{i:02d}.png"] != split_of[f"common/copy{i}.png"] for i in range(4))
    assert len(d["cross_split"]) == expected
    assert s["skipped"] == [("common/broken.png", s["skipped"][0][1])] and s["skipped"][0][1]
    assert s["ignored"] == ["rare/notes.txt"] and s["deduplicated_by_loader"] is False
    text = "\n".join(summary_lines(s, data.name))
    for part in ("2 classes, 42 images", "consider --class-weighting", "4 groups of identical files",
                 "does not deduplicate", "skipped: 1 file", "'common/broken.png'", "ignored: 1 file"):
        assert part in text, part


def test_duplicates_across_splits_are_named_as_leakage(tmp_path, make_image):
    root = tmp_path / "leak"
    for cls in ("a", "b"):
        for i in range(10):
            make_image(root / cls / f"{i}.png", (cls == "b") * 100 + i)
    for i in range(10):  # every image of 'a' twice: some copies must land in another split
        shutil.copy(root / "a" / f"{i}.png", root / "a" / f"dup{i}.png")
    data = load_dataset(f"folder:{root}", size=12, seed=0, duplicates="keep")
    s = summarize(scan_folder(root), data)
    assert s["duplicates"]["groups"] == 10 and s["duplicates"]["cross_split"]
    assert "span splits (leakage" in "\n".join(summary_lines(s))
    near = data.info.duplicates
    assert near.groups == 10 and sum(near.cross_split.values()) == len(s["duplicates"]["cross_split"])
    assert "near-duplicates (perceptual hash" in "\n".join(summary_lines(s))
    # the default (--duplicates group) keeps every copy set in one split, as a patient group
    grouped = load_dataset(f"folder:{root}", size=12, seed=0)
    s = summarize(scan_folder(root), grouped)
    assert s["duplicates"]["groups"] == 10 and not s["duplicates"]["cross_split"]
    assert sum(grouped.info.duplicates.cross_split.values()) == 0
    assert "none spans two splits" in "\n".join(summary_lines(s))
    assert s["imbalance"]["suggest_weighting"] is False  # 20 vs 10: a half, above a third


def test_scan_reads_headers_once_then_the_cache(tmp_path, make_image, count_opens, monkeypatch):
    root = _tree(tmp_path / "f", make_image, per_class=(6, 6))
    first = scan_folder(root)
    opened = count_opens[0]
    assert opened == 6 + 4 + 6 + 1  # one header per image file (the broken one too)
    monkeypatch.setattr(summary_mod, "_memo", {})
    assert scan_folder(root) == first and count_opens[0] == opened  # read back from the on-disk cache

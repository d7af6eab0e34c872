"""Near-duplicate detection: the hash, the pair search, groups, and what --duplicates does to the splits."""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from nas_med.data import load_dataset
from nas_med.data.duplicates import (
    _popcount,
    check_mode,
    find_groups,
    hamming_pairs,
    hashes_record,
    merge_groups,
    near_copies,
    phash,
    read_hashes,
)
from nas_med.errors import UserError


def _smooth(seed: int, side: int = 64) -> np.ndarray:
    """A smooth random picture (low frequencies carry the hash)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (8, 8), dtype=np.uint8)
    return np.asarray(Image.fromarray(small).resize((side, side), Image.BICUBIC))


def test_phash_finds_reencoded_and_resized_copies_but_not_other_images():
    base = _smooth(0)
    buf = io.BytesIO()
    Image.fromarray(base).save(buf, "JPEG", quality=60)
    jpeg = np.asarray(Image.open(io.BytesIO(buf.getvalue())))
    resized = np.asarray(Image.fromarray(base).resize((48, 48)).resize((64, 64)))
    others = [_smooth(s) for s in range(1, 30)]
    h = phash(torch.as_tensor(np.stack([base, jpeg, resized, *others]))[:, None])
    d = _popcount(h[0] ^ h)
    assert d[1] <= 4 and d[2] <= 4  # the copies
    assert d[3:].min() > 8  # 29 other pictures: far
    # the colour path: an RGB copy of the same gray picture hashes the same
    rgb = torch.as_tensor(np.stack([base] * 3))[None]
    assert phash(rgb)[0] == h[0]


def test_hamming_pairs_agree_with_brute_force():
    rng = np.random.default_rng(0)
    h = rng.integers(0, 2**63, 400, dtype=np.uint64)
    h[50], h[80], h[200] = h[3] ^ np.uint64(0b1011), h[3], h[7] ^ np.uint64(1 << 40 | 1 << 2)
    brute = _popcount(h[:, None] ^ h[None, :])
    for t in (0, 2, 4, 12, 24):
        i, j, d = hamming_pairs(h, t)
        a, b = np.nonzero(np.triu(brute <= t, 1))
        assert (i == a).all() and (j == b).all() and (d == brute[a, b]).all(), t
    gid = find_groups(h, 4)
    assert gid[3] == gid[50] == gid[80] and gid[7] == gid[200] and gid[3] != gid[7]
    assert len(set(gid.tolist())) == 400 - 3


def test_near_copies_and_the_stored_hashes_round_trip():
    rng = np.random.default_rng(2)
    ref = rng.integers(0, 2**63, 50, dtype=np.uint64)
    query = rng.integers(0, 2**63, 20, dtype=np.uint64)
    query[3], query[7] = ref[10], ref[11] ^ np.uint64(0b101)
    assert np.flatnonzero(near_copies(query, ref, 4)).tolist() == [3, 7]
    assert np.flatnonzero(near_copies(query, ref, 0)).tolist() == [3]
    from nas_med.data.types import Split

    images = torch.as_tensor(np.stack([_smooth(s) for s in range(5)]))[:, None]
    record = hashes_record({"train": Split(images, torch.zeros(5, dtype=torch.long))})
    assert (read_hashes(record)["train"] == phash(images)).all()


def test_merge_groups_joins_patients_and_copies():
    patients = np.array(["p1", "p1", "p2", "p3", "p4"], dtype=object)
    copies = np.array([0, 1, 2, 2, 3])  # image 2 (p2) copies image 3 (p3)
    gid = merge_groups(patients, copies)
    assert gid[0] == gid[1] and gid[2] == gid[3] and len(set(gid.tolist())) == 3


def test_bad_mode_is_one_clear_error():
    with pytest.raises(UserError, match="--duplicates must be one of keep, group, drop, got 'dedupe'"):
        check_mode("dedupe")
    with pytest.raises(UserError, match="'dedupe'"):
        load_dataset("synthetic", duplicates="dedupe")


def test_breastmnist_known_train_test_copy_found_and_dropped(breastmnist_root):
    data = load_dataset("breastmnist", data_root=breastmnist_root, download=False)
    rep = data.info.duplicates
    # the byte-identical image: train 115 = test 76 (index 700 of the pooled 546 + 78 + 156)
    assert torch.equal(data.train.images[115], data.test.images[76])
    h = phash(torch.stack([data.train.images[115], data.test.images[76]]))
    assert h[0] == h[1]
    assert rep.cross_split["train-test"] >= 1 and rep.groups >= 1 and rep.fixed_splits
    assert 1 <= rep.leaked <= sum(rep.cross_split.values())  # groups spanning splits; a group may span three
    assert (len(data.train), len(data.val), len(data.test)) == (546, 78, 156)  # published splits kept
    assert "train-test" in rep.line() and "--duplicates drop" in rep.line()
    dropped = load_dataset("breastmnist", data_root=breastmnist_root, download=False, duplicates="drop")
    after = dropped.info.duplicates
    assert len(dropped.train) == 546  # training images are never dropped
    assert len(dropped.test) == 156 - after.dropped["test"] and len(dropped.val) == 78 - after.dropped["val"]
    assert after.leaked == 0 and after.dropped["test"] >= 1
    test_h = phash(dropped.test.images)
    assert not np.isin(h[0], test_h)  # the known copy is gone from test
    assert "dropped (--duplicates drop)" in after.line()


def test_a_study_keeps_its_duplicate_handling():
    from nas_med.search.config import SearchConfig

    assert SearchConfig().duplicates == "group"
    new = SearchConfig(duplicates="drop")
    assert SearchConfig.from_resolved(new.resolved({}, {})).duplicates == "drop"
    old = {k: v for k, v in SearchConfig().resolved({}, {}).items() if k != "duplicates"}
    assert SearchConfig.from_resolved(old).duplicates == "keep"  # made before: its folder splits ignored copies
    with pytest.raises(UserError, match="--duplicates must be one of"):
        SearchConfig(duplicates="x").validate()

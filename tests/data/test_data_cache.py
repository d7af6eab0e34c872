"""The on-disk cache: keys, atomic writes, weights_only reads, corrupt entries."""
from __future__ import annotations

import logging

import pytest
import torch

from nas_med.data import cache


def test_root_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv("NAS_MED_CACHE", str(tmp_path / "env"))
    assert cache.cache_root() == tmp_path / "env"
    assert cache.cache_root(tmp_path / "arg") == tmp_path / "arg"
    monkeypatch.delenv("NAS_MED_CACHE")
    assert cache.cache_root().parts[-2:] == (".cache", "nas-med")


def test_round_trip_is_weights_only(tmp_path):
    path = tmp_path / "x" / "entry.pt"
    payload = {"format": cache.FORMAT_VERSION, "images": torch.arange(12, dtype=torch.uint8).view(3, 1, 2, 2),
               "ok": torch.tensor([True, False]), "note": "plain", "ratios": [0.7, 0.3]}
    cache.save(path, payload)
    loaded = torch.load(path, weights_only=True)
    assert torch.equal(loaded["images"], payload["images"]) and loaded["note"] == "plain"
    assert cache.load(path)["ratios"] == [0.7, 0.3]
    assert [p.name for p in path.parent.iterdir()] == ["entry.pt"]  # no temp file left


def test_failed_write_leaves_nothing(tmp_path):
    def boom(fh):
        fh.write(b"partial")
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        cache.atomic_write(tmp_path / "e.pt", boom)
    assert list(tmp_path.iterdir()) == []


def test_corrupt_entry_is_a_miss(tmp_path, caplog):
    path = tmp_path / "bad.pt"
    path.write_bytes(b"garbage")
    with caplog.at_level(logging.WARNING):
        assert cache.load(path) is None
    assert "ignoring unreadable cache entry" in caplog.text


def test_cached_computes_once(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return {"images": torch.ones(2, 1, 2, 2, dtype=torch.uint8)}

    key = cache.make_key(kind="t", size=8)
    a = cache.cached(key, "t", tmp_path, compute)
    b = cache.cached(key, "t", tmp_path, compute)
    assert len(calls) == 1 and torch.equal(a["images"], b["images"])
    cache.cached(cache.make_key(kind="t", size=9), "t", tmp_path, compute)
    assert len(calls) == 2


def test_fingerprint_follows_file_changes(tmp_path):
    f = tmp_path / "a.png"
    f.write_bytes(b"1")
    before = cache.file_fingerprint([f])
    f.write_bytes(b"22")
    assert cache.file_fingerprint([f]) != before
    assert cache.file_fingerprint([tmp_path / "missing"])[0][1] == -1

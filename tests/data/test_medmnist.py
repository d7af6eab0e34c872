"""MedMNIST 2D: catalog, file choice, label shapes, task mapping, download against a local HTTP server."""
from __future__ import annotations

import functools
import http.server
import shutil
import threading

import numpy as np
import pytest
import torch

from nas_med.data import load_dataset, medmnist
from nas_med.errors import UserError

RAW_TASKS = {"binary-class": "binary", "multi-class": "multiclass", "ordinal-regression": "multiclass",
             "multi-label, binary-class": "multilabel"}


def test_names_are_the_2d_catalog():
    names = medmnist.names()
    assert {"breastmnist", "pneumoniamnist", "chestmnist", "retinamnist", "pathmnist"} <= set(names)
    assert not [n for n in names if n.endswith("3d")]
    assert len(names) == len(set(names)) == 12


@pytest.mark.parametrize("name", medmnist.names())
def test_catalog_entry(name):
    entry = medmnist.catalog()[name]
    assert medmnist.task_of(name) == RAW_TASKS[entry["task"]]
    for size in medmnist.SIZES:
        url, md5 = medmnist.url_md5(name, size)
        assert url.startswith("https://") and len(md5) == 32


def test_task_examples():
    assert medmnist.task_of("chestmnist") == "multilabel"
    assert medmnist.task_of("retinamnist") == "multiclass"
    assert medmnist.task_of("breastmnist") == "binary"


def test_3d_name_is_refused():
    with pytest.raises(UserError, match="'organmnist3d' is a 3D"):
        load_dataset("organmnist3d")


@pytest.mark.parametrize("size,expected", [(None, [28, 64, 128, 224]), (28, [28, 64, 128, 224]),
                                           (32, [64, 128, 224]), (64, [64, 128, 224]), (200, [224]),
                                           (300, [224])])
def test_candidate_sizes(size, expected):
    assert medmnist.candidate_sizes(size) == expected


def test_breastmnist_28_from_data_root(breast_dir):
    data = load_dataset("breastmnist", data_root=breast_dir)
    assert (len(data.train), len(data.val), len(data.test)) == (546, 78, 156)
    assert data.class_counts() == {"train": [147, 399], "val": [21, 57], "test": [42, 114]}
    assert data.task == "binary" and data.classes == ["malignant", "normal, benign"]
    assert data.train.images.shape == (546, 1, 28, 28) and data.train.images.dtype == torch.uint8
    assert data.train.labels.shape == (546,) and data.train.labels.dtype == torch.int64


def test_breastmnist_64_with_n1_labels(breast_dir):
    raw = np.load(breast_dir / "breastmnist_64.npz")["train_labels"]
    assert raw.shape == (546, 1)
    small = load_dataset("breastmnist", data_root=breast_dir)
    big = load_dataset("breastmnist", data_root=breast_dir, size=64)
    assert big.info.source.endswith("breastmnist_64.npz")
    assert big.train.images.shape == (546, 1, 64, 64) and big.train.labels.shape == (546,)
    assert torch.equal(small.train.labels, big.train.labels)


def test_other_size_resizes_from_the_next_larger_file(breast_dir):
    data = load_dataset("breastmnist", data_root=breast_dir, size=32, channels=3)
    assert data.info.file_size == 64
    assert data.train.images.shape == (546, 3, 32, 32)


def _fake_file(path, n, hw, rgb, labels):
    arrays = {}
    for split, count in (("train", n), ("val", n // 2), ("test", n // 2)):
        shape = (count, hw, hw, 3) if rgb else (count, hw, hw)
        arrays[f"{split}_images"] = np.random.default_rng(count).integers(0, 256, shape, dtype=np.uint8)
        arrays[f"{split}_labels"] = labels(count)
    np.savez_compressed(path, **arrays)


def test_rgb_images_and_multilabel(tmp_path):
    _fake_file(tmp_path / "pathmnist.npz", 40, 28, True, lambda c: (np.arange(c) % 9)[:, None].astype(np.uint8))
    _fake_file(tmp_path / "chestmnist.npz", 40, 28, False,
               lambda c: (np.random.default_rng(c).random((c, 14)) < 0.3).astype(np.uint8))
    path = load_dataset("pathmnist", data_root=tmp_path, download=False)
    assert path.train.images.shape == (40, 3, 28, 28) and path.num_classes == 9
    assert path.class_counts()["train"] == [5, 5, 5, 5, 4, 4, 4, 4, 4]
    chest = load_dataset("chestmnist", data_root=tmp_path, download=False, fraction=0.5)
    assert chest.task == "multilabel" and chest.num_classes == 14
    assert chest.train.labels.shape == (20, 14) and chest.train.labels.dtype == torch.float32


def test_missing_file_without_download(tmp_path):
    with pytest.raises(UserError, match="'breastmnist_64.npz' not found.*download is disabled"):
        load_dataset("breastmnist", data_root=tmp_path, size=64, download=False)


def test_corrupt_or_incomplete_file(tmp_path):
    (tmp_path / "breastmnist.npz").write_bytes(b"not a zip")
    with pytest.raises(UserError, match="cannot read MedMNIST file"):
        load_dataset("breastmnist", data_root=tmp_path, download=False)
    np.savez(tmp_path / "breastmnist.npz", train_images=np.zeros((1, 28, 28), np.uint8))
    with pytest.raises(UserError, match="lacks the arrays train_labels"):
        load_dataset("breastmnist", data_root=tmp_path, download=False)


@pytest.fixture
def server(tmp_path, breast_dir):
    """A local HTTP server on 127.0.0.1 serving a copy of breastmnist_64.npz; yields (base URL, request log)."""
    served = tmp_path / "served"
    served.mkdir()
    shutil.copy(breast_dir / "breastmnist_64.npz", served / "breastmnist_64.npz")
    requests: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            requests.append(self.path)

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=served))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", requests
    httpd.shutdown()
    httpd.server_close()


def test_download_checks_md5_and_caches(server, monkeypatch, tmp_path):
    base, requests = server
    monkeypatch.setitem(medmnist.catalog()["breastmnist"], "url_64", f"{base}/breastmnist_64.npz?download=1")
    cache = tmp_path / "cache"
    data = load_dataset("breastmnist", size=64, cache_dir=cache)
    target = cache / "medmnist" / "breastmnist_64.npz"
    assert target.is_file() and medmnist.md5sum(target) == medmnist.catalog()["breastmnist"]["MD5_64"]
    assert sorted(p.name for p in target.parent.iterdir()) == ["breastmnist_64.npz"]  # no temp file left
    assert len(requests) == 1 and data.class_counts()["train"] == [147, 399]
    load_dataset("breastmnist", size=64, cache_dir=cache)
    assert len(requests) == 1  # the second load reads the cache


def test_download_with_bad_checksum_keeps_nothing(server, monkeypatch, tmp_path):
    base, requests = server
    monkeypatch.setitem(medmnist.catalog()["breastmnist"], "url_64", f"{base}/breastmnist_64.npz")
    monkeypatch.setitem(medmnist.catalog()["breastmnist"], "MD5_64", "0" * 32)
    with pytest.raises(UserError, match="checksum mismatch.*expected MD5 0{32}"):
        load_dataset("breastmnist", size=64, cache_dir=tmp_path / "cache")
    assert len(requests) == 1
    assert list((tmp_path / "cache" / "medmnist").iterdir()) == []


def test_download_failure_is_a_user_error(server, monkeypatch, tmp_path):
    base, _ = server
    monkeypatch.setitem(medmnist.catalog()["breastmnist"], "url_128", f"{base}/missing.npz")
    with pytest.raises(UserError, match="could not download .*missing.npz"):
        load_dataset("breastmnist", size=128, cache_dir=tmp_path / "cache")
    assert list((tmp_path / "cache" / "medmnist").iterdir()) == []


def test_env_var_sets_the_cache(server, monkeypatch, tmp_path):
    base, _ = server
    monkeypatch.setitem(medmnist.catalog()["breastmnist"], "url_64", f"{base}/breastmnist_64.npz")
    monkeypatch.setenv("NAS_MED_CACHE", str(tmp_path / "envcache"))
    load_dataset("breastmnist", size=64)
    assert (tmp_path / "envcache" / "medmnist" / "breastmnist_64.npz").is_file()

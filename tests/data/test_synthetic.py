"""The embedded synthetic dataset: deterministic from its seed, and not trivially linearly separable."""
from __future__ import annotations

import pytest
import torch

from nas_med.data import load_dataset


def test_same_seed_is_identical():
    a, b = load_dataset("synthetic", size=32, seed=7), load_dataset("synthetic", size=32, seed=7)
    for name in ("train", "val", "test"):
        assert torch.equal(a.splits[name].images, b.splits[name].images)
        assert torch.equal(a.splits[name].labels, b.splits[name].labels)
        assert torch.equal(a.splits[name].masks, b.splits[name].masks)


def test_another_seed_differs():
    a, b = load_dataset("synthetic", size=32, seed=7), load_dataset("synthetic", size=32, seed=8)
    assert not torch.equal(a.train.images, b.train.images)
    assert not torch.equal(a.train.labels, b.train.labels)


def test_fraction_keeps_every_class():
    data = load_dataset("synthetic", size=32, fraction=0.01)
    assert len(data.train) == 6 and all(c >= 1 for c in data.class_counts()["train"])


def _linear_auc() -> float:
    """Macro one-vs-rest test AUC of logistic regression on raw pixels (600 training images at 32 px)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from threadpoolctl import threadpool_limits

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # module-scoped: the per-test one-thread fixture does not apply yet
    try:
        data = load_dataset("synthetic", size=32, seed=0)
    finally:
        torch.set_num_threads(threads)
    x = data.train.images.flatten(1).float().numpy() / 255
    x_test = data.test.images.flatten(1).float().numpy() / 255
    with threadpool_limits(1):
        model = LogisticRegression(C=0.01, max_iter=2000).fit(x, data.train.labels.numpy())
    auc = roc_auc_score(data.test.labels.numpy(), model.predict_proba(x_test), multi_class="ovr", average="macro")
    print(f"synthetic: logistic regression on pixels, macro AUC {auc:.3f}")
    return float(auc)


@pytest.fixture(scope="module")
def linear_auc() -> float:
    return _linear_auc()


def test_linear_model_does_not_solve_it(linear_auc):
    assert 0.5 < linear_auc < 0.99


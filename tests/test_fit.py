"""fit: seed, build, train in one place; the same seed gives the same weights, and a label reports the run."""
from __future__ import annotations

import pytest
import torch

from nas_med.arch import ArchSpec, StageSpec, build
from nas_med.data import synthetic
from nas_med.fit import fit, seeded_build
from nas_med.progress import listening
from nas_med.train import TrainConfig, train

SPEC = ArchSpec(1, 4, 16, stages=(StageSpec("simple", 8), StageSpec("simple", 16)))
CFG = TrainConfig(epochs=2, lr=3e-3, device="cpu", precision="fp32", seed=3)


@pytest.fixture(autouse=True)
def _isolated(isolated):
    """Own data cache, one torch thread (tests/conftest.py)."""


@pytest.fixture(scope="module")
def data():
    return synthetic.load(size=16, n_train=96, n_val=48, n_test=40)


def _weights(model) -> list[torch.Tensor]:
    return [v.clone() for v in model.state_dict().values()]


def test_the_seed_sets_the_initial_weights_and_the_run(data):
    a, b = seeded_build(SPEC, 7), seeded_build(SPEC, 7)
    assert all(torch.equal(x, y) for x, y in zip(_weights(a), _weights(b)))
    assert not all(torch.equal(x, y) for x, y in zip(_weights(a), _weights(seeded_build(SPEC, 8))))
    run = fit(SPEC, data, CFG, seed=5)
    torch.manual_seed(5)  # what every caller wrote by hand before fit
    by_hand = train(build(SPEC), data, TrainConfig(**{**CFG.to_dict(), "seed": 5}))
    assert all(torch.equal(x, y) for x, y in zip(_weights(run.model), _weights(by_hand.model)))
    again = fit(SPEC, data, TrainConfig(**{**CFG.to_dict(), "seed": 5}))  # the config's seed when none is given
    assert all(torch.equal(x, y) for x, y in zip(_weights(run.model), _weights(again.model)))


def test_a_label_reports_each_epoch_and_the_end(data):
    events = []
    with listening(events.append):
        fit(SPEC, data, CFG, label="net: seed 3")
        fit(SPEC, data, CFG)  # no label: silent
    assert [(e.stage, e.k, e.n) for e in events] == [("run", 0, 2), ("run", 1, 2), ("run", 2, 2),
                                                     ("fitted", events[-1].k, 2)]
    assert all(e.text == "net: seed 3" for e in events)
    assert events[1].info["val_loss"] > 0 and 1 <= events[-1].k <= 2
    assert events[-1].info["val_loss"] == min(e.info["val_loss"] for e in events[1:3])

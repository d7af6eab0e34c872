"""Fused training (nas_med.fused): K runs of one architecture trained as one wide network give, per copy, what K
separate ``fit`` calls give (within float tolerance), on real BreastMNIST 28 px images."""
from __future__ import annotations

import logging
import math
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from nas_med.arch import ArchSpec, HeadSpec, StageSpec, StemSpec, build
from nas_med.data.catalog import load_dataset
from nas_med.fit import fit
from nas_med.fused import FUSE_ENV, Run, fit_many, why_separate
from nas_med.fused.adam import CopyAdam
from nas_med.fused.groups import thread_groups
from nas_med.fused.wide import NotFusable, WideDropout, copy_state, per_copy_shapes, widen
from nas_med.progress import listening
from nas_med.soft_targets import SoftTargets
from nas_med.train import TrainConfig, TrainingFailed

SPEC = ArchSpec(1, 2, 28, (StageSpec("simple", 8, norm="batch"), StageSpec("basic", 16, norm="batch")))
CFG = TrainConfig(epochs=2, batch_size=32, device="cpu", precision="fp32")


@pytest.fixture(autouse=True)
def _isolated(isolated):
    """Own data cache, one torch thread (tests/conftest.py)."""


@pytest.fixture(scope="module")
def data(breastmnist_root):
    full = load_dataset("breastmnist", data_root=breastmnist_root, download=False)
    return full.with_splits(train=full.train.subset(torch.arange(160)), val=full.val.subset(torch.arange(60)))


def _close(fused, separate, tol=2e-4, share=0.01):
    """Same history and best epoch, and weights equal but for rounding: Adam makes a gradient of rounding size a
    step of the full learning rate, so a rare weight may differ by up to 2 lr (at most ``share`` of them by
    > ``tol``)."""
    assert fused.best_epoch == separate.best_epoch and len(fused.history) == len(separate.history)
    for a, b in zip(fused.history, separate.history):
        assert a["train_loss"] == pytest.approx(b["train_loss"], abs=tol)
        assert a["val_loss"] == pytest.approx(b["val_loss"], abs=tol)
    sa, sb = fused.model.state_dict(), separate.model.state_dict()
    assert list(sa) == list(sb)
    diff = torch.cat([(sa[n].float() - sb[n].float()).abs().flatten() for n in sa])
    assert (diff > tol).float().mean() < share and diff.max() < 0.05, (diff > tol).float().mean()


def test_fused_copies_match_separate_runs_and_keep_their_own_batchnorm_statistics(data):
    runs = [Run(data, CFG, seed) for seed in (0, 1, 2)]
    fused = fit_many(SPEC, runs)
    separate = [fit(SPEC, data, CFG, seed) for seed in (0, 1, 2)]
    for f, s in zip(fused, separate):
        _close(f, s)
        assert not f.model.training and f.model.stages[0][0][0][0].weight.is_contiguous()
    means = [f.model.stages[0][0][0][1].running_mean for f in fused]
    assert not torch.equal(means[0], means[1])  # every copy its own statistics, the separate run's
    assert torch.allclose(means[0], separate[0].model.stages[0][0][0][1].running_mean, atol=1e-5)
    assert not torch.allclose(fused[0].model.stages[0][0][0][0].weight, fused[1].model.stages[0][0][0][0].weight)


def test_unequal_folds_variants_schedules_and_patience_train_as_alone(data):
    """Copies with different training sizes (5 vs 4 batches), lr, augmentation, cosine schedule, AdamW weight decay
    and patience: a copy that sits a step out or has stopped is left as its separate run leaves it."""
    small = data.with_splits(train=data.train.subset(torch.arange(140)))  # 4 batches of 32
    base = replace(CFG, optimizer="adamw", weight_decay=1e-2, epochs=3)
    runs = [Run(data, replace(base, lr=1e-3, schedule="cosine", warmup=0.2), 3),
            Run(small, replace(base, lr=3e-3, augment="light", class_weighting=True), 4),
            Run(small, replace(base, lr=2e-3, patience=1, epochs=4), 5)]
    fused = fit_many(SPEC, runs)
    for run, f in zip(runs, fused):
        _close(f, fit(SPEC, run.data, run.cfg, run.seed), tol=5e-4)


def test_every_fusable_block_widens_to_the_same_outputs():
    specs = [ArchSpec(3, 3, 16, (StageSpec("bottleneck", 16, norm="group"), StageSpec("mbconv", 16, norm="batch")),
                      StemSpec("conv", 8), HeadSpec("gap_mlp", 12, 0.0)),
             ArchSpec(1, 2, 16, (StageSpec("convnext", 8, norm="layer"), StageSpec("double", 8, norm="none")),
                      None, HeadSpec("flatten_linear"))]
    for spec in specs:
        models = []
        for seed in range(3):
            torch.manual_seed(seed)
            models.append(build(spec).eval())
        wide = widen(models).eval()
        x = torch.randn(3, 4, spec.in_channels, 16, 16)
        out = wide(x.transpose(0, 1).reshape(4, -1, 16, 16)).view(4, 3, -1)
        for i, m in enumerate(models):
            assert torch.allclose(out[:, i], m(x[i]), atol=1e-5)
            state = copy_state(wide.state_dict(), per_copy_shapes(m), 3, i)
            assert all(torch.equal(state[n], t) for n, t in m.state_dict().items())


def test_adam_and_adamw_per_copy_match_torch_optim_with_copies_sitting_out():
    torch.manual_seed(0)
    for name, decoupled in (("adam", False), ("adamw", True)):
        copies = [torch.randn(4, 3) for _ in range(3)]
        lrs, wds = [1e-2, 3e-2, 1e-3], [0.0, 1e-2, 1e-1]
        wide = torch.nn.Parameter(torch.cat(copies))
        adam = CopyAdam([wide], 3, lrs, wds, decoupled)
        alone = [torch.nn.Parameter(c.clone()) for c in copies]
        opt = torch.optim.AdamW if decoupled else torch.optim.Adam
        optims = [opt([p], lr=lr, weight_decay=wd) for p, lr, wd in zip(alone, lrs, wds)]
        for step in range(6):
            grads = [torch.randn(4, 3) for _ in range(3)]
            active = [True, step % 2 == 0, step < 3]
            wide.grad = torch.cat(grads)
            adam.step(active, [1.0, 1.0, 1.0])
            for p, o, g, on in zip(alone, optims, grads, active):
                if on:
                    p.grad = g
                    o.step()
            assert torch.allclose(wide.data, torch.cat([p.data for p in alone]), atol=1e-6), (name, step)


def test_one_run_switched_off_or_unfusable_falls_back_to_fit_exactly(data, monkeypatch, caplog):
    exact = fit(SPEC, data, CFG, 7)
    [one] = fit_many(SPEC, [Run(data, CFG, 7)])
    assert all(torch.equal(a, b) for a, b in zip(one.model.state_dict().values(), exact.model.state_dict().values()))
    assert why_separate(SPEC, [Run(data, CFG, 1), Run(data, replace(CFG, batch_size=16), 2)]).startswith(
        "the runs differ in batch_size")
    monkeypatch.setenv(FUSE_ENV, "0")
    assert why_separate(SPEC, [Run(data, CFG, 1)] * 2) == f"{FUSE_ENV}=0"
    monkeypatch.delenv(FUSE_ENV)
    dense = ArchSpec(1, 2, 28, (StageSpec("dense", 8, norm="batch"),))
    with pytest.raises(NotFusable, match="DenseLayer"):
        widen([build(dense), build(dense)])
    caplog.set_level(logging.INFO, logger="nas_med.fused.loop")
    results = fit_many(dense, [Run(data, replace(CFG, epochs=1), s) for s in (0, 1)])
    assert "separately" in caplog.text and "DenseLayer" in caplog.text
    alone = fit(dense, data, replace(CFG, epochs=1), 1)
    assert all(torch.equal(a, b) for a, b in zip(results[1].model.state_dict().values(),
                                                  alone.model.state_dict().values()))


def test_progress_events_per_copy_as_fit_emits_them(data):
    events = []
    with listening(events.append):
        fit_many(SPEC, [Run(data, replace(CFG, epochs=1), s, f"seed {s}") for s in (0, 1)])
    for label in ("seed 0", "seed 1"):
        mine = [(e.stage, e.k, e.n) for e in events if e.text == label]
        assert mine == [("run", 0, 1), ("run", 1, 1), ("fitted", 1, 1)]


def test_dropout_draws_each_copys_masks_as_its_separate_run_draws_them():
    """Copy k's masks come from its own generator exactly as ``F.dropout`` draws them after
    ``torch.manual_seed(seed_k)`` (what ``train`` does); a copy sitting the step out draws nothing."""
    wide = WideDropout(3, 0.3).train()
    wide.generators = [torch.Generator().manual_seed(s) for s in (4, 5, 6)]
    x = torch.randn(8, 3 * 5)
    for step, active in enumerate(([True] * 3, [True, False, True])):
        wide.active = active
        out = wide(x).view(8, 3, 5)
        for i, seed in enumerate((4, 5, 6)):
            torch.manual_seed(seed)
            for _ in range(step if active[i] else 0):
                F.dropout(x.view(8, 3, 5)[:, i].contiguous(), 0.3, True)  # the draws of its earlier steps
            expect = F.dropout(x.view(8, 3, 5)[:, i].contiguous(), 0.3, True) if active[i] else x.view(8, 3, 5)[:, i]
            assert torch.equal(out[:, i], expect), (step, i)
    assert torch.equal(wide.eval()(x), x)


def test_a_head_with_dropout_trains_as_its_separate_runs(data):
    spec = replace(SPEC, head=HeadSpec("gap_mlp", 16, 0.3))
    runs = [Run(data, replace(CFG, epochs=1), seed) for seed in (0, 1)]
    for fused, run in zip(fit_many(spec, runs), runs):
        alone = fit(spec, data, run.cfg, run.seed)
        assert fused.history[0]["train_loss"] == pytest.approx(alone.history[0]["train_loss"], abs=2e-4)
        assert fused.history[0]["val_loss"] == pytest.approx(alone.history[0]["val_loss"], abs=2e-4)


def test_thread_groups_one_per_thread_for_small_images_on_a_cpu():
    cpu, threads = torch.device("cpu"), torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        assert thread_groups(6, 28, cpu) == [range(0, 3), range(3, 6)]
        assert thread_groups(5, 64, cpu) == [range(0, 2), range(2, 5)]
        assert thread_groups(1, 28, cpu) == [range(0, 1)]
        assert thread_groups(6, 224, cpu) == [range(0, 6)]  # large enough for both threads in one network
        assert thread_groups(6, 28, torch.device("cuda")) == [range(0, 6)]
        torch.set_num_threads(4)
        assert thread_groups(3, 28, cpu) == [range(0, 1), range(1, 2), range(2, 3)]
        torch.set_num_threads(1)
        assert thread_groups(6, 28, cpu) == [range(0, 6)]
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("precision", ["fp32", "auto"])
def test_parallel_groups_repeat_bit_for_bit_and_agree_with_one_thread(data, precision, caplog):
    """Six runs in groups of 3 + 3 on two threads, twice: the same weights and histories bit for bit (the groups'
    timing plays no part); on one thread (one network of six): the same up to rounding. The process gets its
    threads back."""
    cfg = replace(CFG, precision=precision, augment="light", epochs=2)
    runs = [Run(data, replace(cfg, lr=lr), seed) for seed, lr in enumerate((1e-3, 2e-3, 1e-3, 3e-3, 1e-3, 2e-3))]
    threads = torch.get_num_threads()
    caplog.set_level(logging.INFO, logger="nas_med.fused.loop")
    try:
        torch.set_num_threads(2)
        first, second = fit_many(SPEC, runs), fit_many(SPEC, runs)
        assert torch.get_num_threads() == 2 and "as 2 fused networks of 3 + 3 copies" in caplog.text
        torch.set_num_threads(1)
        alone = fit_many(SPEC, runs)
    finally:
        torch.set_num_threads(threads)
    for a, b, c in zip(first, second, alone):
        assert [h["val_loss"] for h in a.history] == [h["val_loss"] for h in b.history]
        assert all(torch.equal(p, q) for p, q in zip(a.model.state_dict().values(), b.model.state_dict().values()))
        _close(a, c, tol=5e-4, share=0.05 if precision == "auto" else 0.01)
    assert all(math.isfinite(r.epoch_seconds) and r.epoch_seconds > 0 for r in first)


def test_a_failing_group_stops_the_others_and_its_error_is_raised(data):
    long = replace(CFG, epochs=200)
    runs = [Run(data, long, 0, "a"), Run(data, long, 1, "b"), Run(data, replace(long, lr=1e30), 2, "c"),
            Run(data, long, 3, "d")]
    threads, events = torch.get_num_threads(), []
    try:
        torch.set_num_threads(2)
        with listening(events.append), pytest.raises(TrainingFailed, match="non-finite"):
            fit_many(SPEC, runs)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)
    healthy = [e.k for e in events if e.text == "a" and e.stage == "run"]
    assert max(healthy) < 50  # the healthy group stopped soon after the other failed, far from its 200 epochs


def test_distilled_runs_fuse_each_with_its_teachers_soft_targets(data):
    """Distillation (soft targets of a teacher, one set per run, or none) trains fused as it trains alone (the
    histories hold the soft loss; a random teacher's larger gradients make Adam's rounding steps more common)."""
    torch.manual_seed(0)
    teacher = torch.randn(len(data.train), 2) * 3
    runs = [Run(data, CFG, 0, soft=SoftTargets(teacher, 4.0, 0.5)), Run(data, CFG, 1),
            Run(data, CFG, 2, soft=SoftTargets(-teacher, 2.0, 0.8))]
    assert why_separate(SPEC, runs) is None
    for fused, run in zip(fit_many(SPEC, runs), runs):
        _close(fused, fit(SPEC, run.data, run.cfg, run.seed, soft=run.soft), share=0.1)

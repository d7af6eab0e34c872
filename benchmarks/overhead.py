"""Overhead: wall time of one nas-med trial against a plain hand-written PyTorch loop.

Goal: a nas-med trial takes at most 1.10 x the time of a plain loop training the same network on the same
tensors for the same epochs.

The nas-med side is a real ``nas_med.search.search`` (temporary sqlite storage, TPE sampler, median pruner through
the shadow study, Grad-CAM + ROAD objective on the fixed validation subset, CAM-grid artifact, dashboard note,
user attrs), on a one-point search space so that the architecture is fixed: 3 plain stages 16-32-64 with batch
norm, GAP + linear, Adam lr 0.003, batch 32. Its time is that of ``run_queue``, the loop that runs the queued
trial: the trial itself plus what the search loop does around it (heartbeat, garbage collection after the trial);
the study's one-off set-up (data loading, study creation) is not counted. The plain side builds the same
``ArchSpec`` and runs the loop anyone would write: normalise the tensors once, shuffle, forward, cross-entropy,
backward, Adam step, a validation pass per epoch, keep the weights of the best validation loss. Both use the
precision and memory format nas-med trains with by default on this CPU (bf16 autocast and channels-last where the
CPU has bf16 arithmetic, else fp32 contiguous; evaluation in fp32) and the same seed. Repeats alternate the two sides after one uncounted warm-up pair; the figure is
the median over repeats of (nas-med trial / plain loop). Each repeat is a new study so that the pruner never stops
the trial.

Data: the embedded synthetic dataset at 32 px (600 train / 200 validation images, 4 classes), 8 epochs, 16 CAM
images (the defaults of ``nas-med search``), 7 repeats. --quick: 16 px, 2 epochs, 8 CAM images, 2 repeats.
``--skip-gc`` is a what-if diagnostic: ``gc.collect()`` becomes a no-op, which shows the cost of the full
garbage collections run around every trial.

Reproduce:  .venv/bin/python benchmarks/overhead.py            (full, ~1-3 min on 2 shared cores)
            .venv/bin/python benchmarks/overhead.py --quick
"""
from __future__ import annotations

import copy
import gc
import tempfile
import time

from _common import add_skip_gc, apply_skip_gc, fixed_space, median, parser, result, setup, temp_storage, trial_seconds


def plain_loop(spec, data, epochs: int, lr: float, batch_size: int, seed: int) -> float:
    """Train ``spec`` by hand; returns the wall seconds (model creation to best weights restored)."""
    import numpy as np
    import torch
    import torch.nn.functional as F
    from sklearn.metrics import roc_auc_score

    from nas_med.arch import build
    from nas_med.precision import resolve_precision

    start = time.perf_counter()
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    precision = resolve_precision("auto", "cpu")  # as nas-med: bf16 autocast + channels-last on bf16 CPUs
    cl = torch.channels_last if precision.channels_last else torch.contiguous_format
    model = build(spec).to(memory_format=cl)
    x = data.train.images.float() / 255
    mean, std = x.mean(dim=(0, 2, 3), keepdim=True), x.std(dim=(0, 2, 3), keepdim=True)
    xtr = ((x - mean) / std).contiguous(memory_format=cl)
    xva = ((data.val.images.float() / 255 - mean) / std).contiguous(memory_format=cl)
    ytr, yva = data.train.labels, data.val.labels
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    best_loss, best_state = float("inf"), None
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(xtr), generator=gen)
        for i in range(0, len(order) - 1, batch_size):
            idx = order[i:i + batch_size]
            with precision.context():
                loss = F.cross_entropy(model(xtr[idx]).float(), ytr[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            logits = model(xva)
            val_loss = F.cross_entropy(logits, yva).item()
            probs = torch.softmax(logits, 1).numpy()
        y = yva.numpy()
        auc = roc_auc_score(y, probs[:, 1]) if probs.shape[1] == 2 else roc_auc_score(y, probs, multi_class="ovr")
        assert np.isfinite(auc)
        if val_loss < best_loss:
            best_loss, best_state = val_loss, copy.deepcopy(model.state_dict())
    model.load_state_dict(best_state)
    return time.perf_counter() - start


class Timer:
    """Wraps a module-level function (looked up at call time) and sums the seconds spent in it."""

    def __init__(self, module, name: str):
        self.module, self.name, self.original, self.seconds = module, name, getattr(module, name), 0.0

    def __enter__(self):
        def timed(*a, **k):
            t = time.perf_counter()
            try:
                return self.original(*a, **k)
            finally:
                self.seconds += time.perf_counter() - t

        setattr(self.module, self.name, timed)
        return self

    def __exit__(self, *exc):
        setattr(self.module, self.name, self.original)


class GcTimer:
    """Sums the seconds of full (generation 2) garbage collections, e.g. the ``gc.collect()`` calls per trial."""

    def __init__(self):
        self.seconds, self._t = 0.0, 0.0

    def _callback(self, phase: str, info: dict) -> None:
        if info.get("generation") != 2:
            return
        if phase == "start":
            self._t = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._t

    def __enter__(self):
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc):
        gc.callbacks.remove(self._callback)


def main() -> int:
    ap = parser(__doc__)
    ap.add_argument("--repeats", type=int, default=None, help="pairs of runs (default 7, --quick 2)")
    ap.add_argument("--epochs", type=int, default=None, help="epochs (default 8, --quick 2)")
    add_skip_gc(ap)
    args = ap.parse_args()
    started = time.perf_counter()
    setup(args)
    apply_skip_gc(args)
    import optuna

    import nas_med.search.objective as objective_module
    import nas_med.search.runner as runner_module
    from nas_med.arch import ArchSpec
    from nas_med.data import load_dataset
    from nas_med.search import SearchConfig, search
    from nas_med.select import completed
    from nas_med.space import load_space, sample

    size, epochs = (16, 2) if args.quick else (32, 8)
    epochs = args.epochs or epochs
    repeats = args.repeats or (2 if args.quick else 7)
    cam_images = 8 if args.quick else 16
    data = load_dataset("synthetic", size=size, seed=args.seed)
    print(f"data: synthetic {size} px, train {len(data.train)}, val {len(data.val)}; {epochs} epochs; "
          f"{cam_images} CAM images; {repeats} repeats")
    ours, plain, train_s, cam_s, gc_s = [], [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        space = fixed_space(tmp)
        fixed = sample(optuna.create_study().ask(), load_space(space), in_channels=data.in_channels,
                       num_classes=data.num_classes, input_size=data.size)  # the one spec of the space
        for rep in range(repeats + 1):  # repeat 0 warms up both sides and is not counted
            with temp_storage() as url, Timer(objective_module, "train") as t_train, \
                    Timer(objective_module, "evaluate_cams") as t_cam:
                config = SearchConfig(dataset="synthetic", size=size, space=space, trials=1, epochs=epochs,
                                      study=f"overhead-{rep}", storage=url, cam_images=cam_images, seed=args.seed,
                                      pruner="median", sampler="tpe", device="cpu", quiet=True)
                sides = ("plain", "nas-med") if rep % 2 else ("nas-med", "plain")
                for side in sides:
                    if side == "nas-med":
                        with GcTimer() as t_gc, Timer(runner_module, "run_queue") as t_queue:
                            trial = completed(search(config))[0]
                        t_ours, t_stored = t_queue.seconds, trial_seconds(trial)
                        spec = ArchSpec.from_dict(trial.user_attrs["spec"])
                    else:
                        t_plain = plain_loop(fixed, data, epochs, 0.003, 32, args.seed)  # trial 0's seed
            assert spec == fixed, "the plain loop must train the trial's architecture"
            if rep == 0:
                print(f"warm-up: nas-med {t_ours:.2f} s, plain {t_plain:.2f} s (not counted)")
                continue
            ours.append(t_ours)
            plain.append(t_plain)
            train_s.append(t_train.seconds)
            cam_s.append(t_cam.seconds)
            gc_s.append(t_gc.seconds)
            print(f"repeat {rep}: nas-med trial {t_ours:6.2f} s (train() {t_train.seconds:.2f} s, CAM+ROAD "
                  f"{t_cam.seconds:.2f} s, full gc {t_gc.seconds:.2f} s; stored trial time {t_stored:.2f} s) | "
                  f"plain loop {t_plain:6.2f} s | ratio {t_ours / t_plain:.3f}", flush=True)
    ratios = [o / p for o, p in zip(ours, plain)]
    rest = [o - t - c - g for o, t, c, g in zip(ours, train_s, cam_s, gc_s)]
    print(f"median: nas-med trial {median(ours):.2f} s = train() {median(train_s):.2f} + CAM objective "
          f"{median(cam_s):.2f} + full gc.collect() {median(gc_s):.2f} + storage/sampler/artifacts "
          f"{median(rest):.2f}; plain loop {median(plain):.2f} s")
    print(f"train() alone / plain loop: {median([t / p for t, p in zip(train_s, plain)]):.3f}; "
          f"CAM objective share of the trial: {median([c / o for c, o in zip(cam_s, ours)]):.1%}")
    result({"overhead_ratio": median(ratios)}, "goal <= 1.10", started)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

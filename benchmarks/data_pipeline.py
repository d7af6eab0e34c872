"""Data pipeline: the share of a nas-med trial's wall time spent outside the network's forward/backward.

Goal: under 5 % of trial time outside forward, backward and optimiser step.

Runs a real ``nas_med.search.search`` (temporary sqlite, TPE, no pruner so every trial trains all its epochs,
Grad-CAM + ROAD objective, artifacts) and times, with manual timers:
  * every forward pass of the candidate network (a forward pre-hook and hook on the model ``seeded_build`` returns):
    training batches, validation passes, Grad-CAM and ROAD passes;
  * backward + optimiser step of every training batch: from the end of the training forward to the end of
    ``optimizer.step`` (a global optimizer step post-hook), so loss, backward, zero_grad and step;
  * the wall time of ``train()`` and of the search loop ``run_queue`` (all trials, with what the loop does
    around them).
It prints the share of the search loop's time outside those compute intervals (the figure), the same share
inside ``train()`` only (batch indexing, normalisation, shuffling, per-epoch bookkeeping), and what the rest is
made of (full garbage collections, CAM imputation and storage). Grad-CAM's own backward pass is counted as
outside, which makes the figure conservative.

Data: synthetic 32 px (600 train / 200 validation images), default search space, 8 epochs, 12 trials.
``--skip-gc`` (what-if diagnostic): ``gc.collect()`` becomes a no-op.
--quick: 16 px, tiny space, 2 epochs, 2 trials.

Reproduce:  .venv/bin/python benchmarks/data_pipeline.py          (full, ~1-3 min on 2 shared cores)
            .venv/bin/python benchmarks/data_pipeline.py --quick
"""
from __future__ import annotations

import gc
import time

from _common import add_skip_gc, apply_skip_gc, parser, result, setup, temp_storage


class Clock:
    """Compute intervals of the candidate networks, split by where they happen."""

    def __init__(self):
        self.train_fwd = self.train_bwd_step = self.val_fwd = self.other_fwd = 0.0
        self.train_wall = self.loop_wall = self.gc = 0.0
        self.in_train = False
        self._t0 = self._pending = self._gc0 = None

    def attach(self, model):
        model.register_forward_pre_hook(self._pre)
        model.register_forward_hook(self._post)
        return model

    def _pre(self, module, args):
        self._t0 = time.perf_counter()

    def _post(self, module, args, out):
        import torch

        now = time.perf_counter()
        dt = now - self._t0
        if module.training and torch.is_grad_enabled():
            self.train_fwd += dt
            self._pending = now
        elif self.in_train:
            self.val_fwd += dt
        else:
            self.other_fwd += dt

    def step_done(self, optimizer, args, kwargs):
        if self._pending is not None:
            self.train_bwd_step += time.perf_counter() - self._pending
            self._pending = None

    def gc_event(self, phase, info):
        if info.get("generation") != 2:
            return
        if phase == "start":
            self._gc0 = time.perf_counter()
        elif self._gc0 is not None:
            self.gc += time.perf_counter() - self._gc0

    @property
    def compute(self) -> float:
        return self.train_fwd + self.train_bwd_step + self.val_fwd + self.other_fwd


def main() -> int:
    ap = parser(__doc__)
    ap.add_argument("--trials", type=int, default=None, help="trials (default 12, --quick 2)")
    ap.add_argument("--epochs", type=int, default=None, help="epochs per trial (default 8, --quick 2)")
    add_skip_gc(ap)
    args = ap.parse_args()
    started = time.perf_counter()
    setup(args)
    apply_skip_gc(args)
    from torch.optim.optimizer import register_optimizer_step_post_hook

    import nas_med.search.objective as objective_module
    import nas_med.search.runner as runner_module
    from nas_med.search import SearchConfig, search

    clock = Clock()
    build, train, run_queue = objective_module.seeded_build, objective_module.train, runner_module.run_queue

    def timed_train(*a, **k):
        clock.in_train = True
        t = time.perf_counter()
        try:
            return train(*a, **k)
        finally:
            clock.train_wall += time.perf_counter() - t
            clock.in_train = False

    def timed_loop(*a, **k):
        t = time.perf_counter()
        try:
            return run_queue(*a, **k)
        finally:
            clock.loop_wall += time.perf_counter() - t

    objective_module.seeded_build = lambda spec, seed: clock.attach(build(spec, seed))
    objective_module.train = timed_train
    runner_module.run_queue = timed_loop
    hook = register_optimizer_step_post_hook(clock.step_done)
    gc.callbacks.append(clock.gc_event)
    size, space, epochs, trials = (16, "tiny", 2, 2) if args.quick else (32, "default", 8, 12)
    epochs, trials = args.epochs or epochs, args.trials or trials
    try:
        with temp_storage() as url:
            config = SearchConfig(dataset="synthetic", size=size, space=space, trials=trials, epochs=epochs,
                                  study="data-pipeline", storage=url, seed=args.seed, pruner="none",
                                  sampler="tpe", device="cpu", quiet=True)
            print(f"search: synthetic {size} px, space {space}, {trials} trials x {epochs} epochs", flush=True)
            gc_before = clock.gc
            study = search(config)
    finally:
        hook.remove()
        gc.callbacks.remove(clock.gc_event)
        objective_module.seeded_build, objective_module.train, runner_module.run_queue = build, train, run_queue
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    wall = clock.loop_wall
    outside = 1 - clock.compute / wall
    train_compute = clock.train_fwd + clock.train_bwd_step + clock.val_fwd
    train_outside = 1 - train_compute / clock.train_wall
    print(f"{len(done)} of {len(study.trials)} trials completed; search loop {wall:.2f} s, of which train() "
          f"{clock.train_wall:.2f} s")
    print(f"compute: training forward {clock.train_fwd:.2f} s, backward+step {clock.train_bwd_step:.2f} s, "
          f"validation forward {clock.val_fwd:.2f} s, CAM/ROAD forward {clock.other_fwd:.2f} s")
    rest = wall - clock.compute
    print(f"outside compute: {rest:.2f} s, of which full gc.collect() {clock.gc - gc_before:.2f} s, inside train() "
          f"{clock.train_wall - train_compute:.2f} s (batching, normalisation, bookkeeping), the rest "
          f"{rest - (clock.gc - gc_before) - (clock.train_wall - train_compute):.2f} s (CAM imputation, Grad-CAM "
          "backward, storage, sampler)")
    print(f"share outside compute: whole trial {outside:.1%}; inside train() only {train_outside:.1%}")
    result({"outside_share": round(outside, 4), "train_loop_outside_share": round(train_outside, 4)},
           "goal outside_share < 0.05", started)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

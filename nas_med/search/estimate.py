"""Before the first trial: how long the search will take, and which baselines are out of scale.

Method. Every network's cost is its forward FLOPs per image (``arch.cost.spec_cost``, on the meta device). A short
calibration on this device trains two small reference CNNs for a few steps on the real images (batch 32, the
data's size and channels) and fits ``seconds per training image = a + b * FLOPs`` (``a``: per-image overhead, ``b``:
seconds per FLOP of a training step); it also times the CAM objective once on the reference net, and the second
epoch of a real ``train()`` of the small one on a few hundred images, whose ratio to the steps' prediction (the
loop factor ``L``: batching, validation, metrics) scales every epoch. An epoch of a network then costs
``L (n_train + n_val / 3) (a + b F)`` (validation is a forward pass), a trial ``epochs`` epochs plus the CAM
objective and ``TRIAL_OVERHEAD_S`` (sampler, storage, artifacts); the trials run ``parallel`` at a time after the
workers' start-up (as long as this process took to start). Candidates are ``SAMPLES`` random specs of the space
(their mean is the expected trial), baselines their own specs; pruning trains ``EPOCH_SHARE`` of the epochs;
``search.refine`` refines the estimate as trials finish.
"""
from __future__ import annotations

import logging
import statistics
import time
from dataclasses import dataclass, field

import torch

from ..arch import ArchSpec, HeadSpec, StageSpec, check
from ..arch.cost import spec_cost
from ..fit import seeded_build
from ..precision import resolve_precision
from ..train import Normalizer, TrainConfig, pick_device, train
from . import records
from .refine import Refinement

log = logging.getLogger(__name__)

SAMPLES = 24
BATCH = 32
STEPS = 3
TRIAL_OVERHEAD_S = 0.8  # a trial outside training and CAM: sampler, storage, artifacts (benchmarks/README.md)
LOOP_IMAGES, MAX_LOOP_FACTOR = 192, 5.0  # the real epochs that calibrate the training loop's own cost
# Share of an unpruned search's epochs that a pruned search trains, measured by benchmarks/pruning.py (3 seeds x 30
# trials, BreastMNIST): Pareto-aware median pruner 0.725, --pruner pareto 0.68; other pruners as the median.
EPOCH_SHARE = {"none": 1.0, "pareto": 0.68}
DEFAULT_EPOCH_SHARE = 0.725
BASELINE_FACTOR = 20.0  # a baseline whose epoch costs more than this x the median candidate's gets a warning
HOUR = 3600.0
WORKER_STARTUP = 1.5  # a worker's start / this process's age at the estimate (it also loads the plotting libraries)


def _reference(widths: tuple[int, ...], channels: int, classes: int, size: int) -> ArchSpec:
    stages = tuple(StageSpec("simple", w, 1, 3, "batch", "relu", True) for w in widths)
    return ArchSpec(channels, classes, size, stages, None, HeadSpec("gap_linear"))


@dataclass
class Calibration:
    """``seconds per training image = overhead_s + seconds_per_flop * forward FLOPs``, and the CAM objective's time."""

    overhead_s: float
    seconds_per_flop: float
    cam_s: float
    device: str
    seconds: float  # wall time the calibration took
    loop_factor: float = 1.0  # a real training epoch (batching, validation, metrics) / the steps' prediction

    def image_seconds(self, flops: float) -> float:
        return (self.overhead_s + self.seconds_per_flop * flops) * self.loop_factor


def _time_steps(spec: ArchSpec, images: torch.Tensor, labels: torch.Tensor, device: torch.device,
                steps: int, precision: str = "auto") -> float:
    """Seconds per training image of ``spec`` (median of ``steps`` steps after one warm-up step), trained in the
    precision and memory format the search will use (bf16 + channels-last on a bf16 CPU)."""
    prec = resolve_precision(precision, device)
    layout = torch.channels_last if prec.channels_last else torch.contiguous_format
    model = seeded_build(spec, 0).to(device, memory_format=layout).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    normalize = Normalizer(images)
    x_all, y_all = images.to(device), labels.to(device)
    times = []
    for step in range(steps + 1):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        x = normalize(x_all).contiguous(memory_format=layout)
        with prec.context():
            loss = torch.nn.functional.cross_entropy(model(x).float(), y_all)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if step:
            times.append(time.perf_counter() - start)
    return statistics.median(times) / len(images)


def calibrate(data, device_name: str = "auto", cam_images: int = 16, cam_method: str = "gradcam",
              steps: int = STEPS, precision: str = "auto") -> Calibration:
    """Time two reference CNNs (and the CAM objective once) on ``data``'s images on this device, in the
    training ``precision``."""
    from ..arch import cam_target_layer
    from ..objectives.cam import evaluate_cams

    started = time.perf_counter()
    device = pick_device(device_name)
    n = min(BATCH, len(data.train))
    images = data.train.images[:n]
    labels = data.train.labels[:n]
    if data.task == "multilabel":  # the reference only needs a loss of the right cost
        labels = torch.zeros(n, dtype=torch.long)
    classes = max(2, data.num_classes)
    specs = [_reference((8, 16), data.in_channels, classes, data.size),
             _reference((16, 32, 64), data.in_channels, classes, data.size)]
    flops = [spec_cost(s)["flops"] for s in specs]
    secs = [_time_steps(s, images, labels, device, steps, precision) for s in specs]
    slope = (secs[1] - secs[0]) / max(1.0, flops[1] - flops[0])
    if slope <= 0:  # noise: all of the time is put on the FLOPs of the larger net
        slope, overhead = secs[1] / flops[1], 0.0
    else:
        overhead = max(0.0, secs[0] - slope * flops[0])
    cal = Calibration(overhead, slope, 0.0, str(device), 0.0)
    cal.loop_factor = _loop_factor(cal, data, specs[0], flops[0], device_name, precision)
    cam_s = 0.0
    try:
        model = seeded_build(specs[1], 0).to(device).eval()
        k = min(cam_images, len(data.val))
        normalize = Normalizer(data.train.images[:n])
        start = time.perf_counter()
        layer = cam_target_layer(model, specs[1])
        if layer is not None and k:
            evaluate_cams(model, normalize(data.val.images[:k].to(device)), None, cam_method, layer)
        cam_s = time.perf_counter() - start
    except Exception as exc:  # noqa: BLE001 - the CAM time is a refinement; never stop a search for it
        log.debug("CAM calibration skipped: %s", exc)
    return Calibration(overhead, slope, cam_s, str(device), time.perf_counter() - started, cal.loop_factor)


def _loop_factor(cal: Calibration, data, spec: ArchSpec, flops: float, device_name: str, precision: str) -> float:
    """The second epoch of a real ``train()`` (the small reference on up to ``LOOP_IMAGES`` training and a third
    as many validation images; the first pays one-off costs) / what the step timings predict for it: what
    batching, the validation pass, metrics and the epoch's bookkeeping add. Within [1, ``MAX_LOOP_FACTOR``]; 1
    when it cannot be run."""
    n, k = min(LOOP_IMAGES, len(data.train)), min(LOOP_IMAGES // 3, len(data.val))
    part = data.with_splits(train=data.train.subset(torch.arange(n)), val=data.val.subset(torch.arange(k)))
    ends: list[float] = []
    try:
        train(seeded_build(spec, 0), part, TrainConfig(epochs=2, batch_size=BATCH, device=device_name,
                                                       precision=precision),
              on_epoch=lambda epoch, record: ends.append(time.perf_counter()))
        measured = ends[1] - ends[0]
    except Exception as exc:  # noqa: BLE001 - a refinement of the estimate; never stop a search for it
        log.debug("training-loop calibration skipped: %s", exc)
        return 1.0
    predicted = epoch_seconds(cal, flops, n, k)
    return min(MAX_LOOP_FACTOR, max(1.0, measured / predicted)) if predicted > 0 else 1.0


def epoch_seconds(cal: Calibration, flops: float, n_train: int, n_val: int) -> float:
    """Predicted wall time of one training epoch plus its validation pass."""
    per_image = cal.image_seconds(flops)
    return n_train * per_image + n_val * per_image / 3


def candidate_flops(space, data, samples: int = SAMPLES, seed: int = 0) -> list[int]:
    """Forward FLOPs of ``samples`` valid specs drawn at random from ``space`` (at the data's size)."""
    import optuna

    from ..space import sample

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    out: list[int] = []
    for _ in range(samples * 3):
        if len(out) >= samples:
            break
        trial = study.ask()
        try:
            spec = sample(trial, space, in_channels=data.in_channels, num_classes=data.num_classes,
                          input_size=data.size)
            if spec.input_size != data.size:
                continue
            check(spec)
            out.append(int(spec_cost(spec)["flops"]))
        except Exception as exc:  # noqa: BLE001 - an invalid draw is pruned in the search too
            log.debug("estimate: draw skipped: %s", exc)
        finally:
            study.tell(trial, 0.0)
    return out


@dataclass
class Estimate:
    """The search's predicted wall time, split into candidates and baselines, with the lines printed."""

    trials: int
    epochs: int
    trial_s: float  # mean predicted candidate trial
    candidate_epoch_s: list[float]
    baselines: dict[str, float] = field(default_factory=dict)  # name -> predicted trial seconds
    baseline_epoch_s: dict[str, float] = field(default_factory=dict)
    calibration: Calibration | None = None
    lines: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    parallel: float = 1.0  # trials running at once on average (search.parallel.effective_parallel)
    startup_s: float = 0.0  # local workers' start-up (interpreter, imports, data) before their first trial

    @property
    def baselines_s(self) -> float:
        return sum(self.baselines.values())

    @property
    def total_s(self) -> float:
        """Predicted wall time: the baselines one after another, the workers' start, the trials ``parallel`` at a
        time."""
        return self.baselines_s + self.startup_s + self.trials * self.trial_s / self.parallel

    def refinement(self) -> Refinement:
        """The refinement of this estimate as trials finish (``search.refine.Refinement``)."""
        return Refinement(self.trial_s / self.parallel, self.trials, self.baselines_s + self.startup_s)


def fmt_seconds(s: float) -> str:
    """Seconds for people: ``0.14 s``, ``2.5 s``, ``42 s``, ``6.5 min``, ``1.6 h``."""
    if s != s:
        return "?"
    if s < 1:
        return f"{s:.2f} s"
    if s < 10:
        return f"{s:.1f} s"
    if s < 90:
        return f"{s:.0f} s"
    if s < 5400:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


def estimate(session, calibration: Calibration | None = None) -> Estimate:
    """The time estimate of ``session``'s search (trials still to add, epochs, baselines not yet done)."""
    from optuna.trial import TrialState

    from ..arch.baselines import baseline_spec
    from .parallel import effective_parallel, process_age
    from .reproducibility import study_threads

    config, data = session.config, session.data
    workers = max(config.workers or 1, len(config.gpus))
    startup = WORKER_STARTUP * process_age() if workers > 1 else 0.0  # each worker starts as this process did
    with study_threads(config):  # timed with the threads every trial trains with
        cal = calibration or calibrate(data, config.device, config.cam_images, config.cam_method,
                                       precision=config.precision)
    n_train, n_val = len(data.train), len(data.val)
    flops = candidate_flops(session.space, data, seed=config.seed)
    epoch_s = sorted(epoch_seconds(cal, f, n_train, n_val) for f in flops) or [float("nan")]
    per_trial = cal.cam_s + TRIAL_OVERHEAD_S
    share = EPOCH_SHARE.get(config.pruner, DEFAULT_EPOCH_SHARE)
    trial_s = statistics.fmean(share * config.epochs * e + per_trial for e in epoch_s)
    median_epoch = statistics.median(epoch_s)
    est = Estimate(config.trials, config.epochs, trial_s, epoch_s, calibration=cal,
                   parallel=effective_parallel(workers, config.trial_batch), startup_s=startup)
    done = {records.baseline_name(t) for t in session.study.get_trials(deepcopy=False)
            if t.state == TrialState.COMPLETE}
    for name in config.baselines:
        if name in done:
            continue
        try:
            spec = baseline_spec(name, data.in_channels, data.num_classes, data.size)
            b_flops = spec_cost(spec)["flops"]
        except Exception as exc:  # noqa: BLE001 - an unusable baseline fails as a trial, as before
            log.debug("estimate: baseline %s not costed: %s", name, exc)
            continue
        b_epoch = epoch_seconds(cal, b_flops, n_train, n_val)
        est.baseline_epoch_s[name] = b_epoch
        est.baselines[name] = config.epochs * b_epoch + per_trial
        if b_epoch > BASELINE_FACTOR * median_epoch:
            est.warnings.append(
                f"warning: baseline {name} at {data.size} px costs {b_flops / 1e9:.2f} GFLOPs per image: ~"
                f"{fmt_seconds(b_epoch)} per epoch, {b_epoch / median_epoch:.0f}x the median candidate's "
                f"{fmt_seconds(median_epoch)}; ~{fmt_seconds(est.baselines[name])} for its {config.epochs} epochs. "
                f"Drop it from --baselines or give a smaller --size to avoid the wait")
    total = est.total_s
    at_once = (f", {est.parallel:g} trials at once after ~{fmt_seconds(est.startup_s)} of worker start-up"
               if est.parallel != 1 else "")
    base = f" + {len(est.baselines)} baseline{'s' if len(est.baselines) != 1 else ''} " \
           f"({fmt_seconds(est.baselines_s)})" if est.baselines else ""
    lo, hi = epoch_s[0], epoch_s[-1]
    est.lines.append(
        f"time estimate: ~{fmt_seconds(total)}{f' ({total:.0f} s)' if total >= 90 else ''} for {config.trials} trials x {config.epochs} epochs{base}: "
        f"a candidate epoch ~{fmt_seconds(median_epoch)} (median; {fmt_seconds(lo)} to {fmt_seconds(hi)}) at "
        f"{data.size} px on {len(data.train)} training images, predicted from FLOPs and a {cal.seconds:.1f} s "
        f"calibration on {cal.device} ({config.threads or torch.get_num_threads()} thread(s) per trial{at_once}), "
        f"the {config.pruner} pruner expected to train {share:.0%} of the epochs; refined as trials finish")
    if config.timeout is not None and config.timeout < total:
        est.lines.append(f"  --timeout {config.timeout:g} s stops starting trials before that")
    elif total > HOUR:
        est.lines.append("  that is over an hour: consider --timeout 3600 (no trial starts after an hour), fewer "
                         "--trials or --epochs, or a smaller --size")
    est.lines.extend(est.warnings)
    return est


def data_header(session) -> str:
    """One line: the dataset, its split sizes, image size, channels, positive class, device and precision."""
    data, config = session.data, session.config
    device = pick_device(config.device)
    positive = data.info.positive
    pos = "" if positive is None else f", positive class {data.classes[positive]}"
    return (f"dataset {data.name} ({data.task}, {data.num_classes} classes{pos}): train {len(data.train)} / val "
            f"{len(data.val)} / test {len(data.test)} images, {data.size} px, {data.in_channels} channel(s); device "
            f"{device}, precision {resolve_precision(config.precision, device).name}; study {session.study.study_name}")


def preflight(session, callbacks=()) -> Estimate | None:
    """The lines printed before the first trial: the default-size line, a folder's summary and the estimate.

    Each callback with a ``preflight(lines, estimate)`` method receives them (the CLI's progress display): first
    the size line and summary with ``estimate=None``, then the estimate's lines with the Estimate. Without such a
    callback the size line and summary are logged at INFO level and no estimate is made (no calibration)."""
    from ..data.summary import folder_root, scan_folder, summarize, summary_lines

    config = session.config
    lines: list[str] = [data_header(session)]
    if config.size_reason:
        lines.append(config.size_reason)
    if config.parallel_reason:  # workers and threads per trial, and why (search.parallel)
        lines.append(config.parallel_reason)
    root = folder_root(config.dataset)
    if root is not None:
        try:
            lines += summary_lines(summarize(scan_folder(root), session.data), session.data.name)
        except Exception as exc:  # noqa: BLE001 - the summary informs; it never stops a search
            log.warning("pre-flight summary skipped: %s", exc)
    elif session.data.info.duplicates is not None:  # a folder's summary holds this line too
        lines.append(session.data.info.duplicates.line())
    hooks = [cb.preflight for cb in callbacks if callable(getattr(cb, "preflight", None))]
    if not hooks:
        for line in lines:
            log.info("%s", line)
        return None
    for hook in hooks:  # shown at once: the calibration below takes a few seconds
        hook(lines, None)
    if config.init_only:
        return None
    try:
        est = estimate(session)
    except Exception as exc:  # noqa: BLE001 - nor does the estimate
        log.warning("time estimate skipped: %s", exc)
        return None
    for hook in hooks:
        hook(est.lines, est)
    return est

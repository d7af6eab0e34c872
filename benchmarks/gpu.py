"""The GPU path, measured: epoch time, images/s and share of the dense peak in fp32, bf16 and fp16; AMP parity of
validation AUC; host syncs per training step; candidates per hour with 1, 2, 4 and 8 workers packed on one GPU.

Goals (on a CUDA GPU): epoch time of the default space's median candidate at 224 px on 3,488 images < 0.5 s;
4 packed workers >= 2.5 x the candidates per hour of one. On a machine without CUDA the script runs the same
steps on the CPU (smaller: 64 px) and reports what it can (no peak share, no sync counts).

Networks: the default search space's median candidate (the median by FLOPs of 41 valid specs drawn at random,
seeded, at the run's size, 3 channels, 5 classes) and ResNet-18 (``--baselines resnet18``'s spec). Data:
3,488 generated images (3 channels, 5 classes: the size of RadImageNet-MSK at 1 %), uint8 tensors held on the
device, 20 % of them as the validation split; batch 64. Each (network, precision) trains ``nas_med.train.train``
for 3 epochs; figures: ``epoch_seconds`` (nas-med's measure: device time of the steps) and the median epoch wall
time (``epoch_seconds_raw``), images/s = training images / wall time per epoch, achieved FLOP/s = 3 x forward
FLOPs x images / epoch_seconds as a share of the GPU's dense peak for that precision (a table of known GPUs;
TF32 off, so fp32 is compared with the non-tensor-core peak).

Host syncs: ``torch.cuda.set_sync_debug_mode("warn")`` during one training run; every implicit synchronisation
(``.item()``, a device-to-host copy, ``nonzero``) raises a warning, counted and divided by the steps run. The per-
epoch reads (loss, validation metrics) are included, so the figure is an upper bound of the per-step syncs.
AMP parity: the median candidate trained 4 epochs on the synthetic dataset (3 channels, 64 px) in each precision;
validation AUC difference to fp32.

Packing: ``nas-med search --workers N --gpus 0`` (N = 1, 2, 4, 8) on the synthetic dataset at 64 px, 4 x N
trials (at least 8) of 4 epochs, fresh sqlite storage each; candidates per hour = completed and pruned trials /
wall hours. On CPU: N = 1, 2 without --gpus.

Fused training (``nas_med.fused.fit_many``): K = 1, 4, 16 runs (seeds) of the median candidate at 28 and 224 px
(64 px on CPU) on the generated images, trained together; runs per hour and the gain over K = 1.

--quick (CI, CPU): 32 px, 256 images, 1 epoch, median candidate only for the precision table, no packing on CPU
(on CUDA: 1 and 2 workers of 2 trials each of 1 epoch at 16 px in the tiny space), fused K = 1 and 4 at 28 and 32
px. fp16 is left out on CPU.

Reproduce:  .venv/bin/python benchmarks/gpu.py            (full; ~3-5 min on an H100/H200)
            .venv/bin/python benchmarks/gpu.py --quick    (CPU smoke test)
"""
from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
import warnings

from _common import REPO, parser, result, setup

# dense (no sparsity) peak TFLOP/s by device-name fragment: fp32 (non-tensor), bf16 and fp16 tensor cores
PEAKS = {
    "H200": {"fp32": 67.0, "bf16": 989.0, "fp16": 989.0},
    "H100 SXM": {"fp32": 67.0, "bf16": 989.0, "fp16": 989.0},
    "H100 PCIe": {"fp32": 51.0, "bf16": 756.0, "fp16": 756.0},
    "H100": {"fp32": 67.0, "bf16": 989.0, "fp16": 989.0},
    "A100": {"fp32": 19.5, "bf16": 312.0, "fp16": 312.0},
    "L40S": {"fp32": 91.6, "bf16": 362.0, "fp16": 362.0},
    "L4": {"fp32": 30.3, "bf16": 121.0, "fp16": 121.0},
    "A10": {"fp32": 31.2, "bf16": 125.0, "fp16": 125.0},
    "T4": {"fp32": 8.1, "bf16": float("nan"), "fp16": 65.0},
    "V100": {"fp32": 15.7, "bf16": float("nan"), "fp16": 125.0},
}


def peak(name: str, precision: str) -> float:
    """Dense peak FLOP/s of the GPU called ``name`` in ``precision`` (nan when unknown)."""
    for key, table in PEAKS.items():
        if key.lower() in name.lower():
            return table[precision] * 1e12
    return float("nan")


def generated(n: int, size: int, channels: int = 3, classes: int = 5, seed: int = 0):
    """``n`` uint8 images with a class-dependent pattern (a bright square whose place is the class), 80/20 split
    into train and validation (the test split repeats validation: unused here)."""
    import torch

    from nas_med.data.types import Dataset, Split

    gen = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % classes
    labels = labels[torch.randperm(n, generator=gen)]
    images = torch.randint(0, 160, (n, channels, size, size), dtype=torch.uint8, generator=gen)
    step = max(1, size // (classes + 1))
    for c in range(classes):
        sel = labels == c
        images[sel, :, c * step:(c + 1) * step, c * step:(c + 1) * step] = 255
    cut = int(n * 0.8)
    train, val = Split(images[:cut], labels[:cut]), Split(images[cut:], labels[cut:])
    return Dataset("generated", "multiclass", [f"c{i}" for i in range(classes)], train, val, val)


def median_candidate(size: int, channels: int = 3, classes: int = 5, seed: int = 0, draws: int = 41):
    """The median by FLOPs of ``draws`` distinct valid specs drawn (seeded) from the default space."""
    import optuna

    from nas_med.arch import InvalidSpec, check
    from nas_med.arch.cost import spec_cost
    from nas_med.space import load_space, sample

    space = load_space("default")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    found: dict[str, tuple[int, object]] = {}
    while len(found) < draws:
        spec = sample(study.ask(), space, in_channels=channels, num_classes=classes, input_size=size)
        try:
            check(spec)
        except InvalidSpec:
            continue
        found.setdefault(spec.summary(), (spec_cost(spec)["flops"], spec))
    specs = [s for _, s in sorted(found.values(), key=lambda fs: fs[0])]
    return specs[len(specs) // 2]


def count_syncs(fn) -> int:
    """Implicit host-device synchronisations during ``fn()`` (CUDA only), via the sync debug mode's warnings."""
    import torch

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            fn()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message).lower() for w in caught)


def time_network(name, spec, data, precision: str, epochs: int, device: str, batch: int = 64) -> dict:
    import torch

    from nas_med.arch import build
    from nas_med.arch.cost import spec_cost
    from nas_med.train import TrainConfig, train

    torch.manual_seed(0)
    r = train(build(spec), data, TrainConfig(epochs=epochs, lr=1e-3, batch_size=batch, device=device,
                                             precision=precision))
    n = len(data.train) - len(data.train) % batch
    flops = 3 * spec_cost(spec)["flops"] * n  # forward + backward (2x) per epoch
    dev_name = torch.cuda.get_device_name() if device.startswith("cuda") else "cpu"
    achieved = flops / r.epoch_seconds
    row = {"network": name, "precision": r.precision, "epoch_seconds": r.epoch_seconds,
           "wall_seconds": r.epoch_seconds_raw, "images_per_s": n / r.epoch_seconds_raw,
           "tflops": achieved / 1e12, "peak_share": achieved / peak(dev_name, r.precision)
           if device.startswith("cuda") else float("nan"), "val_auc": float(r.val["auc"])}
    del r
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    return row


def fused_rows(sizes, ks, n: int, epochs: int, device: str, seed: int) -> list[dict]:
    """Runs per hour of the default space's median candidate trained K at a time (``nas_med.fused.fit_many``,
    seeds 0..K-1, default precision, batch 64) at each size, and the gain over K = 1 (K = 1 is a plain ``fit``)."""
    from nas_med.fused import Run, fit_many
    from nas_med.train import TrainConfig

    rows = []
    for size in sizes:
        data = generated(n, size, seed=seed)
        spec = median_candidate(size, seed=seed)
        cfg = TrainConfig(epochs=epochs, lr=1e-3, batch_size=64, device=device)
        base = None
        for k in ks:
            start = time.perf_counter()
            try:
                fit_many(spec, [Run(data, cfg, s) for s in range(k)])
            except Exception as exc:  # report and go on
                print(f"fused {size:>3} px K={k:<3} FAILED: {type(exc).__name__}: {str(exc).splitlines()[0]}")
                continue
            if device.startswith("cuda"):
                import torch

                torch.cuda.synchronize()
                torch.cuda.empty_cache()
            seconds = time.perf_counter() - start
            rate = 3600 * k / seconds
            base = rate if k == 1 else base
            gain = rate / base if base else float("nan")
            rows.append({"size": size, "k": k, "seconds": seconds, "runs_per_hour": rate, "gain": gain})
            print(f"fused {size:>3} px K={k:<3} {seconds:8.2f} s for {k} run(s) of {epochs} epoch(s): "
                  f"{rate:8.0f} runs per hour, {gain:5.2f} x K=1", flush=True)
    return rows


def packed(workers: int, trials: int, epochs: int, size: int, cuda: bool, quick: bool) -> float:
    """Candidates per hour of ``nas-med search --workers N [--gpus 0]`` on the synthetic dataset."""
    with tempfile.TemporaryDirectory(prefix="nas-med-gpu-") as tmp:
        cmd = [sys.executable, "-m", "nas_med.cli.main", "search", "--dataset", "synthetic", "--size", str(size),
               "--trials", str(trials), "--epochs", str(epochs), "--workers", str(workers), "--quiet",
               "--storage", f"sqlite:///{tmp}/db.sqlite", "--study", "packing", "--cam-images", "4"]
        if cuda:
            cmd += ["--gpus", "0"]
        if quick:
            cmd += ["--space", "tiny", "--pruner", "none"]
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=3000)
        seconds = time.perf_counter() - start
        if proc.returncode != 0:
            print(f"  {workers} worker(s): exit {proc.returncode}: {proc.stderr.strip()[-800:]}", flush=True)
            return float("nan")
        import optuna

        study = optuna.load_study(study_name="packing", storage=f"sqlite:///{tmp}/db.sqlite")
        done = sum(t.state.name in ("COMPLETE", "PRUNED") for t in study.trials)
        failed = [t.user_attrs.get("stop_reason") for t in study.trials if t.state.name == "FAIL"]
        if failed:
            print(f"  {workers} worker(s): {len(failed)} failed trial(s): {failed[:3]}", flush=True)
    rate = 3600 * done / seconds
    print(f"  {workers} worker(s): {done} trials in {seconds:.1f} s -> {rate:.0f} candidates per hour", flush=True)
    return rate


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--skip-packing", action="store_true", help="leave out the packed-workers measurement")
    args = ap.parse_args()
    setup(args)
    started = time.perf_counter()
    import torch

    from nas_med.arch.baselines import baseline_spec
    from nas_med.data import load_dataset
    from nas_med.precision import cpu_bf16_flags

    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cudnn.benchmark = False
        print(f"device: {torch.cuda.get_device_name()} (bf16 {'yes' if torch.cuda.is_bf16_supported() else 'no'})")
    else:
        print(f"device: CPU (no CUDA GPU; bf16 flags: {', '.join(cpu_bf16_flags()) or 'none'}): CPU figures only")
    if args.quick:
        size, n, epochs, nets = 32, 256, 1, ("median",)
    else:
        size, n, epochs, nets = (224 if cuda else 64), 3488, 3, ("median", "resnet18")
    data = generated(n, size, seed=args.seed)
    specs = {"median": median_candidate(size, seed=args.seed), "resnet18": baseline_spec("resnet18", 3, 5, size)}
    print(f"median candidate of the default space at {size} px: {specs['median'].summary()}")
    precisions = ("fp32", "bf16", "fp16")
    rows = []
    print(f"{'network':<9} {'prec':<5} {'epoch_s':>8} {'wall_s':>8} {'img/s':>8} {'TFLOP/s':>8} {'peak':>6} "
          f"{'val AUC':>7}")
    for net in nets:
        for precision in precisions:
            if not cuda and precision == "fp16":
                continue  # CPU fp16 autocast has no fast kernels here (10x slower than fp32 in a test)
            try:
                row = time_network(net, specs[net], data, precision, epochs, device)
            except Exception as exc:  # report and go on: finding what breaks is the point
                print(f"{net:<9} {precision:<5} FAILED: {type(exc).__name__}: {str(exc).splitlines()[0]}",
                      flush=True)
                continue
            rows.append(row)
            print(f"{net:<9} {row['precision']:<5} {row['epoch_seconds']:8.3f} {row['wall_seconds']:8.3f} "
                  f"{row['images_per_s']:8.0f} {row['tflops']:8.3f} {row['peak_share']:6.1%} "
                  f"{row['val_auc']:7.3f}", flush=True)
    # host syncs per step
    syncs_per_step = float("nan")
    if cuda:
        from nas_med.arch import build
        from nas_med.train import TrainConfig, train

        for precision in precisions:
            steps = 2 * (len(data.train) // 64)
            count = count_syncs(lambda p=precision: train(build(specs["median"]), data, TrainConfig(
                epochs=2, batch_size=64, device="cuda", precision=p)))
            print(f"host syncs, {precision}: {count} in 2 epochs of {steps} steps ({count / steps:.2f} per step, "
                  "per-epoch reads included)", flush=True)
            if precision == "bf16":
                syncs_per_step = count / steps
    # AMP parity on synthetic
    syn = load_dataset("synthetic", size=16 if args.quick else 64, channels=3, seed=args.seed)
    parity_spec = median_candidate(syn.size, 3, syn.num_classes, args.seed)
    aucs = {}
    for precision in precisions:
        if not cuda and precision == "fp16":
            continue
        try:
            aucs[precision] = time_network("parity", parity_spec, syn, precision, 1 if args.quick else 4, device,
                                           batch=32)["val_auc"]
        except Exception as exc:
            print(f"parity {precision} FAILED: {type(exc).__name__}: {str(exc).splitlines()[0]}")
    print("AMP parity (validation AUC, synthetic): " + ", ".join(
        f"{p} {a:.4f} ({a - aucs.get('fp32', float('nan')):+.4f})" for p, a in aucs.items()))
    # fused training of K runs of one network (nas_med.fused)
    if args.quick:
        fused = fused_rows((28, 32), (1, 4), 256, 1, device, args.seed)
    else:
        fused = fused_rows((28, 224 if cuda else 64), (1, 4, 16), n, epochs, device, args.seed)
    # packing
    rates = {}
    if args.quick and not cuda:
        print("packed workers: skipped in --quick on CPU (two CLI searches take minutes on a loaded 2-core machine)")
    elif not args.skip_packing:
        print("packed workers:")
        for workers in ((1, 2) if args.quick or not cuda else (1, 2, 4, 8)):
            trials = 2 if args.quick else max(8, 4 * workers)
            rates[workers] = packed(workers, trials, 1 if args.quick else 4, 16 if args.quick else 64, cuda,
                                    args.quick)
    median_row = next((r for r in rows if r["network"] == "median" and r["precision"] == "bf16"), None) or \
        next((r for r in rows if r["network"] == "median"), {"epoch_seconds": float("nan")})
    best_median = min((r["epoch_seconds"] for r in rows if r["network"] == "median"), default=float("nan"))
    figures = {"median_epoch_seconds": round(best_median, 4),
               "median_bf16_epoch_seconds": round(median_row["epoch_seconds"], 4),
               "syncs_per_step": round(syncs_per_step, 3) if cuda else float("nan")}
    if rates:
        top = max(rates)
        figures[f"packing_{top}x"] = round(rates[top] / rates[1], 3) if rates.get(1) else float("nan")
        if 4 in rates:
            figures["packing_4x"] = round(rates[4] / rates[1], 3)
    for row in fused:
        if row["k"] == max(r["k"] for r in fused):
            figures[f"fused{row['k']}_gain_{row['size']}px"] = round(row["gain"], 3)
    figures["cuda"] = int(cuda)
    print(f"median of epoch_seconds across rows: {statistics.median(r['epoch_seconds'] for r in rows):.3f}"
          if rows else "no row measured")
    result(figures, "goal on CUDA at 224 px: median_epoch_seconds < 0.5, packing_4x >= 2.5", started)


if __name__ == "__main__":
    main()

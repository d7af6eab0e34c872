"""Benchmark: do the two CAM scores agree? ROAD (the ``cam_quality`` objective) vs the lesion-mask score.

nas-med judges every trial's Grad-CAMs by ROADCombined (``cam_quality``: how much the prediction drops when the
CAM's most relevant pixels are imputed away, minus the drop for its least relevant ones; faithfulness, needs no
ground truth). On a dataset with lesion masks (the embedded ``synthetic`` one) each trial also records
``mask_energy``: the share of CAM energy inside the ground-truth lesion (localization; a flat map scores the
lesion's area share, ~0.02 here). This script measures, over the completed trials of one study, how well the
two rank the trials alike: the Spearman rank correlation rho(cam_quality, mask_energy), printed with n and its
p-value (``scipy.stats.spearmanr``). As context it prints the correlation of each score with the validation AUC
(both could merely follow accuracy) and the trials sorted by ``cam_quality``.

Both scores come from the same fixed, seeded subset of validation images (``--cam-images``), CAMs of the
predicted class; ROAD counts every image, the mask score only images with a lesion.

By default it runs a fresh search on ``synthetic`` (20 trials, 32 px, default space, 4 epochs, no pruning so
every trial gets both scores) in a temporary folder; ``--quick`` runs 10 trials at 16 px in the tiny space
with 2 epochs. ``--study NAME --storage URL`` reads an existing study instead (it must have ``mask_energy``).

As the ROAD benchmark does, it sets ``OMP_WAIT_POLICY=PASSIVE`` unless the environment sets it (OpenMP's
spin-waiting slows torch many times over on a small CPU shared with other processes).

Run:  .venv/bin/python benchmarks/cam_agreement.py [--quick] [--study NAME --storage URL]
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads OpenMP

import argparse  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import optuna  # noqa: E402
from optuna.trial import FrozenTrial, TrialState  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402


def run_search(args: argparse.Namespace, folder: Path) -> optuna.Study:
    from nas_med.search import SearchConfig, search

    config = SearchConfig(dataset="synthetic", size=args.size, space=args.space, trials=args.trials,
                          epochs=args.epochs, study="cam-agreement", storage=f"sqlite:///{folder}/nas-med.db",
                          cam_images=args.cam_images, cam_method=args.cam_method, pruner="none", seed=args.seed,
                          quiet=True, artifacts=False)
    return search(config)


def scored(study: optuna.Study) -> list[FrozenTrial]:
    """Completed trials with a finite ROAD score and a finite mask score."""
    out = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        road, mask = t.values[3], t.user_attrs.get("mask_energy")
        if mask is not None and math.isfinite(road) and math.isfinite(mask):
            out.append(t)
    return out


def cam_map_size(trial: FrozenTrial) -> int:
    """Side of the feature map Grad-CAM reads (the deepest stage output of at least 2x2), 0 if unknown."""
    from nas_med.arch import ArchSpec, stage_shapes

    try:
        shapes = stage_shapes(ArchSpec.from_dict(trial.user_attrs["spec"]))
    except Exception:
        return 0
    sides = [min(h, w) for _, _, h, w in shapes if min(h, w) >= 2]
    return sides[-1] if sides else 0


def rho_line(name: str, x: list[float], y: list[float]) -> str:
    rho, p = spearmanr(x, y)
    return f"{name:<36} rho = {rho:+.3f}   p = {p:.3g}   n = {len(x)}"


def report(trials: list[FrozenTrial]) -> float:
    road = [t.values[3] for t in trials]
    mask = [t.user_attrs["mask_energy"] for t in trials]
    auc = [t.values[0] for t in trials]
    side = [cam_map_size(t) for t in trials]
    print(f"\n{'trial':>5} {'AUC':>7} {'params':>9} {'CAM map':>8} {'cam_quality':>12} {'mask_energy':>12}  "
          "architecture")
    for t, s in sorted(zip(trials, side), key=lambda ts: -ts[0].values[3]):
        name = t.user_attrs.get("baseline") or t.user_attrs.get("summary", "")
        print(f"{t.number:>5} {t.values[0]:>7.4f} {int(t.values[1]):>9,} {f'{s}x{s}':>8} {t.values[3]:>+12.4f} "
              f"{t.user_attrs['mask_energy']:>12.4f}  {name}")
    print()
    print(rho_line("Spearman(cam_quality, mask_energy)", road, mask))
    print(rho_line("Spearman(cam_quality, AUC)", road, auc))
    print(rho_line("Spearman(mask_energy, AUC)", mask, auc))
    if len(set(side)) > 1:
        print(rho_line("Spearman(cam_quality, CAM map side)", road, side))
        print(rho_line("Spearman(mask_energy, CAM map side)", mask, side))
    rho, _ = spearmanr(road, mask)
    return float(rho)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 trials, 16 px, tiny space, 2 epochs")
    parser.add_argument("--study", help="read this existing study instead of running a search")
    parser.add_argument("--storage", help="storage URL of --study")
    parser.add_argument("--trials", type=int)
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--size", type=int)
    parser.add_argument("--space")
    parser.add_argument("--cam-images", type=int, default=32)
    parser.add_argument("--cam-method", default="gradcam")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", help="keep the study's sqlite storage in this folder (default: a temporary one)")
    args = parser.parse_args()
    quick = {"trials": 10, "epochs": 2, "size": 16, "space": "tiny"}
    full = {"trials": 20, "epochs": 4, "size": 32, "space": "default"}
    for key, value in (quick if args.quick else full).items():
        if getattr(args, key) is None:
            setattr(args, key, value)

    import torch

    torch.set_num_threads(args.threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", module="optuna")
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    start = time.perf_counter()
    if args.study:
        if not args.storage:
            parser.error("--study needs --storage")
        study = optuna.load_study(study_name=args.study, storage=args.storage)
        print(f"study {args.study}: {len(study.trials)} trials")
        trials = scored(study)
    else:
        print(f"search: synthetic {args.size} px, space {args.space}, {args.trials} trials x {args.epochs} epochs, "
              f"{args.cam_images} CAM images ({args.cam_method}), seed {args.seed}, no pruning")
        with tempfile.TemporaryDirectory(prefix="cam-agreement-") as tmp:
            folder = Path(args.out or tmp)
            folder.mkdir(parents=True, exist_ok=True)
            study = run_search(args, folder)
            trials = scored(study)
        if args.out:
            print(f"study cam-agreement kept in sqlite:///{folder.resolve()}/nas-med.db")
        print(f"search took {time.perf_counter() - start:.0f} s")
    if len(trials) < 3:
        sys.exit(f"need at least 3 trials with both scores, found {len(trials)}")
    rho = report(trials)
    print(f"RESULT spearman_road_vs_mask={rho:+.3f} n={len(trials)} (goal none: reported only)")


if __name__ == "__main__":
    main()

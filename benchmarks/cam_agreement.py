"""Benchmark: can the ``cam_quality`` objective be trusted? Agreement with the lesion masks, repeatability,
the model-randomisation check and cost, for today's score and the previous one side by side.

``cam_quality`` needs no ground truth (it is a ROAD faithfulness score: how much the prediction drops when the
CAM's most relevant pixels are imputed away, see ``nas_med.objectives.cam``). On the embedded ``synthetic`` data
the lesion masks are known, so the script trains ``--models`` candidates per study seed (``--seeds``; sampled at
random from the default space, trained as a search trial trains them: 8 epochs at 32 px) and, for every model and
both scores, measures:

- **agreement**: Spearman rho, per seed, of the score with the mask score ``mask_energy`` (share of the CAM's
  energy inside the lesion) of the score's own CAMs over *all* validation images with a lesion;
- **test-retest**: the model scored twice, on two other seeded image subsets with other imputation noise; the
  Spearman rho of the two scores over all models (the score must rank models, not draws);
- **randomisation** (Adebayo et al. 2018): the share of models whose copy with re-initialised weights (same
  architecture) scores lower than the trained model;
- **cost**: the scoring seconds as a share of the trial's wall time (training + scoring), median over models.

"previous" is the score before issue 15 (Grad-CAM at the deepest map of at least 2x2, ROADCombined at removal
percentiles 20/40/60/80, 16 images); "new" is ``nas_med.objectives.cam.evaluate_cams`` with its defaults.
Trained models are cached in ``--cache`` (default: a temporary folder), so re-runs only score.
With Quantus installed (optional, not a dependency) it also prints Quantus' FaithfulnessCorrelation and
ModelParameterRandomisation for a few models as an outside reference; without it that part is reported skipped.

``--quick``: 2 seeds x 3 models at 16 px, tiny space, 2 epochs (CI smoke test; figures are not meaningful).

Run:  .venv/bin/python benchmarks/cam_agreement.py [--quick] [--models 20] [--cache DIR]
"""
from __future__ import annotations

import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402  (sets OMP_WAIT_POLICY before torch loads)
import numpy as np  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402

# the bar of issue 15
GOALS = {"rho_mask": 0.6, "retest": 0.8, "randomisation": 0.9, "cost": 0.10}


@dataclass
class Scorer:
    """One way to compute cam_quality: CAM method, layer rule, images, ROAD percentiles."""

    name: str
    method: str
    min_side: int
    images: int
    percentiles: tuple[float, ...]
    road: str


def scorers() -> list[Scorer]:
    from nas_med.objectives.cam import (
        CAM_IMAGES,
        CAM_METHOD,
        CAM_MIN_SIDE,
        CAM_PERCENTILES,
        CAM_ROAD,
    )

    return [Scorer("previous", "gradcam", 2, 16, (20, 40, 60, 80), "combined"),
            Scorer("new", CAM_METHOD, CAM_MIN_SIDE, CAM_IMAGES, tuple(CAM_PERCENTILES), CAM_ROAD)]


def train_models(seed: int, count: int, size: int, epochs: int, space: str, cache: Path) -> list[dict]:
    """``count`` candidates sampled at random from ``space`` and trained on synthetic(``seed``), cached on disk."""
    import optuna
    import torch

    from nas_med.arch import InvalidSpec, build, check
    from nas_med.data import synthetic
    from nas_med.space import load_space, sample, sample_training
    from nas_med.train import TrainConfig, train

    folder = cache / f"s{seed}_{size}px_{space}_{epochs}ep"
    folder.mkdir(parents=True, exist_ok=True)
    data = synthetic.load(size=size, seed=seed)
    sp = load_space(space)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    models, k = [], 0
    while k < count:
        trial = study.ask()
        spec = sample(trial, sp, in_channels=1, num_classes=4, input_size=size)
        settings = sample_training(trial, sp)
        study.tell(trial, 0.0)
        try:
            check(spec)
        except InvalidSpec:
            continue
        path = folder / f"m{k:02d}.pt"
        if not path.exists() or torch.load(path, weights_only=False)["spec"] != spec.to_dict():
            cfg = TrainConfig(epochs=epochs, lr=settings["lr"], batch_size=int(settings["batch_size"]),
                              weight_decay=settings["weight_decay"], device="cpu", seed=seed * 100 + k)
            torch.manual_seed(cfg.seed)
            start = time.perf_counter()
            res = train(build(spec), data, cfg)
            torch.save({"spec": spec.to_dict(), "state": res.model.state_dict(),
                        "train_s": time.perf_counter() - start, "val_auc": float(res.val["auc"])}, path)
        models.append({**torch.load(path, weights_only=False), "seed": seed, "name": f"s{seed}/m{k:02d}",
                       "batch_size": int(settings["batch_size"])})
        k += 1
    return models


def epoch_seconds(m: dict, data) -> float:
    """Wall time of one training epoch (with its validation pass) of the model's architecture and settings."""
    import torch

    from nas_med.arch import ArchSpec, build
    from nas_med.train import TrainConfig, train

    torch.manual_seed(0)
    start = time.perf_counter()
    train(build(ArchSpec.from_dict(m["spec"])), data, TrainConfig(epochs=1, batch_size=m["batch_size"], device="cpu"))
    return time.perf_counter() - start


def score(model, spec, data, normalize, scorer: Scorer, subset_seed: int, noise_seed: int) -> tuple[float, float]:
    """(cam_quality, seconds) of ``model`` on a seeded validation subset."""
    from nas_med.arch import cam_target_layer
    from nas_med.objectives.cam import evaluate_cams
    from nas_med.search.objective import cam_subset

    index = cam_subset(data, scorer.images, subset_seed)
    start = time.perf_counter()
    layer = cam_target_layer(model, spec, min_side=scorer.min_side)
    result = evaluate_cams(model, normalize(data.val.images[index]), None, scorer.method, layer,
                           percentiles=scorer.percentiles, road=scorer.road, noise_seed=noise_seed)
    return result.cam_quality, time.perf_counter() - start


def mask_score(model, spec, data, normalize, scorer: Scorer) -> float:
    """mask_energy of the scorer's CAMs (predicted class) over every validation image with a lesion."""
    import torch

    from nas_med.arch import cam_target_layer
    from nas_med.objectives.cam import compute_cams, mask_energy

    x = normalize(data.val.images)
    with torch.no_grad():
        targets = model.eval()(x).argmax(1).tolist()
    cams = compute_cams(model, x, targets, scorer.method, layer=cam_target_layer(model, spec, min_side=scorer.min_side))
    energy = mask_energy(cams, data.val.masks.numpy())
    return 0.0 if energy != energy else energy  # an all-zero CAM has no energy on the lesion


def rho(x, y) -> float:
    return float(spearmanr(x, y)[0]) if len(x) > 2 else float("nan")


def _row_spearman(a, b, batched: bool = False, **_):
    """Spearman rho of each row pair (Quantus 0.6's own fails on scipy's float result for a batch of one)."""
    if not batched:
        return float(spearmanr(a.ravel(), b.ravel())[0])
    return np.array([spearmanr(u, v)[0] if u.std() > 0 and v.std() > 0 else 0.0 for u, v in zip(a, b)])


def quantus_reference(models, datas, scores: list[float], limit: int = 8) -> None:
    """Quantus' FaithfulnessCorrelation and MPRT (model parameter randomisation) on ``limit`` models, and the
    Spearman rho of each with ``scores`` (the new cam_quality of the same models), as an outside reference."""
    try:
        import quantus
    except ImportError:
        print("Quantus reference: skipped (quantus is not installed; pip install quantus to run it)")
        return
    import torch

    from nas_med.arch import ArchSpec, build, cam_target_layer
    from nas_med.objectives.cam import CAM_METHOD, compute_cams

    print(f"\nQuantus {quantus.__version__} reference on {limit} models, 32 validation images each: "
          "FaithfulnessCorrelation (higher is better) and MPRT, the mean similarity of the CAMs before and after "
          "the layers are randomised top-down (lower is better)")
    faith, mprt = [], []
    picked = np.linspace(0, len(models) - 1, min(limit, len(models))).round().astype(int)
    for i in picked:
        m = models[i]
        data, normalize = datas[m["seed"]]
        spec = ArchSpec.from_dict(m["spec"])
        model = build(spec)
        model.load_state_dict(m["state"])
        model.eval()
        x = normalize(data.val.images[:32])
        with torch.no_grad():
            y = model(x).argmax(1).numpy()

        def explain(model, inputs, targets, spec=spec, **_):
            t = torch.as_tensor(inputs, dtype=torch.float32)
            return compute_cams(model, t, [int(v) for v in targets], CAM_METHOD,
                                layer=cam_target_layer(model, spec))[:, None]

        a = explain(model, x.numpy(), y)
        f = quantus.FaithfulnessCorrelation(nr_runs=20, subset_size=max(4, x.shape[-1] ** 2 // 20),
                                            disable_warnings=True)
        try:
            faith.append(float(np.nanmean(f(model=model, x_batch=x.numpy(), y_batch=y, a_batch=a, device="cpu"))))
        except AssertionError:  # all-zero CAMs
            faith.append(float("nan"))
        r = quantus.MPRT(return_average_correlation=True, disable_warnings=True, similarity_func=_row_spearman)
        try:
            mprt.append(float(np.nanmean(r(model=model, x_batch=x.numpy(), y_batch=y, a_batch=a, device="cpu",
                                           explain_func=explain))))
        except AssertionError:  # Quantus refuses an all-zero attribution batch (a randomised layer can give one)
            mprt.append(float("nan"))
        print(f"  {m['name']}: cam_quality {scores[i]:+.3f}  FaithfulnessCorrelation {faith[-1]:+.3f}  "
              f"MPRT {mprt[-1]:+.3f}")
    chosen = np.array([scores[i] for i in picked])
    ok = np.isfinite(faith)
    print(f"  Spearman rho with cam_quality: FaithfulnessCorrelation {rho(chosen[ok], np.array(faith)[ok]):+.2f} "
          f"({ok.sum()} models with a finite value), MPRT {rho(chosen[np.isfinite(mprt)], np.array(mprt)[np.isfinite(mprt)]):+.2f} "
          f"({np.isfinite(mprt).sum()} finite; negative is agreement)")


def main() -> None:
    ap = _common.parser(__doc__)
    ap.add_argument("--models", type=int, help="models per seed (default 20; quick 3)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="study seeds (default 0 1)")
    ap.add_argument("--size", type=int, help="image size (default 32; quick 16)")
    ap.add_argument("--epochs", type=int, help="training epochs per model (default 8, the search's; quick 2)")
    ap.add_argument("--space", help="search space to sample from (default default; quick tiny)")
    ap.add_argument("--cache", help="folder for the trained models (default: a temporary one)")
    ap.add_argument("--quantus", type=int, default=8, help="models for the Quantus reference (0: none)")
    args = ap.parse_args()
    defaults = ({"models": 3, "size": 16, "epochs": 2, "space": "tiny"} if args.quick
                else {"models": 20, "size": 32, "epochs": 8, "space": "default"})
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    _common.setup(args)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="cam-agreement-") as tmp:
        run(args, Path(args.cache or tmp), started)


def run(args, cache: Path, started: float) -> None:
    import torch

    from nas_med.arch import ArchSpec, build
    from nas_med.data import synthetic
    from nas_med.train import Normalizer

    models, datas = [], {}
    for seed in args.seeds:
        data = synthetic.load(size=args.size, seed=seed)
        datas[seed] = (data, Normalizer(data.train.images))
        models += train_models(seed, args.models, args.size, args.epochs, args.space, cache)
    print(f"{len(models)} models ({args.models} per seed, seeds {args.seeds}), synthetic {args.size} px, space "
          f"{args.space}, {args.epochs} epochs; trained in {time.perf_counter() - started:.0f} s", flush=True)
    for m in models:  # the trial's training time, re-measured now (one epoch) so that load drifts cancel out
        m["trial_train_s"] = args.epochs * epoch_seconds(m, datas[m["seed"]][0])
    figures: dict[str, dict] = {}
    rows = []
    for scorer in scorers():
        out = {"a": [], "b": [], "rand": [], "mask": [], "cost": [], "seed": []}
        for m in models:
            data, normalize = datas[m["seed"]]
            spec = ArchSpec.from_dict(m["spec"])
            model = build(spec)
            model.load_state_dict(m["state"])
            model.eval()
            a, sec = score(model, spec, data, normalize, scorer, 0, 0)
            b, _ = score(model, spec, data, normalize, scorer, 1, 1)
            torch.manual_seed(10_000 + len(out["a"]))
            rand, _ = score(build(spec).eval(), spec, data, normalize, scorer, 0, 0)
            for key, v in (("a", a), ("b", b), ("rand", rand), ("seed", m["seed"]),
                           ("mask", mask_score(model, spec, data, normalize, scorer)),
                           ("cost", sec / (m["trial_train_s"] + sec))):
                out[key].append(v)
            rows.append((scorer.name, m["name"], m["val_auc"], a, b, rand, out["mask"][-1], sec))
        seeds = np.array(out["seed"])
        a, mask = np.array(out["a"]), np.array(out["mask"])
        out["rho"] = [rho(a[seeds == s], mask[seeds == s]) for s in args.seeds]
        out["retest"] = rho(out["a"], out["b"])
        out["pass"] = float(np.mean(a > np.array(out["rand"])))
        out["cost_median"] = float(np.median(out["cost"]))
        figures[scorer.name] = out
    print(f"\n{'score':<9} {'model':<7} {'val AUC':>7} {'quality':>8} {'retest':>8} {'random':>8} {'mask':>6} "
          f"{'secs':>5}")
    for name, model_name, auc, a, b, rand, mask, sec in rows:
        print(f"{name:<9} {model_name:<7} {auc:>7.3f} {a:>+8.3f} {b:>+8.3f} {rand:>+8.3f} {mask:>6.3f} {sec:>5.2f}")
    print()
    for scorer in scorers():
        print(f"{scorer.name}: {scorer.method}, layer map >= {scorer.min_side}x{scorer.min_side}, "
              f"{scorer.images} images, ROAD {scorer.road} at percentiles {list(scorer.percentiles)}")
    print(f"\n{'figure (goal)':<44} {'previous':>10} {'new':>10}")
    for i, seed in enumerate(args.seeds):
        print(f"{f'Spearman with mask score, seed {seed} (>= 0.6)':<44} {figures['previous']['rho'][i]:>+10.3f} "
              f"{figures['new']['rho'][i]:>+10.3f}")
    print(f"{'test-retest Spearman (>= 0.8)':<44} {figures['previous']['retest']:>+10.3f} "
          f"{figures['new']['retest']:>+10.3f}")
    print(f"{'randomisation check passed (>= 90 %)':<44} {figures['previous']['pass']:>10.0%} "
          f"{figures['new']['pass']:>10.0%}")
    print(f"{'cost, median share of trial time (<= 10 %)':<44} {figures['previous']['cost_median']:>10.1%} "
          f"{figures['new']['cost_median']:>10.1%}")
    if args.quantus:
        quantus_reference(models, datas, figures["new"]["a"], args.quantus)
    new, prev = figures["new"], figures["previous"]
    _common.result({"rho_min": min(new["rho"]), "retest": new["retest"], "randomisation": new["pass"],
                    "cost": new["cost_median"], "previous_rho_min": min(prev["rho"]),
                    "previous_retest": prev["retest"]},
                   "goal rho_min >= 0.6, retest >= 0.8, randomisation >= 0.9, cost <= 0.10", started)


if __name__ == "__main__":
    main()

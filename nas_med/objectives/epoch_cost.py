"""The ``epoch_seconds`` objective: seconds of one training epoch on a reference device, from a cost model.

A measured epoch time is a property of the moment (other processes, turbo, the worker's machine), so a search
that follows it does not repeat. The objective is instead a function of the network and the data size: per
training step a fixed cost, a cost per layer (kernels launched forward and backward), per FLOP, per activation
byte, per parameter (the optimiser's update) and per input pixel (indexing, normalisation, augmentation), each
counted on the meta device (``arch.cost.spec_cost``), times the steps of one epoch. The coefficients were fitted
once on a reference machine (``benchmarks/epoch_time.py --fit``) and are stored on every study that uses them, so
every worker and every resume scores with the same ones. The measured time is kept on each trial beside it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import UserError

__all__ = ["FEATURES", "REFERENCE_CPU", "CostModel", "EpochWork", "fit_cost_model", "steps_per_epoch"]

# what one training step costs, per unit of each of these (the order of ``CostModel.coefficients``)
FEATURES = ("step", "layers", "flops", "activation_bytes", "params", "pixels", "augmented_pixels")


def steps_per_epoch(n_train: int, batch_size: int) -> int:
    """Training steps of one epoch, as ``train.train`` runs them: whole batches, the last partial one dropped
    once there are two or more (a batch of one breaks BatchNorm)."""
    n, bs = int(n_train), max(1, int(batch_size))
    if n >= 2 * bs:
        return n // bs
    return len(range(0, n, bs))


@dataclass(frozen=True)
class EpochWork:
    """What one training epoch of a candidate does, counted without running it."""

    steps: int
    batch_size: int
    flops: int              # forward FLOPs of one image
    activation_bytes: int   # float32 bytes the forward pass of one image creates
    params: int
    layers: int             # leaf-module calls in one forward pass
    pixels: int             # input values of one image (channels x height x width)
    augmented: bool = False

    @classmethod
    def of(cls, cost: dict, batch_size: int, n_train: int, pixels: int, augmented: bool = False) -> EpochWork:
        """From ``spec_cost``'s counts, the batch size, the training images and the input size."""
        return cls(steps=steps_per_epoch(n_train, batch_size), batch_size=int(batch_size), flops=int(cost["flops"]),
                   activation_bytes=int(cost["activation_bytes"]), params=int(cost["params"]),
                   layers=int(cost["layers"]), pixels=int(pixels), augmented=bool(augmented))

    def step_features(self) -> tuple[float, ...]:
        """The amounts of one step, in the order of ``FEATURES``."""
        b = self.batch_size
        return (1.0, float(self.layers), float(b * self.flops), float(b * self.activation_bytes), float(self.params),
                float(b * self.pixels), float(b * self.pixels) if self.augmented else 0.0)


@dataclass(frozen=True)
class CostModel:
    """Seconds per unit of each of ``FEATURES`` for one training step on ``reference``."""

    name: str
    reference: str
    coefficients: tuple[float, ...]

    def __post_init__(self):
        if len(self.coefficients) != len(FEATURES) or not all(
                isinstance(c, (int, float)) and math.isfinite(c) and c >= 0 for c in self.coefficients):
            raise UserError(f"cost model '{self.name}': {len(FEATURES)} finite, non-negative coefficients "
                            f"({', '.join(FEATURES)}) expected, got {list(self.coefficients)!r}.")

    def epoch_seconds(self, work: EpochWork) -> float:
        """The model's seconds for one training epoch of ``work`` (rounded to 6 significant digits, so that the
        stored objective reads the same on every platform)."""
        step = sum(c * x for c, x in zip(self.coefficients, work.step_features()))
        return float(f"{work.steps * step:.6g}")

    def to_dict(self) -> dict:
        return {"name": self.name, "reference": self.reference, "features": list(FEATURES),
                "coefficients": list(self.coefficients)}

    @classmethod
    def from_dict(cls, data: dict) -> CostModel:
        """A stored model; its feature list must be the one this nas-med computes."""
        if not isinstance(data, dict) or list(data.get("features", ())) != list(FEATURES):
            raise UserError(f"the stored epoch-time cost model {data!r} uses features this nas-med does not "
                            f"compute ({', '.join(FEATURES)}).")
        return cls(str(data["name"]), str(data["reference"]), tuple(float(c) for c in data["coefficients"]))


def fit_cost_model(samples: list[tuple[EpochWork, float]], name: str, reference: str) -> CostModel:
    """Non-negative least squares on relative error: the coefficients that best predict the measured epoch
    seconds of ``samples`` (each error divided by its measured value, so small and large networks count alike)."""
    import numpy as np
    from scipy.optimize import nnls

    if len(samples) < len(FEATURES):
        raise ValueError(f"at least {len(FEATURES)} timed networks are needed, got {len(samples)}")
    rows = np.array([[w.steps * f for f in w.step_features()] for w, _ in samples], dtype=float)
    seconds = np.array([s for _, s in samples], dtype=float)
    scale = rows.max(axis=0)
    scale[scale == 0] = 1.0
    solution, _ = nnls(rows / seconds[:, None] / scale, np.ones(len(samples)))
    return CostModel(name, reference, tuple(float(f"{c:.4g}") for c in solution / scale))


# Fitted with ``benchmarks/epoch_time.py --fit`` on an idle machine (see benchmarks/README.md); a study stores the
# model it was created with, so changing these coefficients changes new studies only.
REFERENCE_CPU = CostModel(
    name="cpu-2t-2026.12",
    reference="Intel Xeon with AMX-BF16 and AVX-512-BF16, 2 threads, auto precision (bf16 autocast, channels-last)",
    coefficients=(0.0, 0.0001947, 0.0, 3.571e-10, 8.807e-09, 1.664e-09, 7.071e-09),
)

"""Fused training: K runs of one architecture (seeds, folds, recipe variants) trained as one wide network."""
from .loop import FUSE_ENV, Run, fit_many, fusion_enabled, why_separate
from .wide import NotFusable

__all__ = ["FUSE_ENV", "NotFusable", "Run", "fit_many", "fusion_enabled", "why_separate"]

"""Fraction x input-size sweeps: how much data, and how big an image, does a dataset need?

A sweep ``S`` over fractions F and sizes Z is one ordinary nas-med study per point, named ``S:f<fraction>-s<size>``
(``S:f<fraction>`` when the dataset's own size is used), in one storage. Every point study carries two user attrs:
``sweep`` (the sweep's definition and list of points, as of its latest run) and ``sweep_point`` ({sweep, point,
fraction, size}); its tested results go to ``sweep_results`` ({architecture: entry}), so the table and figures can
be rebuilt from the storage alone (``sweep_rows``; ``nas_med.report.sweep`` draws them).

Per point: the search is created or resumed through ``nas_med.search.runner`` with the point's fraction and size
and ``trials_per_point`` queued trials (re-running tops the queue up to the budget only; a point whose budget is
spent and whose results are stored is skipped); then the minimalist choice (``select.minimalist`` on the Pareto
front) and each requested baseline are retrained and tested with ``retrain.retrain_trial``. Extra workers join a
point like any study (``--workers``, or ``nas-med worker --study S:f0.01-s64``).

Input size as a searched dimension: the space field ``input_size`` is sampled (a trial's spec gets the sampled
size), but a study's data is prepared at one size, so a trial whose sampled size differs from the data's is pruned
with ``stop_reason`` "input size X differs from the data's Y px". Comparing sizes is what a sweep does, with one
fixed size per point; a sweep therefore refuses a space that searches ``input_size``.
"""
from __future__ import annotations

from .config import MINIMALIST, SweepConfig, SweepPoint, parse_fractions, parse_sizes
from .rows import sweep_of, sweep_rows, sweep_studies
from .run import SweepResult, run_sweep

__all__ = ["MINIMALIST", "SweepConfig", "SweepPoint", "SweepResult", "parse_fractions", "parse_sizes", "run_sweep",
           "sweep_of", "sweep_rows", "sweep_studies"]

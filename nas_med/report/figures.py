"""The report's figures as PNG bytes (matplotlib's Agg canvas, no display, no pyplot state).

Each figure has a ``*_data`` function returning exactly what is drawn, so tests can check the numbers.
"""
from __future__ import annotations

import io
import math

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from ..search import records
from ..search.config import OBJECTIVES
from ..select import value
from .data import ReportData, describe_trial, role

__all__ = ["curves_data", "curves_png", "hypervolume_png", "parallel_data", "parallel_png", "pareto_data",
           "pareto_png"]

AXIS_LABELS = {"auc": "validation AUC", "params": "parameters", "epoch_seconds": "epoch time (s)",
               "cam_quality": "CAM quality (ROAD)"}
ROLE_ORDER = ("dominated", "front", "baseline", "choice")
BASELINE_COLOURS = ("#ff7f0e", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")


def png_bytes(fig: Figure, dpi: float | None = 100) -> bytes:
    """The PNG of ``fig`` (``dpi`` None: the figure's own dpi)."""
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi="figure" if dpi is None else dpi)
    return buf.getvalue()


def pareto_data(data: ReportData) -> list[dict]:
    """One row per completed trial: number, label, role, and the four objectives."""
    rows = []
    for t in data.trials:
        rows.append({"number": t.number, "label": describe_trial(t), "role": role(data, t),
                     **{k: value(t, k) for k in OBJECTIVES}})
    return rows


def _sizes(seconds: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Marker areas 30..330 growing with log epoch time."""
    span = math.log(hi) - math.log(lo) if hi > lo else 1.0
    return 30 + 300 * (np.log(seconds) - math.log(lo)) / span


def pareto_png(data: ReportData) -> bytes:
    """AUC against parameters (log x): colour CAM quality, marker area epoch time; baselines and choice marked."""
    rows = pareto_data(data)
    fig = Figure(figsize=(9, 5.6), layout="constrained")
    ax = fig.add_subplot()
    cams = np.array([r["cam_quality"] for r in rows])
    secs = np.array([max(r["epoch_seconds"], 1e-6) for r in rows])
    vmin, vmax = float(cams.min()), float(cams.max())
    if vmax - vmin < 1e-9:
        vmin, vmax = vmin - 0.05, vmax + 0.05
    lo, hi = float(secs.min()), float(secs.max())
    style = {"dominated": dict(marker="o", alpha=0.35, edgecolors="none"),
             "front": dict(marker="o", alpha=0.9, edgecolors="black", linewidths=0.5),
             "baseline": dict(marker="s", alpha=0.95, edgecolors="black", linewidths=1.2),
             "choice": dict(marker="*", alpha=1.0, edgecolors="red", linewidths=1.5)}
    mappable = None
    for kind in ROLE_ORDER:
        sel = [i for i, r in enumerate(rows) if r["role"] == kind]
        if not sel:
            continue
        x = [rows[i]["params"] for i in sel]
        y = [rows[i]["auc"] for i in sel]
        size = _sizes(secs[sel], lo, hi) * (2.2 if kind == "choice" else 1.0)
        z = ROLE_ORDER.index(kind) + 2
        if kind == "dominated":
            ax.scatter(x, y, s=size, color="#bbbbbb", zorder=z, **style[kind])
            continue
        mappable = ax.scatter(x, y, s=size, c=cams[sel], cmap="viridis", vmin=vmin, vmax=vmax, zorder=z,
                              **style[kind])
    for r in rows:
        if r["role"] in ("baseline", "choice"):
            text = r["label"] if r["role"] == "baseline" else f"minimalist choice (trial {r['number']})"
            right = r["params"] >= max(q["params"] for q in rows)
            ax.annotate(text, (r["params"], r["auc"]), xytext=(-8 if right else 8, 8), textcoords="offset points",
                        ha="right" if right else "left", fontsize=9,
                        color="red" if r["role"] == "choice" else "black", zorder=10)
    front = sorted((r for r in rows if r["role"] in ("front", "choice")), key=lambda r: r["params"])
    if front:  # the AUC-vs-params staircase of the front's best AUC so far
        xs, ys, best = [], [], -math.inf
        for r in front:
            if r["auc"] > best:
                best = r["auc"]
                xs.append(r["params"])
                ys.append(best)
        ax.step(xs, ys, where="post", color="#444444", lw=0.8, ls="--", zorder=1)
    ax.set_xscale("log")
    ax.margins(x=0.12, y=0.08)
    ax.set_xlabel("trainable parameters (log scale)")
    ax.set_ylabel("validation AUC")
    ax.grid(True, which="major", alpha=0.3)
    ax.set_title(f"{data.study_name}: {len(data.front)} Pareto-optimal of {len(data.candidates)} candidates")
    if mappable is not None:
        fig.colorbar(mappable, ax=ax, label="CAM quality (ROAD, higher is better)")
    present = {r["role"] for r in rows}  # no legend entry for what the plot does not show
    handles = [h for h, r in ((Line2D([], [], marker="o", ls="", color="#bbbbbb", label="dominated candidate"),
                               "dominated"),
                              (Line2D([], [], marker="o", ls="", mfc="#21918c", mec="black",
                                      label="Pareto-front candidate"), "front"),
                              (Line2D([], [], marker="s", ls="", mfc="#21918c", mec="black", label="baseline"),
                               "baseline"),
                              (Line2D([], [], marker="*", ls="", mfc="#21918c", mec="red", ms=14,
                                      label="minimalist choice"), "choice")) if r in present] + [
               Line2D([], [], marker="o", ls="", mfc="none", mec="black", ms=4, label=f"fastest epoch {lo:.3g} s"),
               Line2D([], [], marker="o", ls="", mfc="none", mec="black", ms=13, label=f"slowest epoch {hi:.3g} s")]
    ax.legend(handles=handles, loc="lower right", fontsize=8, framealpha=0.85)
    return png_bytes(fig)


def parallel_data(data: ReportData) -> tuple[list[str], list[dict]]:
    """Axis names and, per completed trial, its position on each axis in [0, 1] (1 = better end)."""
    rows = pareto_data(data)
    axes = list(OBJECTIVES)
    for name in axes:
        raw = np.array([r[name] for r in rows], dtype=float)
        v = np.log10(np.maximum(raw, 1e-12)) if name in ("params", "epoch_seconds") else raw
        lo, hi = float(v.min()), float(v.max())
        pos = (v - lo) / (hi - lo) if hi - lo > 1e-12 else np.full_like(v, 0.5)
        if name in ("params", "epoch_seconds"):
            pos = 1 - pos
        for r, p in zip(rows, pos):
            r.setdefault("position", {})[name] = float(p)
    return axes, rows


def _fmt(name: str, v: float) -> str:
    if name == "params":
        return f"{v:,.0f}"
    if name == "epoch_seconds":
        return f"{v:.3g} s"
    return f"{v:+.3f}" if name == "cam_quality" else f"{v:.3f}"


def parallel_png(data: ReportData) -> bytes:
    """Parallel coordinates of the four objectives, each axis oriented so that up is better."""
    axes, rows = parallel_data(data)
    fig = Figure(figsize=(9, 4.8), layout="constrained")
    ax = fig.add_subplot()
    xs = np.arange(len(axes))
    baseline_i = 0
    for kind in ROLE_ORDER:
        for r in (r for r in rows if r["role"] == kind):
            ys = [r["position"][a] for a in axes]
            if kind == "dominated":
                ax.plot(xs, ys, color="#bbbbbb", lw=0.8, alpha=0.6, zorder=1)
            elif kind == "front":
                ax.plot(xs, ys, color="#3b75af", lw=1.0, alpha=0.7, zorder=2)
            elif kind == "baseline":
                colour = BASELINE_COLOURS[baseline_i % len(BASELINE_COLOURS)]
                baseline_i += 1
                ax.plot(xs, ys, color=colour, lw=2.2, ls="--", zorder=3, label=r["label"])
            else:
                ax.plot(xs, ys, color="red", lw=3.0, zorder=4, label=f"minimalist choice (trial {r['number']})")
    for i, name in enumerate(axes):
        ax.axvline(i, color="black", lw=0.8)
        vals = [r[name] for r in rows]
        better, worse = (max(vals), min(vals)) if name in ("auc", "cam_quality") else (min(vals), max(vals))
        box = {"fc": "white", "ec": "none", "pad": 1}
        ax.text(i, 1.05, _fmt(name, better), ha="center", va="bottom", fontsize=8, bbox=box, zorder=6)
        ax.text(i, -0.05, _fmt(name, worse), ha="center", va="top", fontsize=8, bbox=box, zorder=6)
    ax.set_xticks(xs, [AXIS_LABELS[a] + ("\n(log)" if a in ("params", "epoch_seconds") else "") for a in axes])
    ax.set_yticks([])
    ax.set_ylim(-0.17, 1.17)
    ax.set_xlim(-0.3, len(axes) - 0.7)
    ax.plot([], [], color="#3b75af", label="Pareto-front candidate")
    ax.plot([], [], color="#bbbbbb", label="dominated candidate")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    ax.set_title("All four objectives (up is better on every axis)")
    return png_bytes(fig)


def hypervolume_png(data: ReportData) -> bytes:
    """Hypervolume of the completed candidates after each trial."""
    fig = Figure(figsize=(9, 3.6), layout="constrained")
    ax = fig.add_subplot()
    if data.hv_trials:
        ax.step(data.hv_trials, data.hv_values, where="post", color="#3b75af", lw=1.8)
        ax.plot(data.hv_trials, data.hv_values, "o", color="#3b75af", ms=3)
    ax.set_xlabel("trial number (completed candidates)")
    ax.set_ylabel("hypervolume (fraction of box)")
    ax.set_ylim(0, max([0.05] + [v * 1.1 for v in data.hv_values]))
    ax.grid(True, alpha=0.3)
    ax.set_title("Hypervolume of the front over the search")
    return png_bytes(fig)


def curves_data(data: ReportData) -> list[dict]:
    """Per drawn trial (front members and baselines): label, role and its per-epoch history."""
    shown = [t for t in data.trials if role(data, t) != "dominated"]
    return [{"number": t.number, "label": describe_trial(t), "role": role(data, t),
             "history": list(t.user_attrs.get(records.HISTORY) or [])} for t in shown]


def curves_png(data: ReportData) -> bytes:
    """Training and validation loss, and validation AUC, per epoch."""
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    loss_ax, auc_ax = fig.subplots(1, 2)
    baseline_i, others = 0, 0
    for c in curves_data(data):
        h = c["history"]
        if not h:
            continue
        epochs = [r["epoch"] + 1 for r in h]
        if c["role"] == "choice":
            colour, lw, label, z = "red", 2.4, f"minimalist choice (trial {c['number']})", 4
        elif c["role"] == "baseline":
            colour, lw, label, z = BASELINE_COLOURS[baseline_i % len(BASELINE_COLOURS)], 2.0, c["label"], 3
            baseline_i += 1
        else:
            colour, lw, z = "#3b75af", 0.8, 2
            label = "other Pareto-front candidates" if others == 0 else None
            others += 1
        alpha = 0.5 if c["role"] == "front" else 1.0
        loss_ax.plot(epochs, [r["train_loss"] for r in h], color=colour, lw=lw, alpha=alpha, zorder=z, label=label)
        loss_ax.plot(epochs, [r["val_loss"] for r in h], color=colour, lw=lw, alpha=alpha, ls="--", zorder=z)
        auc_ax.plot(epochs, [r["val_auc"] for r in h], color=colour, lw=lw, alpha=alpha, zorder=z, label=label,
                    marker="o", ms=3)
    loss_ax.plot([], [], color="black", label="train (solid)")
    loss_ax.plot([], [], color="black", ls="--", label="validation (dashed)")
    loss_ax.set_title("Loss per epoch")
    loss_ax.set_xlabel("epoch")
    loss_ax.set_ylabel("cross-entropy")
    auc_ax.set_title("Validation AUC per epoch")
    auc_ax.set_xlabel("epoch")
    auc_ax.set_ylabel("AUC")
    for ax in (loss_ax, auc_ax):
        ax.grid(True, alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    loss_ax.legend(fontsize=8)
    auc_ax.legend(fontsize=8, loc="lower right")
    return png_bytes(fig)

"""A sweep's table and figures: the console/HTML table, two PNG figures, the files ``nas-med sweep`` writes and
the section the report adds for a study of a sweep."""
from __future__ import annotations

import base64
import csv
import html
import json
from pathlib import Path

import optuna
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ..errors import UserError
from ..search.records import json_safe
from ..sweep.config import MINIMALIST
from ..sweep.rows import sweep_rows, sweep_studies
from .figures import png_bytes

__all__ = ["COLUMNS", "display_rows", "sweep_figures", "sweep_section_html", "write_sweep"]

COLUMNS = ("sweep", "point", "fraction", "size", "train_images", "architecture", "trial", "summary", "stages",
           "blocks", "depth", "params", "flops", "epoch_seconds", "test_auc", "test_auc_low", "test_auc_high",
           "test_accuracy", "test_accuracy_low", "test_accuracy_high", "test_sensitivity", "test_specificity",
           "cam_quality", "val_auc", "seeds", "trials", "completed", "study", "why")


def _interval(row: dict, key: str) -> str:
    mean, lo, hi = row.get(key), row.get(f"{key}_low"), row.get(f"{key}_high")
    if mean is None:
        return "-"
    return f"{mean:.3f}" + ("" if lo is None or hi is None else f" [{lo:.3f}, {hi:.3f}]")


def display_rows(rows: list[dict]) -> tuple[list[str], list[list[str]]]:
    """The table as header and text cells, for the console and the HTML report."""
    head = ["fraction", "size", "train", "architecture", "chosen architecture", "depth", "params", "epoch s",
            "test AUC [95% CI]", "test accuracy [95% CI]", "CAM quality", "candidates"]
    cells = []
    for r in rows:
        def fmt(key: str, spec: str, r: dict = r) -> str:
            return "-" if r.get(key) is None else format(r[key], spec)

        chosen = r["architecture"] == MINIMALIST
        cells.append([f"{r['fraction']:g}", str(r.get("size") or "-"), fmt("train_images", "d"), r["architecture"],
                      (r.get("summary") or "-") if chosen or r.get("trial") is None else _baseline_line(r),
                      r.get("depth") or "-", fmt("params", ","), fmt("epoch_seconds", ".3f"),
                      _interval(r, "test_auc"), _interval(r, "test_accuracy"), fmt("cam_quality", "+.3f"),
                      f"{r['completed']}/{r['trials']}" if chosen else ""])
    return head, cells


def _baseline_line(row: dict) -> str:
    """A reference network's one-line description (its full spec summary stays in the CSV and JSON)."""
    from ..arch.baselines import BASELINES

    entry = BASELINES.get(row["architecture"])
    return f"reference: {entry[1]}" if entry else row.get("summary") or "-"


def sweep_figures(rows: list[dict]) -> dict[str, bytes]:
    """PNG bytes: ``auc_vs_fraction.png`` (test AUC per fraction, log x, one line per architecture and size) and
    ``depth_vs_size.png`` (the minimalist choice's stages x depth per input size, one line per fraction)."""

    figures = {}
    tested = [r for r in rows if r.get("test_auc") is not None]
    sizes = sorted({r["size"] for r in tested if r.get("size")})
    archs = list(dict.fromkeys(r["architecture"] for r in tested))
    colors = {a: f"C{i}" for i, a in enumerate(archs)}
    markers = "osD^v<>p*h"
    fig = Figure(figsize=(6.4, 4.2), dpi=110)
    ax = fig.add_subplot()
    lines = [(a, j, s) for a in archs for j, s in enumerate(sizes or [None])]
    for k, (arch, j, size) in enumerate(lines):
        line = sorted((r for r in tested if r["architecture"] == arch and (size is None or r["size"] == size)),
                      key=lambda r: r["fraction"])
        if line:
            dodge = 1.025 ** (k - (len(lines) - 1) / 2)  # side by side, so intervals do not hide each other
            x = [r["fraction"] * dodge for r in line]
            y = [r["test_auc"] for r in line]
            err = [[y - _or(r.get("test_auc_low"), y) for r, y in zip(line, y)],
                   [_or(r.get("test_auc_high"), y) - y for r, y in zip(line, y)]]
            label = arch + ("" if len(sizes) < 2 else f" ({size} px)")
            ax.errorbar(x, y, yerr=[[max(0.0, e) for e in side] for side in err], color=colors[arch],
                        marker=markers[j % len(markers)], capsize=3, label=label,
                        linestyle="-" if arch == MINIMALIST else "--")
    fractions = sorted({r["fraction"] for r in rows})
    ax.set_xscale("log")
    if fractions:
        ax.set_xticks(fractions, [f"{f:g}" for f in fractions])
        ax.minorticks_off()
    figures["auc_vs_fraction.png"] = _finish(fig, ax, "fraction of the training split (log scale)",
                                             "test AUC (mean over seeds, 95% CI)",
                                             "Test AUC against training-data fraction", legend=bool(archs))

    fig = Figure(figsize=(6.4, 4.2), dpi=110)
    ax = fig.add_subplot()
    chosen = [r for r in rows if r["architecture"] == MINIMALIST and r.get("blocks") is not None]
    fractions_chosen = sorted({r["fraction"] for r in chosen})
    sizes_all = sorted({r["size"] for r in chosen if r.get("size")}) or [1]
    pad = 0.1 * (sizes_all[-1] - sizes_all[0]) if len(sizes_all) > 1 else 0.5 * sizes_all[0]
    width = sizes_all[-1] - sizes_all[0] + 2 * pad
    labelled: set = set()
    for i, fraction in enumerate(fractions_chosen):
        line = sorted((r for r in chosen if r["fraction"] == fraction), key=lambda r: r["size"] or 0)
        shift = 0.02 * width * (i - (len(fractions_chosen) - 1) / 2)  # side by side when depths coincide
        x, y = [r["size"] + shift for r in line], [r["blocks"] for r in line]
        ax.plot(x, y, marker=markers[i % len(markers)], label=f"fraction {fraction:g}")
        for xi, r in zip(x, line):
            if (r["size"], r["depth"]) not in labelled:  # one "stages x depth" label per size and shape
                labelled.add((r["size"], r["depth"]))
                ax.annotate(r["depth"], (xi, r["blocks"]), textcoords="offset points", xytext=(6, 4), fontsize=8)
    ax.set_xlim(sizes_all[0] - pad, sizes_all[-1] + pad)
    ax.set_xticks(sizes_all, [str(s) for s in sizes_all])
    ax.set_ylim(0, max([r["blocks"] for r in chosen] or [1]) + 1)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    figures["depth_vs_size.png"] = _finish(fig, ax, "input size (px)",
                                           "blocks of the minimalist choice (stages x depth)",
                                           "Chosen depth against input size", legend=bool(chosen))
    return figures


def _finish(fig, ax, xlabel: str, ylabel: str, title: str, legend: bool) -> bytes:
    """Label, grid and legend of one sweep figure, then its PNG bytes."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if legend:
        ax.legend(fontsize=8)
    fig.tight_layout()
    return png_bytes(fig, dpi=None)


def _or(value: float | None, default: float) -> float:
    return default if value is None else value


def write_sweep(name: str, rows: list[dict], out: Path) -> list[Path]:
    """Write ``sweep.csv``, ``sweep.json`` and the two figures into ``out``; returns the paths."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create --out folder '{out}': {exc.strerror}.") from None
    files = []
    path = out / "sweep.csv"
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows([{k: ("" if r.get(k) is None else r.get(k)) for k in COLUMNS} for r in rows])
    files.append(path)
    path = out / "sweep.json"
    path.write_text(json.dumps(json_safe({"sweep": name, "rows": rows}), indent=2, allow_nan=False))
    files.append(path)
    for fname, png in sweep_figures(rows).items():
        (out / fname).write_bytes(png)
        files.append(out / fname)
    return files


def sweep_section_html(sweep_name: str, storage: str | optuna.storages.BaseStorage | None = None) -> str:
    """An HTML ``<section>`` for the report: the sweep table and both figures (base64 PNG), from storage only."""
    rows = sweep_rows(sweep_studies(sweep_name, storage))
    head, cells = display_rows(rows)
    esc = html.escape
    table = ("<table class='sweep'><thead><tr>" + "".join(f"<th>{esc(h)}</th>" for h in head) + "</tr></thead><tbody>"
             + "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in cells)
             + "</tbody></table>")
    images = "".join(f"<figure><img alt='{esc(n)}' src='data:image/png;base64,{base64.b64encode(png).decode()}'>"
                     f"<figcaption>{esc(n)}</figcaption></figure>" for n, png in sweep_figures(rows).items())
    return (f"<section class='sweep'><h2>Sweep {esc(sweep_name)}: data fraction and input size</h2>"
            f"<p>{len({r['study'] for r in rows})} point studies; per point the minimalist choice (and any "
            "baseline) retrained and tested; intervals are 95% bootstrap CIs.</p>" + table + images + "</section>")

"""The report as one self-contained HTML page: figures and CAM grids inlined as base64 PNG, no external links.

A short inline script sets ``data-images-loaded`` on <body> (true when every image decoded), which the tests
read from headless Chromium.
"""
from __future__ import annotations

import base64
import datetime as dt
import html
import math

from ..search import records
from ..select import value
from .data import ReportData, describe_trial, role
from .figures import curves_png, hypervolume_png, parallel_png, pareto_png
from .hypervolume import REFERENCE

__all__ = ["render"]

STYLE = """
body { font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; margin: 2em auto; max-width: 1150px;
       color: #222; padding: 0 1em; }
h1 { font-size: 1.6em; } h2 { margin-top: 2em; border-bottom: 1px solid #ddd; padding-bottom: .2em; }
img { max-width: 100%; }
figure { margin: 1em 0; } figcaption { color: #555; font-size: .9em; }
table { border-collapse: collapse; font-size: .85em; width: 100%; }
th, td { border-bottom: 1px solid #e4e4e4; padding: .25em .5em; text-align: right; }
th { background: #f4f4f4; position: sticky; top: 0; }
td.text, th.text { text-align: left; }
tr.choice { background: #ffecec; font-weight: bold; } tr.baseline { background: #eef4ff; }
.cams { display: flex; flex-wrap: wrap; gap: 1.5em; } .cams figure { flex: 1 1 480px; }
.note { color: #555; font-size: .9em; } code { background: #f4f4f4; padding: 0 .2em; }
dl { display: grid; grid-template-columns: max-content auto; gap: .2em 1em; } dt { font-weight: bold; }
"""

CHECK_IMAGES = """
function nasMedImagesLoaded() {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.length > 0 && imgs.every(function (i) { return i.complete && i.naturalWidth > 0; });
  document.body.dataset.imagesLoaded = ok ? "true" : "false";
  document.body.dataset.imageCount = String(imgs.length);
}
window.addEventListener("load", nasMedImagesLoaded);
"""


def _e(text) -> str:
    return html.escape(str(text), quote=True)


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">'


def _figure(png: bytes, alt: str, caption: str) -> str:
    return f"<figure>{_img(png, alt)}<figcaption>{caption}</figcaption></figure>"


def _num(v, fmt: str) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    return format(v, fmt)


def _duplicates(info: dict) -> str:
    """The near-duplicate line of the study's data (``data.duplicates``), or why there is none."""
    from ..data.duplicates import DuplicateReport

    d = info.get("duplicates")
    return DuplicateReport.from_dict(d).line() if d else "not checked (study made before near-duplicate checks)"


def _summary(data: ReportData) -> str:
    c = data.config
    info = c.get("dataset_info") or {}
    states = ", ".join(f"{n} {s}" for s, n in sorted(data.states.items()))
    items = [("dataset", f"{c.get('dataset')} ({info.get('task', '?')}, {len(info.get('classes') or [])} classes, "
                         f"{c.get('size') or info.get('size')} px, fraction {c.get('fraction')})"),
             ("split sizes", ", ".join(f"{k} {v}" for k, v in (info.get("counts") or {}).items()) or "-"),
             ("train/test independence", _duplicates(info)),
             ("search", f"space {c.get('space')}, sampler {c.get('sampler')}, pruner {c.get('pruner')}, "
                        f"{c.get('epochs')} epochs per candidate, seed {c.get('seed')}, CAM {c.get('cam_method')} on "
                        f"{c.get('cam_images')} validation images"),
             ("trials", f"{len(data.candidates)} completed candidates, {len(data.baselines)} baselines "
                        f"(all states: {states})"),
             ("Pareto front", f"{len(data.front)} of {len(data.candidates)} completed candidates"),
             ("hypervolume", f"{data.hv_values[-1]:.4f}" if data.hv_values else "-"),
             ("epoch time and reproducibility", data.reproducibility or "-")]
    rows = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in items)
    if data.choice is None:
        choice = "<p>No completed candidate yet, so there is no minimalist choice (only baselines finished).</p>"
    else:
        t = data.choice.trial
        choice = (f"<p><strong>Minimalist choice: trial {t.number}</strong> "
                  f"<code>{_e(records.summary(t))}</code>. {_e(data.choice.reason)}</p>")
    return f"<dl>{rows}</dl>{choice}"


def published_section(data: ReportData) -> str:
    """The published MedMNIST v2 test figures for this dataset and size, beside the choice's own validation
    figures ("" when the table has nothing comparable). The report trains nothing, so it has no test AUC."""
    from ..published import SOURCE, published_rows

    c = data.config
    rows = published_rows(c.get("dataset"), c.get("size") or (c.get("dataset_info") or {}).get("size"))
    if not rows:
        return ""
    ours = []
    if data.choice is not None:
        t = data.choice.trial
        ours.append(f"<tr class=\"choice\"><td>minimalist choice, trial {t.number}: validation AUC (search recipe, "
                    f"{int(t.values[1]):,} parameters)</td><td>{t.values[0]:.3f}</td></tr>")
        if data.confirmed and t.number in data.confirmed:
            ours.append(f"<tr class=\"choice\"><td>same, cross-validated AUC (<code>nas-med confirm</code>)</td>"
                        f"<td>{data.confirmed[t.number]:.3f}</td></tr>")
    body = "".join(ours) + "".join(f"<tr><td>{_e(r['method'])} (published, test split)</td><td>{r['auc']:.3f}"
                                   "</td></tr>" for r in rows)
    return ("<h2>Beside the published figures</h2><p class=\"note\">Source: " + _e(SOURCE) + ". This report "
            "trains nothing: the choice's figures are validation figures of the short search recipe, not test "
            "AUCs. <code>nas-med export</code> trains it with the final recipe, tests it on the test split and "
            "puts that test AUC beside this table in the model card.</p>"
            f"<table><tr><th>model</th><th>AUC</th></tr>{body}</table>")


def _cams(data: ReportData) -> str:
    shown = ([data.choice.trial] if data.choice else []) + data.baselines
    parts = []
    for t in shown:
        label = ("Minimalist choice, " + describe_trial(t)) if t.number == data.chosen else describe_trial(t)
        label += f": CAM quality {value(t, 'cam_quality'):+.3f}, AUC {value(t, 'auc'):.4f}"
        blob = data.cam_grids.get(t.number)
        if blob is None:
            parts.append(f"<figure><figcaption>{_e(label)}: no CAM grid stored (the study ran without artifacts, "
                         "or the artifact folder was not found).</figcaption></figure>")
        else:
            parts.append(_figure(blob, f"CAM grid of {label}", _e(label)))
    return f'<div class="cams">{"".join(parts)}</div>' if parts else "<p>No trial to show.</p>"


def unstable(history: list[dict], factor: float = 2.0) -> int | None:
    """The first epoch (1-based) whose validation loss jumps above ``factor`` x its running minimum, or None."""
    low = float("inf")
    for r in history or []:
        loss = r.get("val_loss")
        if loss is None:
            continue
        if loss > factor * low:
            return int(r["epoch"]) + 1
        low = min(low, loss)
    return None


def _cv_cells(data: ReportData) -> dict[int, str]:
    """Cross-validated AUC +- its standard error (Hanley and McNeil, on the pooled train + val images) per
    confirmed trial."""
    from ..confirm import auc_standard_error

    aucs = data.confirmed
    if not aucs:
        return {}
    counts = (data.config.get("dataset_info") or {}).get("class_counts") or {}
    pooled = [a + b for a, b in zip(counts.get("train") or [], counts.get("val") or [])]
    rare, rest = (min(pooled), sum(pooled) - min(pooled)) if pooled else (0, 0)
    out = {}
    for n, a in aucs.items():
        se = auc_standard_error(a, rare, rest)
        out[int(n)] = f"{a:.4f}" + ("" if se != se else f" ± {se:.4f}")
    return out


def _table(data: ReportData) -> str:
    masks = any(t.user_attrs.get(records.MASK_ENERGY) is not None for t in data.trials)
    head = ("", "trial", "kind", "AUC", "CV AUC ± SE", "params", "FLOPs", "epoch s", "measured s", "CAM quality",
            *(("mask energy",) if masks else ()), "val acc", "best epoch (1-based)", "curves", "architecture")
    cv = _cv_cells(data)
    text_cols = {"", "kind", "architecture"}
    out = ["<table><thead><tr>" + "".join(f'<th class="{"text" if h in text_cols else ""}">{_e(h)}</th>'
                                          for h in head) + "</tr></thead><tbody>"]
    for t in data.trials:
        r = role(data, t)
        mark = {"choice": "★ minimalist", "front": "front", "baseline": "baseline", "dominated": ""}[r]
        kind = f"baseline {records.baseline_name(t)}" if r == "baseline" else "candidate"
        flops = records.flops(t)
        best = t.user_attrs.get(records.BEST_EPOCH)
        jump = unstable(t.user_attrs.get(records.HISTORY) or [])
        cells = [(mark, True), (t.number, False), (kind, True), (_num(value(t, "auc"), ".4f"), False),
                 (cv.get(t.number, "-"), False), (_num(int(value(t, "params")), ","), False),
                 ("-" if flops is None else f"{flops / 1e6:.2f} M", False),
                 (_num(value(t, "epoch_seconds"), ".3f"), False),
                 (_num(records.measured_epoch_seconds(t), ".3f"), False), (_num(value(t, "cam_quality"), "+.3f"), False),
                 *(((_num(t.user_attrs.get(records.MASK_ENERGY), ".3f"), False),) if masks else ()),
                 (_num(t.user_attrs.get(records.val_key("accuracy")), ".3f"), False),
                 (_num(None if best is None else best + 1, "d"), False),
                 ("-" if jump is None else f"⚠ unstable: validation loss > 2x its minimum at epoch {jump}", True),
                 (records.summary(t), True)]
        tds = "".join(f'<td class="{"text" if is_text else ""}">{_e(v)}</td>' for v, is_text in cells)
        out.append(f'<tr class="{r}">{tds}</tr>')
    out.append("</tbody></table>")
    return "".join(out)


def render(data: ReportData, extra_sections: list[str] = ()) -> str:
    """The whole HTML page for ``data``; ``extra_sections``: HTML sections appended after the study's own."""
    chosen = f"trial {data.chosen}" if data.chosen is not None else "no choice yet"
    now = dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    hv_note = ("Objectives turned into losses (−AUC, log10 parameters, log10 epoch seconds, −CAM quality), scaled "
               "to [0, 1] between the best and worst completed trial (baselines included), reference point "
               f"{REFERENCE} on every axis; shown as a fraction of the reference box. Computed exactly with "
               "Optuna's WFG implementation (<code>optuna._hypervolume.compute_hypervolume</code>).")
    sections = [
        f"<h1>nas-med study report: {_e(data.study_name)}</h1>"
        f'<p class="note">Generated {now}. Minimalist choice: {_e(chosen)}.</p>',
        "<h2>Summary</h2>" + _summary(data),
        "<h2>Pareto front</h2>" + _figure(
            pareto_png(data), "Pareto front: AUC against parameters",
            "Validation AUC against trainable parameters (log scale). Colour: CAM quality; marker area: epoch "
            "time. Circles with an outline are on the four-objective Pareto front, grey ones are dominated; "
            "squares are baselines; the star is the minimalist choice. The dashed staircase is the best AUC "
            "reachable at each parameter budget."),
        "<h2>All four objectives</h2>" + _figure(
            parallel_png(data), "Parallel coordinates of the four objectives",
            "Each line is a completed trial; each axis is scaled between its worst (bottom) and best (top) value "
            "over the completed trials, parameters and epoch time on a log scale."),
        "<h2>Hypervolume over trials</h2>" + _figure(
            hypervolume_png(data), "Hypervolume over trials", hv_note),
        "<h2>Learning curves</h2>" + _figure(
            curves_png(data), "Learning curves of the front and the baselines",
            "Training (solid) and validation (dashed) loss and validation AUC per epoch, from each trial's "
            "<code>history</code>; the kept weights are those of the epoch with the lowest validation loss. "
            "Training AUC is not recorded during training."),
        "<h2>Grad-CAM</h2><p class=\"note\">The same fixed validation images for every network: top rows the "
        "images, bottom rows the Grad-CAM overlays (from each trial's stored CAM-grid artifact).</p>" + _cams(data),
        f"<h2>All completed trials ({len(data.trials)})</h2>" + _table(data),
        published_section(data),
    ]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>nas-med report: {_e(data.study_name)}</title><style>{STYLE}</style>"
            f"<script>{CHECK_IMAGES}</script></head>\n<body>\n" + "\n".join([*sections, *extra_sections])
            + "\n</body></html>\n")

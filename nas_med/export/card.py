"""The model card (README.md of an exported folder), rendered from ``model_card.md`` with named fields; the
sections that a study may lack (why this architecture, the trial's objectives, baselines) are filled or empty."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import PurePath
from string import Template

from ..data.types import Dataset
from ..final.retrain import TestReport
from .load import ONNX_OPSET, PARITY_TOLERANCE

__all__ = ["NO_LICENCE", "CardContext", "model_card"]

NO_LICENCE = "not recorded by the loader; check the terms of the source"
TEMPLATE = "model_card.md"


@dataclass(frozen=True)
class CardContext:
    """What a model card says of the study an export came from (kept as ``study`` in metrics.json)."""

    study: str
    trial: int
    val_auc: float | None
    kind: str
    reason: str
    dataset: str | None
    fraction: float
    objectives: dict[str, str] = field(default_factory=dict)  # label -> formatted value, in the card's order
    baselines: list[dict] = field(default_factory=list)  # name, trial, auc, params, epoch_seconds, cam_quality
    own_seed: int | None = None
    search: dict = field(default_factory=dict)  # the study's search settings, as stored
    fidelity: dict = field(default_factory=dict)  # the choice at the final fidelity (final.fidelity), when made

    def to_dict(self) -> dict:
        return asdict(self)


def _ci(entry: dict | list | None, mean: float | None = None) -> str:
    if isinstance(entry, list):
        lo, hi = entry
    else:
        entry = entry or {}
        lo, hi, mean = entry.get("ci_low"), entry.get("ci_high"), entry.get("mean")
    if mean is None or mean != mean:
        return "n/a"
    band = "" if lo is None or hi is None or lo != lo else f" [{lo:.3f}, {hi:.3f}]"
    return f"{mean:.3f}{band}"


def _num(v) -> str:
    return "n/a" if v is None or v != v else f"{v:.3f}"


def _source(data: Dataset) -> str:
    """Where the images came from, without this machine's folders: a file or folder by its name only."""
    source = str(data.info.source or data.name)
    if "/" in source or "\\" in source:
        return f"`{PurePath(source).name}`" + (" (an image folder)" if PurePath(source).suffix == "" else "")
    return source


def _section(lines: list[str]) -> str:
    """A markdown block followed by one blank line, or nothing."""
    return "\n".join(lines) + "\n\n" if lines else ""


def _test_paragraph(report: TestReport, card: CardContext | None) -> str:
    cfg, first = report.train_config, report.per_seed[0]
    seeds = ", ".join(str(s) for s in report.seeds)
    own = " (the trial's own seed)" if card is not None and card.own_seed == report.seeds[0] else ""
    study_auc = (f" (the trial's in the study: {card.val_auc:.3f})." if card is not None and card.val_auc is not None
                 else ".")
    return (f"Retrained {len(report.seeds)} time(s) from scratch (seeds {seeds}; {cfg.get('epochs')} epochs, "
            f"lr {cfg.get('lr')}, batch {cfg.get('batch_size')}, weight decay {cfg.get('weight_decay')}, "
            f"augmentation {cfg.get('augment', 'none')}; the epoch with the lowest validation loss kept) and tested "
            f"on the {report.n_test} test images.{_settled_sentence(report.settled)}"
            f"{flips_sentence(report.test_flips)}{distil_sentence(report.distil)} Intervals: "
            f"{report.confidence:.0%} bootstrap confidence intervals over test images ({report.n_bootstrap} "
            f"resamples). The exported weights are those of seed {report.seeds[0]}{own}; its validation AUC is "
            f"{_num(first.get('val_auc'))}{study_auc}")


def _settled_sentence(rows: list[dict]) -> str:
    """How the final recipe's lr and augmentation were chosen on validation (``nas_med.final.settle``), or nothing."""
    if not rows:
        return ""
    tried = "; ".join(f"lr {r['lr']:g}, {r['augment']}: {_num(r['val_loss'])}" + _seeds(r)
                      + (" (kept)" if r["chosen"] else "") for r in rows)
    return (f" The learning rate and augmentation were chosen on the validation split, before any test, by the "
            f"mean validation loss over the seeds each trained with; a clearly worse one with fewer ({tried}).")


def fidelity_sentence(record: dict) -> str:
    """Which fidelity decided the choice: the search's figures, or the final recipe's (``final.fidelity``)."""
    if record.get("fidelity") != "final":
        why = f" ({record['why']})" if record.get("why") else ""
        return (f"Decided at the search's fidelity: the near-best candidates compared by their search-recipe "
                f"figures{why}; the final recipe trained only the choice.")
    rows = ", ".join(f"trial {c['trial']} {_num(c['final_val_auc'])} (search {_num(c['search_auc'])}, "
                     f"{c['params']:,} parameters)" for c in record["candidates"])
    return f"Decided at the final fidelity: {record['why']}. Final-recipe validation AUCs: {rows}."


def flips_sentence(record: dict) -> str:
    """Whether the exported model averages over horizontal flips at test time and why (``final.flips``)."""
    if not record:
        return ""
    done = ("The model averages its probabilities over the image and its horizontal mirror (test-time flips, "
            "inside its forward in every format)" if record.get("chosen") else "No test-time flips")
    return f" {done}: {record.get('why', record.get('mode'))}."


def distil_sentence(record: dict) -> str:
    """The distillation teacher and what its soft targets did on validation (``final.teacher``), or nothing."""
    if not record:
        return ""
    t = record["teacher"]
    kind = f"a {t['members']}-fold ensemble of " if t.get("members", 1) > 1 else ""
    teacher = (f"{kind}trial {t['trial']} ({t['name']}, {t['params']:,} parameters; validation AUC "
               f"{_num(t.get('study_val_auc'))} in the study, {_num(t.get('final_val_auc'))} with the final recipe)")
    off, on = record.get("without"), record.get("with")
    shown = "" if not (off and on) else (
        f"; best validation loss without it {_num(off['val_loss'])} (AUC {_num(off['val_auc'])}), with its soft "
        f"targets ({on['distil']}) {_num(on['val_loss'])} (AUC {_num(on['val_auc'])})")
    kept = (f"the exported model was distilled from it ({record['kept']}; the export is the student alone, its "
            f"parameters unchanged)" if record.get("chosen") else "distillation was tried and not kept")
    return f" Teacher for distillation: {teacher}{shown}: {kept}."


def _seeds(row: dict) -> str:
    seeds = row.get("seeds")  # reports made before settling dropped clearly worse variants have none
    return "" if not seeds else f" (seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))})"


def _metric_rows(report: TestReport) -> str:
    first, rows = report.per_seed[0], []
    for m in ("auc", "accuracy", "sensitivity", "specificity"):
        s = report.summary[m]
        std = "n/a" if s.get("std") is None or s["std"] != s["std"] else f"{s['std']:.3f}"
        rows.append(f"| {m} | {_ci(first['ci'][m], first[m])} | {_ci(s)} | {std} |")
    return "\n".join(rows)


def _published(report: TestReport, data: Dataset, card: CardContext | None) -> str:
    """The published figures beside the exported weights' own (the first seed's, or the ensemble's) and the mean
    over the seeds of the same recipe."""
    from ..published import published_markdown

    first, s, model = report.per_seed[0], report.summary, report.model
    params = sum(p.numel() for p in model.parameters()) if model is not None else None
    auc_ci = (first.get("ci") or {}).get("auc")
    return published_markdown(data.name if card is None else card.dataset, data.size, first.get("auc"),
                              tuple(auc_ci) if auc_ci else None, params, len(getattr(model, "members", [])) or 1,
                              accuracy=first.get("accuracy"), seed=report.seeds[0],
                              seed_mean=(s["auc"].get("mean"), s["accuracy"].get("mean"), len(report.seeds)))


def model_card(report: TestReport, data: Dataset, pre: dict, parity: dict, cam_quality: float, cam_method: str,
               card: CardContext | None, op: dict | None = None, mask_energy: float | None = None) -> str:
    """The README.md of an exported folder (markdown); ``card`` holds the study context (None: none), ``op``
    the operating point (``operating.operating_point``)."""
    from .card_sections import clinical_fields

    op = op or {"temperature": 1.0}
    from .._version import __version__
    from ..objectives.cam import CAM_QUALITY_NOTE

    spec = report.spec
    objectives = {} if card is None else card.objectives
    baselines = [] if card is None else card.baselines
    counts = {k: len(v) for k, v in data.splits.items()}
    fields = {
        "name": report.name, "version": __version__,
        "study_clause": f" (study `{card.study}`)" if card is not None and card.study else "",
        "summary": spec.summary(),
        "why_section": _section(["## Why this architecture", "", card.reason, "", fidelity_sentence(card.fidelity)]
                                if card is not None and card.reason else []),
        "dataset": data.name if card is None else card.dataset, "source": _source(data),
        "fraction": f"{data.info.fraction if card is None else card.fraction:g}", "size": data.size,
        "channels": spec.in_channels, "n_train": counts["train"], "n_val": counts["val"], "n_test": counts["test"],
        "licence": data.info.licence or NO_LICENCE,
        "objectives_section": _section(
            ["## Objectives of the trial in the study (validation split)", "", "| objective | value |", "|---|---|",
             *(f"| {k} | {v} |" for k, v in objectives.items())] if objectives else []),
        "test_paragraph": _test_paragraph(report, card), "exported_seed": report.seeds[0],
        "metric_rows": _metric_rows(report),
        "baselines_section": _section(
            ["Reference networks in the same study (validation figures from the search, not retrained):", "",
             "| baseline | trial | AUC | params | epoch s | CAM quality |", "|---|---|---|---|---|---|",
             *(f"| {b['name']} | {b['trial']} | {b['auc']:.3f} | {b['params']:,} | {b['epoch_seconds']:.3f} | "
               f"{b['cam_quality']:+.3f} |" for b in baselines)] if baselines else []),
        "cam_method": cam_method, "cam_quality": f"{cam_quality:+.3f}", "cam_quality_note": CAM_QUALITY_NOTE,
        "mask_energy_clause": "" if mask_energy is None or mask_energy != mask_energy else
        f"; mask energy (share of the CAM inside the ground-truth lesion masks): {mask_energy:.3f}",
        "onnx_opset": ONNX_OPSET,
        "parity_tolerance": f"{PARITY_TOLERANCE:g}", "parity": ", ".join(f"{k} {v:.1e}" for k, v in parity.items()),
        "input_size": spec.input_size,
        "probs_call": ("sigmoid(model(x) / op['temperature'])" if pre["activation"] == "sigmoid"
                       else "softmax(model(x) / op['temperature'], 1)[0]"),
        "pil_mode": "L" if spec.in_channels == 1 else "RGB",
        "decision_line": (f"prediction = \"{op['positive_class']}\" if probs[{op['positive_index']}] >= "
                          f"op[\"threshold\"] else \"{data.classes[1 - op['positive_index']]}\""
                          if op.get("threshold") is not None else "prediction = int(probs.argmax())"),
        **clinical_fields(op, data, report),
        "mean": [round(v, 4) for v in pre["mean"]], "std": [round(v, 4) for v in pre["std"]],
        "activation": pre["activation"], "published_section": _published(report, data, card),
    }
    text = resources.files(__package__).joinpath(TEMPLATE).read_text(encoding="utf-8")
    return Template(text).substitute(fields)

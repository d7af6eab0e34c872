"""``write_report``: load a study, render its report, write ``index.html`` atomically."""
from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

from ..errors import UserError
from ..search.storage import DEFAULT_STORAGE, artifact_dir
from ..select import Rule

log = logging.getLogger(__name__)

__all__ = ["default_out", "write_report"]


def default_out(study_name: str) -> Path:
    return Path("studies") / "reports" / study_name.replace(":", "_").replace("/", "_")


def _check_writable(out: Path) -> None:
    """UserError unless ``out`` is (or can be created as) a writable folder; creates nothing."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out '{out}' exists and is not a folder.")
    probe = out
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise UserError(f"--out '{out}' cannot be created: '{probe}' is not a folder.")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UserError(f"--out '{out}' is not writable (no write permission on '{probe}').")


def _write(out: Path, page: str) -> Path:
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".index-", suffix=".html", dir=out)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(page)
            os.chmod(tmp, 0o644)
            os.replace(tmp, out / "index.html")
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise UserError(f"cannot write the report into --out '{out}': {exc.strerror or exc}.") from None
    return out / "index.html"


def write_report(study_name: str, storage_url: str | None = None, out: str | Path | None = None,
                 rule: Rule | None = None) -> Path:
    """Write the HTML report of ``study_name`` to ``out``/index.html (default studies/reports/<study>/) and
    return its path. Unknown study, a study with no completed trial, or an unwritable ``out``: UserError, and
    nothing is written."""
    from ..search.study import load_nas_study
    from .data import collect
    from .page import render

    out_dir = Path(out) if out is not None else default_out(study_name)
    _check_writable(out_dir)
    study = load_nas_study(study_name, storage_url)
    data = collect(study, artifact_dir(storage_url or DEFAULT_STORAGE), rule)
    from ..sweep import sweep_of
    from .sweep import sweep_section_html

    sweep = sweep_of(study)  # a study of a sweep: the report adds the sweep's table and figures
    page = render(data, extra_sections=[sweep_section_html(sweep, storage_url)] if sweep else [])
    path = _write(out_dir, page)
    log.info("report of study '%s' written to %s", study_name, path)
    return path

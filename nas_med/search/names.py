"""Names shared by the search and the CLI, defined once and light to import: the default storage URL and the
rule that turns a dataset name into part of a study name."""
from __future__ import annotations

import re

DEFAULT_STORAGE = "sqlite:///studies/nas-med.db"


def slug(text: str, limit: int = 140) -> str:
    """``folder:/data/knee mri`` -> ``folder-data-knee-mri``: letters, digits and ``_.-`` only."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text.replace("folder:", "folder-")).strip("-")[:limit]

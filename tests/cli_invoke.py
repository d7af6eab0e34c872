"""The one way the tests run the ``nas-med`` command in-process: ``invoke(["front", "--study", name, ...])``.

Arguments may be paths or numbers (made strings); the result's ``output`` holds stdout and stderr interleaved, as
a user sees them. ``threads`` pins torch's threads for the call (small nets on a shared 2-core machine train
faster on one)."""
from __future__ import annotations

import torch
from click.testing import CliRunner, Result

from nas_med.cli.main import cli


def invoke(args: list, threads: int | None = None) -> Result:
    """Run ``nas-med ARGS...`` and return click's Result (``exit_code``, ``output``)."""
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return CliRunner().invoke(cli, [str(a) for a in args])
    finally:
        torch.set_num_threads(before)

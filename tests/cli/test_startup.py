"""The command line starts fast: ``--help``, every command's ``--help`` and argument errors import no heavy library,
and every command module is registered by name (a broken one fails loudly instead of vanishing)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "torchvision", "optuna", "sqlalchemy", "numpy", "scipy", "plotly", "pytorch_grad_cam", "PIL",
         "optuna_dashboard", "onnx", "safetensors")
COMMANDS = ("datasets", "arch", "search", "worker", "dashboard", "front", "confirm", "export", "predict", "evaluate",
            "report", "sweep")
# argument errors a user meets before any work starts: click's own (missing/unknown option, bad choice) and the
# bounds every numeric option has (options.BOUNDS), plus the rule's options checked in the command's wrapper
ARGUMENT_ERRORS = (
    ["export", "--study", "s"],  # --out missing
    ["search", "--trials", "abc"],
    ["search", "--trials", "0"],
    ["search", "--fraction", "nan"],
    ["search", "--sampler", "bogus"],  # the search's names, checked before torch is imported (nas_med.defaults)
    ["search", "--cam-method", "bogus"],
    ["search", "--duplicates", "bogus"],
    ["search", "--precision", "fp64"],
    ["front", "--study", "s", "--auc-tolerance", "2"],
    ["front", "--study", "s", "--prefer", "bogus"],
    ["confirm", "--study", "s", "--max-candidates", "0"],
    ["report", "--study", "s", "--nope"],
    ["datasets", "--channels", "2"],
    ["dashboard", "--port", "70000"],
    ["nosuchcommand"],
)

_PROBE = """
import json, sys
from click.testing import CliRunner
from nas_med.cli.main import cli, main

runs = json.loads(sys.argv[1])
codes = []
for args in runs:
    codes.append(CliRunner().invoke(cli, args).exit_code)
print(json.dumps({"codes": codes, "heavy": sorted(m for m in json.loads(sys.argv[2]) if m in sys.modules),
                  "commands": sorted(cli.commands)}))
"""


def _probe(runs: list[list[str]]) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run([sys.executable, "-c", _PROBE, json.dumps(runs), json.dumps(HEAVY)], env=env, cwd=REPO,
                         capture_output=True, text=True, timeout=300, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_help_and_argument_errors_import_no_heavy_library():
    runs = [["--help"], *([c, "--help"] for c in COMMANDS), *ARGUMENT_ERRORS]
    result = _probe(runs)
    assert result["heavy"] == [], f"imported before any command ran: {result['heavy']}"
    codes = result["codes"]
    assert codes[:1 + len(COMMANDS)] == [0] * (1 + len(COMMANDS))
    assert codes[1 + len(COMMANDS):] == [2] * len(ARGUMENT_ERRORS), list(zip(ARGUMENT_ERRORS, codes[1 + len(COMMANDS):]))


def test_every_command_module_is_registered():
    assert _probe([])["commands"] == sorted(COMMANDS)
    modules = {p.stem for p in (REPO / "nas_med" / "cli").glob("*.py")} - {"__init__", "main", "options", "progress",
                                                                            "stages"}
    assert modules == set(COMMANDS)  # a new command module is named in cli/main.py's COMMAND_MODULES


def test_a_command_module_that_fails_to_import_fails_the_command_line():
    code = ("import sys, builtins\n"
            "real = builtins.__import__\n"
            "def broken(name, globals=None, locals=None, fromlist=(), level=0):\n"
            "    if level and 'report' in (fromlist or ()) and globals and globals.get('__name__') == "
            "'nas_med.cli.main':\n"
            "        raise ImportError('report is broken')\n"
            "    return real(name, globals, locals, fromlist, level)\n"
            "builtins.__import__ = broken\n"
            "import nas_med.cli.main\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode != 0 and "report is broken" in out.stderr


def test_help_returns_quickly():
    """A generous wall-time bound (the budget is 1.5 s on an idle 2-core machine; the suite may run loaded)."""
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "from nas_med.cli.main import main; main()", "export", "--help"],
                   env=env, cwd=REPO, capture_output=True, check=True, timeout=300)
    assert time.perf_counter() - start < 15


def test_optuna_notices_stay_quiet_without_importing_optuna_first():
    """``main`` silences Optuna's experimental notices by their text (importing Optuna for its warning class would
    cost every command's start)."""
    code = ("import sys, warnings\n"
            "from nas_med.cli.main import quiet_library_warnings\n"
            "quiet_library_warnings()\n"
            "assert 'optuna' not in sys.modules\n"
            "from optuna._experimental import experimental_func, warn_experimental_argument\n"
            "warn_experimental_argument('heartbeat_interval')\n"
            "experimental_func('3.0.0')(lambda: None)()\n")
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run([sys.executable, "-W", "error", "-c", code], env=env, cwd=REPO, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]


def test_the_light_name_lists_match_their_owners():
    """The names the command line checks before importing torch (``nas_med.defaults``) are the owners' names."""
    from nas_med import defaults
    from nas_med.data.duplicates import DUPLICATE_MODES
    from nas_med.objectives.cam import CAM_METHODS
    from nas_med.precision import PRECISIONS

    assert tuple(CAM_METHODS) == defaults.CAM_METHOD_NAMES
    assert PRECISIONS is defaults.PRECISIONS and DUPLICATE_MODES is defaults.DUPLICATE_MODES

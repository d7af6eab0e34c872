"""Every script in benchmarks/ (found by glob) runs with --quick, exits 0 and prints its figure as a RESULT line."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BREASTMNIST = REPO.parent / "shared" / "data" / "breastmnist"
BENCHMARKS = REPO / "benchmarks"
SCRIPTS = sorted(p for p in BENCHMARKS.glob("*.py") if not p.name.startswith("_"))
# e.g. "RESULT overhead_ratio=1.04 (goal <= 1.10)": at least one name=number figure, then the goal in brackets
NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|nan|inf"
RESULT = re.compile(rf"^RESULT(?: [A-Za-z][A-Za-z0-9_]*=(?:{NUMBER}))+ \(goal [^)]+\)$")


def test_the_benchmarks_are_found():
    names = {p.name for p in SCRIPTS}
    assert {"overhead.py", "pruning.py", "data_pipeline.py", "samplers.py", "quality.py", "estimate.py",
            "epoch_time.py", "precision.py", "gpu.py", "duplicates.py", "fused.py", "throughput.py"} <= names


# the quick runs that take longest start first, so that the runs in parallel end close together
LONGEST_FIRST = ("reproducibility", "quality", "throughput", "estimate", "road_imputer", "pruning_replay")


def _quick_run(script: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(script), "--quick"], cwd=REPO, capture_output=True, text=True,
                          timeout=400)


@pytest.fixture(scope="module")
def quick_runs(request):
    """The selected scripts' --quick runs, one per core at a time (each is a separate process, mostly on one
    thread; their figures are checked for form, not for speed): script -> its future CompletedProcess."""
    selected = [item.callspec.params["script"] for item in request.session.items
                if getattr(item, "originalname", "") == "test_quick_run_prints_its_figure"]
    order = sorted(selected, key=lambda p: (LONGEST_FIRST.index(p.stem) if p.stem in LONGEST_FIRST
                                            else len(LONGEST_FIRST), p.name))
    pool = ThreadPoolExecutor(max_workers=max(1, min(2, os.cpu_count() or 1)))
    futures = {script: pool.submit(_quick_run, script) for script in order}
    yield futures
    pool.shutdown(wait=True, cancel_futures=True)


@pytest.mark.slow
@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_quick_run_prints_its_figure(script: Path, quick_runs):
    proc = quick_runs[script].result() if script in quick_runs else _quick_run(script)
    if proc.returncode != 0 and not BREASTMNIST.is_dir() and "does not exist" in proc.stderr:
        reason = f"{script.name} needs {BREASTMNIST}: {proc.stderr.strip()}"
        if os.environ.get("NAS_MED_REQUIRE_SERVICES") == "1":  # as conftest.need: fail in CI, skip elsewhere
            pytest.fail(reason)
        pytest.skip(reason)
    assert proc.returncode == 0, f"{script.name} exited {proc.returncode}:\n{proc.stderr[-3000:]}"
    results = [line for line in proc.stdout.splitlines() if line.startswith("RESULT")]
    assert results, f"{script.name} printed no RESULT line; its output ended:\n{proc.stdout[-1500:]}"
    assert RESULT.match(results[-1]), f"malformed figure line: {results[-1]!r}"
    assert proc.stdout.rstrip().splitlines()[-1] == results[-1], "the RESULT line must be the last line printed"


def test_missing_shared_data_is_a_clear_exit(monkeypatch, tmp_path):
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import _common
    finally:
        sys.path.remove(str(BENCHMARKS))
    monkeypatch.setattr(_common, "SHARED", tmp_path / "no-shared")
    with pytest.raises(SystemExit) as exc:
        _common.shared_data("breastmnist")
    message = str(exc.value.code)
    assert str(tmp_path / "no-shared" / "data" / "breastmnist") in message and "does not exist" in message


def test_quality_names_a_missing_dataset_and_exits_2(tmp_path):
    proc = subprocess.run([sys.executable, str(BENCHMARKS / "quality.py"), "--dataset", "retinamnist", "--data-root",
                           str(tmp_path), "--quick"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"'{tmp_path / 'retinamnist.npz'}' does not exist" in proc.stderr and "--data-root" in proc.stderr

"""A catalogue of bad inputs and faults across commands.

Bad input: one line ``Error: ...`` on stderr naming the bad value, exit code 2, no traceback, nothing written
(no storage file appears; a stored study is left exactly as it was). A candidate that cannot run: a FAILED or
PRUNED trial with the reason in its user attrs, and the study goes on (exit code 0).
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch
import yaml
from click.testing import CliRunner
from optuna.trial import TrialState
from PIL import Image

from nas_med.cli.main import cli
from nas_med.search.records import CONFIG

pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")

TINY = ["--size", "16", "--space", "tiny", "--epochs", "1", "--cam-images", "4", "--pruner", "none", "--quiet"]


@pytest.fixture(autouse=True)
def _isolated(isolated):
    """Every test here: own data cache, one torch thread (tests/conftest.py)."""


def invoke(*args: str, env: dict | None = None):
    return CliRunner().invoke(cli, [str(a) for a in args], env=env)


def _png(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (8, 8), dtype=np.uint8)).save(path)


def _folder(root: Path, corrupt: dict[str, int]) -> Path:
    """Two classes of 12 PNGs; ``corrupt[class]`` of them replaced by bytes that are not an image."""
    for c, name in enumerate(("benign", "malignant")):
        for k in range(12):
            path = root / name / f"{k}.png"
            if k < corrupt.get(name, 0):
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
            else:
                _png(path, 100 * c + k)
    return root


@pytest.fixture(scope="module")
def stored(tmp_path_factory) -> dict:
    """A sqlite storage holding nas-med study 'kept' (2 queued trials, created with --workers 0) and a plain
    Optuna study 'plain'; read-only for the cases."""
    folder = tmp_path_factory.mktemp("stored")
    url = f"sqlite:///{folder}/stored.db"
    result = invoke("search", "--storage", url, "--study", "kept", "--trials", "2", "--workers", "0", *TINY)
    assert result.exit_code == 0, result.output
    optuna.create_study(study_name="plain", storage=url)
    return {"url": url, "folder": folder}


def snapshot(url: str, name: str = "kept") -> tuple:
    study = optuna.load_study(study_name=name, storage=url)
    return ([(t.number, t.state, t.params, t.user_attrs) for t in study.get_trials()], study.user_attrs[CONFIG])


@dataclass
class Case:
    """``nas-med ARGS`` (``{tmp}``, ``{db}``, ``{stored}``, ``{file}``, ``{space}``, ``{folder}`` filled in) and
    a fragment its one-line error must hold."""

    id: str
    args: str
    expect: str
    env: dict | None = None
    space: dict | str | None = None  # a search-space file to write (dict as YAML, str as raw text)
    hide_module: str | None = None  # a module that cannot be imported during the case


SPACE = {"name": "s", "arch": {"block": ["simple"], "stages": [2], "base_width": [4]}, "train": {"lr": [0.003]}}
S = "search --storage {db} --study f " + " ".join(TINY)  # a search that would write to {db}
CASES = [
    # storage
    Case("storage-not-a-url", S + " --storage not-a-url", "'not-a-url' is neither a SQLAlchemy URL"),
    Case("storage-unknown-dialect", S + " --storage nosuchdb://h/x", "cannot open storage 'nosuchdb://h/x'"),
    Case("storage-folder-is-a-file", S + " --storage sqlite:///{file}/sub/x.db", "cannot create the folder"),
    Case("storage-journal-folder-is-a-file", S + " --storage {file}/sub/j.log", "cannot open the journal storage"),
    Case("storage-postgres-refused-password-masked",
         S + " --storage postgresql+psycopg://ann:hunter2@127.0.0.1:1/db", "ann:***@127.0.0.1:1"),
    Case("storage-postgres-driver-not-installed", S + " --storage postgresql+psycopg://ann@127.0.0.1:1/db",
         "needs a database driver that is not installed (psycopg); for PostgreSQL: pip install 'nas-med[postgres]'",
         hide_module="psycopg"),
    Case("storage-bad-heartbeat-env", S, "NAS_MED_HEARTBEAT_SECONDS must be a whole number",
         env={"NAS_MED_HEARTBEAT_SECONDS": "soon"}),
    Case("worker-storage-missing-file", "worker --study kept --storage sqlite:///{tmp}/typo.db", "does not exist"),
    # studies
    Case("worker-unknown-study", "worker --study kep --storage {stored}", "Did you mean 'kept'?"),
    Case("front-unknown-study", "front --study nope --storage {stored}", "unknown study 'nope'"),
    Case("worker-not-a-nas-med-study", "worker --study plain --storage {stored}", "was not created by nas-med"),
    Case("study-name-reused-with-other-config",
         "search --storage {stored} --study kept --trials 2 --workers 0 --size 16 --space tiny --epochs 3 "
         "--cam-images 4 --pruner none --quiet", "epochs: stored 1, given 3"),
    Case("study-name-bad-characters", S + " --study a/b", "--study 'a/b' may hold only"),
    Case("export-no-completed-trial", "export --study kept --storage {stored} --out {tmp}/out",
         "has no completed trial yet"),
    Case("report-no-completed-trial", "report --study kept --storage {stored} --out {tmp}/rep",
         "has no completed trial yet"),
    # search space
    Case("space-file-missing", S + " --space {tmp}/nope.yaml", "nope.yaml' does not exist"),
    Case("space-broken-yaml", S + " --space {space}", "is not valid YAML", space="arch: [block: {"),
    Case("space-unknown-block", S + " --space {space}", "resnext",
         space={**SPACE, "arch": {"block": ["resnext"]}}),
    Case("space-negative-width", S + " --space {space}", "base_width",
         space={**SPACE, "arch": {"base_width": [-4]}}),
    Case("space-unknown-name", S + " --space tinyy", "Did you mean 'tiny'?"),
    # options
    Case("sampler-unknown", S + " --sampler tpee", "unknown sampler 'tpee'. Did you mean 'tpe'?"),
    Case("pruner-unknown", S + " --pruner medain", "unknown pruner 'medain'. Did you mean 'median'?"),
    Case("precision-unknown", S + " --precision bf61", "unknown precision 'bf61'. Did you mean 'bf16'?"),
    Case("export-precision-unknown", "export --study kept --storage {stored} --out {tmp}/out --precision fp64",
         "unknown precision 'fp64'"),
    Case("trials-zero", S + " --trials 0", "--trials must be at least 1, got 0"),
    Case("trials-negative", S + " --trials -3", "--trials must be at least 1, got -3"),
    Case("epochs-zero", S + " --epochs 0", "--epochs must be at least 1, got 0"),
    Case("epochs-negative", S + " --epochs -2", "--epochs must be at least 1, got -2"),
    Case("timeout-negative", S + " --timeout -5", "--timeout must be positive"),
    Case("workers-negative", S + " --workers -2", "--workers must be 0 (only create the study and queue its "
         "trials) or more, got -2"),
    Case("cam-images-one", S + " --cam-images 1", "--cam-images must be at least 2"),
    Case("cam-method-unknown", S + " --cam-method gradcamm", "Did you mean 'gradcam'?"),
    Case("baseline-unknown", S + " --baselines resnet19", "unknown baseline 'resnet19'"),
    Case("device-unknown", S + " --device tpu", "unknown --device 'tpu'"),
    Case("gpus-malformed", S + " --gpus 0,x", "'x' is not a GPU index"),
    Case("worker-threads-zero", "worker --study kept --storage {stored} --threads 0", "--threads must be at least 1"),
    Case("worker-timeout-zero", "worker --study kept --storage {stored} --timeout 0", "--timeout must be positive"),
    Case("worker-device-unknown", "worker --study kept --storage {stored} --device tpu", "unknown --device 'tpu'"),
    # datasets
    Case("dataset-unknown", S + " --dataset synthtic", "Did you mean 'synthetic'?"),
    Case("fraction-zero", S + " --fraction 0", "--fraction must be in (0, 1], got 0"),
    Case("fraction-above-one", S + " --fraction 1.5", "--fraction must be in (0, 1], got 1.5"),
    Case("radimagenet-without-data-root", S + " --dataset radimagenet-msk", "radimagenet-msk needs --data-root"),
    Case("data-root-missing", S + " --dataset radimagenet-msk --data-root {tmp}/absent", "absent' does not exist"),
    Case("folder-missing", S + " --dataset folder:{tmp}/absent", "absent' does not exist"),
    Case("folder-class-all-corrupt", S + " --dataset folder:{folder}", "has no readable images"),
    Case("datasets-show-unknown", "datasets show breastmnis", "Did you mean 'breastmnist'?"),
    Case("predict-not-an-export", "predict {tmp} x.png", "is not an exported model folder"),
    Case("dashboard-bad-port", "dashboard --storage {stored} --port 70000 --no-browser", "--port must be in"),
    Case("dashboard-missing-storage", "dashboard --storage sqlite:///{tmp}/typo.db --no-browser", "typo.db"),
]
if torch.cuda.is_available():
    CASES = [c for c in CASES if not c.id.startswith("gpus")]
else:
    CASES.append(Case("gpus-without-cuda", S + " --gpus 0", "no CUDA GPU is available"))
    CASES.append(Case("worker-gpus-device-conflict", "worker --study kept --storage {stored} --gpus 0 --device cpu",
                      "--gpus 0 needs --device auto or cuda"))


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(case: Case, stored, tmp_path, monkeypatch):
    (tmp_path / "a-file").write_text("not a folder")
    space = tmp_path / "space.yaml"
    if isinstance(case.space, dict):
        space.write_text(yaml.safe_dump(case.space))
    elif case.space is not None:
        space.write_text(case.space)
    folder = _folder(tmp_path / "imgs", {"malignant": 12})
    before = snapshot(stored["url"])
    args = case.args.format(tmp=tmp_path, db=f"sqlite:///{tmp_path}/f.db", stored=stored["url"],
                            file=tmp_path / "a-file", space=space, folder=folder).split()
    if case.hide_module:
        monkeypatch.setitem(sys.modules, case.hide_module, None)
    result = invoke(*args, env=case.env)
    monkeypatch.undo()
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert lines and lines[-1].startswith("Error: ") and case.expect in lines[-1], result.stderr
    assert sum(line.startswith("Error") for line in lines) == 1 and "Traceback" not in result.output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit)
    assert "hunter2" not in result.stdout + result.stderr
    assert not (tmp_path / "f.db").exists() and not (tmp_path / "typo.db").exists()
    assert snapshot(stored["url"]) == before  # the stored study: same trials, same configuration


def test_unwritable_export_folder_is_one_line_and_writes_nothing(tiny_study, tmp_path):
    study, config = tiny_study
    (tmp_path / "a-file").write_text("x")
    result = invoke("export", "--study", study.study_name, "--storage", config.storage, "--out",
                    tmp_path / "a-file" / "model", "--seeds", "1")
    assert result.exit_code == 2 and result.stderr.startswith("Error: cannot write --out")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.output
    assert (tmp_path / "a-file").read_text() == "x" and {p.name for p in tmp_path.iterdir()} <= {"a-file", "cache"}


def test_a_corrupt_image_among_good_ones_is_skipped_with_one_warning(tmp_path, caplog):
    folder = _folder(tmp_path / "imgs", {"benign": 1})
    result = invoke("datasets", "show", f"folder:{folder}")
    assert result.exit_code == 0, result.stderr
    assert "skipped 1 of 24 image files" in caplog.text and "0.png" in caplog.text
    from nas_med.data import load_dataset

    data = load_dataset(f"folder:{folder}", data_root=None, size=None, channels=None, fraction=1.0, seed=0)
    assert sum(len(s) for s in data.splits.values()) == 23


def _space_file(tmp_path: Path, **changes) -> Path:
    data = {"name": "s", "arch": {"block": ["simple"], "stages": [2], "base_width": [4, 8]},
            "train": {"lr": [0.003], "batch_size": [64]}}
    for key, value in changes.items():
        section, field = key.split("__")
        data[section][field] = value
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _search(tmp_path: Path, *extra: str) -> tuple:
    url = f"sqlite:///{tmp_path}/t.db"
    result = invoke("search", "--storage", url, "--study", "t", "--trials", "2", "--size", "16", "--epochs", "1",
                    "--cam-images", "4", "--pruner", "none", "--quiet", "--workers", "1", *extra)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert "Traceback" not in result.output
    return optuna.load_study(study_name="t", storage=url).trials, result


def test_nan_loss_fails_the_trial_with_its_reason_and_the_study_goes_on(tmp_path):
    trials, _ = _search(tmp_path, "--space", _space_file(tmp_path, train__lr=[1e308]))
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.FAIL]  # the second ran after the first
    assert all("non-finite" in t.user_attrs["stop_reason"] for t in trials)
    assert all(t.user_attrs["precision"] in ("fp32", "bf16", "fp16") for t in trials)  # recorded before training


def test_out_of_memory_in_training_fails_the_trial_and_the_study_goes_on(tmp_path, monkeypatch):
    import nas_med.train as train
    from nas_med.search.estimate import LOOP_IMAGES

    real, calls = train._loss_fn, []

    def loss_fn(data, *args, **kwargs):
        if len(data.train) > LOOP_IMAGES:  # a trial's training, not the time estimate's calibration
            calls.append(1)
        if len(calls) != 1:
            return real(data, *args, **kwargs)

        def out_of_memory(logits, y):
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

        return out_of_memory

    monkeypatch.setattr(train, "_loss_fn", loss_fn)
    trials, _ = _search(tmp_path, "--space", _space_file(tmp_path))
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.COMPLETE]
    assert trials[0].user_attrs["stop_reason"].startswith("out of memory: CUDA out of memory")


def test_out_of_memory_while_scoring_cams_fails_the_trial_and_the_study_goes_on(tmp_path, monkeypatch):
    import nas_med.search.objective as objective

    real = objective.evaluate_cams
    calls = []

    def evaluate_cams(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.00 GiB")
        return real(*args, **kwargs)

    monkeypatch.setattr(objective, "evaluate_cams", evaluate_cams)
    trials, _ = _search(tmp_path, "--space", _space_file(tmp_path))
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.COMPLETE]
    assert "out of memory" in trials[0].user_attrs["stop_reason"]


def test_a_collapsing_architecture_is_pruned_with_its_reason(tmp_path):
    trials, _ = _search(tmp_path, "--space", _space_file(tmp_path, arch__stages=[6]))
    assert [t.state for t in trials] == [TrialState.PRUNED, TrialState.PRUNED]
    assert all("collapses" in t.user_attrs["stop_reason"] for t in trials)

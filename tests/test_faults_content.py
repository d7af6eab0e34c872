"""Bad input in its *content* (issue 17): datasets, search spaces, storages, resumed data, exported folders.

Each case: exit code 2, one line ``Error: ...`` naming the bad value, no traceback, and no study database or
output folder left behind. Inputs are built here.
"""
from __future__ import annotations

import json
import os
import re
import sqlite3
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch
from click.testing import CliRunner
from optuna.trial import TrialState
from PIL import Image

from nas_med.cli.main import cli

pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")

TINY = ["--size", "16", "--epochs", "1", "--cam-images", "4", "--pruner", "none", "--quiet"]


@pytest.fixture(autouse=True)
def _isolated(isolated):
    """Own data cache, one torch thread (tests/conftest.py)."""


HEADER = re.compile(r"dataset \S+ \(\w+, \d+ classes.*\): train \d+ / val \d+ / test \d+ images"
                    r"|near-duplicates \(perceptual hash|parallel: \d+ workers? x \d+ threads? per trial")
# the pre-flight lines printed before a storage failure


def invoke(*args, env: dict | None = None):
    return CliRunner().invoke(cli, [str(a) for a in args], env=env)


def refused(result, expect: str, *absent: Path) -> None:
    """Exit 2, one ``Error:`` line holding ``expect``, no traceback, none of ``absent`` exists (a search's
    pre-flight lines naming the data and its near-duplicates, printed before a storage failure, are not error
    lines)."""
    lines = [line for line in result.stderr.splitlines() if line.strip() and not HEADER.match(line)]
    assert result.exit_code == 2, (result.stdout, result.stderr, result.exception)
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert expect in lines[0], lines[0]
    assert "Traceback" not in result.output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit)
    for path in absent:
        assert not path.exists(), f"{path} was left behind"


def search(tmp_path: Path, *extra, study: str = "f", trials: int = 1):
    url = f"sqlite:///{tmp_path}/f.db"
    if "--space" not in extra:
        extra = ("--space", "tiny", *extra)
    return invoke("search", "--storage", url, "--study", study, "--trials", trials, "--workers", "1", *TINY,
                  *extra), tmp_path / "f.db"


# --- array datasets whose content is wrong -----------------------------------------------------------------

def _npz(root: Path, name: str = "breastmnist", *, n: int = 12, images=None, labels=None, **override) -> Path:
    """A MedMNIST-style ``<name>.npz`` (binary, 28 px); ``override`` replaces whole arrays by key."""
    rng = np.random.default_rng(0)
    arrays = {}
    for split in ("train", "val", "test"):
        arrays[f"{split}_images"] = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8) if images is None \
            else images
        arrays[f"{split}_labels"] = (np.arange(n) % 2).reshape(n, 1) if labels is None else labels
    arrays.update(override)
    root.mkdir(parents=True, exist_ok=True)
    np.savez(root / f"{name}.npz", **arrays)
    return root


N = 12
BAD_ARRAYS = {
    "label-above-range": (dict(train_labels=np.full((N, 1), 7)), "holds the label 7, outside 0..1"),
    "label-negative": (dict(val_labels=np.full((N, 1), -1)), "holds the label -1, outside 0..1"),
    "label-not-integer": (dict(train_labels=np.full((N, 1), 0.5)), "non-integer label 0.5"),
    "label-wrong-shape": (dict(train_labels=np.zeros((N, 3), dtype=np.int64)), "has shape (12, 3)"),
    "label-count-differs": (dict(test_labels=np.zeros((N - 2, 1), dtype=np.int64)), "has 10 labels for 12 images"),
    "split-empty": (dict(val_images=np.zeros((0, 28, 28), np.uint8), val_labels=np.zeros((0, 1), np.int64)),
                    "val split is empty"),
    "class-missing-in-val": (dict(val_labels=np.zeros((N, 1), dtype=np.int64)),
                             "the val split has no image of class"),
    "float-images-out-of-range": (dict(train_images=np.full((N, 28, 28), 300.5, np.float32)),
                                  "float values from 300.5 to 300.5"),
    "float-images-fractional": (dict(train_images=np.linspace(0, 3, N * 28 * 28, dtype=np.float32).reshape(N, 28, 28)),
                                "fractional float values from 0 to 3"),
    "images-nan": (dict(test_images=np.full((N, 28, 28), np.nan, np.float32)), "non-finite values"),
    "images-16-bit": (dict(train_images=np.full((N, 28, 28), 4095, np.uint16)), "values from 4095 to 4095"),
}


@pytest.mark.parametrize("case", BAD_ARRAYS, ids=list(BAD_ARRAYS))
def test_array_dataset_with_wrong_content_is_refused(case, tmp_path):
    arrays, expect = BAD_ARRAYS[case]
    root = _npz(tmp_path / "npz", **arrays)
    result, db = search(tmp_path, "--dataset", "breastmnist", "--data-root", root)
    refused(result, expect, db)
    assert "breastmnist.npz" in result.stderr or "split" in result.stderr


def test_float_images_in_unit_range_are_rescaled_not_blackened(tmp_path, caplog):
    from nas_med.data import load_dataset

    rng = np.random.default_rng(1)
    unit = rng.random((N, 28, 28)).astype(np.float32)
    root = _npz(tmp_path / "npz", images=unit)
    data = load_dataset("breastmnist", data_root=root, size=None, channels=None, fraction=1.0, seed=0)
    assert data.train.images.dtype == torch.uint8 and int(data.train.images.max()) > 200
    assert torch.equal(data.train.images[:, 0], torch.from_numpy(np.rint(unit * 255).astype(np.uint8)))
    assert caplog.text.count("holds float images in [0, 1] (float32): rescaled to 0..255") == 1


# --- folder datasets whose splits cannot be scored ----------------------------------------------------------

def _png(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (8, 8), dtype=np.uint8)).save(path)


def test_folder_class_too_small_for_every_split_is_refused(tmp_path):
    for k in range(10):
        _png(tmp_path / "imgs" / "normal" / f"{k}.png", k)
    _png(tmp_path / "imgs" / "rare" / "only.png", 99)
    result, db = search(tmp_path, "--dataset", f"folder:{tmp_path / 'imgs'}")
    refused(result, "class 'rare' has 1 image(s), too few to appear in the", db)
    assert "every class needs at least one image in each split" in result.stderr


# --- search spaces whose structure is wrong -----------------------------------------------------------------

BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
    for i in range(8)) + "arch: {block: [simple]}\n"
BAD_SPACES = {
    "arch-a-list": ("name: s\narch: [simple, 2]\n", "'arch' must be a mapping of fields"),
    "arch-a-number": ("name: s\narch: 7\n", "'arch' must be a mapping of fields (field: [choices]), got int 7"),
    "train-a-string": ("name: s\ntrain: fast\n", "'train' must be a mapping of fields (field: [choices]), got str 'fast'"),
    "by-block-a-list": ("arch: {block: [simple], by_block: [simple]}\n", "'arch.by_block' must be a mapping"),
    "by-block-entry-a-number": ("arch: {block: [simple], by_block: {simple: 3}}\n",
                                "'arch.by_block.simple' must be a mapping"),
    "name-a-mapping": ("name: {x: 1}\narch: {block: [simple]}\n", "'name' must be a text"),
    "alias-bomb": (BOMB, "aliases (*a) are not allowed"),
    "plain-alias": ("w: &w [4, 8]\narch: {base_width: *w}\n", "aliases (*w) are not allowed"),
    "nested-too-deep": ("arch: " + "[" * 60 + "]" * 60 + "\n", "nested deeper than 20 levels"),
    "too-many-choices": ("arch: {base_width: [" + ", ".join(str(4 + i) for i in range(1500)) + "]}\n",
                         "1500 choices; at most 1000"),
    "stages-too-many": ("arch: {stages: [200]}\n", "arch.stages[0]: must be at most 16, got 200"),
    "file-too-large": ("# " + "x" * (1 << 20) + "\narch: {}\n", "at most 1048576 are allowed"),
    "range-a-list-of-ranges": ("arch: {depth: {low: [1], high: 3}}\n", "expected an integer, got [1]"),
}


@pytest.mark.parametrize("case", BAD_SPACES, ids=list(BAD_SPACES))
def test_search_space_with_wrong_structure_is_refused(case, tmp_path):
    text, expect = BAD_SPACES[case]
    space = tmp_path / "space.yaml"
    space.write_text(text)
    result, db = search(tmp_path, "--space", space)
    refused(result, expect, db)
    assert "search space" in result.stderr


# --- candidates that cannot be allocated ---------------------------------------------------------------------

def _trials(tmp_path: Path, result, db: Path):
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    assert "Traceback" not in result.output
    return optuna.load_study(study_name="f", storage=f"sqlite:///{db}").trials


@pytest.mark.parametrize("width, reason", [(1 << 20, "out of memory (estimated before allocating)"),
                                           (10**21, "cannot be built: ")], ids=["2^20", "10^21"])
def test_a_space_whose_only_candidate_cannot_be_allocated_ends_in_failed_trials_and_exit_0(width, reason,
                                                                                          tmp_path):
    space = tmp_path / "huge.yaml"
    space.write_text(f"name: huge\narch: {{block: [simple], stages: [2], base_width: [{width}]}}\n")
    result, db = search(tmp_path, "--space", space, trials=2)
    trials = _trials(tmp_path, result, db)
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.FAIL]
    assert all(t.user_attrs["stop_reason"].startswith(reason) for t in trials), \
        [t.user_attrs.get("stop_reason") for t in trials]


def test_an_allocation_failure_while_building_fails_the_trial_and_the_study_goes_on(tmp_path, monkeypatch):
    import nas_med.search.objective as objective

    real, calls = objective.seeded_build, []

    def build(spec, seed):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("[enforce fail at alloc_cpu.cpp:118] DefaultCPUAllocator: can't allocate memory: "
                               "you tried to allocate 1099511627776 bytes.")
        return real(spec, seed)

    monkeypatch.setattr(objective, "seeded_build", build)
    result, db = search(tmp_path, trials=2)
    trials = _trials(tmp_path, result, db)
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.COMPLETE]
    assert trials[0].user_attrs["stop_reason"].startswith("out of memory while building the model: [enforce")


# --- storage that cannot be written --------------------------------------------------------------------------

@pytest.fixture
def made(tmp_path) -> Path:
    """A sqlite storage holding study 'kept' (one queued trial)."""
    db = tmp_path / "made" / "s.db"
    db.parent.mkdir()
    result = invoke("search", "--storage", f"sqlite:///{db}", "--study", "kept", "--trials", 1, "--workers", 0,
                    "--space", "tiny", *TINY)
    assert result.exit_code == 0, result.output
    return db


def _with_pragma(monkeypatch, pragma: str) -> None:
    """Every new connection of a nas-med sqlite storage runs ``pragma`` (read-only or full as root can't be)."""
    from sqlalchemy import event

    import nas_med.search.storage as storage

    real = storage._use_wal

    def use_wal(rdb) -> None:
        real(rdb)

        @event.listens_for(rdb.engine, "connect")
        def _pragma(dbapi_connection, _record) -> None:
            dbapi_connection.execute(pragma)

        rdb.engine.dispose()

    monkeypatch.setattr(storage, "_use_wal", use_wal)


def _trial_rows(db: Path) -> list:
    with sqlite3.connect(db) as con:
        return con.execute("select trial_id, state from trials").fetchall()


def test_read_only_storage_is_one_line_naming_it(made, tmp_path, monkeypatch):
    before = _trial_rows(made)
    if os.geteuid() == 0:
        _with_pragma(monkeypatch, "PRAGMA query_only = 1")
    else:
        made.chmod(0o444)
    result = invoke("search", "--storage", f"sqlite:///{made}", "--study", "new", "--trials", 1, "--workers", 0,
                    "--space", "tiny", *TINY)
    refused(result, f"cannot use storage 'sqlite:///{made}': it is read-only")
    made.chmod(0o644)
    assert _trial_rows(made) == before


def test_full_disk_storage_is_one_line_naming_it(made, monkeypatch):
    pages = sqlite3.connect(made).execute("PRAGMA page_count").fetchone()[0]
    _with_pragma(monkeypatch, f"PRAGMA max_page_count = {pages}")
    result = invoke("search", "--storage", f"sqlite:///{made}", "--study", "kept", "--trials", 400, "--workers", 0,
                    "--space", "tiny", *TINY)
    refused(result, f"cannot use storage 'sqlite:///{made}': its disk is full")


def test_locked_storage_is_one_line_naming_it(made, monkeypatch):
    import nas_med.search.storage as storage

    monkeypatch.setattr(storage, "SQLITE_TIMEOUT", 0.2)
    holder = sqlite3.connect(made, isolation_level=None)
    holder.execute("PRAGMA journal_mode=DELETE")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        result = invoke("search", "--storage", f"sqlite:///{made}", "--study", "new", "--trials", 1, "--workers",
                        0, "--space", "tiny", *TINY)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    refused(result, f"cannot use storage 'sqlite:///{made}': it is locked by another process")


@pytest.mark.parametrize("damage", ["version", "tables"])
def test_storage_with_a_wrong_schema_is_one_line_naming_it(damage, tmp_path):
    db = tmp_path / "odd.db"
    with sqlite3.connect(db) as con:
        if damage == "tables":
            con.execute("create table studies (x int)")
        else:
            con.execute("create table alembic_version (version_num varchar(32) primary key)")
            con.execute("insert into alembic_version values ('v0.1.0.a')")
    result = invoke("search", "--storage", f"sqlite:///{db}", "--study", "new", "--trials", 1, "--workers", 0,
                    "--space", "tiny", *TINY)
    refused(result, f"cannot use storage 'sqlite:///{db}': its schema")
    with sqlite3.connect(db) as con:  # (Optuna adds its missing tables on opening; no study or trial is written)
        assert all(con.execute(f"select count(*) from {t}").fetchone()[0] == 0 for t in ("trials", "studies"))


# --- resuming with other data --------------------------------------------------------------------------------

def _queue(tmp_path: Path, root: Path, trials: int = 1):
    return invoke("search", "--storage", f"sqlite:///{tmp_path}/r.db", "--study", "r", "--trials", trials,
                  "--workers", 0, "--dataset", "breastmnist", "--data-root", root, "--space", "tiny", *TINY)


def test_resuming_a_study_with_other_data_is_refused_saying_what_differs(tmp_path):
    first = _npz(tmp_path / "a")
    assert _queue(tmp_path, first).exit_code == 0
    url = f"sqlite:///{tmp_path}/r.db"
    before = [(t.number, t.state) for t in optuna.load_study(study_name="r", storage=url).trials]
    other = _npz(tmp_path / "b", n=14)
    result = _queue(tmp_path, other, trials=3)
    refused(result, "data: other images or labels than the study was created with")
    assert "train images stored 12, given 14" in result.stderr and "breastmnist.npz" in result.stderr
    assert [(t.number, t.state) for t in optuna.load_study(study_name="r", storage=url).trials] == before
    same_size = _npz(tmp_path / "c", labels=(np.arange(N) // 6).reshape(N, 1))  # same files' sizes, other labels
    refused(_queue(tmp_path, same_size), "content hash stored")
    assert _queue(tmp_path, first, trials=2).exit_code == 0  # the original data still resumes


def test_a_study_stored_without_a_fingerprint_still_resumes(tmp_path):
    from nas_med.search.records import CONFIG as CONFIG_ATTR

    root = _npz(tmp_path / "a")
    assert _queue(tmp_path, root).exit_code == 0
    study = optuna.load_study(study_name="r", storage=f"sqlite:///{tmp_path}/r.db")
    config = dict(study.user_attrs[CONFIG_ATTR])
    assert "content" in config.pop("data_fingerprint")
    study.set_user_attr(CONFIG_ATTR, config)  # as made by nas-med before fingerprints
    result = _queue(tmp_path, _npz(tmp_path / "b", n=14), trials=3)
    assert result.exit_code == 0, result.output
    assert len(optuna.load_study(study_name="r", storage=f"sqlite:///{tmp_path}/r.db").trials) == 3


# --- exported folders whose files disagree or are hostile ----------------------------------------------------

def _export(folder: Path, width: int = 8, **pre_changes) -> Path:
    """A hand-made export: spec.json, model.safetensors and preprocessing.json of a 1-channel 16 px network."""
    from safetensors.torch import save_file

    from nas_med.arch import ArchSpec, HeadSpec, StageSpec, build

    spec = ArchSpec(1, 2, 16, (StageSpec("simple", width), StageSpec("simple", width * 2)), None,
                    HeadSpec("gap_linear", 0, 0.0))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "spec.json").write_text(spec.to_json())
    save_file({k: v.contiguous() for k, v in build(spec).state_dict().items()}, str(folder / "model.safetensors"))
    pre = {"input_size": 16, "channels": 1, "mean": [0.5], "std": [0.25], "class_names": ["a", "b"],
           "task": "binary", **pre_changes}
    (folder / "preprocessing.json").write_text(json.dumps(pre))
    _png(folder.parent / "x.png", 3)
    return folder


def _predict(folder: Path):
    out = folder.parent / "cams"
    return invoke("predict", folder, folder.parent / "x.png", "--cam-out", out), out


def test_a_hand_made_export_predicts(tmp_path):
    result, out = _predict(_export(tmp_path / "m"))
    assert result.exit_code == 0, result.output
    assert "x.png" in result.stdout and out.is_dir()


def _spec_with(folder: Path, **changes) -> None:
    spec = json.loads((folder / "spec.json").read_text())
    spec.update(changes)
    (folder / "spec.json").write_text(json.dumps(spec))


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def _truncate(folder: Path) -> None:
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[:-100])


BAD_EXPORTS = {
    "channels-disagree": (lambda f: _export(f, channels=3, mean=[0.5] * 3, std=[0.2] * 3),
                          "says channels 3 but spec.json says 1"),
    "input-size-disagrees": (lambda f: _export(f, input_size=32), "says input_size 32 but spec.json says 16"),
    "classes-disagree": (lambda f: _export(f, class_names=["a", "b", "c"]), "names 3 classes but spec.json"),
    "std-zero": (lambda f: _export(f, std=[0]), "'std' must be 1 finite positive numbers"),
    "weights-of-another-width": (lambda f: (_export(f.parent / "w16", width=16), _export(f),
                                            (f / "model.safetensors").write_bytes(
                                                (f.parent / "w16" / "model.safetensors").read_bytes())),
                                 "has shape [16, 1, 3, 3], the spec needs [8, 1, 3, 3]"),
    "weights-truncated": (lambda f: (_export(f), _truncate(f)), "are truncated or corrupt"),
    "spec-cannot-be-allocated": (lambda f: (_export(f), _spec_with(f, stages=[
        {"block": "simple", "width": 1 << 22}, {"block": "simple", "width": 1 << 23}])),
                                 "parameters; at most 2,000,000,000 are allowed"),
    "spec-too-deep-to-build": (lambda f: (_export(f), _spec_with(f, stages=[
        {"block": "simple", "width": 4, "depth": 10**9}])), "states 1,000,000,000 blocks in all"),
    "spec-nested-deeply": (lambda f: (_export(f), (f / "spec.json").write_text(_nested(50000))),
                           "spec.json' is nested 50000 levels deep"),
    "preprocessing-nested-deeply": (lambda f: (_export(f), (f / "preprocessing.json").write_text(
        '{"a": ' + _nested(100000) + "}")), "preprocessing.json' is nested 100001 levels deep"),
    "preprocessing-a-list": (lambda f: (_export(f), (f / "preprocessing.json").write_text("[1, 2]")),
                             "must be a JSON object, got list"),
    "preprocessing-huge": (lambda f: (_export(f), (f / "preprocessing.json").write_text(
        json.dumps({"pad": "x" * (2 << 20)}))), "at most 1048576 are allowed"),
}


@pytest.mark.parametrize("case", BAD_EXPORTS, ids=list(BAD_EXPORTS))
def test_exported_folder_whose_files_disagree_is_refused(case, tmp_path):
    make, expect = BAD_EXPORTS[case]
    make(tmp_path / "m")
    result, out = _predict(tmp_path / "m")
    refused(result, expect, out)


# --- smaller: stale export folders, huge images ---------------------------------------------------------------

def test_stale_partial_export_folders_are_cleaned(tmp_path):
    import subprocess
    import sys
    import time

    from nas_med.export.partials import clean_stale_partials, partial_prefix

    out = tmp_path / "model"
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(done.stdout)
    mine = partial_prefix(out)  # .model.partial-<host>-<this pid>-
    host = mine.split("partial-", 1)[1].rsplit("-", 2)[0]
    dead = tmp_path / f".model.partial-{host}-{dead_pid}-abc123"
    live = tmp_path / f"{mine}def456"
    old_style = tmp_path / ".model.partial-x1y2z3"  # made before names held host and pid
    old_fresh = tmp_path / ".model.partial-q9w8e7"
    other = tmp_path / ".other.partial-x1y2z3"
    for folder in (dead, live, old_style, old_fresh, other):
        (folder / "sub").mkdir(parents=True)
    two_days = time.time() - 48 * 3600
    os.utime(old_style, (two_days, two_days))
    os.utime(other, (two_days, two_days))
    removed = clean_stale_partials(out)
    assert sorted(removed) == sorted([dead, old_style])
    assert live.is_dir() and old_fresh.is_dir() and other.is_dir()


def test_an_image_above_the_decompression_bomb_limit_gives_one_clear_line(tmp_path, monkeypatch, caplog, recwarn):
    from PIL import Image as PILImage

    from nas_med.data.decode import read_image

    path = tmp_path / "big.png"
    PILImage.fromarray(np.zeros((40, 50), np.uint8)).save(path)
    monkeypatch.setattr(PILImage, "MAX_IMAGE_PIXELS", 1000)  # 2,000 px is then "a bomb"; 4,000 refused
    assert read_image(path, 16).shape == (1, 16, 16)
    assert "big.png' is 50x40 px (2,000 pixels, above Pillow's decompression-bomb limit of 1,000)" in caplog.text
    assert not [w for w in recwarn if issubclass(w.category, PILImage.DecompressionBombWarning)]
    monkeypatch.setattr(PILImage, "MAX_IMAGE_PIXELS", 900)
    _png(tmp_path / "x.png", 1)
    result = invoke("predict", _export(tmp_path / "m"), path)
    refused(result, "has more than 1,800 pixels, refused as a possible decompression bomb")


def test_a_worker_whose_data_changed_since_the_study_was_made_is_refused(tmp_path):
    root = _npz(tmp_path / "a")
    assert _queue(tmp_path, root).exit_code == 0
    _npz(tmp_path / "a", labels=(np.arange(N) // 6).reshape(N, 1))  # the same path, other labels
    result = invoke("worker", "--study", "r", "--storage", f"sqlite:///{tmp_path}/r.db")
    refused(result, "study 'r' cannot run on this worker's data: data: other images or labels")
    study = optuna.load_study(study_name="r", storage=f"sqlite:///{tmp_path}/r.db")
    assert [t.state for t in study.trials] == [TrialState.WAITING]


# --- nothing half-written ------------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", ["dataset", "space"])
def test_a_bad_input_creates_no_storage_folder_database_or_artifacts(bad, tmp_path):
    root = _npz(tmp_path / "npz", train_labels=np.full((N, 1), 9)) if bad == "dataset" else _npz(tmp_path / "npz")
    space = tmp_path / "s.yaml"
    space.write_text("arch: [1]\n" if bad == "space" else "arch: {block: [simple], stages: [2]}\n")
    where = tmp_path / "new" / "deeper"
    result = invoke("search", "--storage", f"sqlite:///{where}/s.db", "--study", "x", "--trials", 1,
                    "--dataset", "breastmnist", "--data-root", root, "--space", space, *TINY)
    refused(result, "train_labels holds the label 9" if bad == "dataset" else "'arch' must be a mapping",
            tmp_path / "new")


def test_the_memory_estimate_counts_weights_optimizer_state_and_activations():
    from nas_med.arch.memory import MemoryTooLarge, check_fits, training_bytes

    cost = {"params": 1000, "activation_bytes": 4096}
    assert training_bytes(cost, 8) == 1000 * 16 + 4096 * 8 * 2
    assert check_fits(cost, 8, torch.device("cpu"), limit=10**6) == 81_536
    with pytest.raises(MemoryTooLarge, match="1,000 parameters .* batch size 8 need about"):
        check_fits(cost, 8, torch.device("cpu"), limit=50_000)

"""Issue 29, a third adversarial pass: non-finite models and images, options at their limits, hand-written files,
storages that race or tear, a full disk, data paths.

Each refusal: exit code 2, one line ``Error: ...`` naming the bad value, no traceback, nothing left behind.
"""
from __future__ import annotations

import importlib
import json
import os
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch
from test_faults_content import _export, _npz, _predict, invoke, refused  # noqa: E402  (tests/ is on sys.path)

pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")

TINY = ["--size", "16", "--epochs", "1", "--cam-images", "4", "--pruner", "none", "--quiet", "--space", "tiny"]


@pytest.fixture(autouse=True)
def _isolated(isolated):
    """Own data cache, one torch thread (tests/conftest.py)."""


def queue(tmp_path: Path, *extra, study: str = "f"):
    """``search --workers 0`` (create the study, queue its trials, train nothing) into ``tmp_path/f.db``."""
    db = tmp_path / "f.db"
    return invoke("search", "--storage", f"sqlite:///{db}", "--study", study, "--trials", 1, "--workers", 0,
                  *TINY, *extra), db


# --- options at their limits: every numeric option of every command ------------------------------------------

OPTIONS = {
    "seed-negative": (("--seed", "-1"), "--seed must be at least 0, got -1"),
    "seed-2^32": (("--seed", str(2**32)), "--seed must be at most 4,294,967,295"),
    "timeout-nan": (("--timeout", "nan"), "--timeout must be a finite number, got nan"),
    "timeout-inf": (("--timeout", "inf"), "--timeout must be a finite number, got inf"),
    "trials-10^12": (("--trials", str(10**12)), "--trials must be at most 1,000,000"),
    "trials-not-a-number": (("--trials", "many"), "--trials must be a whole number, got 'many'"),
    "epochs-huge": (("--epochs", "1e400"), "--epochs must be a whole number"),
    "fraction-nan": (("--fraction", "nan"), "--fraction must be a finite number"),
    "size-10^9": (("--size", str(10**9)), "--size must be between 8 and 1024 pixels"),
    "study-dots": (("--study", ".."), "--study '..' may hold only letters"),
    "study-10k-characters": (("--study", "a" * 10_000), "(10000 characters)' may hold only"),
    "study-newline": (("--study", "a\nb"), "--study 'a\\nb' may hold only"),
    "data-root-missing-file-cached": (("--dataset", "breastmnist", "--data-root", "{tmp}/typo"),
                                      "--data-root '{tmp}/typo' does not exist"),
    "fraction-leaves-no-image-of-a-class": (("--dataset", "breastmnist", "--fraction", "0.001"),
                                            "--fraction 0.001 keeps 0 of"),
}


@pytest.mark.parametrize("case", OPTIONS, ids=list(OPTIONS))
def test_an_option_at_its_limit_is_one_line_and_writes_nothing(case, tmp_path, isolated):
    args, expect = OPTIONS[case]
    _npz(isolated / "medmnist")  # breastmnist.npz in the cache: a typo'd --data-root must not fall back to it
    args = [a.format(tmp=tmp_path) for a in args]
    result, db = queue(tmp_path, *args)
    refused(result, expect.format(tmp=tmp_path), db)


@pytest.mark.parametrize("command", [
    "worker --study s --storage sqlite:///{tmp}/x.db --threads 1e12",
    "worker --study s --storage sqlite:///{tmp}/x.db --timeout -inf",
    "export --study s --storage sqlite:///{tmp}/x.db --out {tmp}/o --seeds 100000",
    "export --study s --storage sqlite:///{tmp}/x.db --out {tmp}/o --target-sensitivity nan",
    "front --study s --storage sqlite:///{tmp}/x.db --cam-floor nan",
    "confirm --study s --storage sqlite:///{tmp}/x.db --auc-tolerance inf",
    "report --study s --storage sqlite:///{tmp}/x.db --out {tmp}/r --auc-tolerance -1",
    "dashboard --storage sqlite:///{tmp}/x.db --port 1e9",
    "sweep --fractions 0.5 --storage sqlite:///{tmp}/x.db --seed -3",
    "sweep --fractions 0.5 --storage sqlite:///{tmp}/x.db --trials-per-point 0",
    "sweep --fractions 0.5 --storage sqlite:///{tmp}/x.db --sweep ..",
    "arch sample --seed 99999999999",
    "arch show minicnn --size 1000000000",
    "datasets show synthetic --seed -1",
    "predict {tmp} x.png --threshold nan",
], ids=lambda c: " ".join(c.split()[:1] + [w for w in c.split() if w.startswith("--")][-1:]))
def test_every_numeric_option_is_checked_before_anything_runs(command, tmp_path):
    result = invoke(*command.format(tmp=tmp_path).split())
    option = [w for w in command.split() if w.startswith("--")][-1]
    refused(result, f"{option} must be" if option != "--sweep" else "--sweep '..' may hold only", tmp_path / "x.db",
            tmp_path / "o", tmp_path / "r")


def test_a_sweep_whose_smallest_fraction_leaves_a_class_empty_writes_no_storage(tmp_path, isolated):
    _npz(isolated / "medmnist")
    result = invoke("sweep", "--dataset", "breastmnist", "--fractions", "0.5,0.01", "--sizes", "16", "--space",
                    "tiny", "--trials-per-point", 1, "--epochs", 1, "--cam-images", 4, "--seeds", 1, "--storage",
                    f"sqlite:///{tmp_path}/s.db", "--out", tmp_path / "out", "--quiet")
    refused(result, "--fraction 0.01 keeps 0 of 12 training images", tmp_path / "s.db", tmp_path / "out")


def test_arch_show_of_a_hostile_spec_file_is_one_line(tmp_path):
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    refused(invoke("arch", "show", deep), "nested 100000 levels deep")
    spec = json.loads(invoke("arch", "show", "minicnn", "--json").stdout)
    spec["stages"][0]["depth"] = 10**9
    huge = tmp_path / "huge.json"
    huge.write_text(json.dumps(spec))
    refused(invoke("arch", "show", huge), "states 1,000,000,0")


def test_a_stored_data_root_is_absolute(tmp_path, monkeypatch):
    root = _npz(tmp_path / "npz")
    monkeypatch.chdir(tmp_path)
    result, db = queue(tmp_path, "--dataset", "breastmnist", "--data-root", "npz")
    assert result.exit_code == 0, result.output
    from nas_med.search.records import CONFIG

    stored = optuna.load_study(study_name="f", storage=f"sqlite:///{db}").user_attrs[CONFIG]
    assert stored["data_root"] == str(root) and Path(stored["data_root"]).is_absolute()


# --- hand-written files: one number, one reading ----------------------------------------------------------------

def test_a_number_reads_the_same_in_a_space_file_a_recipe_file_and_an_option(tmp_path):
    space = tmp_path / "space.yaml"
    space.write_text("name: s\narch: {block: [simple], stages: [2], base_width: ['4']}\n"
                     "train: {lr: [1e-3, '2e-3']}\n")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("search:\n  trials: 1e0\n  fraction: 5e-1\n  seed: '3'\n"
                      "final:\n  lr: 1e-3\n  epochs: '60'\n  batch_size: 3.2e1\n  warmup: '0.1'\n")
    result, db = queue(tmp_path, "--space", space, "--recipe", recipe)
    assert result.exit_code == 0, result.output
    from nas_med.search.records import CONFIG

    study = optuna.load_study(study_name="f", storage=f"sqlite:///{db}")
    config = study.user_attrs[CONFIG]
    assert config["space_definition"]["train"]["lr"] == [0.001, 0.002]
    assert config["space_definition"]["arch"]["base_width"] == [4]
    from nas_med.final.recipe import FinalRecipe
    from nas_med.search.records import FINAL_RECIPE

    stored = FinalRecipe.from_dict(study.user_attrs[FINAL_RECIPE])
    assert stored == FinalRecipe(lr=1e-3, epochs=60, batch_size=32, warmup=0.1)
    assert isinstance(stored.epochs, int) and isinstance(stored.batch_size, int)
    assert (config["fraction"], config["seed"]) == (0.5, 3) and isinstance(config["seed"], int)


@pytest.mark.parametrize("text, expect", [
    ("search:\n  seed: lots\n", "search: seed: --seed must be a whole number, got 'lots'"),
    ("search:\n  timeout: .nan\n", "search: timeout: --timeout must be a finite number"),
    ("search:\n  seed: -1\n", "search: seed: --seed must be at least 0"),
    ("search:\n  fraction: [0.5]\n", "search: fraction: --fraction must be a number"),
    ("search:\n  dataset: {a: 1}\n", "search: dataset must be a text"),
    ("search:\n  channels: 2\n", "search: channels:"),
    ("final:\n  lr: .inf\n", "lr must be > 0 and weight_decay >= 0 (both finite), got inf"),
    ("final:\n  epochs: 2.5\n", "epochs must be a positive integer, got 2.5"),
    ("search:\n  space: tiny\nfinal:\n  weight_decay: .nan\n", "got 0.001, nan"),
], ids=["seed-text", "timeout-nan", "seed-negative", "fraction-list", "dataset-mapping", "channels-2", "final-lr-inf",
        "final-epochs-fraction", "final-weight-decay-nan"])
def test_a_recipe_file_with_text_where_a_number_belongs_is_one_line(text, expect, tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(text)
    result, db = queue(tmp_path, "--recipe", recipe)
    refused(result, expect, db)
    assert "recipe.yaml" in result.stderr


# --- exported folders whose values give no number ---------------------------------------------------------------

def _weights(folder: Path, change) -> None:
    from safetensors.torch import load_file, save_file

    state = load_file(str(folder / "model.safetensors"))
    change(state)
    save_file(state, str(folder / "model.safetensors"))


def _op(folder: Path, **values) -> None:
    op = {"temperature": 1.0, "positive_index": 1, "positive_class": "b", "threshold": 0.5, "task": "binary",
          "class_names": ["a", "b"], "probabilities": "softmax(logits / temperature)", **values}
    (folder / "operating_point.json").write_text(json.dumps(op))


def _first(state, suffix):
    return next(k for k in state if k.endswith(suffix))


NON_FINITE = {
    "weight-nan": (lambda f: _weights(f, lambda s: s[_first(s, "weight")].view(-1).__setitem__(0, float("nan"))),
                   "non-finite value(s) (NaN or infinity)"),
    "weight-inf": (lambda f: _weights(f, lambda s: s[_first(s, "bias")].fill_(float("inf"))),
                   "non-finite value(s)"),
    "batchnorm-variance-negative": (lambda f: _weights(f, lambda s: s[_first(s, "running_var")].fill_(-1.0)),
                                    "negative BatchNorm variance"),
    "temperature-subnormal": (lambda f: _op(f, temperature=5e-324), "'temperature' must be a number from 0.001"),
    "temperature-huge": (lambda f: _op(f, temperature=1e300), "'temperature' must be a number from 0.001"),
    "task-disagrees": (lambda f: _op(f, task="multilabel"), "says task multilabel but preprocessing.json says binary"),
    "activation-disagrees": (lambda f: _op(f, probabilities="sigmoid(logits / temperature)"),
                             "needs softmax; the files do not belong together"),
    "classes-disagree": (lambda f: _op(f, class_names=["b", "a"]), "says class_names"),
}


@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf", "'nan'"])
def test_a_space_value_that_is_not_finite_is_refused(value, tmp_path):
    space = tmp_path / "space.yaml"
    space.write_text(f"name: s\narch: {{block: [simple], stages: [2], base_width: [4]}}\ntrain: {{lr: [{value}]}}\n")
    result, db = queue(tmp_path, "--space", space)
    refused(result, "train.lr[0]: must be", db)


@pytest.mark.parametrize("case", NON_FINITE, ids=list(NON_FINITE))
def test_an_exported_model_that_cannot_give_a_number_is_refused(case, tmp_path):
    make, expect = NON_FINITE[case]
    folder = _export(tmp_path / "m")
    make(folder)
    result, out = _predict(folder)
    refused(result, expect, out)


def test_an_image_with_nan_pixels_gets_no_prediction(tmp_path):
    from PIL import Image

    folder = _export(tmp_path / "m")
    pixels = np.random.default_rng(0).random((16, 16)).astype(np.float32)
    pixels[3, 4] = np.nan
    Image.fromarray(pixels, mode="F").save(tmp_path / "nan.tif")
    result = invoke("predict", folder, tmp_path / "x.png", tmp_path / "nan.tif", "--cam-out", tmp_path / "cams")
    refused(result, "nan.tif': it holds 1 non-finite pixel value(s)", tmp_path / "cams")


def test_predict_runs_in_bounded_batches_and_a_late_failure_leaves_no_overlay(tmp_path, monkeypatch):
    load = importlib.import_module("nas_med.export.load")  # (the package's ``load`` is a function)

    folder = _export(tmp_path / "m")
    monkeypatch.setattr(load, "PREDICT_BATCH", 2)
    seen = []
    real = load.normalise
    monkeypatch.setattr(load, "normalise", lambda x, pre: (seen.append(len(x)), real(x, pre))[1])
    images = [tmp_path / "x.png"] * 5
    result = invoke("predict", folder, *images, "--json")
    assert result.exit_code == 0, result.output
    assert seen == [2, 2, 1] and len(json.loads(result.stdout)) == 5
    (tmp_path / "broken.png").write_bytes(b"not an image")
    result = invoke("predict", folder, *images, tmp_path / "broken.png", "--cam-out", tmp_path / "cams")
    refused(result, "broken.png", tmp_path / "cams")


def test_non_finite_outputs_are_refused_whatever_their_cause(tmp_path, monkeypatch):
    load = importlib.import_module("nas_med.export.load")  # (the package's ``load`` is a function)

    folder = _export(tmp_path / "m")
    real = load._load

    def nan_model(path):
        model, spec = real(path)
        model.register_forward_hook(lambda m, i, o: o * float("nan"))
        return model, spec

    monkeypatch.setattr(load, "_load", nan_model)
    result = invoke("predict", folder, tmp_path / "x.png")
    refused(result, "gives non-finite outputs (NaN or infinity) for image")
    assert torch.isfinite(real(folder)[0](torch.zeros(1, 1, 16, 16))).all()


# --- training whose numbers go non-finite ---------------------------------------------------------------------

def test_predictions_that_go_non_finite_under_a_finite_loss_fail_the_run():
    from nas_med.data.types import Split
    from nas_med.train import DeviceSplit, Normalizer, TrainingFailed, evaluate

    images = torch.randint(0, 256, (6, 1, 8, 8), dtype=torch.uint8)
    split = DeviceSplit(Split(images, torch.tensor([0, 1, 0, 1, 0, 1])), torch.device("cpu"), False)

    class Inf(torch.nn.Module):  # logits +inf for one class: softmax NaN, while a loss can still read finite
        def forward(self, x):
            out = torch.zeros(len(x), 2)
            out[:, 0] = float("inf")
            return out

    with pytest.raises(TrainingFailed, match="non-finite predictions .* for 6 of 6 images"):
        evaluate(Inf(), split, Normalizer(images), "binary", lambda logits, y: torch.tensor(0.5))
    from nas_med.train import predict_probs  # the test split of a retraining / an export

    with pytest.raises(TrainingFailed, match="non-finite predictions .* for 6 of 6 images"):
        predict_probs(Inf(), images, Normalizer(images), False)


def test_an_export_whose_final_recipe_cannot_train_is_one_line_and_writes_nothing(tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("search:\n  space: tiny\n  size: 16\n  epochs: 1\nfinal:\n  epochs: 2\n  lr: 1e30\n")
    url = f"sqlite:///{tmp_path}/e.db"
    result = invoke("search", "--recipe", recipe, "--storage", url, "--study", "e", "--trials", 1, "--cam-images",
                    4, "--pruner", "none", "--quiet")
    assert result.exit_code == 0, result.output
    result = invoke("export", "--study", "e", "--storage", url, "--out", tmp_path / "model", "--seeds", 1,
                    "--bootstrap", 10, "--cam-images", 4)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert lines[0].startswith("study e: dataset synthetic")  # the header, the run that failed, then one error
    # the teacher first (distillation is settled by default), then one line per variant of its settling round (they
    # train together: nas_med.fused), then the error
    assert [line.split(":")[0] for line in lines[1:-1]] == ["teacher", "settle", "settle"] and "seed" in lines[2]
    assert lines[-1].startswith("Error: export: training failed (non-finite training loss (nan) at epoch 0)")
    assert not (tmp_path / "model").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".model")]


# --- group files, class folders, export folders -------------------------------------------------------------------

def _images(root: Path, names=("no", "yes"), n: int = 12) -> Path:
    from PIL import Image

    for c, name in enumerate(names):
        folder = root / (name if isinstance(name, str) else os.fsdecode(name))
        folder.mkdir(parents=True, exist_ok=True)
        for k in range(n):
            pixels = np.random.default_rng(100 * c + k).integers(0, 256, (8, 8), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / f"{k}.png")
    return root


GROUP_CSVS = {
    "latin-1": ("filename,group\nyes/0.png,p1\nno/1.png,Jos\xe9\n".encode("latin-1"), "is not UTF-8 text (byte 0xe9"),
    "file-in-two-groups": (b"filename,group\nyes/0.png,p1\nyes/0.png,p2\n", "puts 'yes/0.png' in two groups, 'p1' and 'p2'"),
    "empty-group": (b"filename,group\nyes/0.png,\n", "line 2: an empty group (for 'yes/0.png')"),
    "no-filename": (b"filename,group\n,p1\n", "line 2: no filename (group 'p1')"),
}


@pytest.mark.parametrize("case", GROUP_CSVS, ids=list(GROUP_CSVS))
@pytest.mark.parametrize("command", ["search", "datasets"])
def test_a_bad_group_csv_is_one_line_in_every_command_that_takes_it(case, command, tmp_path):
    text, expect = GROUP_CSVS[case]
    (tmp_path / "groups.csv").write_bytes(text)
    folder = _images(tmp_path / "imgs")
    if command == "search":
        result, db = queue(tmp_path, "--dataset", f"folder:{folder}", "--group-csv", tmp_path / "groups.csv")
    else:
        result, db = invoke("datasets", "show", f"folder:{folder}", "--group-csv", tmp_path / "groups.csv"), None
    refused(result, expect, *([db] if db else []))


def test_search_splits_by_a_group_csv_and_stores_it(tmp_path):
    folder = _images(tmp_path / "imgs")
    rows = ["filename,group"] + [f"{c}/{k}.png,p{k % 6}" for c in ("no", "yes") for k in range(12)]
    (tmp_path / "g.csv").write_text("\n".join(rows) + "\n")
    result, db = queue(tmp_path, "--dataset", f"folder:{folder}", "--group-csv", tmp_path / "g.csv",
                       "--split-ratios", "0.5,0.25,0.25")
    assert result.exit_code == 0, result.output
    from nas_med.search.records import CONFIG, load_study_data

    study = optuna.load_study(study_name="f", storage=f"sqlite:///{db}")
    stored = study.user_attrs[CONFIG]
    assert stored["group_csv"] == str(tmp_path / "g.csv") and stored["split_ratios"] == [0.5, 0.25, 0.25]
    data = load_study_data(study)  # export, confirm and workers split the same way
    assert [len(s) for s in (data.train, data.val, data.test)] == [12, 8, 4]
    result, _ = queue(tmp_path, "--dataset", f"folder:{folder}")
    refused(result, "split_ratios: stored [0.5, 0.25, 0.25], given None")


def test_a_class_folder_whose_name_is_not_utf8_is_refused_before_anything_runs(tmp_path):
    folder = _images(tmp_path / "imgs", names=("no", b"ye\xe9s"))
    result, db = queue(tmp_path, "--dataset", f"folder:{folder}")
    refused(result, "class folder 'ye\\xe9s' in", db)
    assert "is not UTF-8 text" in result.stderr


def test_export_force_replaces_only_an_export_folder(tmp_path, tiny_study):
    study, config = tiny_study
    out = tmp_path / "notes"
    out.mkdir()
    (out / "thesis.tex").write_text("mine")
    (out / "data").mkdir()
    result = invoke("export", "--study", study.study_name, "--storage", config.storage, "--out", out, "--force",
                    "--seeds", 1)
    refused(result, "is not an exported model folder (it holds data/, thesis.tex); --force replaces only an export")
    assert (out / "thesis.tex").read_text() == "mine" and (out / "data").is_dir()


# --- storages that are gone, race or tear ---------------------------------------------------------------------

@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:", "sqlite:///x.db?mode=memory&cache=shared"])
def test_an_in_memory_storage_is_refused_and_leaves_nothing(url, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke("search", "--storage", url, "--study", "m", "--trials", 1, "--workers", 0, *TINY)
    refused(result, "is an in-memory database")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache"] or not any(
        p.name != "cache" for p in tmp_path.iterdir())


def test_two_searches_started_at_once_on_a_new_sqlite_file_both_start(tmp_path):
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path}/new.db"
    args = [sys.executable, "-m", "nas_med.cli.main", "search", "--storage", url, "--trials", "1", "--workers",
            "0", *TINY]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    runs = [subprocess.Popen([*args, "--study", name], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True) for name in ("a", "b")]
    outputs = [run.communicate(timeout=300) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    assert sorted(s.study_name for s in optuna.get_all_study_summaries(url)) == ["a", "b"]


def _journal(tmp_path: Path) -> Path:
    path = tmp_path / "j.log"
    result = invoke("search", "--storage", path, "--study", "j", "--trials", 1, "--workers", 0, *TINY)
    assert result.exit_code == 0, result.output
    return path


def test_a_journal_whose_last_record_is_torn_is_repaired_with_a_warning(tmp_path, caplog):
    path = _journal(tmp_path)
    whole = path.read_bytes()
    path.write_bytes(whole + b'{"op_code": 5, "worker_id": "x", "trial_id": 0, "user_att')
    result = invoke("search", "--storage", path, "--study", "j", "--trials", 2, "--workers", 0, *TINY)
    assert result.exit_code == 0, result.output
    assert "removed its last record, cut off mid-write (57 bytes" in caplog.text and str(path) in caplog.text
    assert path.read_bytes().startswith(whole) and path.read_bytes().endswith(b"\n")
    study = optuna.load_study(study_name="j", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(path))))
    assert len(study.trials) == 2


def test_a_journal_torn_inside_is_refused_naming_the_file_and_line(tmp_path):
    path = _journal(tmp_path)
    lines = path.read_bytes().splitlines(keepends=True)
    lines.insert(2, b'{"op_code": 5, "worker_id"\n')
    path.write_bytes(b"".join(lines))
    for args in (("front", "--study", "j"), ("search", "--study", "j", "--trials", 2, "--workers", 0, *TINY)):
        result = invoke(*args, "--storage", path)
        refused(result, f"journal storage '{path}' is corrupt at line 3")


# --- a full disk: one line naming the path, nothing partial left ---------------------------------------------------

def _enospc(path="") -> OSError:
    import errno

    return OSError(errno.ENOSPC, "No space left on device", *([str(path)] if path else []))


def test_a_full_disk_during_export_is_one_line_naming_out_and_leaves_nothing(tiny_study, tmp_path, monkeypatch):
    from nas_med.errors import UserError
    from nas_med.export import export_study

    study, _ = tiny_study
    real = Path.write_bytes

    def write_bytes(self, data):
        if self.name == "model.onnx":
            raise _enospc()
        return real(self, data)

    monkeypatch.setattr(Path, "write_bytes", write_bytes)
    from nas_med.data import synthetic

    data = synthetic.load(size=16, n_train=128, n_val=64, n_test=100)
    out = tmp_path / "deep" / "model"
    with pytest.raises(UserError, match=r"cannot write --out '.*model': No space left on device; nothing was "
                                        r"written \(the partial folder was removed\)"):
        export_study(study, out, seeds=1, n_bootstrap=20, data=data, cam_images=4)
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_while_writing_cam_overlays_leaves_none(tmp_path, monkeypatch):
    from PIL import Image

    folder = _export(tmp_path / "m")
    real, calls = Image.Image.save, []

    def save(self, fp, *args, **kwargs):
        if str(fp).endswith(".cam.png"):
            calls.append(fp)
            if len(calls) == 3:
                Path(fp).write_bytes(b"\x89PNG partial")
                raise _enospc(fp)
        return real(self, fp, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", save)
    for k in range(4):
        (tmp_path / f"i{k}.png").write_bytes((tmp_path / "x.png").read_bytes())
    result = invoke("predict", folder, *sorted(tmp_path.glob("i*.png")), "--cam-out", tmp_path / "out" / "cams")
    refused(result, f"cannot write the CAM overlay '{tmp_path / 'out' / 'cams'}/i2.cam.png': No space left",
            tmp_path / "out")


@pytest.mark.parametrize("kind", ["journal", "sqlite"])
def test_a_full_disk_while_creating_a_study_is_one_line_naming_the_storage_and_leaves_no_file(kind, tmp_path,
                                                                                             monkeypatch):
    if kind == "journal":
        from optuna.storages.journal import JournalFileBackend

        def append_logs(self, logs):
            raise _enospc()

        monkeypatch.setattr(JournalFileBackend, "append_logs", append_logs)
        url, path = str(tmp_path / "new" / "j.log"), tmp_path / "new" / "j.log"
    else:
        from test_faults_content import _with_pragma

        _with_pragma(monkeypatch, "PRAGMA max_page_count = 1")  # (raised to the schema's pages: no growth)
        url, path = f"sqlite:///{tmp_path}/new/s.db", tmp_path / "new" / "s.db"
    result = invoke("search", "--storage", url, "--study", "full", "--trials", 400, "--workers", 0, *TINY)
    refused(result, f"cannot use storage '{url}': its disk is full")
    assert not path.exists() and [p.name for p in path.parent.iterdir()] == []


def test_a_relative_folder_dataset_is_stored_absolute_and_the_study_named_as_given(tmp_path, monkeypatch):
    from nas_med.search.records import CONFIG

    _images(tmp_path / "imgs")
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path}/f.db"
    args = ("search", "--storage", url, "--dataset", "folder:imgs", "--workers", 0, *TINY)
    result = invoke(*args, "--trials", 1)
    assert result.exit_code == 0, result.output
    study = optuna.load_study(study_name="folder-imgs-16px", storage=url)
    assert study.user_attrs[CONFIG]["dataset"] == f"folder:{tmp_path / 'imgs'}"
    config = dict(study.user_attrs[CONFIG], dataset="folder:imgs")
    study.set_user_attr(CONFIG, config)  # as stored before paths were made absolute: it still resumes
    result = invoke(*args, "--trials", 2)
    assert result.exit_code == 0, result.output
    assert len(optuna.load_study(study_name="folder-imgs-16px", storage=url).trials) == 2

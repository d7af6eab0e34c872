"""Shared fixtures: the ../shared data folder, service requirements, and one small finished study."""
from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads OpenMP: worker processes share 2 cores

import pytest  # noqa: E402
import torch  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
BREASTMNIST = SHARED / "data" / "breastmnist"
IN_CI = os.environ.get("NAS_MED_REQUIRE_SERVICES") == "1"

torch.set_num_threads(2)
warnings.filterwarnings("ignore", module="optuna")


def need(condition: bool, reason: str) -> None:
    """Skip (on a user's machine) or fail (in CI, where .ci/run provides every service) when unmet."""
    if not condition:
        if IN_CI:
            pytest.fail(f"required in CI: {reason}")
        pytest.skip(reason)


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """Own data cache (never the user's ~/.cache) and one torch thread (tiny tensors: more threads only contend)."""
    monkeypatch.setenv("NAS_MED_CACHE", str(tmp_path / "cache"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield tmp_path / "cache"
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def breastmnist_root() -> Path:
    need(BREASTMNIST.is_dir(), f"real MedMNIST files not found at {BREASTMNIST} (../shared is absent in a user's clone)")
    return BREASTMNIST


@pytest.fixture(scope="session")
def postgres_url() -> str:
    url = os.environ.get("NAS_MED_TEST_POSTGRES_URL")
    need(bool(url), "NAS_MED_TEST_POSTGRES_URL is not set (.ci/run starts a PostgreSQL server and sets it)")
    return url


@pytest.fixture(scope="session")
def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    need(path is not None, "headless Chromium is not installed (.ci/run installs Debian's chromium)")
    return path


@pytest.fixture(scope="session")
def tiny_study(tmp_path_factory):
    """A finished search on synthetic data (tiny space, 16 px): 5 queued trials + a minicnn baseline.

    Shared by the front, export, report and dashboard tests; treat it as read-only.
    """
    from nas_med.search import SearchConfig, search

    folder = tmp_path_factory.mktemp("tiny-study")
    config = SearchConfig(dataset="synthetic", size=16, space="tiny", trials=5, epochs=2, study="tiny",
                          storage=f"sqlite:///{folder}/nas-med.db", cam_images=8, baselines=("minicnn",),
                          pruner="none", quiet=True)
    study = search(config)
    return study, config


@pytest.fixture(scope="session")
def breast_minicnn_export(breastmnist_root, tmp_path_factory):
    """A 2-epoch minicnn on BreastMNIST exported the way `export` writes it, calibrated out-of-fold (3 folds), with
    made-up subgroups (sex alternating, site b the last 6 test images): (folder, dataset, HeldOut). Shared by the conformal and evaluate tests; treat the folder as read-only."""
    import torch

    from nas_med.arch import baseline_spec
    from nas_med.crossfit import out_of_fold
    from nas_med.data import load_dataset
    from nas_med.export.write import write_export
    from nas_med.final.retrain import retrain_and_test
    from nas_med.train import TrainConfig

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    data = load_dataset("breastmnist", data_root=breastmnist_root, download=False)
    spec = baseline_spec("minicnn", 1, 2, 28)
    cfg = TrainConfig(epochs=2, batch_size=64, lr=2e-3, device="cpu", seed=0)
    report = retrain_and_test(spec, data, cfg, seeds=(0,), n_bootstrap=50, keep_model=True)
    held = out_of_fold(spec, data, cfg, 3)
    from nas_med.export.subgroups import read_metadata

    out = tmp_path_factory.mktemp("breast-export") / "model"
    out.mkdir()
    meta = out.parent / "metadata.csv"  # BreastMNIST has no files: rows by index into the test split
    meta.write_text("index,sex,site\n" + "".join(f"{i},{'F' if i % 2 else 'M'},{'a' if i < 150 else 'b'}\n"
                                                  for i in range(len(data.test))))
    write_export(out, report, data, cam_images=2, held_out=held,
                 subgroups=read_metadata(meta, None, len(data.test)))
    torch.set_num_threads(threads)
    return out, data, held

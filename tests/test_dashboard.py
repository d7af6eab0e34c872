"""``nas-med dashboard``: serves the study JSON with the four objective names, the CAM grids as PNG artifacts and
a page that renders in headless Chromium; bad storage or a taken port are one-line errors."""
from __future__ import annotations

import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import optuna
import pytest
from click.testing import CliRunner
from PIL import Image, ImageStat

from nas_med.cli.main import cli
from nas_med.dashboard import CHOICE_PLOT, describe, mark_choice, open_dashboard
from nas_med.errors import UserError
from nas_med.search import records

OBJECTIVES = ["auc", "params", "epoch_seconds", "cam_quality"]
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, timeout: float = 10) -> tuple[str, bytes]:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.headers.get("Content-Type", ""), r.read()


def _nas_med() -> list[str]:
    script = Path(sys.executable).with_name("nas-med")
    return [str(script)] if script.exists() else [sys.executable, "-c", "from nas_med.cli.main import main; main()"]


@pytest.fixture(scope="module")
def server(tiny_study, tmp_path_factory):
    """``nas-med dashboard`` on a copy of the tiny study's storage (its choice marked, as `search` and `confirm`
    do), in a subprocess on a free loopback port."""
    _, config = tiny_study
    copy = tmp_path_factory.mktemp("dashboard-study") / "study"
    shutil.copytree(Path(config.storage[len("sqlite:///"):]).parent, copy)  # the storage and its artifacts
    storage = f"sqlite:///{copy}/nas-med.db"
    assert mark_choice(optuna.load_study(study_name="tiny", storage=storage)) is not None
    log = tmp_path_factory.mktemp("dashboard") / "out.txt"
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    with log.open("w") as out:
        proc = subprocess.Popen(_nas_med() + ["dashboard", "--storage", storage, "--port", str(port),
                                              "--no-browser"], stdout=out, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                _get(f"{base}/api/meta", timeout=2)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"the dashboard did not answer (exit {proc.poll()}): {log.read_text()}")
                time.sleep(0.3)
        yield base, log
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def study_json(server, tiny_study) -> dict:
    base, _ = server
    _, body = _get(f"{base}/api/studies")
    studies = {s["study_name"]: s["study_id"] for s in json.loads(body)["study_summaries"]}
    assert "tiny" in studies, studies
    _, body = _get(f"{base}/api/studies/{studies['tiny']}")
    return {"id": studies["tiny"], **json.loads(body)}


def test_prints_loopback_url(server) -> None:
    base, log = server
    assert f"{base}/dashboard" in log.read_text()


def test_study_json_names_the_four_objectives(study_json) -> None:
    assert study_json["objective_names"] == OBJECTIVES
    assert study_json["directions"] == ["maximize", "minimize", "minimize", "maximize"]
    assert study_json["best_trials"], "the Pareto front is empty"


def test_completed_trials_serve_their_cam_grid(server, study_json) -> None:
    base, _ = server
    _, meta = _get(f"{base}/api/meta")
    assert json.loads(meta)["artifact_is_available"] is True
    done = [t for t in study_json["trials"] if t["state"] == "Complete"]
    assert done
    for trial in done[:2]:
        attrs = {a["key"]: a["value"] for a in trial["user_attrs"]}
        by_id = {a["artifact_id"]: a for a in trial["artifacts"]}
        assert set(by_id) == {attrs["cam_artifact"], attrs["curve_artifact"]}  # CAM grid, learning curves
        artifact = by_id[attrs["cam_artifact"]]
        assert artifact["filename"] == f"cam-grid-trial-{trial['number']}.png"
        kind, png = _get(f"{base}/artifacts/{study_json['id']}/{trial['trial_id']}/{artifact['artifact_id']}")
        assert kind == "image/png"
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        width, height = Image.open(io.BytesIO(png)).size
        assert width == 8 * 16 * 8 and height > 2 * 16 * 8  # 8 images of 16 px, tiles of 128, a caption band
        assert attrs["summary"] in trial["note"]["body"]


def test_study_list_names_the_four_objectives(server) -> None:
    base, _ = server
    _, body = _get(f"{base}/api/studies")
    listed = {s["study_name"]: s for s in json.loads(body)["study_summaries"]}
    assert listed["tiny"]["directions"] == ["maximize auc", "minimize params", "minimize epoch_seconds",
                                            "maximize cam_quality"]


def test_the_study_page_marks_the_choice_on_a_pareto_plot(study_json) -> None:
    plots = {p["id"]: json.loads(p["graph_object"]) for p in study_json["plotly_graph_objects"]}
    figure = plots[CHOICE_PLOT]
    chosen = next(t for t in figure["data"] if t["name"].startswith("★ minimalist choice"))
    marked = next(a["value"] for a in study_json["user_attrs"] if a["key"] == records.MARKED_CHOICE)
    number = json.loads(marked)["trial"]
    assert chosen["name"] == f"★ minimalist choice (trial {number})" and chosen["marker"]["symbol"] == "star"
    trial = next(t for t in study_json["trials"] if t["number"] == number)
    assert chosen["y"] == [trial["values"][0]] and chosen["x"] == [trial["values"][1]]
    front = next(t for t in figure["data"] if t["name"] == "Pareto front")
    assert len(front["x"]) == len(study_json["best_trials"]) - sum(  # the front of candidates (no baselines)
        any(a["key"] == records.KIND and a["value"] == records.BASELINE_KIND for a in t["user_attrs"]) for t in study_json["best_trials"])


def _chromium(chromium: str, tmp: Path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp / f"profile-{len(list(tmp.iterdir()))}"
    profile.mkdir()
    return subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.chromium
def test_page_renders_in_headless_chromium(server, study_json, chromium, tmp_path) -> None:
    base, _ = server
    # the React app lists the study once its JavaScript has fetched /api/studies
    dom = _chromium(chromium, tmp_path, "--virtual-time-budget=8000", "--dump-dom", f"{base}/dashboard").stdout
    assert "tiny" in dom and f'href="/dashboard/studies/{study_json["id"]}"' in dom, dom[-2000:]
    # a trial's page shows its note and its CAM grid as an <img> served from /artifacts/...
    trial = next(t for t in study_json["trials"] if t["state"] == "Complete")
    page = f"{base}/dashboard/studies/{study_json['id']}/trials?numbers={trial['number']}"
    dom = _chromium(chromium, tmp_path, "--virtual-time-budget=8000", "--dump-dom", page).stdout
    cam = next(a for a in trial["artifacts"] if a["filename"].startswith("cam-grid"))
    assert f'src="/artifacts/{study_json["id"]}/{trial["trial_id"]}/{cam["artifact_id"]}"' in dom
    assert "Architecture:" in dom
    shot = tmp_path / "trial.png"
    _chromium(chromium, tmp_path, f"--screenshot={shot}", "--window-size=1280,1600", "--virtual-time-budget=8000",
              "--hide-scrollbars", page)
    image = Image.open(shot).convert("RGB")
    assert image.size == (1280, 1600)
    assert ImageStat.Stat(image.convert("L")).stddev[0] > 10  # not a blank page
    assert len(image.getcolors(1 << 20) or ()) > 100           # rendered text and widgets, not an empty frame
    # the page fits the window: below the title bar nothing but the page's light background reaches the right
    # edge (a note line, the CAM grid or an attribute wider than the window would be cut there)
    edge = image.convert("L").crop((image.width - 12, 70, image.width, image.height))
    assert edge.getextrema()[0] > 200, "something runs past the right edge of the trial page"
    # the study list names the objectives, and every study it links opens
    dom = _chromium(chromium, tmp_path, "--virtual-time-budget=8000", "--dump-dom", f"{base}/dashboard").stdout
    assert "MAXIMIZE AUC, MINIMIZE PARAMS, MINIMIZE EPOCH_SECONDS, MAXIMIZE CAM_QUALITY" in dom, dom[-2000:]


@pytest.fixture()
def storage_with_internal(tmp_path) -> str:
    """Two studies, each with its internal pruning study: ids 1 and 3 listed, 2 and 4 hidden."""
    url = f"sqlite:///{tmp_path}/internal.db"
    for name in ("real", "other"):
        optuna.create_study(study_name=name, storage=url, directions=["maximize", "minimize"])
        optuna.create_study(study_name=f"{name}:pruning", storage=url, direction="maximize")
    return url


def test_internal_pruning_studies_are_not_listed(storage_with_internal) -> None:
    board = open_dashboard(storage_with_internal, port=0).start()
    base = f"http://127.0.0.1:{board.port}"
    try:
        _, body = _get(f"{base}/api/studies")
        listed = {s["study_id"]: s["study_name"] for s in json.loads(body)["study_summaries"]}
        assert listed == {1: "real", 3: "other"}
        for study_id, name in listed.items():  # every listed study answers
            _, body = _get(f"{base}/api/studies/{study_id}")
            assert json.loads(body)["name"] == name
        for hidden, owner, owner_id in ((2, "real", 1), (4, "other", 3)):  # a skipped id says whose it is
            with pytest.raises(urllib.error.HTTPError) as err:
                _get(f"{base}/api/studies/{hidden}")
            assert err.value.code == 404
            reason = json.loads(err.value.read())["reason"]
            assert f"study_id={hidden} is internal" in reason and f"'{owner}' is study {owner_id}" in reason
    finally:
        board.stop()


@pytest.mark.chromium
def test_the_study_list_in_chromium_has_no_internal_study(storage_with_internal, chromium, tmp_path) -> None:
    board = open_dashboard(storage_with_internal, port=0).start()
    try:
        dom = _chromium(chromium, tmp_path, "--virtual-time-budget=8000", "--dump-dom",
                        f"http://127.0.0.1:{board.port}/dashboard").stdout
        links = sorted(set(re.findall(r'href="(/dashboard/studies/\d+)"', dom)))
        assert links == ["/dashboard/studies/1", "/dashboard/studies/3"], dom[-2000:]
        assert ":pruning" not in dom
        for link, name in zip(links, ("real", "other")):  # every listed study's page opens
            page = _chromium(chromium, tmp_path, "--virtual-time-budget=8000", "--dump-dom",
                             f"http://127.0.0.1:{board.port}{link}").stdout
            assert f"{name} (id={link.rsplit('/', 1)[1]})" in page and "not found" not in page, page[-2000:]
    finally:
        board.stop()


@pytest.fixture()
def empty_storage(tmp_path) -> str:
    url = f"sqlite:///{tmp_path}/studies.db"
    optuna.create_study(study_name="empty", storage=url)
    return url


def test_library_server_and_taken_port(empty_storage) -> None:
    board = open_dashboard(empty_storage, port=0).start()
    try:
        assert board.host == "127.0.0.1"
        _, body = _get(f"http://127.0.0.1:{board.port}/api/studies")
        assert [s["study_name"] for s in json.loads(body)["study_summaries"]] == ["empty"]
        with pytest.raises(UserError, match=f"port {board.port} on 127.0.0.1 is already in use"):
            open_dashboard(empty_storage, port=board.port)
        result = CliRunner().invoke(cli, ["dashboard", "--storage", empty_storage, "--port", str(board.port),
                                          "--no-browser"])
        assert result.exit_code == 2 and "already in use" in result.output and "Traceback" not in result.output
    finally:
        board.stop()


def test_missing_storage_is_a_user_error_and_writes_nothing(tmp_path) -> None:
    url = f"sqlite:///{tmp_path}/nowhere/nas-med.db"
    result = CliRunner().invoke(cli, ["dashboard", "--storage", url, "--no-browser", "--port", "0"])
    assert result.exit_code == 2
    assert result.output.startswith("Error: no study storage at") and "Traceback" not in result.output
    assert not (tmp_path / "nowhere").exists()
    result = CliRunner().invoke(cli, ["dashboard", "--storage", "studies.db", "--no-browser"])
    assert result.exit_code == 2 and "neither a SQLAlchemy URL" in result.output


def test_password_is_masked() -> None:
    line = describe("postgresql+psycopg://nas:s3cret@db:5432/nas", "http://127.0.0.1:8080/dashboard")
    assert "s3cret" not in line and "nas:***@db" in line and "http://127.0.0.1:8080/dashboard" in line
    result = CliRunner().invoke(cli, ["dashboard", "--storage", "postgresql+psycopg://nas:s3cret@127.0.0.1:1/nas",
                                      "--no-browser"])
    assert result.exit_code == 2 and "s3cret" not in result.output and "***" in result.output

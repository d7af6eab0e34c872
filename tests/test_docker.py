"""docker/: what can be checked without a Docker engine.

There is no Docker engine on the test machines, so the images are NOT built here. These tests check that the
Dockerfiles parse into valid instructions (continuations, exec-form JSON, sources that exist in the build
context, pyproject's torch pins), that the compose file is valid YAML with the services the README names, and
that every ``nas-med`` command and option the files use exists in the CLI (parsed by click). The compose
``init`` command is also run for real against a temporary sqlite file, standing in for PostgreSQL.
"""
from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import click
import optuna
import pytest
import yaml
from click.testing import CliRunner
from optuna.trial import TrialState

from nas_med.cli.main import cli

REPO = Path(__file__).resolve().parents[1]
DOCKER = REPO / "docker"
DOCKERFILES = ("Dockerfile.cpu", "Dockerfile.cuda")
INSTRUCTIONS = {"FROM", "RUN", "CMD", "LABEL", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT", "VOLUME", "USER",
                "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL"}


def dockerfile(name: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs: comments and parser directives dropped, continuation lines joined."""
    out, pending = [], ""
    for raw in (DOCKER / name).read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):  # a comment inside a continued instruction
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        word, _, rest = line.partition(" ")
        out.append((word, rest.strip()))
    assert not pending, f"{name} ends inside a continued line"
    return out


def pyproject() -> dict:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    return tomllib.loads((REPO / "pyproject.toml").read_text())


@pytest.mark.parametrize("name", DOCKERFILES)
def test_dockerfile_instructions_are_valid(name):
    steps = dockerfile(name)
    words = [w for w, _ in steps]
    assert set(words) <= INSTRUCTIONS, set(words) - INSTRUCTIONS
    assert all(w.isupper() for w in words)
    assert set(words[: words.index("FROM")]) <= {"ARG"}  # only ARGs may come before the first FROM
    for word, args in steps:
        assert args, f"{word} without arguments"
        if word in ("ENTRYPOINT", "CMD", "VOLUME"):
            assert isinstance(json.loads(args), list), f"{word} is not exec-form JSON"
    assert json.loads(dict(steps)["ENTRYPOINT"]) == ["nas-med"]


@pytest.mark.parametrize("name", DOCKERFILES)
def test_dockerfile_copies_what_exists_and_pins_torch_as_pyproject(name):
    steps = dockerfile(name)
    for word, args in steps:
        if word in ("COPY", "ADD"):
            parts = [p for p in shlex.split(args) if not p.startswith("--")]
            for source in parts[:-1]:
                assert (REPO / source).exists(), f"{name}: COPY source '{source}' is not in the build context"
    pins = {d.split("==")[0]: d for d in pyproject()["project"]["dependencies"] if "==" in d}
    text = " ".join(args for word, args in steps if word == "RUN")
    for package in ("torch", "torchvision"):
        assert pins[package] in text.split(), f"{name} does not install {pins[package]}"
    extras = re.findall(r'-e "\.\[(\w+)\]"', text)
    assert extras and set(extras) <= set(pyproject()["project"]["optional-dependencies"])
    ignore = (DOCKER / f"{name}.dockerignore").read_text().splitlines()
    assert "*" in ignore and all(f"!{p}" in ignore for p in ("pyproject.toml", "README.md", "nas_med/"))


def test_cuda_image_starts_from_a_cuda_base():
    steps = dockerfile("Dockerfile.cuda")
    args = dict(a.split("=", 1) for w, a in steps if w == "ARG" and "=" in a)
    base = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], dict(steps)["FROM"])
    assert base.startswith(("nvidia/cuda:", "pytorch/pytorch:")), base


def interpolate(value):
    """Compose's ``${VAR:-default}`` with every default taken (each variable must have one)."""
    if isinstance(value, str):
        def default(m):
            assert m.group(2) is not None, f"${{{m.group(1)}}} has no default"
            return m.group(2)
        return re.sub(r"\$\{(\w+)(?::-([^}]*))?\}", default, value)
    if isinstance(value, list):
        return [interpolate(v) for v in value]
    if isinstance(value, dict):
        return {k: interpolate(v) for k, v in value.items()}
    return value


@pytest.fixture(scope="module")
def compose() -> dict:
    return interpolate(yaml.safe_load((DOCKER / "docker-compose.yml").read_text()))


def test_compose_has_postgres_dashboard_init_and_a_scalable_worker(compose):
    services = compose["services"]
    assert {"db", "dashboard", "worker", "init"} <= set(services)
    assert services["db"]["image"].startswith("postgres:") and "healthcheck" in services["db"]
    worker = services["worker"]
    assert "container_name" not in worker and "ports" not in worker  # `--scale worker=N` needs both absent
    assert services["dashboard"]["ports"] == ["127.0.0.1:8080:8080"]  # the host's loopback unless widened
    for name, service in services.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on a missing service {dependency}"
        for volume in service.get("volumes", []):
            assert volume.split(":")[0] in compose["volumes"], volume
        if "build" in service:
            assert (DOCKER / service["build"]["context"] / service["build"]["dockerfile"]).is_file()


def nas_med_commands(compose: dict) -> dict[str, list[str]]:
    return {name: [str(a) for a in s["command"]] for name, s in compose["services"].items()
            if s.get("image", "").startswith("nas-med")}


def test_every_nas_med_command_and_option_exists_in_the_cli(compose):
    commands = nas_med_commands(compose)
    assert set(commands) >= {"init", "worker", "dashboard", "worker-gpu"}
    for name, args in commands.items():
        ctx = cli.make_context("nas-med", list(args), resilient_parsing=True)
        command = cli.get_command(ctx, args[0])
        assert command is not None, f"service {name}: no `nas-med {args[0]}` command"
        command.make_context(args[0], list(args[1:]))  # raises on an unknown option or a bad value
    for name in DOCKERFILES:  # the images' default command
        cli.make_context("nas-med", json.loads(dict(dockerfile(name))["CMD"]), resilient_parsing=True)
    with pytest.raises(click.UsageError):  # the check does catch a wrong option
        cli.get_command(None, "worker").make_context("worker", ["--study", "s", "--storage", "x", "--gpu", "0"])


def test_every_service_reaches_the_database_by_its_service_name(compose):
    urls = {a for args in nas_med_commands(compose).values() for a in args if "://" in a}
    assert len(urls) == 1
    url = urls.pop()
    assert url.startswith("postgresql+psycopg://") and "@db:5432/" in url
    db = compose["services"]["db"]["environment"]
    assert f"//{db['POSTGRES_USER']}:{db['POSTGRES_PASSWORD']}@" in url and url.endswith(f"/{db['POSTGRES_DB']}")


def test_the_init_command_creates_and_queues_without_running(compose, tmp_path, monkeypatch):
    monkeypatch.setenv("NAS_MED_CACHE", str(tmp_path / "cache"))
    args = nas_med_commands(compose)["init"]
    url = f"sqlite:///{tmp_path}/init.db"
    args[args.index("--storage") + 1] = url  # stand-in for PostgreSQL
    result = CliRunner().invoke(cli, args + ["--size", "16", "--space", "tiny"])
    assert result.exit_code == 0, result.output
    study = optuna.load_study(study_name=args[args.index("--study") + 1], storage=url)
    trials = int(args[args.index("--trials") + 1])
    assert [t.state for t in study.trials] == [TrialState.WAITING] * trials
    assert "nas-med worker --study demo" in result.stdout

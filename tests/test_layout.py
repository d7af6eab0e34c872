"""The package's shape: no import cycle (module-level and function-level imports), small modules, trial-record
keys written in one place, and ``nas_med.load`` without Optuna."""
from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "nas_med"
MAX_LINES = 350


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """module -> the nas_med modules it imports anywhere in its file (top level, functions, classes)."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        package = name if is_package else name.rpartition(".")[0]
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                edges.update(a.name for a in node.names if a.name.split(".")[0] == "nas_med")
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[: len(base) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                if target.split(".")[0] != "nas_med":
                    continue
                subs = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in modules]
                edges.update(subs if subs else [target])
        graph[name] = {e for e in edges if e in modules and e != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_import_graph_has_no_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(REPO)))
def test_modules_are_small(path):
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{lines} lines (at most {MAX_LINES})"


USER_ATTR_LITERAL = re.compile(r"""(user_attrs\s*(\.get\(|\[)|set_user_attr\()\s*["']""")


def test_trial_record_keys_are_string_literals_only_in_records():
    offenders = [f"{p.relative_to(REPO)}:{i}" for p in PACKAGE.rglob("*.py") if p.name != "records.py"
                 for i, line in enumerate(p.read_text().splitlines(), 1) if USER_ATTR_LITERAL.search(line)]
    assert not offenders, offenders


def test_loading_an_exported_folder_does_not_import_optuna(tmp_path):
    from safetensors.torch import save_file

    from nas_med.arch import baseline_spec, build

    spec = baseline_spec("minicnn", 1, 2, 32)
    (tmp_path / "spec.json").write_text(spec.to_json())
    save_file({k: v.contiguous() for k, v in build(spec).state_dict().items()}, str(tmp_path / "model.safetensors"))
    code = ("import sys, nas_med\n"
            f"model = nas_med.load({str(tmp_path)!r})\n"
            "assert not model.training\n"
            "assert 'optuna' not in sys.modules, sorted(k for k in sys.modules if 'optuna' in k)\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path)


def test_the_architecture_page_names_files_that_exist():
    page = (REPO / "docs" / "ARCHITECTURE.md").read_text()
    named = set(re.findall(r"`((?:nas_med|tests|benchmarks)/[\w/]+\.(?:py|md))", page))
    assert len(named) >= 10
    assert not [p for p in named if not (REPO / p).is_file()]

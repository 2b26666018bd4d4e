"""The import direction: core <- stages <- application, no library importing a CLI, no cycles.

The layer and CLI rules are import-linter contracts in pyproject.toml (`lint-imports` checks
them); import-linter has no rule against two modules importing each other, so the cycle check is
here, on the same import graph (grimp's, which counts imports inside functions too).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("core", "assets", "flowgen", "planner", "sim", "real", "chord")


def import_cycles(imports: dict[str, set[str]]) -> list[list[str]]:
    """Every group of modules that import each other, directly or through others (Tarjan's SCCs)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(root: str) -> None:
        # Iterative depth-first search: the graph has a few hundred modules, but no recursion limit.
        work = [(root, iter(sorted(imports.get(root, ()))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            v, children = work[-1]
            for w in children:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(imports.get(w, ())))))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    group = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        group.append(w)
                        if w == v:
                            break
                    if len(group) > 1 or v in imports.get(v, ()):
                        cycles.append(sorted(group))

    for m in sorted(imports):
        if m not in index:
            visit(m)
    return cycles


def test_the_cycle_finder_finds_direct_and_indirect_cycles():
    assert import_cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []
    assert import_cycles({"a": {"b"}, "b": {"a"}}) == [["a", "b"]]
    found = import_cycles({"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": {"e"}, "e": {"d"}})
    assert sorted(found) == [["a", "b", "c"], ["d", "e"]]


def test_no_two_modules_import_each_other():
    grimp = pytest.importorskip("grimp")  # import-linter's graph builder (the dev extra)
    graph = grimp.build_graph(*PACKAGES, include_external_packages=False)
    imports = {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    assert len(imports) > 100  # the whole project was read, not an empty graph
    assert import_cycles(imports) == []


def _lint_imports(cwd: Path) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("lint-imports")
    if not exe.is_file():
        pytest.skip("import-linter is not installed (pip install -e '.[dev]')")
    env = {"PYTHONPATH": str(cwd), "PATH": "/usr/bin:/bin"}
    return subprocess.run([str(exe), "--no-cache"], cwd=cwd, env=env, capture_output=True, text=True)


def test_the_import_contracts_hold():
    result = _lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 2 kept, 0 broken." in result.stdout, result.stdout


def test_the_contracts_catch_an_upward_import_inside_a_function(tmp_path: Path):
    """The same contracts on a toy tree whose core imports the application lazily: refused."""
    config = (ROOT / "pyproject.toml").read_text()
    section = config[config.index("[tool.importlinter]") : config.index("[tool.ruff]")]
    (tmp_path / "pyproject.toml").write_text(section)
    for pkg in PACKAGES:
        (tmp_path / pkg).mkdir()
        (tmp_path / pkg / "__init__.py").write_text("")
    for sub in ("cli", "viz"):  # the forbidden contract names these
        (tmp_path / "chord" / sub).mkdir()
        (tmp_path / "chord" / sub / "__init__.py").write_text("")
    for mod in ("run", "bench_full"):
        (tmp_path / "chord" / f"{mod}.py").write_text("")
    (tmp_path / "core" / "scene.py").write_text(
        textwrap.dedent(
            """
            def load():
                from chord import cli  # upward, and a CLI module
                return cli
            """
        )
    )
    result = _lint_imports(tmp_path)
    assert result.returncode == 1, result.stdout
    assert "Contracts: 0 kept, 2 broken." in result.stdout, result.stdout
    assert "core.scene -> chord" in result.stdout

"""The import rule of docs/ARCHITECTURE.md, checked on the source with ``ast`` (nothing is imported).

- no import cycle among the project's own modules (function-level and type-only imports count);
- the core (``orchestrator`` outside ``operator/`` and ``compat/``, the client included) never imports
  operator tooling or the compatibility facade;
- ``workers/`` imports only the core (and itself);
- nothing outside ``tests/`` imports ``tests``.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from tests.support.source import parse_module

REPO = Path(__file__).resolve().parents[1]
PROJECT = ("orchestrator", "workers", "media_mcp", "upstream_sim", "tests", "bench")
OUTSIDE_CORE = ("orchestrator.operator", "orchestrator.compat")


def _modules() -> dict[str, Path]:
    found = {}
    paths = [path for root in PROJECT for path in REPO.glob(f"{root}/**/*.py")] + [REPO / "beat_schedule.py"]
    for path in paths:
        parts = path.relative_to(REPO).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _within(name: str, *prefixes: str) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes)


def import_graph() -> dict[str, set[str]]:
    """Each project module -> the project modules it imports (the longest existing module name)."""
    modules = _modules()

    def known(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(parse_module(path)):
            if isinstance(node, ast.Import):
                targets.update(filter(None, (known(alias.name) for alias in node.names)))
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package
                    for _ in range(node.level - 1):
                        anchor = anchor.rpartition(".")[0]
                    base = f"{anchor}.{base}" if base else anchor
                for alias in node.names:  # ``from pkg import module`` imports the module
                    target = known(f"{base}.{alias.name}") or known(base)
                    if target:
                        targets.add(target)
        targets.discard(name)
        graph[name] = targets
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_project_module_imports_another_that_imports_it_back() -> None:
    assert cycles(import_graph()) == []


def test_the_core_and_the_client_never_import_operator_tooling_or_the_compat_facade() -> None:
    graph = import_graph()
    core = [name for name in graph if _within(name, "orchestrator") and not _within(name, *OUTSIDE_CORE)]
    assert "orchestrator.client" in core
    bad = {name: sorted(t for t in graph[name] if _within(t, *OUTSIDE_CORE)) for name in core}
    assert {name: targets for name, targets in bad.items() if targets} == {}


def test_workers_import_only_the_core() -> None:
    graph = import_graph()
    bad = {name: sorted(t for t in targets if not _within(t, "workers", "orchestrator") or _within(t, *OUTSIDE_CORE))
           for name, targets in graph.items() if _within(name, "workers")}
    assert {name: targets for name, targets in bad.items() if targets} == {}


def test_nothing_outside_the_tests_imports_the_tests() -> None:
    graph = import_graph()
    bad = {name: sorted(t for t in targets if _within(t, "tests"))
           for name, targets in graph.items() if not _within(name, "tests")}
    assert {name: targets for name, targets in bad.items() if targets} == {}


def test_every_invariant_a_comment_cites_is_numbered_in_the_architecture_page_it_points_at() -> None:
    """A comment saying "invariant N" names docs/ARCHITECTURE.md on the same line, and N is listed there."""
    invariants = (REPO / "docs" / "ARCHITECTURE.md").read_text().split("## Invariants")[1]
    numbered = set(re.findall(r"^(\d+)\. \*\*", invariants, re.M))
    assert numbered == {str(n) for n in range(1, 13)}
    cited = re.compile(r"\binvariants? (\d+)", re.I)
    wrong = []
    for root in ("orchestrator", "workers", "media_mcp", "upstream_sim"):
        for path in REPO.glob(f"{root}/**/*"):
            if path.suffix not in (".py", ".lua"):
                continue
            for number, line in enumerate(path.read_text().splitlines(), 1):
                for found in cited.finditer(line):
                    if "docs/ARCHITECTURE.md" not in line or found.group(1) not in numbered:
                        wrong.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert wrong == []


def test_a_cycle_is_found_when_two_modules_import_each_other() -> None:
    assert cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]

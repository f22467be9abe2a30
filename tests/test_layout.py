"""The package's layout stays what docs/architecture.md describes: no import cycles, a short top level,
no logic in ``__init__.py``, and the CLI's shared behaviour set once.

The import graph is read from the source (``ast``), not by importing: every ``import`` counts, at
module level or inside a function (a lazy import that closes a cycle still couples two modules), except
those under ``if TYPE_CHECKING:``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import typer

PACKAGE = Path(__file__).resolve().parents[1] / "nsync_bench"
MAX_TOP_LEVEL_MODULES = 10
REGISTRY_INITS = {"methods/__init__.py"}  # the method registry lives in its package's __init__ (documented)


def _modules() -> dict[str, tuple[Path, bool]]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        found[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return found


def _targets(module: str, is_package: bool, node: ast.Import | ast.ImportFrom, known: set[str]) -> set[str]:
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = module.split(".") if is_package else module.split(".")[:-1]
        if node.level:
            base = base[: len(base) - (node.level - 1)]
            prefix = ".".join(base) + ("." + node.module if node.module else "")
        else:
            prefix = node.module or ""
        names = [prefix] + [f"{prefix}.{alias.name}" for alias in node.names]
    targets = set()
    for name in names:
        parts = name.split(".")
        # Importing a.b.c runs the __init__ of a and a.b first.
        targets.update(".".join(parts[:i]) for i in range(2, len(parts) + 1) if ".".join(parts[:i]) in known)
    return targets


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    graph: dict[str, set[str]] = {}
    for name, (path, is_package) in modules.items():
        edges: set[str] = set()

        def visit(node: ast.AST, module: str = name, package: bool = is_package, out: set[str] = edges) -> None:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                    continue
                if isinstance(child, (ast.Import, ast.ImportFrom)):
                    out.update(_targets(module, package, child, known))
                visit(child)

        visit(ast.parse(path.read_text(encoding="utf-8")))
        # A module's own parent packages are already initialising when it runs: not an edge.
        graph[name] = {t for t in edges if t != name and not name.startswith(t + ".")}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_cycle_finder_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_graph_sees_lazy_and_parent_imports(tmp_path):
    graph = import_graph()
    # pipeline.runner imports models.loading inside a function; importing a submodule runs its package.
    assert "nsync_bench.models.loading" in graph["nsync_bench.pipeline.runner"]
    assert "nsync_bench.cli" in graph["nsync_bench.cli.main"] or "nsync_bench.cli.app" in graph["nsync_bench.cli.main"]


def test_no_import_cycles():
    assert cycles(import_graph()) == []


def test_the_top_level_is_short():
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(top) <= MAX_TOP_LEVEL_MODULES, top


def test_every_folder_of_code_is_a_package():
    for folder in PACKAGE.rglob("*"):
        if folder.is_dir() and any(folder.glob("*.py")):
            assert (folder / "__init__.py").is_file(), f"{folder} has modules but no __init__.py"


def test_no_logic_in_package_inits():
    for init in PACKAGE.rglob("__init__.py"):
        relative = init.relative_to(PACKAGE).as_posix()
        if relative in REGISTRY_INITS:
            continue
        for node in ast.parse(init.read_text(encoding="utf-8")).body:
            allowed = isinstance(node, (ast.Import, ast.ImportFrom)) or (
                isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)  # the docstring
            ) or (isinstance(node, ast.Assign) and all(
                isinstance(t, ast.Name) and t.id in ("__all__", "__version__") for t in node.targets))
            assert allowed, f"{relative}:{node.lineno}: {ast.unparse(node)[:60]!r} is logic; move it to a module"


def _commands(group, prefix: tuple[str, ...] = ()):
    # Typer vendors its own Click, so groups are recognised by what they have, not by class.
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            yield from _commands(command, (*prefix, name))
        else:
            yield (*prefix, name), command


def test_every_command_has_verbose_and_one_line_errors(monkeypatch):
    from nsync_bench.cli.main import app

    commands = list(_commands(typer.main.get_group(app)))
    assert len(commands) >= 20
    for path, command in commands:
        options = {opt for param in command.params for opt in getattr(param, "opts", [])}
        assert {"--verbose", "-v"} <= options, f"{' '.join(path)} lacks --verbose"
        # Every callback goes through the teaching-error wrapper (set once, in cli/app.py).
        assert getattr(command.callback, "__wrapped__", None) is not None, " ".join(path)


@pytest.mark.parametrize("group", ["data"])
def test_the_style_is_positional_in_every_data_verb(group):
    from nsync_bench.cli.main import app

    for path, command in _commands(typer.main.get_group(app)):
        if path[0] != group:
            continue
        names = {param.name: param for param in command.params}
        if "style" in names:
            assert names["style"].param_type_name == "argument", f"{' '.join(path)}: style should be an argument"

"""The package's layout stays what docs/architecture.md describes: packages in a declared layer order,
each importing only the layers below it; no import cycles; a short top level; no logic in
``__init__.py``; and the CLI's shared behaviour set once.

The import graph is read from the source (``ast``), not by importing. Every edge counts: module-level
imports, imports inside functions (a lazy import that closes a cycle still couples two modules),
imports under ``if TYPE_CHECKING:`` (a type is a dependency too), and registry strings such as
``"nsync_bench.methods.lora:Lora"`` that ``importlib`` resolves at run time.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import typer

PACKAGE = Path(__file__).resolve().parents[1] / "nsync_bench"
MAX_TOP_LEVEL_MODULES = 10
REGISTRY_INITS = {"methods/__init__.py"}  # the method registry lives in its package's __init__ (documented)
# A string naming a module of the package, optionally with ":attribute" (a lazy registry row).
REGISTRY_STRING = re.compile(r"^(nsync_bench(?:\.[A-Za-z_][A-Za-z0-9_]*)+)(?::[A-Za-z_][A-Za-z0-9_.]*)?$")


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

        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                edges.update(_targets(name, is_package, node, known))
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                match = REGISTRY_STRING.match(node.value)
                if match and match.group(1) in known:
                    edges.update(_targets(name, is_package, ast.Import(names=[ast.alias(match.group(1))]), known))
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


# The layers, bottom to top (docs/architecture.md, "Layers"): a module may import its own package and
# any layer below it, never one above. "" is the top-level utilities (paths, io, errors, ...).
LAYERS = ("", "stats", "config", "models", "data", "tracking", "training", "methods", "metrics", "export",
          "pipeline", "sweep", "report", "world", "perf", "checks", "cli")


def layer(module: str) -> str:
    parts = module.split(".")
    if parts[1:] == ["__main__"]:
        return "cli"  # the `python -m nsync_bench` entry point is the command line
    return parts[1] if len(parts) > 1 and (PACKAGE / parts[1]).is_dir() else ""


def upward_edges(graph: dict[str, set[str]]) -> set[tuple[str, str]]:
    rank = {name: i for i, name in enumerate(LAYERS)}
    return {(source, target) for source, targets in graph.items() for target in targets
            if rank[layer(target)] > rank[layer(source)]}


def test_every_package_has_a_layer():
    packages = {path.parent.name for path in PACKAGE.glob("*/__init__.py")}
    assert packages | {""} == set(LAYERS), "add the new package to LAYERS and to docs/architecture.md"


def test_the_layer_check_sees_an_upward_import():
    graph = {"nsync_bench.config.run_config": {"nsync_bench.pipeline.runner", "nsync_bench.errors"},
             "nsync_bench.cli.run": {"nsync_bench.pipeline.runner"}}
    assert upward_edges(graph) == {("nsync_bench.config.run_config", "nsync_bench.pipeline.runner")}


def test_imports_point_down_the_layers():
    found = sorted(upward_edges(import_graph()))
    assert not found, f"imports that climb a layer (docs/architecture.md, Layers): {found}"


def test_the_docs_list_the_layers_in_order():
    text = (PACKAGE.parent / "docs" / "architecture.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| (\d+) \| `([a-z_]*)/?` ", text, flags=re.M)
    named = [name for _, name in sorted(rows, key=lambda row: int(row[0]))]
    assert named == [name or "" for name in LAYERS], named


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


def private_imports_across_packages() -> list[str]:
    """``from nsync_bench.<pkg>.<mod> import _name`` where the importer lives in another package: a private name
    is its package's to change, so a caller elsewhere should use a public one."""
    found = []
    for name, (path, _) in _modules().items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("nsync_bench."):
                if layer(node.module) == layer(name):
                    continue  # its own package may use it
                found += [f"{name} imports {node.module}.{a.name}" for a in node.names if a.name.startswith("_")
                          and not a.name.startswith("__")]
    return found


def test_no_private_names_cross_a_package():
    assert private_imports_across_packages() == []


def test_the_private_name_check_sees_one(tmp_path, monkeypatch):
    package = tmp_path / "nsync_bench"
    for sub in ("report", "pipeline"):
        (package / sub).mkdir(parents=True)
    (package / "report" / "x.py").write_text("from nsync_bench.pipeline.runner import _hidden\n")
    (package / "report" / "y.py").write_text("from nsync_bench.report.x import _fine\n")
    monkeypatch.setattr(__import__(__name__), "PACKAGE", package)
    assert private_imports_across_packages() == ["nsync_bench.report.x imports nsync_bench.pipeline.runner._hidden"]

"""The package's shape, pinned: no import cycles, imports that point down the pipeline, no Keras
where a backend process or a Dask worker starts, and modules and functions of a readable size.

Every bnlab/**/*.py is parsed with `ast`; imports inside functions count (they run too), so a
cycle that only shows up at call time is still a cycle. The stages, lowest first, are
`STAGES`; a module may import its own stage and any lower one, never a higher one.
"""

from __future__ import annotations

import ast
import dataclasses
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "bnlab"

# The pipeline, lowest first (see STYLE.md): a stage imports only its own stage and those before it.
STAGES = ("common", "models", "config", "data", "training", "execution", "runs", "analysis", "report",
          "bench", "cli")
# Top-level modules that are no folder: `python -m bnlab` runs the command line, on top of everything.
TOP_LEVEL_STAGES = {"bnlab.__main__": "cli"}
# The root package: its public API is imported lazily (PEP 562), by name, never by an import
# statement, and a lower module may read its `__version__`; it belongs to no stage.
ROOT = "bnlab"

MAX_MODULE_LINES = 300
MAX_FUNCTION_LINES = 40  # the docstring excluded
LONG_MARK = "# long:"  # `# long: <reason>` on a def line or the line above exempts the function

# Modules a backend process, a Dask worker or the CLI imports before it sets KERAS_BACKEND: none
# of them may import a Keras backend, or the backend choice comes too late.
KERAS_FREE = (
    "bnlab", "bnlab.execution.executors", "bnlab.execution.backend_processes", "bnlab.execution.remote_trial",
    "bnlab.execution.dask_executor", "bnlab.execution.outcomes", "bnlab.models.variants", "bnlab.config",
    "bnlab.common.startup", "bnlab.runs.progress",
)
KERAS_MODULES = ("keras", "tensorflow", "jax", "torch")

# Stage packages whose `__init__` may import their own modules at import time: config's
# `__init__` is its public face (`from bnlab.config import load_config`), and cli's holds `main`,
# which the console script names (`bnlab.cli:main`). The others import nothing, so importing
# one module of a stage never imports its neighbours (or Keras).
EAGER_PACKAGES = {"bnlab.config", "bnlab.cli"}

# ---- Allow-lists of known offenders, each being fixed by the owner of its file ---------------
# An entry is a known violation whose owner is removing it; once it is gone, delete the entry
# (the stale-entry test below fails until then, so the lists only ever shrink). None at present.

# Cycles, each as the set of its modules: frozenset({"bnlab.x.a", "bnlab.x.b"}).
PENDING_CYCLES: set[frozenset[str]] = set()
# (importer, imported) pairs that point up the pipeline.
PENDING_UPWARD_IMPORTS: set[tuple[str, str]] = set()
# Modules ("bnlab/x/y.py") and functions ("bnlab/x/y.py::Class.function") over the limits.
PENDING_SPLITS: set[str] = set()


@dataclasses.dataclass(frozen=True)
class Import:
    """One import statement of a bnlab module, resolved to the bnlab module it loads."""

    source: str  # the importing module
    target: str  # the imported bnlab module (a package means its __init__)
    line: int
    type_only: bool  # under `if TYPE_CHECKING:`, never executed


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def modules() -> dict[str, Path]:
    """Every bnlab module by dotted name (a package by its own name, for its `__init__.py`)."""
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def resolve(name: str) -> str:
    """The longest known module `name` starts with (`bnlab.x.Name` -> `bnlab.x`)."""
    known = modules()
    while name not in known and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


def _absolute(node: ast.ImportFrom, source: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = source.split(".") if is_package else source.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _targets(node, source: str, is_package: bool) -> list[str]:
    """The bnlab modules one import statement loads."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = _absolute(node, source, is_package)
        # `from bnlab.x import y` loads the module bnlab.x.y when there is one, else bnlab.x
        names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules() else base for alias in node.names]
    return sorted({resolve(name) for name in names if name == ROOT or name.startswith(ROOT + ".")})


@cache
def imports_of(source: str) -> tuple[Import, ...]:
    """Every bnlab import anywhere in a module, function bodies included."""
    path = modules()[source]
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found = []

    def visit(node, type_only: bool) -> None:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            targets = _targets(node, source, path.name == "__init__.py")
            found.extend(Import(source, target, node.lineno, type_only) for target in targets if target != source)
        for child in ast.iter_child_nodes(node):
            visit(child, type_only or (isinstance(node, ast.If) and _is_type_checking(node) and child in node.body))

    visit(tree, False)
    return tuple(found)


def import_graph() -> dict[str, list[Import]]:
    """Module -> the imports it executes (type-only ones left out: they never run)."""
    return {name: [i for i in imports_of(name) if not i.type_only] for name in modules()}


def find_cycles(graph: dict[str, list[Import]]) -> list[list[Import]]:
    """One cycle per back edge of a depth-first search, each as the imports along it."""
    state: dict[str, str] = {}  # "open" while on the DFS path, "done" after
    path: list[Import] = []
    cycles = []

    def visit(name: str) -> None:
        state[name] = "open"
        for edge in graph.get(name, []):
            if state.get(edge.target) == "open":
                start = next(i for i, step in enumerate(path + [edge]) if step.source == edge.target)
                cycles.append((path + [edge])[start:])
            elif edge.target not in state:
                path.append(edge)
                visit(edge.target)
                path.pop()
        state[name] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name)
    return cycles


def cycle_text(cycle: list[Import]) -> str:
    return " -> ".join(f"{step.source} (line {step.line})" for step in cycle) + f" -> {cycle[0].source}"


def stage_of(name: str) -> str | None:
    """The pipeline stage of a module; None for the root package, which belongs to none."""
    if name == ROOT:
        return None
    if name in TOP_LEVEL_STAGES:
        return TOP_LEVEL_STAGES[name]
    return name.split(".")[1]


def upward_imports() -> list[Import]:
    found = []
    for name in modules():
        for edge in imports_of(name):
            source, target = stage_of(edge.source), stage_of(edge.target)
            if source is not None and target is not None and STAGES.index(target) > STAGES.index(source):
                found.append(edge)
    return found


# ---- (a) no import cycles -------------------------------------------------------------------


def test_the_import_graph_is_read():
    # the parser must see what is there, or every check below passes vacuously
    assert "bnlab.runs.experiment" in modules() and "bnlab.cli" in modules()
    targets = {edge.target for edge in imports_of("bnlab.runs.experiment")}
    assert {"bnlab.execution.executors", "bnlab.runs.folder", "bnlab.config"} <= targets
    function_level = [edge for edge in imports_of("bnlab.execution.executors") if edge.target == "bnlab.training.trial"]
    assert function_level, "imports inside functions must count"


def test_no_import_cycles():
    cycles = find_cycles(import_graph())
    new = [cycle for cycle in cycles if frozenset(step.source for step in cycle) not in PENDING_CYCLES]
    assert not new, "Import cycles (a module must not import, even inside a function, one that imports it):\n" + (
        "\n".join(cycle_text(cycle) for cycle in new))


# ---- (b) imports point down the pipeline ------------------------------------------------------


def test_every_module_belongs_to_a_declared_stage():
    unknown = sorted(name for name in modules() if name != ROOT and stage_of(name) not in STAGES)
    assert not unknown, f"Expected every module in one of the stages {STAGES}; received modules outside: {unknown}"


def test_lower_stages_never_import_higher_ones():
    found = [edge for edge in upward_imports() if (edge.source, edge.target) not in PENDING_UPWARD_IMPORTS]
    lines = [f"{e.source} ({stage_of(e.source)}) imports {e.target} ({stage_of(e.target)}, higher stage) "
             f"at line {e.line}" for e in found]
    assert not lines, f"Imports against the stage order {' < '.join(STAGES)}:\n" + "\n".join(lines)


def test_stage_packages_import_nothing_at_import_time():
    eager = []
    for name, path in modules().items():
        if path.name == "__init__.py" and name != ROOT and name not in EAGER_PACKAGES:
            eager += [f"{name} imports {edge.target} (line {edge.line})" for edge in imports_of(name)]
    assert not eager, "Expected stage packages' __init__ to import none of their modules:\n" + "\n".join(eager)


# ---- (c) no Keras where a worker process starts -----------------------------------------------


@pytest.mark.parametrize("module", KERAS_FREE)
def test_module_imports_no_keras_backend(module):
    code = (f"import sys, bnlab, {module}; "
            f"print(' '.join(name for name in {KERAS_MODULES!r} if name in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          cwd=PACKAGE.parent)
    assert done.returncode == 0, done.stderr
    loaded = done.stdout.split()
    assert not loaded, (f"Expected `import {module}` to leave {', '.join(KERAS_MODULES)} unimported (a backend "
                        "process or a Dask worker imports it before setting KERAS_BACKEND); received "
                        f"{', '.join(loaded)} in sys.modules.")


# ---- (d) sizes --------------------------------------------------------------------------------


def _marked_long(lines: list[str], node) -> bool:
    first = min([node.lineno] + [decorator.lineno for decorator in node.decorator_list])
    candidates = {node.lineno, node.lineno - 1, first - 1}
    return any(1 <= n <= len(lines) and LONG_MARK in lines[n - 1] for n in candidates)


def _function_lines(node) -> int:
    """Lines from `def` to the last line of the body, less the docstring's."""
    total = node.end_lineno - node.lineno + 1
    first = node.body[0]
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        total -= first.end_lineno - first.lineno + 1
    return total


def _functions(tree: ast.AST, prefix: str = ""):
    """(qualified name, node) of every function and method, nested ones included."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield prefix + node.name, node
            yield from _functions(node, f"{prefix}{node.name}.")
        elif isinstance(node, ast.ClassDef):
            yield from _functions(node, f"{prefix}{node.name}.")
        else:
            yield from _functions(node, prefix)


def _module_marked_long(lines: list[str]) -> bool:
    """`# long: <reason>` on a line of its own before the module's first import."""
    for line in lines:
        if line.startswith(("import ", "from ")) and not line.startswith("from __future__"):
            return False
        if line.startswith(LONG_MARK):
            return True
    return False


def size_offenders() -> dict[str, str]:
    """"bnlab/x.py" or "bnlab/x.py::function" -> what is too long."""
    found = {}
    for path in modules().values():
        text = path.read_text(encoding="utf-8")
        lines = text.splitlines()
        where = path.relative_to(PACKAGE.parent).as_posix()
        if len(lines) > MAX_MODULE_LINES and not _module_marked_long(lines):
            found[where] = f"{len(lines)} lines (at most {MAX_MODULE_LINES})"
        for name, node in _functions(ast.parse(text, str(path))):
            length = _function_lines(node)
            if length > MAX_FUNCTION_LINES and not _marked_long(lines, node):
                found[f"{where}::{name}"] = f"{length} lines without its docstring (at most {MAX_FUNCTION_LINES})"
    return found


def test_modules_and_functions_are_short():
    offenders = {key: why for key, why in size_offenders().items() if key not in PENDING_SPLITS}
    assert not offenders, (
        "Split these into named helpers or modules, or mark a function that must stay whole with "
        f"`{LONG_MARK} <reason>` on its def line or the line above:\n"
        + "\n".join(f"{key}: {why}" for key, why in sorted(offenders.items())))


# ---- the allow-lists shrink -------------------------------------------------------------------


def test_pending_lists_name_only_current_offenders():
    cycles = {frozenset(step.source for step in cycle) for cycle in find_cycles(import_graph())}
    upward = {(edge.source, edge.target) for edge in upward_imports()}
    stale = [f"PENDING_CYCLES: {sorted(entry)}" for entry in PENDING_CYCLES - cycles]
    stale += [f"PENDING_UPWARD_IMPORTS: {entry}" for entry in PENDING_UPWARD_IMPORTS - upward]
    stale += [f"PENDING_SPLITS: {entry}" for entry in PENDING_SPLITS - set(size_offenders())]
    assert not stale, "Fixed, so remove from the allow-lists in tests/test_architecture.py:\n" + "\n".join(stale)

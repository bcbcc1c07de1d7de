"""The package layering of docs/architecture.md: no import of a later stage, no import cycle.

Every module under src/cnnkit is parsed with ``ast`` (imports at module level and inside
functions alike); each import of a ``cnnkit`` module is an edge between two modules. Run it alone
with ``python -m pytest -q tests/test_layering.py``.
"""
from __future__ import annotations

import ast
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

# The stage order (docs/architecture.md): a module may import its own stage or an earlier one.
STAGES: tuple[tuple[str, ...], ...] = (
    ("_checks", "_lazy", "errors"),        # argument checks, lazy package attributes, errors
    ("layers", "data", "augment"),         # layers; image sources and loaders; augmentations
    ("models",),                           # Sequential, spec strings, registry + zoo
    ("tasks",),                            # heads for boxes / masks, their losses and metrics
    ("run",),                              # the run folder: save / load a trained model
    ("inspect", "viz"),                    # summaries, receptive fields, pictures
    ("train",),                            # losses, optimizers, Trainer, the train() pipeline
    ("transfer_learning", "export", "serve", "report"),
    ("keras",),                            # Keras' names and compile / fit on top of train
    ("cli", "__main__", ""),               # the CLI, and the cnnkit package's own facade
)
STAGE_OF = {package: index for index, group in enumerate(STAGES) for package in group}

# An import inside a function must say why on its line: an optional extra or an import cost.
LAZY_MARKER = re.compile(r"#.*\b(optional extra|import cost):")

# Imports inside functions (of cnnkit or third-party modules) without a reason, in modules this
# change did not own (issue 14):
# (importing module, imported module). Remove an entry when its import moves to the top of its
# module or gets its marker; never add one.
KNOWN_UNMARKED: set[tuple[str, str]] = set()


@dataclass(frozen=True)
class Import:
    source: str   # importing module, e.g. "cnnkit.train.pipeline"
    target: str   # imported cnnkit module, e.g. "cnnkit.run.folder"
    line: int
    in_function: bool
    marked: bool

    def __str__(self) -> str:
        where = "inside a function" if self.in_function else "at module level"
        return f"{self.source}:{self.line} imports {self.target} ({where})"


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted((SRC / "cnnkit").rglob("*.py"))}


def package_of(module: str) -> str:
    """``cnnkit.train.pipeline`` -> ``train``; ``cnnkit`` itself -> ``""`` (the facade)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _resolve(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[:len(base) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def _targets(node: ast.AST, module: str, is_package: bool) -> list[str]:
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        origin = _resolve(node, module, is_package)
        # ``from cnnkit.train import run_folder`` imports the module cnnkit.train.run_folder
        names = [f"{origin}.{alias.name}" if f"{origin}.{alias.name}" in MODULES else origin
                 for alias in node.names]
    return names


def _imports_of(module: str, path: Path) -> list[Import]:
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    found: list[Import] = []

    def says_why(line: int) -> bool:
        return bool(LAZY_MARKER.search(lines[line - 1])) if line >= 1 else False

    def visit(node: ast.AST, in_function: bool) -> None:
        # The marker sits on the import's line or on a comment line just above it; the imports
        # that directly follow a marked one share its reason.
        block_marked = False
        for child in ast.iter_child_nodes(node):
            inside = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                       ast.Lambda))
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                above = lines[child.lineno - 2].strip() if child.lineno >= 2 else ""
                block_marked = (block_marked or says_why(child.lineno)
                                or (above.startswith("#") and says_why(child.lineno - 1)))
                for target in _targets(child, module, path.name == "__init__.py"):
                    found.append(Import(module, target, child.lineno, inside, block_marked))
            else:
                block_marked = False
            visit(child, inside)

    visit(ast.parse(text, filename=str(path)), False)
    return found


ALL_IMPORTS = [imp for module, path in MODULES.items() for imp in _imports_of(module, path)]
IMPORTS = [imp for imp in ALL_IMPORTS  # the imports of cnnkit modules
           if imp.target == "cnnkit" or imp.target.startswith("cnnkit.")]


def _strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm: the groups of modules that import each other (size > 1)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(graph) + 100))
    for node in sorted(graph):
        if node not in index:
            connect(node)
    return groups


def test_every_package_has_a_stage():
    packages = {package_of(module) for module in MODULES}
    assert packages - set(STAGE_OF) == set(), "add the new package to STAGES (and the docs)"


def test_no_module_imports_a_later_stage():
    offenders = [str(imp) for imp in IMPORTS
                 if STAGE_OF.get(package_of(imp.target), -1) > STAGE_OF[package_of(imp.source)]]
    assert offenders == [], "imports of a later stage:\n" + "\n".join(offenders)


def test_no_import_cycle():
    graph: dict[str, set[str]] = {}
    for imp in IMPORTS:
        if imp.target in MODULES and imp.target != imp.source:
            graph.setdefault(imp.source, set()).add(imp.target)
    cycles = _strongly_connected(graph)
    assert cycles == [], "modules that import each other:\n" + "\n".join(
        " <-> ".join(group) for group in cycles)


def test_imports_inside_functions_say_why():
    offenders = [str(imp) for imp in ALL_IMPORTS if imp.in_function and not imp.marked
                 and (imp.source, imp.target) not in KNOWN_UNMARKED]
    assert offenders == [], (
        "an import inside a function needs '# optional extra: <which>' or '# import cost: "
        "<what>' on its line (else move it to the top of the module):\n" + "\n".join(offenders))


def test_the_checks_see_the_imports_they_judge():
    """The parser finds both kinds of import (so an empty offender list means something)."""
    pipeline = [imp for imp in IMPORTS if imp.source == "cnnkit.train.pipeline"]
    assert any(imp.target == "cnnkit.run" and not imp.in_function for imp in pipeline)
    assert any(imp.target == "cnnkit.viz.curves" and imp.in_function for imp in pipeline)
    assert _strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [
        ["a", "b", "c"]]


def test_importing_the_models_loads_no_later_stage():
    later = ("train", "run", "export", "serve", "inspect", "viz", "cli", "keras",
             "transfer_learning")
    code = ("import sys, cnnkit.models; "
            "print(' '.join(sorted(m for m in sys.modules if m.startswith('cnnkit.'))))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True).stdout.split()
    assert "cnnkit.models.registry" in loaded
    assert [m for m in loaded if package_of(m) in later] == []

"""The project's import graph, read from the source (ast: every import, also inside functions), for
the architecture tests: which project modules a module pulls in, transitively."""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def module_file(module: str) -> Path | None:
    """``src.core.params`` -> src/core/params.py (or the package's __init__.py); None if absent."""
    base = REPO.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _package_chain(module: str) -> list[str]:
    """``src.core.params`` -> ["src", "src.core"]: the packages Python imports first."""
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


@cache
def direct_imports(module: str) -> frozenset[str]:
    """The project modules (``src...``) that ``module`` imports anywhere in its file."""
    path = module_file(module)
    tree = ast.parse(path.read_text(), str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            # `from src.core import params` imports src.core.params if that is a module
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        found |= {n for n in names if n.split(".")[0] == "src" and module_file(n)}
    return frozenset(found)


def closure(module: str) -> set[str]:
    """``module`` and every project module it imports, transitively, with their packages."""
    seen, todo = set(), [module]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        todo += [*direct_imports(current), *_package_chain(current)]
    return seen


def files_of(modules: set[str]) -> set[str]:
    """Repository-relative paths of the modules' files."""
    return {str(module_file(m).relative_to(REPO)) for m in modules}


def cycles(modules: list[str]) -> list[list[str]]:
    """Import cycles among ``modules`` (each as a path of module names), by depth-first search."""
    found, state, stack = [], {}, []

    def visit(m: str) -> None:
        state[m] = "open"
        stack.append(m)
        for n in sorted(direct_imports(m)):
            if state.get(n) == "open":
                found.append(stack[stack.index(n):] + [n])
            elif n not in state:
                visit(n)
        stack.pop()
        state[m] = "done"

    for m in modules:
        if m not in state:
            visit(m)
    return found


def project_modules() -> list[str]:
    """Every module under src/, dotted."""
    return sorted(".".join(p.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
                  for p in (REPO / "src").rglob("*.py"))

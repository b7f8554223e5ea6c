"""Every public module says what it exports: ``__all__`` exists, names only what the module has
(its own names, or ones it re-exports on purpose) and leaves out nothing it defines for others."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

from tests.support import ROOT

MODULES = sorted(
    path
    for pattern in ("jobs/*.py", "providers/*.py", "providers/*/*.py")
    for path in ROOT.glob(pattern)
    if path.name != "__init__.py" or "class " in path.read_text() or "def " in path.read_text()
)
SCRIPTS = [ROOT / name for name in ("enqueue.py", "worker.py", "batch.py")]


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def defined(path: Path) -> set[str]:
    """The public classes, functions and assignments at the module's top level."""
    names: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return {name for name in names if not name.startswith("_") and name not in {"log", "T"}}


@pytest.mark.parametrize("path", MODULES + SCRIPTS, ids=module_name)
def test_the_module_declares_what_it_exports(path: Path) -> None:
    module = importlib.import_module(module_name(path))
    exported = getattr(module, "__all__", None)
    assert exported is not None, f"{path.relative_to(ROOT)} has no __all__"
    assert all(hasattr(module, name) for name in exported), [n for n in exported if not hasattr(module, n)]
    missing = defined(path) - {"__all__"} - set(exported)
    assert not missing, f"{path.relative_to(ROOT)} defines but does not export {sorted(missing)}"

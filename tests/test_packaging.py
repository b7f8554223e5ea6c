"""`pip install .` (no extras, as the Dockerfile runs it) installs everything the three commands
import at start-up.  .ci/run also installs the package into a fresh venv and runs it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from importlib import metadata

from tests.support import ROOT

IMPORT_WITH_ONLY = """
import importlib.abc, json, sys
hidden = set(json.loads(sys.argv[1]))

class OnlyAllowed(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in hidden:
            raise ModuleNotFoundError(f"No module named {name!r} (not installed by pip install .)")
        return None

sys.meta_path.insert(0, OnlyAllowed())
import batch, enqueue, worker
"""


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(requirement: str) -> str:
    found = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    assert found, requirement
    return _normal(found.group(1))


def runtime_closure(requirements: list[str]) -> set[str]:
    """Distributions `pip install .` brings in: the dependencies and theirs, extras left out."""
    seen: set[str] = set()
    pending = [_requirement_name(r) for r in requirements]
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:  # not for this platform or Python: nothing to import
            continue
        for requirement in requires:
            if "extra ==" not in requirement.partition(";")[2]:
                pending.append(_requirement_name(requirement))
    return seen


def test_the_commands_import_with_only_runtime_dependencies() -> None:
    """The imports run with every installed module that `pip install .` would not bring hidden,
    so optional imports (``try: import hiredis``) fall back as in the image and hard ones fail."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    installed_by_pip = runtime_closure(project["dependencies"])
    hidden = {
        module
        for module, dists in metadata.packages_distributions().items()
        if not any(_normal(dist) in installed_by_pip for dist in dists)
    } - {"batch", "enqueue", "worker", "jobs", "providers"}
    assert "pytest" in hidden and "arq" not in hidden
    done = subprocess.run(
        [sys.executable, "-c", IMPORT_WITH_ONLY, json.dumps(sorted(hidden))],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]

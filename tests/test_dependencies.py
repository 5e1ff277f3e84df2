"""Every library the package imports is installed by ``pip install geoalign`` itself.

The test extras pull in more (stac-fastapi-pgstac brings cql2, for one), so a library imported by
geoalign but declared only through a test dependency passes every other test and breaks a user's
fresh install. This test walks the imports of the package's modules and checks that each
third-party one is a core requirement of geoalign or a requirement of one, at any depth.
"""

from __future__ import annotations

import ast
import re
import sys
from importlib.metadata import PackageNotFoundError, packages_distributions, requires

from support.data import REPO_ROOT

PACKAGE_FOLDERS = ("geoalign", "models", "datasets", "cli")
#: Imported only when present, each behind a guard that says how to install it.
OPTIONAL = {"planetary_computer"}


def _imported_modules() -> set[str]:
    names: set[str] = set()
    for folder in PACKAGE_FOLDERS:
        for path in (REPO_ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    names.update(alias.name.split(".")[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"geoalign", "__future__"} - OPTIONAL


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _core_closure() -> set[str]:
    """geoalign's requirements without extras, and theirs, recursively (normalised names)."""
    seen: set[str] = set()
    todo = ["geoalign"]
    while todo:
        name = todo.pop()
        try:
            lines = requires(name) or []
        except PackageNotFoundError:
            continue
        for line in lines:
            requirement, _, marker = line.partition(";")
            if "extra ==" in marker:
                continue
            dist = _normal(re.split(r"[\s\[<>=!~(]", requirement.strip(), maxsplit=1)[0])
            if dist not in seen:
                seen.add(dist)
                todo.append(dist)
    return seen


def test_every_imported_library_is_a_core_dependency() -> None:
    providers = packages_distributions()
    closure = _core_closure()
    missing = {}
    for module in sorted(_imported_modules()):
        dists = {_normal(d) for d in providers.get(module, [module])}
        if not dists & closure:
            missing[module] = sorted(dists)
    assert not missing, (
        f"imported by geoalign but not installed by its core dependencies: {missing}; add them "
        "to [project] dependencies in pyproject.toml (and to the README's dependency table)"
    )

"""The package imports one way (docs/architecture.md): no layer imports a layer above it.

Read from the source with ``ast`` (function-level imports included, so a cycle cannot hide in a
function body).
"""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "resnext_plugin"

#: Parts that import nothing of the package, which every part may import: the version and the
#: dependency checks.
BASE = {"version", "deps"}
#: Each part of the package, and the parts it may import (and :data:`BASE`). Anything else is a
#: violation.
ALLOWED = {
    "registry": set(),
    "version": set(),
    "deps": set(),
    "checkpoint": set(),
    "fileio": {"checkpoint"},
    "upstream_fixes": {"checkpoint", "fileio"},
    "models": {"registry", "checkpoint"},
    "complexity": {"models"},
    "convert": {"models", "checkpoint"},
    "export": {"models", "checkpoint", "registry"},
    "datasets": {"registry", "checkpoint"},
    "perf": set(),
    "paths": set(),
    "engine": {"registry", "checkpoint", "upstream_fixes", "models", "datasets", "perf"},
    "demo_data": {"registry", "datasets", "models", "checkpoint", "upstream_fixes"},
    "experiments": {"models", "complexity", "paths"},
    "compat": {"models", "registry"},
    "benchmark": {"models", "perf", "engine", "complexity", "demo_data", "upstream_fixes",
                  "registry", "datasets", "checkpoint", "export", "paths"},
    "cli": {"registry", "checkpoint", "upstream_fixes", "models", "complexity", "convert",
            "datasets", "perf", "engine", "demo_data", "experiments", "compat", "benchmark",
            "export", "paths"},
}


def part_of(path: Path) -> str:
    relative = path.relative_to(PACKAGE)
    return relative.parts[0].removesuffix(".py")


def imported_parts(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    depth = len(path.relative_to(PACKAGE).parts)  # 1 for resnext_plugin/x.py
    parts = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:  # relative: climb to the package root
                if node.level < depth:
                    continue  # inside its own part
                module = node.module or ""
                names = [module.split(".")[0]] if module else [a.name for a in node.names]
            elif (node.module or "").startswith("resnext_plugin."):
                names = [node.module.split(".")[1]]
            elif node.module == "resnext_plugin":
                names = [a.name for a in node.names]
            else:
                continue
            parts.update(names)
        elif isinstance(node, ast.Import):
            parts.update(a.name.split(".")[1] for a in node.names
                         if a.name.startswith("resnext_plugin."))
    return parts


def test_every_part_imports_only_the_layers_below_it():
    violations = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.parent == PACKAGE and path.name == "__init__.py":
            continue  # the package's own __init__ re-exports the models
        part = part_of(path)
        assert part in ALLOWED, f"{path}: part {part!r} is not in the layer table"
        for other in imported_parts(path) - {part}:
            if other in ALLOWED and other not in ALLOWED[part] | BASE:
                violations.append(f"{path.relative_to(PACKAGE.parent)} ({part}) imports {other}")
    assert not violations, "\n".join(violations)

"""The package metadata installs into a user's own stack: no exact pins, no framework forced (the
OpenMMLab frameworks come from upstream or OneDL under different distribution names), one
version string; every stack file of the Makefile names test paths that exist."""
from __future__ import annotations

import importlib.metadata
import re
import tomllib
from pathlib import Path

import pytest

import resnext_plugin

ROOT = Path(__file__).resolve().parents[2]
FRAMEWORKS = re.compile(r"^(onedl-)?(mmengine|mmcv|mmcv-lite|mmpretrain|mmdet|mmdetection)\b")


def requirement_name(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].strip().lower()


def test_pyproject_has_ranges_only_and_no_framework_in_the_core():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = project["dependencies"]
    extras = project["optional-dependencies"]
    for requirement in [*core, *(r for group in extras.values() for r in group)]:
        assert "==" not in requirement, requirement
    assert not [r for r in core if FRAMEWORKS.match(requirement_name(r))], core
    assert {"openmmlab", "openmmlab-lite", "onedl", "tests"} <= set(extras)
    assert "mmcv-lite" in map(requirement_name, extras["openmmlab-lite"])
    assert all(requirement_name(r).startswith("onedl-") for r in extras["onedl"])


def test_installed_metadata_matches_the_one_version_and_has_no_pin():
    try:
        dist = importlib.metadata.distribution("resnext_plugin")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("resnext_plugin is imported from the source tree, not installed")
    assert dist.version == resnext_plugin.__version__
    requires = dist.requires or []
    # (`extra == "onedl"` is an environment marker, not a pin)
    assert requires and not [r for r in requires if "==" in r.split(";")[0]], requires
    assert not [r for r in requires if "extra ==" not in r
                and FRAMEWORKS.match(requirement_name(r))], requires


def test_every_stack_file_pins_torch_and_names_existing_tests():
    stacks = sorted((ROOT / "requirements").glob("stack-*.txt"))
    assert {p.stem for p in stacks} >= {"stack-backbone", "stack-lite-cls", "stack-onedl"}
    for stack in stacks:
        text = stack.read_text()
        assert re.search(r"^torch==", text, re.M), stack.name
        tests = [t for line in re.findall(r"^# tests:(.*)$", text, re.M) for t in line.split()]
        assert tests, f"{stack.name} names no tests (`# tests:` lines)"
        missing = [t for t in tests if not (ROOT / t).exists()]
        assert not missing, f"{stack.name} names missing test paths {missing}"

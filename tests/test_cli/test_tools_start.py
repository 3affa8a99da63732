"""Every ``tools/*.py`` starts: ``--help`` exits 0 with a usage line, in a fresh interpreter.

The tools are thin wrappers over :mod:`resnext_plugin.cli`; a wrapper that imports a name the
package no longer has fails only when it is run, so each one is run here. The list is the glob
over ``tools/``, so a new tool is covered without editing this file. ``make gpu-check``'s own
command must stop at once, naming the missing GPU, where no CUDA device is visible.
"""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOOLS = sorted((ROOT / "tools").glob("*.py"))
SHELL_TOOLS = sorted((ROOT / "tools").glob("*.sh"))


def _run(command: list[str], timeout: float = 120, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          check=False, env={**os.environ, **env})


def test_the_glob_finds_the_tools():
    assert len(TOOLS) >= 10 and ROOT / "tools" / "gpu_check.py" in TOOLS


@pytest.mark.parametrize("tool", TOOLS, ids=[tool.name for tool in TOOLS])
def test_tool_help_starts(tool: Path):
    result = _run([sys.executable, str(tool), "--help"])
    assert result.returncode == 0, f"{tool.name} --help failed:\n{result.stderr[-3000:]}"
    assert result.stdout.lstrip().startswith("usage:"), result.stdout[:500]


@pytest.mark.parametrize("script", SHELL_TOOLS, ids=[script.name for script in SHELL_TOOLS])
def test_shell_tool_parses_and_names_a_python_tool_that_exists(script: Path):
    assert _run(["bash", "-n", str(script)]).returncode == 0
    named = set(re.findall(r"tools/(\w+\.py)", script.read_text()))
    missing = {name for name in named if not (ROOT / "tools" / name).exists()}
    assert not missing, f"{script.name} runs tools that do not exist: {sorted(missing)}"


def _make_recipe(target: str) -> list[str]:
    """The first command of ``target``'s recipe in the Makefile, ``$(PY)`` as this interpreter."""
    lines = (ROOT / "Makefile").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{target}:"))
    recipe = lines[start + 1]
    assert recipe.startswith("\t"), f"Makefile target {target!r} has no recipe"
    return shlex.split(recipe.strip().replace("$(PY)", shlex.quote(sys.executable)))


def test_make_gpu_check_without_cuda_stops_at_once_naming_the_gpu():
    command = _make_recipe("gpu-check")
    assert command[1:] == ["tools/gpu_check.py"], command
    doc = ROOT / "docs" / "benchmarks.md"
    before = doc.read_text(encoding="utf-8")
    # The GPU is hidden even where one exists; the time-out is the "at once": a step started
    # (the tests alone may take 140 s) would overrun it.
    result = _run(command, timeout=60, CUDA_VISIBLE_DEVICES="")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "needs a CUDA GPU" in result.stderr and "Nothing was run" in result.stderr
    assert "CUDA" in result.stderr.split("needs a CUDA GPU", 1)[1]  # says why: build or device
    assert result.stdout == ""  # no step announced
    assert doc.read_text(encoding="utf-8") == before

"""Every ``tools/*.py`` starts: ``--help`` exits 0 with a usage line, outside the test process.

The tools are thin wrappers over :mod:`resnext_plugin.cli`; a wrapper that imports a name the
package no longer has fails only when it is run, so each one is run here, as ``__main__``, with
``--help``. The list is the glob over ``tools/``, so a new tool is covered without editing this
file. The tools share one fresh interpreter (each starting on its own would import torch and the
OpenMMLab stack once per tool, minutes on two cores); each runs with its own ``sys.argv``,
output and exit status, and an exception in one is recorded against it. ``make gpu-check``'s own
command runs in its own interpreter and must stop at once, naming the missing GPU, where no CUDA
device is visible.
"""
from __future__ import annotations

import json
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

#: Runs every path in ``sys.argv[1:]`` with ``--help`` as ``__main__`` and writes
#: ``{path: [exit status, stdout, traceback]}`` to ``OUT`` (set in front of it).
_HELP_ALL = """
import contextlib, io, json, runpy, sys, traceback
results = {}
for path in sys.argv[1:]:
    out, code, error = io.StringIO(), None, ""
    sys.argv = [path, "--help"]
    try:
        with contextlib.redirect_stdout(out):
            runpy.run_path(path, run_name="__main__")
    except SystemExit as exit_:
        code = exit_.code
    except BaseException:
        error = traceback.format_exc()
    results[path] = [code, out.getvalue(), error]
with open(OUT, "w") as handle:
    json.dump(results, handle)
"""


def _run(command: list[str], timeout: float = 120, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          check=False, env={**os.environ, **env})


@pytest.fixture(scope="module")
def help_of(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list]:
    out = tmp_path_factory.mktemp("tools_help") / "help.json"
    script = f"OUT = {str(out)!r}\n" + _HELP_ALL
    result = _run([sys.executable, "-c", script, *map(str, TOOLS)], timeout=600)
    assert out.exists(), f"the interpreter running the tools died:\n{result.stderr[-3000:]}"
    return json.loads(out.read_text())


def test_the_glob_finds_the_tools():
    assert len(TOOLS) >= 10 and ROOT / "tools" / "gpu_check.py" in TOOLS


@pytest.mark.parametrize("tool", TOOLS, ids=[tool.name for tool in TOOLS])
def test_tool_help_starts(tool: Path, help_of: dict[str, list]):
    code, stdout, error = help_of[str(tool)]
    assert not error, f"{tool.name} --help raised:\n{error}"
    assert code in (0, None), f"{tool.name} --help exited with {code}:\n{stdout[-2000:]}"
    assert re.search(r"^usage: ", stdout, re.MULTILINE), stdout[-2000:]


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

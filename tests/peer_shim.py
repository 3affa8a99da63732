"""Run mmdet's and mmpretrain's own ResNet/ResNeXt backbone unit tests against our ResNeXt.

The peers' test files are third-party code and are never committed: they are read from a local
folder (``.peer_tests/`` at the repository root, or ``$RESNEXT_PEER_TESTS``) holding
``mmdet/{test_resnet.py,test_renext.py,utils.py}`` (mmdet 3.x) and
``mmpretrain/{test_resnet.py,test_resnext.py,utils.py}`` (mmpretrain 1.x).

How a peer file is run, mechanically:

* It is imported as a package module (so its ``from .utils import ...`` works), then its backbone
  classes are replaced by thin constructor shims over :class:`resnext_plugin.ResNeXt`:
  ``ResNet`` -> ``groups=1``; ``ResNetV1c`` -> ``groups=1, deep_stem=True``; ``ResNetV1d`` ->
  ``groups=1, deep_stem=True, avg_down=True``; ``ResNeXt`` -> unchanged arguments. Every other
  argument is passed through as the peer test wrote it.
* The names the peers use in ``isinstance`` checks of blocks (``Bottleneck``, ``BottleneckX``,
  in the test module and in its ``utils``) are rebound to our Bottleneck, so ``is_block`` and the
  zero-init checks look at our blocks instead of passing vacuously; ``BasicBlock`` is rebound to
  a class nothing is an instance of (we build no basic blocks).
* Each test function runs inside the peer's registry scope (mmengine ``DefaultScope`` 'mmdet' or
  'mmpretrain'), so scope-dependent defaults are the ones a config in that scope gets.
* A test function that builds no backbone (the block-class tests: Bottleneck, BasicBlock,
  ResLayer, get_expansion) is excepted whole.
* The statements of every other test function are split into checks: each top-level
  ``with pytest.raises(...)`` is one check, and every top-level statement that builds a backbone
  starts a new check (the constant assignments right before it, e.g. ``frozen_stages = 1``, go
  with it). Checks run in order in one shared namespace, so a failing check does not stop the
  next one. A check that builds a depth-18/34 model (outside ``pytest.raises``) is excepted, and
  so is one that calls ``init_weights()`` with a ``torchvision://``-style checkpoint (it needs
  the network).
* ``pytest.raises(AssertionError | KeyError)`` also accepts a ``ValueError`` (our named error for
  bad arguments); each such substitution is recorded and reported.

Run ``python tests/peer_shim.py [--markdown]`` for a report, or ``pytest -s
tests/test_models/test_peer_suites.py``.
"""
from __future__ import annotations

import argparse
import ast
import builtins
import contextlib
import importlib
import logging
import os
import re
import sys
import traceback
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

ROOT = Path(__file__).resolve().parents[1]
PEER_TESTS_ENV = "RESNEXT_PEER_TESTS"
NETWORK_SCHEMES = ("torchvision://", "open-mmlab://", "mmcls://", "http://", "https://")
BASIC_BLOCK_DEPTHS = (18, 34)
SUBSTITUTABLE = (AssertionError, KeyError)


@dataclass(frozen=True)
class Suite:
    """One peer's backbone tests: where they live and how its classes map onto ours."""

    name: str
    scope: str
    test_files: tuple[str, ...]
    support_files: tuple[str, ...]
    shims: dict[str, dict[str, Any]]


SUITES: dict[str, Suite] = {
    "mmdet": Suite(
        name="mmdet",
        scope="mmdet",
        test_files=("test_resnet.py", "test_renext.py"),
        support_files=("utils.py",),
        shims={
            "ResNet": dict(groups=1),
            "ResNetV1d": dict(groups=1, deep_stem=True, avg_down=True),
            "ResNeXt": {},
        },
    ),
    "mmpretrain": Suite(
        name="mmpretrain",
        scope="mmpretrain",
        test_files=("test_resnet.py", "test_resnext.py"),
        support_files=("utils.py",),
        shims={
            "ResNet": dict(groups=1),
            "ResNetV1c": dict(groups=1, deep_stem=True),
            "ResNetV1d": dict(groups=1, deep_stem=True, avg_down=True),
            "ResNeXt": {},
        },
    ),
}
BLOCK_NAMES = ("Bottleneck", "BottleneckX")


def peer_tests_dir() -> Path:
    """``$RESNEXT_PEER_TESTS`` if set, else ``.peer_tests/`` at the repository root."""
    return Path(os.environ.get(PEER_TESTS_ENV) or ROOT / ".peer_tests")


def missing_files(suite: Suite, base: Path) -> list[Path]:
    return [base / suite.name / f for f in suite.test_files + suite.support_files
            if not (base / suite.name / f).is_file()]


# ------------------------------------------------------------------------------------ results

@dataclass
class Check:
    """The outcome of one peer check (a group of statements, see the module docstring)."""

    suite: str
    file: str
    function: str
    line: int
    title: str
    status: str  # 'passed' | 'failed' | 'excepted'
    reason: str = ""
    substitutions: list[str] = field(default_factory=list)

    @property
    def where(self) -> str:
        return f"{self.suite}/{self.file}::{self.function} L{self.line}"


@dataclass
class SuiteReport:
    suite: str
    source: Path
    checks: list[Check] = field(default_factory=list)
    excepted_functions: list[str] = field(default_factory=list)

    def with_status(self, status: str) -> list[Check]:
        return [c for c in self.checks if c.status == status]

    @property
    def substitutions(self) -> list[Check]:
        return [c for c in self.checks if c.substitutions]

    def summary(self) -> str:
        excepted = self.with_status("excepted")
        reasons: dict[str, int] = {}
        for check in excepted:
            reasons[check.reason] = reasons.get(check.reason, 0) + 1
        why = ", ".join(f"{n} {r}" for r, n in sorted(reasons.items())) or "none"
        return (f"{self.suite}: {len(self.with_status('passed'))} passed, "
                f"{len(self.with_status('failed'))} failed, {len(excepted)} excepted ({why}) "
                f"of {len(self.checks)} backbone checks; "
                f"{len(self.substitutions)} passed with ValueError for AssertionError/KeyError; "
                f"{len(self.excepted_functions)} block-class test functions excepted")

    def lines(self) -> list[str]:
        """A plain-text report: summary, then failures, substitutions and exceptions."""
        out = [self.summary(), f"  source: {self.source}"]
        for check in self.with_status("failed"):
            out.append(f"  FAILED {check.where} [{check.title}]\n      {check.reason}")
        for check in self.substitutions:
            for sub in check.substitutions:
                out.append(f"  ValueError-for-expected {check.where} [{check.title}]: {sub}")
        for check in self.with_status("excepted"):
            out.append(f"  excepted {check.where} [{check.title}]: {check.reason}")
        for name in self.excepted_functions:
            out.append(f"  excepted function {name}: block-class test (builds no backbone)")
        return out


# ------------------------------------------------------------------------ pytest.raises proxy

class DidNotRaise(AssertionError):
    """The peer expected an exception and the statement raised none."""


class WrongException(Exception):
    """The peer expected one exception type and the statement raised another."""


class _Raises:
    def __init__(self, expected: Any, match: Optional[str], log: list[str]) -> None:
        self.expected = expected if isinstance(expected, tuple) else (expected,)
        self.match = match
        self.log = log

    def _names(self) -> str:
        return " | ".join(e.__name__ for e in self.expected)

    def __enter__(self) -> "_Raises":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            raise DidNotRaise(f"DID NOT RAISE {self._names()}")
        if self.match is not None and not re.search(self.match, str(exc)):
            raise WrongException(f"{exc_type.__name__} {exc!s} does not match {self.match!r}")
        if issubclass(exc_type, self.expected):
            return True
        if issubclass(exc_type, ValueError) and any(
                issubclass(e, SUBSTITUTABLE) for e in self.expected):
            self.log.append(f"expected {self._names()}, got ValueError: {exc}")
            return True
        raise WrongException(
            f"expected {self._names()}, got {exc_type.__name__}: {exc}") from exc


class _PytestProxy(types.ModuleType):
    """``pytest`` as the peer module sees it: ``raises`` records ValueError substitutions."""

    def __init__(self, log: list[str]) -> None:
        super().__init__("pytest")
        self._log = log

    def raises(self, expected: Any, *, match: Optional[str] = None) -> _Raises:
        return _Raises(expected, match, self._log)

    def __getattr__(self, name: str) -> Any:
        import pytest

        return getattr(pytest, name)


# ------------------------------------------------------------------------------ shims, import

def make_shim(name: str, fixed: dict[str, Any]) -> Callable[..., Any]:
    """A constructor standing in for the peer class ``name``: our ResNeXt with ``fixed`` added."""
    from resnext_plugin import ResNeXt

    def build(*args: Any, **kwargs: Any) -> Any:
        return ResNeXt(*args, **fixed, **kwargs)

    build.__name__ = build.__qualname__ = name
    build.__doc__ = f"resnext_plugin.ResNeXt(*args, **{fixed!r}, **kwargs), for the peer's {name}"
    return build


class _NoBasicBlock:
    """Stands in for the peers' BasicBlock in isinstance checks: our backbone has none."""


def _block_class() -> type:
    from resnext_plugin.models.blocks import Bottleneck

    return Bottleneck


def import_suite(suite: Suite, base: Path) -> dict[str, types.ModuleType]:
    """Import the suite's test modules as ``_peer_<suite>.<file>``, then rebind their names."""
    package_name = f"_peer_{suite.name}"
    for name in [m for m in sys.modules if m == package_name or m.startswith(package_name + ".")]:
        del sys.modules[name]
    package = types.ModuleType(package_name)
    package.__path__ = [str(base / suite.name)]
    sys.modules[package_name] = package
    modules = {}
    for filename in suite.support_files + suite.test_files:
        module = importlib.import_module(f"{package_name}.{Path(filename).stem}")
        _rebind(module, suite)
        modules[filename] = module
    return modules


def _rebind(module: types.ModuleType, suite: Suite) -> None:
    for name, fixed in suite.shims.items():
        if name in vars(module):
            setattr(module, name, make_shim(name, fixed))
    for name in BLOCK_NAMES:
        if name in vars(module):
            setattr(module, name, _block_class())
    if "BasicBlock" in vars(module):
        module.BasicBlock = _NoBasicBlock


# ------------------------------------------------------------------------ splitting into checks

def _is_raises(stmt: ast.stmt) -> bool:
    if not isinstance(stmt, ast.With):
        return False
    for item in stmt.items:
        call = item.context_expr
        if (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
                and call.func.attr == "raises"):
            return True
    return False


def _backbone_calls(node: ast.AST, names: set[str]) -> list[ast.Call]:
    return [n for n in ast.walk(node) if isinstance(n, ast.Call)
            and isinstance(n.func, ast.Name) and n.func.id in names]


def _is_setup(stmt: ast.stmt) -> bool:
    """An assignment whose value uses builtins only (``frozen_stages = 1``, ``plugins = [...]``)."""
    if not isinstance(stmt, ast.Assign):
        return False
    used = {n.id for n in ast.walk(stmt.value) if isinstance(n, ast.Name)}
    return all(hasattr(builtins, name) for name in used)


def split_checks(body: list[ast.stmt], backbone_names: set[str]) -> list[list[ast.stmt]]:
    """Split a test function body into checks (see the module docstring)."""
    checks: list[list[ast.stmt]] = []
    current: list[ast.stmt] = []
    for stmt in body:
        if _is_raises(stmt):
            if current:
                checks.append(current)
            checks.append([stmt])
            current = []
        elif _backbone_calls(stmt, backbone_names):
            setup: list[ast.stmt] = []
            while current and _is_setup(current[-1]):
                setup.insert(0, current.pop())
            if current:
                checks.append(current)
            current = setup + [stmt]
        else:
            current.append(stmt)
    if current:
        checks.append(current)
    # A group that neither builds a backbone nor expects an exception is setup for the next one.
    merged: list[list[ast.stmt]] = []
    carry: list[ast.stmt] = []
    for group in checks:
        if not _is_raises(group[0]) and not any(_backbone_calls(s, backbone_names)
                                                 for s in group):
            carry.extend(group)
            continue
        merged.append(carry + group)
        carry = []
    if carry:
        if merged:
            merged[-1].extend(carry)
        else:
            merged.append(carry)
    return merged


def exception_reason(group: list[ast.stmt], backbone_names: set[str]) -> Optional[str]:
    """Why a check is not run (depth 18/34, network), or None."""
    module = ast.Module(body=group, type_ignores=[])
    if not _is_raises(group[0]):
        for call in _backbone_calls(module, backbone_names):
            depth = call.args[0] if call.args else next(
                (k.value for k in call.keywords if k.arg == "depth"), None)
            if isinstance(depth, ast.Constant) and depth.value in BASIC_BLOCK_DEPTHS:
                return f"depth {depth.value} (BasicBlock ResNet, excepted by the issue)"
    urls = [n.value for n in ast.walk(module) if isinstance(n, ast.Constant)
            and isinstance(n.value, str) and n.value.startswith(NETWORK_SCHEMES)]
    calls_init = any(isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
                     and n.func.attr == "init_weights" for n in ast.walk(module))
    if urls and calls_init:
        return f"needs the network (init_weights downloads {urls[0]})"
    return None


# ----------------------------------------------------------------------------------- running

def _rewrite_asserts(module: ast.Module, source: bytes, path: Path) -> ast.Module:
    """pytest's assertion rewriting, so a failing peer ``assert`` says what it compared."""
    try:
        from _pytest.assertion.rewrite import rewrite_asserts
    except ImportError:  # pragma: no cover - pytest is a test dependency
        return module
    rewrite_asserts(module, source, str(path), None)
    return module


def _title(lines: list[str], group: list[ast.stmt]) -> str:
    """The peer's own comment for a check (the line above it, or inside a raises block)."""
    def comment(number: int) -> str:
        text = lines[number - 1].strip() if 0 < number <= len(lines) else ""
        return text.lstrip("# ").strip() if text.startswith("#") else ""

    first, last = group[0].lineno, group[-1].end_lineno or group[-1].lineno
    above = []
    number = first - 1
    while comment(number):
        above.insert(0, comment(number))
        number -= 1
    if above:
        return " ".join(above)
    inside = next((comment(n) for n in range(first, last + 1) if comment(n)), "")
    return inside or lines[first - 1].strip()


def _failure(exc: BaseException, path: Path, lines: list[str]) -> str:
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == str(path)]
    where = ""
    if frames:
        line = frames[-1].lineno or 0
        where = f" at L{line}: {lines[line - 1].strip()}" if 0 < line <= len(lines) else ""
    message = str(exc).strip().replace("\n", "\n        ")
    return f"{type(exc).__name__}{where}" + (f"\n        {message}" if message else "")


def run_function(suite: Suite, module: types.ModuleType, function: ast.FunctionDef,
                 path: Path, report: SuiteReport) -> None:
    """Run one backbone-level test function check by check, appending to ``report``."""
    from mmengine.registry import DefaultScope

    source = path.read_bytes()
    lines = source.decode().splitlines()
    names = set(suite.shims)
    body = list(function.body)
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]  # the docstring
    namespace = dict(vars(module))
    for group in split_checks(body, names):
        check = Check(suite.name, path.name, function.name, group[0].lineno,
                      _title(lines, group), "passed")
        report.checks.append(check)
        reason = exception_reason(group, names)
        if reason:
            check.status, check.reason = "excepted", reason
            continue
        code = compile(_rewrite_asserts(ast.Module(body=group, type_ignores=[]), source, path),
                       str(path), "exec")
        namespace["pytest"] = _PytestProxy(check.substitutions)
        try:
            with DefaultScope.overwrite_default_scope(suite.scope):
                exec(code, namespace)  # the peer's own statements
        except Exception as exc:  # every failure is recorded, the next check still runs
            check.status, check.reason = "failed", _failure(exc, path, lines)


def run_suite(suite: Suite, base: Path) -> SuiteReport:
    """Run every backbone-level test function of ``suite`` from ``base/<suite>/``."""
    report = SuiteReport(suite.name, base / suite.name)
    modules = import_suite(suite, base)
    with _quiet_mmengine():
        for filename in suite.test_files:
            _run_file(suite, base / suite.name / filename, modules[filename], report)
    return report


@contextlib.contextmanager
def _quiet_mmengine() -> Iterator[None]:
    """mmengine logs every parameter's initialisation at INFO; keep warnings only."""
    from mmengine.logging import MMLogger

    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def _run_file(suite: Suite, path: Path, module: types.ModuleType, report: SuiteReport) -> None:
    import torch

    tree = ast.parse(path.read_bytes(), str(path))
    for node in tree.body:
        if not (isinstance(node, ast.FunctionDef) and node.name.startswith("test")):
            continue
        if not _backbone_calls(node, set(suite.shims)):
            report.excepted_functions.append(f"{path.name}::{node.name}")
            continue
        torch.manual_seed(0)
        run_function(suite, module, node, path, report)


def markdown(reports: list[SuiteReport]) -> str:
    """The reports as markdown (for notes)."""
    out = []
    for report in reports:
        out += [f"## {report.suite}", "", report.summary(), "", f"Source: `{report.source}`", ""]
        failed = report.with_status("failed")
        out += ["### Failing checks", ""] + [
            f"- `{c.where}` ({c.title}):\n  ```\n  {c.reason}\n  ```" for c in failed
        ] + (["- none"] if not failed else []) + [""]
        out += ["### ValueError where the peer expects AssertionError/KeyError", ""] + [
            f"- `{c.where}` ({c.title}): {s}" for c in report.substitutions
            for s in c.substitutions] + (["- none"] if not report.substitutions else []) + [""]
        out += ["### Excepted", ""] + [
            f"- `{c.where}` ({c.title}): {c.reason}" for c in report.with_status("excepted")
        ] + [f"- `{report.suite}/{f}`: block-class test (builds no backbone)"
             for f in report.excepted_functions] + [""]
    return "\n".join(out)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", action="store_true", help="print a markdown report")
    parser.add_argument("suites", nargs="*", metavar="SUITE",
                        help=f"any of {sorted(SUITES)} (default: all)")
    args = parser.parse_args(argv)
    unknown = set(args.suites) - set(SUITES)
    if unknown:
        parser.error(f"unknown suites {sorted(unknown)}; choose from {sorted(SUITES)}")
    base = peer_tests_dir()
    reports = []
    for name in args.suites or sorted(SUITES):
        missing = missing_files(SUITES[name], base)
        if missing:
            print(f"{name}: missing {', '.join(map(str, missing))}", file=sys.stderr)
            return 2
        reports.append(run_suite(SUITES[name], base))
    if args.markdown:
        print(markdown(reports))
    else:
        for report in reports:
            print("\n".join(report.lines()))
    return 0 if all(not r.with_status("failed") for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())

"""Finding the stock configs whose model has a ResNeXt backbone, by loading them.

Every ``*.py`` under the installed packages' ``.mim/configs`` is a candidate; a config counts when
its ``model`` holds, at any depth, a dict whose ``type`` is ``ResNeXt`` (or ``mmdet.ResNeXt``/
``mmpretrain.ResNeXt``). :func:`may_name_resnext` skips, without loading, the files that cannot
build one because no file in their inheritance chain names it.
"""
from __future__ import annotations

import ast
import functools
import importlib.util
import re
import warnings
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from mmengine.config import Config

STOCK_PACKAGES = ("mmdet", "mmpretrain")
RESNEXT_TYPES = frozenset({"ResNeXt", "mmdet.ResNeXt", "mmpretrain.ResNeXt"})


def config_root(package: str) -> Path:
    """The installed package's config folder (``<package>/.mim/configs``)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"stock configs: package {package!r} is not installed")
    root = Path(next(iter(spec.submodule_search_locations))) / ".mim" / "configs"
    if not root.is_dir():
        raise FileNotFoundError(f"stock configs: {package} has no configs at {root}")
    return root


def _plain(obj: Any) -> Any:
    """ConfigDicts as plain dicts (recursively), so that backbones compare and print simply."""
    if isinstance(obj, Mapping):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_plain(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_plain(v) for v in obj)
    return obj


def _find_resnext(obj: Any, path: str) -> Iterator[tuple[str, dict]]:
    """(key path, dict) of every ResNeXt dict in ``obj``, e.g. ``model.detector.backbone``."""
    if isinstance(obj, dict):
        if obj.get("type") in RESNEXT_TYPES:
            yield path, obj
            return
        for key, value in obj.items():
            yield from _find_resnext(value, f"{path}.{key}")
    elif isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            yield from _find_resnext(value, f"{path}[{i}]")


def _other_resnext_types(obj: Any) -> Iterator[str]:
    """Types that mention ResNeXt but are other classes (SEResNeXt, ...): counted, not swept."""
    if isinstance(obj, dict):
        kind = obj.get("type")
        if isinstance(kind, str) and "resnext" in kind.lower() and kind not in RESNEXT_TYPES:
            yield kind
        for value in obj.values():
            yield from _other_resnext_types(value)
    elif isinstance(obj, (list, tuple)):
        for value in obj:
            yield from _other_resnext_types(value)


@dataclass(frozen=True)
class BackboneUse:
    """One ResNeXt backbone in one stock config."""

    package: str
    config: str
    key: str
    scope: str
    backbone: dict = field(hash=False, compare=False)

    @property
    def name(self) -> str:
        return f"{self.package}:{self.config}"


@dataclass
class Discovery:
    """What loading every stock config found."""

    walked: dict[str, int] = field(default_factory=dict)
    files: dict[str, int] = field(default_factory=dict)
    load_failures: list[tuple[str, str, str]] = field(default_factory=list)
    without_model: int = 0
    uses: list[BackboneUse] = field(default_factory=list)
    other_types: Counter = field(default_factory=Counter)
    prefiltered: bool = False

    @property
    def loaded(self) -> int:
        return sum(self.files.values()) - len(self.load_failures)

    def configs(self, package: Optional[str] = None) -> list[str]:
        """Names of the configs with a ResNeXt backbone (of one package, or all)."""
        return sorted({u.name for u in self.uses if package in (None, u.package)})


def _base_paths(path: Path) -> Optional[list[Path]]:
    """The files a config's ``_base_`` names, resolved as mmengine does (``pkg::rel`` from the
    package's config root); None when that cannot be read without executing the file."""
    text = path.read_text(errors="replace")
    if "read_base" in text:  # a lazy (pure-Python) config
        return None
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return None
    bases: list[Path] = []
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "_base_" for t in node.targets):
            try:
                value = ast.literal_eval(node.value)
            except ValueError:
                return None
            for base in [value] if isinstance(value, str) else list(value):
                if not isinstance(base, str):
                    return None
                if "::" in base:
                    package, rel = base.split("::", 1)
                    try:
                        bases.append(config_root(package) / rel)
                    except (ModuleNotFoundError, FileNotFoundError):
                        return None
                else:
                    bases.append(path.parent / base)
    return bases


@functools.cache
def may_name_resnext(path: Path) -> bool:
    """Whether ``ResNeXt`` appears in the text of the config or of any file it inherits from.

    A config whose model has a ResNeXt type must name it somewhere in its inheritance chain, so
    the others need not be loaded. Errs on the side of True (unreadable ``_base_``, lazy configs,
    missing base files)."""
    if not path.is_file():
        return True
    if "ResNeXt" in path.read_text(errors="replace"):
        return True
    bases = _base_paths(path)
    return bases is None or any(may_name_resnext(base.resolve()) for base in bases)


def _load(path: Path) -> Config:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Config.fromfile(str(path))


def discover(packages: Sequence[str] = STOCK_PACKAGES, name_filter: Optional[str] = None,
             prefilter: bool = False) -> Discovery:
    """Load every config of ``packages`` and record each ResNeXt backbone in its model.

    Args:
        packages: Installed OpenMMLab packages whose ``.mim/configs`` are walked.
        name_filter: Regular expression; only config paths (relative to the package's config
            root) it matches are loaded.
        prefilter: Load only the configs that name ``ResNeXt`` in their own text or in a file
            they inherit from (:func:`may_name_resnext`): the same configs, much faster (the
            full run loads every file, and the slow test checks that both find the same).
    """
    found = Discovery(prefiltered=prefilter)
    pattern = re.compile(name_filter) if name_filter else None
    for package in packages:
        root = config_root(package)
        paths = [p for p in sorted(root.rglob("*.py"))
                 if pattern is None or pattern.search(str(p.relative_to(root)))]
        found.walked[package] = len(paths)
        if prefilter:
            paths = [p for p in paths if may_name_resnext(p.resolve())]
        found.files[package] = len(paths)
        for path in paths:
            name = str(path.relative_to(root))
            try:
                cfg = _load(path)
            except Exception as err:  # a broken stock config is reported, not fatal
                message = str(err).strip().splitlines()[0] if str(err).strip() else ""
                found.load_failures.append((package, name, f"{type(err).__name__}: {message}"))
                continue
            model = _plain(cfg.get("model"))
            if not isinstance(model, dict):
                found.without_model += 1
                continue
            scope = cfg.get("default_scope") or package
            found.other_types.update(_other_resnext_types(model))
            for key, backbone in _find_resnext(model, "model"):
                found.uses.append(BackboneUse(package, name, key, scope, backbone))
    return found

"""The stock-config sweep: every installed mmdet/mmpretrain config with a ResNeXt backbone,
its backbone type swapped for ``resnext_plugin.ResNeXt``, must build the same model.

Configs are found by loading them (:mod:`.discovery`), not from a list. Many configs share one
backbone, so each distinct (scope, backbone dict) is built and compared once
(:func:`~resnext_plugin.compat.equivalence.compare_backbones`). Both models are built with
``init_cfg=None`` (and without the deprecated ``pretrained``: weights are compared, not loaded)
inside the config's ``default_scope``, whose defaults our backbone takes.
"""
from __future__ import annotations

import copy
import gc
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

import torch
from mmengine.registry import MODELS, DefaultScope

from .discovery import STOCK_PACKAGES, BackboneUse, Discovery, discover
from .equivalence import Comparison, StockModelUnavailable, compare_backbones

PLUGIN_TYPE = "resnext_plugin.ResNeXt"
#: Torch threads for the comparisons. The inputs are small, so a second thread gains little,
#: and on a busy machine torch's and mmcv's parallel loops wait on each other: a 101-layer check
#: took 4.4 s on one thread and 58 s on two (2 cores, load average 8).
SWEEP_THREADS = 1
#: Removed from both backbones before building: init_cfg is set to None, pretrained dropped.
INIT_KEYS = ("init_cfg", "pretrained")


def _short(value: Any) -> str:
    if isinstance(value, dict) and "cfg" in value and "position" in value:  # an mmdet plugin
        return f"{_short(value['cfg'])}@{value['position']}"
    if isinstance(value, dict) and "type" in value:
        args = ",".join(f"{k}={_short(v)}" for k, v in sorted(value.items()) if k != "type")
        return f"{value['type']}({args})" if args else str(value["type"])
    if isinstance(value, (list, tuple)):
        if value and all(isinstance(v, bool) for v in value):
            return "".join("1" if v else "0" for v in value)
        return "+".join(_short(v) for v in value) if value and isinstance(value[0], dict) \
            else str(tuple(value))
    return str(value)


def _canonical(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ",".join(f"{k!r}:{_canonical(value[k])}" for k in sorted(value)) + "}"
    if isinstance(value, (list, tuple)):
        inner = ",".join(_canonical(v) for v in value)
        return f"[{inner}]" if isinstance(value, list) else f"({inner})"
    return repr(value)


@dataclass
class StockBackbone:
    """One distinct backbone: a scope and a backbone dict (without init keys), and its uses."""

    scope: str
    backbone: dict
    uses: list[BackboneUse] = field(default_factory=list)

    @property
    def dropped(self) -> list[str]:
        """Init keys the stock configs set on this backbone (removed before building)."""
        return sorted({k for u in self.uses for k in INIT_KEYS if k in u.backbone})

    def summary(self) -> str:
        b = self.backbone
        width = b.get("base_width", b.get("width_per_group", "?"))
        extra = [f"{k}={_short(v)}" for k, v in sorted(b.items())
                 if k not in ("type", "depth", "groups", "base_width", "width_per_group")]
        return f"X-{b.get('depth')}-{b.get('groups', '?')}x{width}d " + " ".join(extra)

    def features(self) -> set[tuple[str, str]]:
        """(argument, value) pairs the fast subset must cover: the scope, the layer types
        (dcn, plugins, norm, conv) and the switches the dict sets. Arguments left out are not
        features (the scope's defaults have their own test); neither are depth and widths."""
        b = self.backbone
        found = {("scope", self.scope), ("dcn", _short(b.get("dcn", "none")).split("(")[0])}
        if b.get("dcn"):
            found.add(("stage_with_dcn", _short(b.get("stage_with_dcn"))))
        found |= {("plugin", _short(p).split("(")[0] + "@" + str(p.get("position")))
                  for p in b.get("plugins") or ()}
        if isinstance(b.get("norm_cfg"), dict):
            found.add(("norm", _short(b["norm_cfg"])))
        if b.get("conv_cfg") is not None:
            found.add(("conv", _short(b["conv_cfg"]).split("(")[0]))
        for key in ("norm_eval", "frozen_stages", "deep_stem", "avg_down", "style", "with_cp",
                    "out_indices"):
            if key in b:
                found.add((key, _short(b[key])))
        return found

    def cost(self) -> float:
        """Rough check time: depth x the first stage's grouped width, x4 with deformable
        convolutions (slow on CPU, and run on a larger input)."""
        b = self.backbone
        width = b.get("base_width", b.get("width_per_group", 4))
        return b.get("depth", 50) * b.get("groups", 32) * width * (4 if b.get("dcn") else 1)

    def input_size(self, size: int) -> int:
        """``size``, raised for DCN backbones to 96: mmcv's deformable convolution refuses an
        input smaller than its kernel, and the last stage of a 64-pixel input is 2x2."""
        return max(size, 3 * 32) if self.backbone.get("dcn") else size

    def build_cfgs(self) -> tuple[dict, dict]:
        """(stock, ours): the stock dict and ours with the type swapped; init_cfg=None on both."""
        stock = {k: v for k, v in self.backbone.items() if k not in INIT_KEYS}
        stock["init_cfg"] = None
        return stock, dict(stock, type=PLUGIN_TYPE)


def distinct_backbones(uses: Sequence[BackboneUse]) -> list[StockBackbone]:
    """Group the uses by (scope, backbone dict without init keys); first-seen order."""
    groups: dict[tuple[str, str], StockBackbone] = {}
    for use in uses:
        backbone = {k: v for k, v in use.backbone.items() if k not in INIT_KEYS}
        key = (use.scope, _canonical(backbone))
        groups.setdefault(key, StockBackbone(use.scope, backbone)).uses.append(use)
    return list(groups.values())


def fast_subset(backbones: Sequence[StockBackbone]) -> list[StockBackbone]:
    """The cheapest set of backbones (by :meth:`StockBackbone.cost`) that together cover every
    :meth:`StockBackbone.features` value of ``backbones``: an exact branch-and-bound set cover,
    deterministic (ties go to the first found in cost, then config-name order)."""
    pool = sorted(backbones, key=lambda b: (b.cost(), b.uses[0].name if b.uses else ""))
    features = [b.features() for b in pool]
    best: tuple[list[int], float] = ([], float("inf"))

    def search(chosen: list[int], uncovered: set, cost: float) -> None:
        nonlocal best
        if cost >= best[1]:
            return
        if not uncovered:
            best = (list(chosen), cost)
            return
        # Branch on the value fewest backbones have: every cover holds one of them.
        value = min(sorted(uncovered), key=lambda v: sum(v in f for f in features))
        for i, found in enumerate(features):
            if value in found:
                chosen.append(i)
                search(chosen, uncovered - found, cost + pool[i].cost())
                chosen.pop()

    if pool:
        search([], set().union(*features), 0.0)
    return [pool[i] for i in best[0]]


@dataclass
class SweepResult:
    """The outcome for one distinct backbone: 'pass', 'fail' or 'skip' (stock cannot run here)."""

    backbone: StockBackbone
    status: str
    reason: str = ""
    comparison: Optional[Comparison] = None
    seconds: float = 0.0

    def details(self) -> list[str]:
        lines = [self.reason] if self.reason else []
        if self.comparison is not None:
            lines += self.comparison.differences
        return lines


def build_in_scope(scope: str, cfg: dict):
    """Build ``cfg`` from mmengine's root ``MODELS`` as a config in ``scope`` would be built.

    ``cfg`` is deep-copied first: mmdet's Bottleneck pops ``fallback_on_stride`` out of the
    ``dcn`` dict it is given, which would otherwise reach the second build without it."""
    with DefaultScope.overwrite_default_scope(scope):
        return MODELS.build(copy.deepcopy(cfg))


def check_backbone(backbone: StockBackbone, input_shape: Sequence[int] = (2, 3, 64, 64),
                   seed: int = 0, num_threads: Optional[int] = SWEEP_THREADS) -> SweepResult:
    """Build the stock backbone and ours in the backbone's scope and compare them, running the
    forward and backward passes on ``num_threads`` torch threads (None: leave as set)."""
    start = time.perf_counter()
    stock_cfg, ours_cfg = backbone.build_cfgs()

    def done(status: str, reason: str = "", comparison: Optional[Comparison] = None):
        gc.collect()
        return SweepResult(backbone, status, reason, comparison, time.perf_counter() - start)

    try:
        stock = build_in_scope(backbone.scope, stock_cfg)
    except Exception as err:
        return done("skip", f"stock model cannot be built here: {type(err).__name__}: {err}")
    try:
        ours = build_in_scope(backbone.scope, ours_cfg)
    except Exception as err:
        return done("fail", f"ours fails to build: {type(err).__name__}: {err}")
    threads = torch.get_num_threads()
    try:
        height, width = input_shape[-2:]
        shape = (*input_shape[:-2], backbone.input_size(height), backbone.input_size(width))
        if num_threads is not None:
            torch.set_num_threads(num_threads)
        comparison = compare_backbones(stock, ours, input_shape=shape, seed=seed)
        if tuple(shape) != tuple(input_shape):
            comparison.notes.append(f"input {shape} (deformable convolutions need 3x3 at "
                                    "the last stage)")
    except StockModelUnavailable as err:
        return done("skip", str(err))
    finally:
        torch.set_num_threads(threads)
    del stock, ours
    return done("pass" if comparison.passed else "fail", comparison=comparison)


@dataclass
class SweepReport:
    """Discovery plus one result per distinct backbone checked."""

    discovery: Discovery
    backbones: list[StockBackbone]
    results: list[SweepResult]
    fast: bool
    seconds: float

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.results)

    @property
    def ok(self) -> bool:
        return bool(self.results) and self.count("fail") == 0


def run_sweep(packages: Sequence[str] = STOCK_PACKAGES, fast: bool = False,
              prefilter: bool = True, name_filter: Optional[str] = None,
              input_shape: Sequence[int] = (2, 3, 64, 64),
              num_threads: Optional[int] = SWEEP_THREADS,
              progress: Optional[Callable[[SweepResult], None]] = None) -> SweepReport:
    """Discover the stock ResNeXt configs and check each distinct backbone.

    Args:
        packages: Installed packages whose configs are swept.
        fast: Check only :func:`fast_subset`: a few backbones covering every scope, layer type
            and switch the stock backbones use.
        prefilter: Load only the configs that name ResNeXt in their inheritance chain
            (:func:`may_name_resnext`) instead of every config file.
        name_filter: Regular expression on config paths; only matching configs are swept.
        input_shape: Input of the forward passes.
        num_threads: Torch threads for the comparisons (None: leave as set).
        progress: Called with each result as it is ready.
    """
    start = time.perf_counter()
    logging.getLogger("mmengine").setLevel(logging.ERROR)
    found = discover(packages, name_filter=name_filter, prefilter=prefilter)
    backbones = distinct_backbones(found.uses)
    to_check = fast_subset(backbones) if fast else backbones
    results = []
    for backbone in to_check:
        result = check_backbone(backbone, input_shape=input_shape, num_threads=num_threads)
        results.append(result)
        if progress is not None:
            progress(result)
    return SweepReport(found, backbones, results, fast, time.perf_counter() - start)


def format_result(result: SweepResult) -> str:
    """One line per config of a checked backbone, then the backbone's differences."""
    b = result.backbone
    status = result.status.upper()
    if result.status == "pass" and result.comparison is not None and not result.comparison.exact:
        status += f" (max |diff| {result.comparison.max_abs_diff:.2g})"
    lines = [f"{status:<6} [{b.scope}] {b.summary()}  ({len(b.uses)} configs, "
             f"{result.seconds:.1f}s)"]
    lines += [f"         {u.name}  {u.key}" for u in b.uses]
    if b.dropped:
        lines.append(f"         note: {', '.join(b.dropped)} removed from both (init_cfg=None)")
    if result.comparison is not None:
        lines += [f"         note: {n}" for n in result.comparison.notes]
    lines += [f"      -> {d}" for d in result.details()]
    return "\n".join(lines)


def format_report(report: SweepReport) -> str:
    """The whole report: counts, load failures, each checked backbone with its configs."""
    found = report.discovery
    lines = []
    walked = ", ".join(f"{pkg} {n}" for pkg, n in found.walked.items())
    which = ("those naming ResNeXt in their inheritance chain" if found.prefiltered
             else "every file")
    lines.append(f"config files: {walked}; loading {which}: {sum(found.files.values())} tried, "
                 f"{found.loaded} loaded, {len(found.load_failures)} failed to load, "
                 f"{found.without_model} without a model")
    reasons = Counter(reason for _, _, reason in found.load_failures)
    for reason, n in reasons.most_common():
        example = next(f"{p}:{c}" for p, c, r in found.load_failures if r == reason)
        lines.append(f"  load failure x{n}: {reason[:160]}  (e.g. {example})")
    per_pkg = ", ".join(f"{pkg} {len(found.configs(pkg))}" for pkg in found.files)
    lines.append(f"configs with a ResNeXt backbone: {len(found.configs())} ({per_pkg}); "
                 f"{len(found.uses)} backbones in them, {len(report.backbones)} distinct")
    if found.other_types:
        others = ", ".join(f"{k} x{v}" for k, v in sorted(found.other_types.items()))
        lines.append(f"other ResNeXt-named types (other classes, not swept): {others}")
    if report.fast:
        lines.append(f"fast subset: {len(report.results)} of {len(report.backbones)} distinct "
                     "backbones, covering every scope, layer type and switch they use")
    lines.append("")
    lines += [format_result(r) for r in report.results]
    lines.append("")
    failing = {u.name for r in report.results if r.status != "pass" for u in r.backbone.uses}
    checked = {u.name for r in report.results for u in r.backbone.uses}
    exact = sum(r.status == "pass" and r.comparison is not None and r.comparison.exact
                for r in report.results)
    lines.append(f"RESULT: {len(report.results)} distinct backbones checked: "
                 f"{report.count('pass')} passed ({exact} bitwise exact), "
                 f"{report.count('fail')} failed, {report.count('skip')} skipped; configs "
                 f"whose backbones all passed: {len(checked - failing)} of "
                 f"{len(found.configs())}; {report.seconds:.0f}s")
    return "\n".join(lines)

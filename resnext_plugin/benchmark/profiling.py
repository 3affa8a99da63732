"""Where a training iteration's time goes: ``torch.profiler`` by operator and by kind, and the
bytes BatchNorm moves (the prediction for ``fold_frozen_bn``).

``tools/benchmark.py profile SCENARIO`` (any of :data:`~.scenarios.SCENARIOS`) prints, for one
training iteration (after warm-up): the top operators by self CPU time, the time per kind
(convolution forward/backward, BatchNorm, pointwise, RoI ops, optimiser, ...), and the BatchNorm
traffic with the time it predicts at the machine's measured copy bandwidth.
"""
from __future__ import annotations

import copy
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from resnext_plugin import perf

from .scenarios import ScenarioSpec, get_scenarios

#: Operator name fragments -> kind, first match wins (backward ops before forward ones).
KINDS = (
    ("convolution_backward", "conv backward"),
    ("mkldnn_convolution_backward", "conv backward"),
    ("batch_norm_backward", "batchnorm backward"),
    ("native_batch_norm", "batchnorm forward"),
    ("batch_norm", "batchnorm forward"),
    ("mkldnn_convolution", "conv forward"),
    ("_convolution", "conv forward"),
    ("conv", "conv forward"),
    ("roi_align", "roi ops / nms"),
    ("nms", "roi ops / nms"),
    ("addmm", "linear / matmul"),
    ("mm", "linear / matmul"),
    ("threshold_backward", "relu"),
    ("relu", "relu"),
    ("max_pool", "pooling"),
    ("upsample", "interpolate"),
    ("sgd", "optimiser"),
    ("_foreach", "optimiser"),
    ("copy_", "copies / layout"),
    ("_to_copy", "copies / layout"),
    ("clone", "copies / layout"),
    ("contiguous", "copies / layout"),
    ("add", "pointwise"),
    ("mul", "pointwise"),
    ("sum", "reductions"),
    ("mean", "reductions"),
)


def kind_of(name: str) -> str:
    """The kind of an operator, from :data:`KINDS` (``'other'`` if none matches)."""
    lowered = name.lower()
    for fragment, kind in KINDS:
        if fragment in lowered:
            return kind
    return "other"


@dataclass
class OpTime:
    name: str
    calls: int
    self_seconds: float


def profile_once(step: Callable[[], Any], warmup: int = 1) -> "torch.profiler.profile":
    """Run ``step`` ``warmup`` times, then once under the profiler (CPU, shapes off)."""
    from torch.profiler import ProfilerActivity, profile

    for _ in range(warmup):
        step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    return prof


def op_times(prof: "torch.profiler.profile") -> list[OpTime]:
    """Self CPU time per aten operator, largest first (profiler bookkeeping excluded)."""
    rows = [OpTime(e.key, e.count, e.self_cpu_time_total / 1e6)
            for e in prof.key_averages() if not e.key.startswith("ProfilerStep")]
    return sorted(rows, key=lambda r: r.self_seconds, reverse=True)


def kind_times(ops: list[OpTime]) -> dict[str, float]:
    """Self seconds per kind, largest first."""
    totals: dict[str, float] = defaultdict(float)
    for op in ops:
        totals[kind_of(op.name)] += op.self_seconds
    return dict(sorted(totals.items(), key=lambda kv: kv[1], reverse=True))


@dataclass
class NormTraffic:
    """Bytes the BatchNorms of a model read and write in one training iteration."""

    count: int  # BatchNorm calls
    with_grad: int  # of which take part in backward
    forward_bytes: int  # read input + write output
    backward_bytes: int  # read grad_out + input, write grad_in

    @property
    def total(self) -> int:
        return self.forward_bytes + self.backward_bytes


def norm_traffic(model: nn.Module, step: Callable[[], Any]) -> NormTraffic:
    """Count what every eval-mode BatchNorm call moves during one ``step``.

    Forward: the input is read and the output written (2 x the activation's bytes). Backward,
    for a call whose output needs a gradient: ``grad_out`` is read twice (for the input's
    gradient and for the affine parameters' reductions), the saved input once, ``grad_in``
    written once (4 x). Frozen stages (no gradient) only pay the forward.
    """
    counts = dict(count=0, with_grad=0, forward=0, backward=0)

    def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        if module.training or not isinstance(output, torch.Tensor):
            return
        size = output.numel() * output.element_size()
        counts["count"] += 1
        counts["forward"] += 2 * size
        if output.requires_grad:
            counts["with_grad"] += 1
            counts["backward"] += 4 * size

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, _BatchNorm)]
    try:
        step()
    finally:
        for handle in handles:
            handle.remove()
    return NormTraffic(counts["count"], counts["with_grad"], counts["forward"],
                       counts["backward"])


def copy_bandwidth(megabytes: int = 256, repeats: int = 5) -> float:
    """Measured memory bandwidth of a large tensor copy (read + write), bytes per second."""
    n = megabytes * 2**20 // 4
    src, dst = torch.rand(n), torch.empty(n)
    timing = perf.interleaved_timings({"copy": lambda: dst.copy_(src)}, repeats, warmup=1)
    return 2 * n * 4 / timing["copy"].median


# --------------------------------------------------------------------------------------------
# The steps profiled
# --------------------------------------------------------------------------------------------
def detector_step(config: Path, image_hw: tuple[int, int], batch: int,
                  backbone: Optional[dict] = None, seed: int = 0
                  ) -> tuple[nn.Module, Callable[[], Any]]:
    """A Mask R-CNN of ``config`` (random init, the backbone's pretrained weights not loaded)
    and one training iteration on ``batch`` demo images of ``image_hw``: ``model.train_step``
    with SGD through mmengine's ``OptimWrapper``, the same seed each call."""
    from mmdet.registry import MODELS
    from mmdet.testing import demo_mm_inputs
    from mmdet.utils import register_all_modules
    from mmengine.config import Config
    from mmengine.optim import OptimWrapper

    register_all_modules(init_default_scope=True)
    cfg = Config.fromfile(str(config))
    cfg.model.backbone.init_cfg = None
    if backbone:
        cfg.model.backbone.update(backbone)
    torch.manual_seed(seed)
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.train()
    data = demo_mm_inputs(batch_size=batch, image_shapes=[(3, *image_hw)] * batch,
                          num_items=[3] * batch, num_classes=4, with_mask=True)
    wrapper = OptimWrapper(torch.optim.SGD([p for p in model.parameters() if p.requires_grad],
                                           lr=1e-4, momentum=0.9, weight_decay=1e-4))

    def step() -> Any:
        torch.manual_seed(seed)
        return model.train_step(copy.copy(data), wrapper)

    return model, step


def classifier_step(config: Path, image_hw: tuple[int, int], batch: int,
                    backbone: Optional[dict] = None, seed: int = 0
                    ) -> tuple[nn.Module, Callable[[], Any]]:
    """The classification model of ``config`` and one training step on ``batch`` random images
    of ``image_hw``."""
    from mmengine.config import Config
    from mmengine.optim import OptimWrapper
    from mmpretrain.registry import MODELS
    from mmpretrain.structures import DataSample
    from mmpretrain.utils import register_all_modules

    register_all_modules(init_default_scope=True)
    cfg = Config.fromfile(str(config))
    if backbone:
        cfg.model.backbone.update(backbone)
    cfg.model.data_preprocessor = dict(type="ClsDataPreprocessor", **cfg.data_preprocessor)
    torch.manual_seed(seed)
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.train()
    generator = torch.Generator().manual_seed(seed)
    images = [torch.randint(0, 256, (3, *image_hw), dtype=torch.uint8, generator=generator)
              for _ in range(batch)]
    samples = [DataSample().set_gt_label(i % 10) for i in range(batch)]
    data = dict(inputs=images, data_samples=samples)
    wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9,
                                           weight_decay=1e-4))

    def step() -> Any:
        return model.train_step(copy.copy(data), wrapper)

    return model, step


#: How a scenario's training step is built, per task.
STEPS = {"cls": classifier_step, "det": detector_step}


def build_step(spec: ScenarioSpec, backbone: Optional[dict] = None
               ) -> tuple[nn.Module, Callable[[], Any]]:
    """The model of scenario ``spec`` and one training iteration of it (``backbone``: settings
    on top of the config's backbone)."""
    return STEPS[spec.task](spec.config_path, spec.image_hw, spec.batch, backbone)


def report(name: str, backbone: Optional[dict] = None, top: int = 15) -> str:
    """Profile one iteration of scenario ``name`` and describe it (markdown)."""
    (spec,) = get_scenarios([name], option="profile")
    model, step = build_step(spec, backbone)
    begin = time.perf_counter()
    step()  # warm-up (also allocator and oneDNN primitive caches)
    warm = time.perf_counter() - begin
    begin = time.perf_counter()
    step()
    plain = time.perf_counter() - begin
    prof = profile_once(step, warmup=0)
    ops = op_times(prof)
    total = sum(op.self_seconds for op in ops)
    traffic = norm_traffic(model, step)
    bandwidth = copy_bandwidth()
    lines = [f"#### profile {name}: {spec.description}; backbone settings {backbone or {}}", "",
             f"* {perf.load_average()}; first call {warm:.2f} s, unprofiled call {plain:.2f} s, "
             f"profiled ops' self time {total:.2f} s", "",
             "| operator | calls | self s | share |", "|---|--:|--:|--:|"]
    lines += [f"| `{op.name}` | {op.calls} | {op.self_seconds:.3f} | "
              f"{100 * op.self_seconds / total:.1f}% |" for op in ops[:top]]
    lines += ["", "| kind | self s | share |", "|---|--:|--:|"]
    lines += [f"| {kind} | {seconds:.3f} | {100 * seconds / total:.1f}% |"
              for kind, seconds in kind_times(ops).items()]
    predicted = traffic.total / bandwidth
    lines += ["", f"* eval-mode BatchNorm calls: {traffic.count} ({traffic.with_grad} in "
              f"backward); traffic {traffic.forward_bytes / 2**20:.0f} MiB forward + "
              f"{traffic.backward_bytes / 2**20:.0f} MiB backward; at the measured copy "
              f"bandwidth {bandwidth / 1e9:.1f} GB/s that is {predicted:.3f} s "
              f"({100 * predicted / plain:.1f}% of the unprofiled call): the predicted gain of "
              f"folding them is {plain / max(plain - predicted, 1e-9):.3f}x if nothing else "
              "changes."]
    return "\n".join(lines) + "\n"

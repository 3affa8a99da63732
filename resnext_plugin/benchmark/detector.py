"""Mask R-CNN training iteration, in process: mmdet's stock ResNeXt Mask R-CNN config against the
same config with the backbone swapped to ``resnext_plugin.ResNeXt`` (``tools/benchmark.py
--detector``). Every candidate loads the same weights and gets the same input and seed.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch
from torch import nn

from resnext_plugin import perf

from .backbone import CLOCKS, Arch, Row, TimingOptions, _log, _set_ratios

#: mmdet's ResNeXt Mask R-CNN config (inside the installed package's ``.mim/configs``).
STOCK_DETECTOR = "mask_rcnn/mask-rcnn_x101-32x4d_fpn_1x_coco.py"


def detector_configs(arch: Arch) -> dict[str, dict]:
    """mmdet's stock ResNeXt Mask R-CNN model config, and the same with the plugin backbone."""
    import mmdet
    from mmengine.config import Config

    path = Path(mmdet.__file__).parent / ".mim/configs" / STOCK_DETECTOR
    stock = copy.deepcopy(Config.fromfile(str(path)).model.to_dict())
    stock["backbone"].update(depth=arch.depth, groups=arch.groups, base_width=arch.width,
                             init_cfg=None)
    ours = copy.deepcopy(stock)
    backbone = dict(ours["backbone"])
    backbone["type"] = "resnext_plugin.ResNeXt"
    backbone["width_per_group"] = backbone.pop("base_width")
    ours["backbone"] = backbone
    configs = {"mmdet-stock": stock, "plugin": ours}
    configs["plugin-cl"] = _with_backbone(ours, channels_last=True)
    configs["plugin-fold"] = _with_backbone(ours, fold_frozen_bn=True)
    configs["plugin-cl-fold"] = _with_backbone(ours, channels_last=True, fold_frozen_bn=True)
    return configs


def _with_backbone(model: dict, **settings) -> dict:
    out = copy.deepcopy(model)
    out["backbone"].update(settings)
    return out


#: Variants whose whole model (FPN and heads too) is converted to channels_last after building.
WHOLE_MODEL_CHANNELS_LAST = ("plugin-cl-fold-all",)


def detector_variants(arch: Arch) -> dict[str, dict]:
    """:func:`detector_configs` plus the whole-model channels_last variant."""
    configs = detector_configs(arch)
    configs["plugin-cl-fold-all"] = copy.deepcopy(configs["plugin-cl-fold"])
    return configs


def parse_size(text: str) -> tuple[int, int]:
    """``'512'`` -> (512, 512); ``'800x1333'`` -> (800, 1333) (height x width)."""
    try:
        parts = [int(p) for p in text.lower().split("x")]
    except ValueError:
        parts = []
    if len(parts) == 1:
        parts *= 2
    if len(parts) != 2 or min(parts) < 32:
        raise ValueError(f"--det-size: expected N or HxW (each >= 32), got {text!r}")
    return parts[0], parts[1]


@dataclass(frozen=True)
class DetectorOptions:
    """What :func:`run_detector` times.

    Attributes:
        image_hw: Input height and width (:func:`parse_size` reads ``'800x1333'``).
        batch: Images per iteration.
        variants: The candidates to run (``None``: all of :func:`detector_variants`).
        timing: Rounds, warm-up and clock.
    """

    image_hw: tuple[int, int] = (512, 512)
    batch: int = 1
    variants: Optional[frozenset[str]] = None
    timing: TimingOptions = field(default_factory=TimingOptions)


def run_detector(options: DetectorOptions, arch: Arch, device: torch.device) -> list[Row]:
    """Time one Mask R-CNN training iteration (``train_step``) per candidate, interleaved.

    Every candidate loads the same weights; its first iteration's loss is compared with the
    stock model's (``max_rel_diff``): a different function would show there."""
    from mmdet.registry import MODELS
    from mmdet.testing import demo_mm_inputs
    from mmdet.utils import register_all_modules
    from mmengine.config import ConfigDict
    from mmengine.logging import MMLogger
    from mmengine.optim import OptimWrapper

    from resnext_plugin.engine.channels_last import to_channels_last
    from resnext_plugin.upstream_fixes import contiguous_roi_align

    contiguous_roi_align()  # the channels_last candidates' FPN features reach RoIAlign in NHWC
    register_all_modules(init_default_scope=True)
    # init_weights logs every parameter at INFO: keep the table readable
    MMLogger.get_instance("resnext_benchmark", log_level="WARNING")
    configs = detector_variants(arch)
    names = [n for n in configs if options.variants is None or n in options.variants]
    height, width = options.image_hw
    models: dict[str, nn.Module] = {}
    for name in names:
        _log(f"[detector] building {name}")
        models[name] = MODELS.build(ConfigDict(configs[name])).to(device)
    first = models[names[0]]
    first.init_weights()
    for name in names[1:]:
        models[name].load_state_dict(first.state_dict(), strict=True)
    for name in names:
        if name in WHOLE_MODEL_CHANNELS_LAST:
            to_channels_last(models[name])
    batch = options.batch
    data = demo_mm_inputs(batch_size=batch, image_shapes=[(3, height, width)] * batch,
                          num_items=[8] * batch, num_classes=80, with_mask=True,
                          device=device.type)
    steps, first_loss = {}, {}
    for name, model in models.items():
        model.train()
        optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad],
                                    lr=1e-4, momentum=0.9, weight_decay=1e-4)
        wrapper = OptimWrapper(optimizer)

        def step(model: nn.Module = model, wrapper: OptimWrapper = wrapper) -> Any:
            torch.manual_seed(0)  # the same proposals are sampled for every candidate
            return model.train_step(copy.copy(data), wrapper)

        steps[name] = step
        _log(f"[detector] first iteration of {name}")
        first_loss[name] = float(step()["loss"])
    timing = options.timing
    _log(f"[detector] warm-up and {timing.repeats} interleaved rounds ({perf.load_average()})")
    timings = perf.interleaved_timings(steps, timing.repeats, timing.warmup, device,
                                       clock=CLOCKS[timing.clock])
    reference = first_loss.get("mmdet-stock", first_loss[names[0]])
    rows = []
    for name in names:
        seconds = timings[name].median
        rows.append(Row(case=f"mask-rcnn {height}x{width}", variant=name,
                        group="peer" if name == "mmdet-stock" else "plugin", precision="fp32",
                        seconds=seconds, fastest=min(timings[name].seconds),
                        spread=timings[name].spread, images_per_s=batch / seconds,
                        peak_mb=perf.peak_memory_bytes(steps[name], device) / 2**20,
                        gflops=float("nan"),
                        max_rel_diff=abs(first_loss[name] - reference) / abs(reference)))
    _set_ratios(rows)
    return rows

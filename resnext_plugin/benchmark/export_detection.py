"""Mask R-CNN inference on the CPU, batch 1: mmdet's stock ResNeXt Mask R-CNN against ours in
eager mode and against our export run by ONNX Runtime and OpenVINO, interleaved.

Every candidate computes the same thing: the end-to-end outputs of
:class:`~resnext_plugin.export.detector.MaskRCNNOutputs` (``dets``, ``labels`` and the 28 x 28
``masks``, what ``tools/export.py`` exports; verified equal to mmdet's ``predict``), on the
same padded input, with the same weights. The first row, mmdet's own ``predict`` of the stock
model (which also pastes every mask into the image), is the 1.00x of every ratio: what a user of
mmdet runs today. One entry per candidate in :data:`CANDIDATES`.

Weights are random (mmdet's initialisation), with the bias of the first few classes raised so
that boxes pass ``score_thr`` (with every score near 1/81, none would, and the mask head would
never run) and the classification weights scaled so that scores spread (no near-ties for NMS to
break arbitrarily): the model reports ``max_per_img`` (100) detections, as a trained COCO model
does. The number of detections each candidate gives is printed: the rows are comparable only
when it is the same.

Run: ``python tools/benchmark.py export-detector [--quick] [--threads N]``.
"""
from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
from torch import nn

from resnext_plugin import perf

from .backbone import Arch
from .detector import detector_configs

#: The user's path today, and the 1.00x of every ratio.
REFERENCE = "mmdet stock predict"


@dataclass(frozen=True)
class Candidate:
    """One way to run the Mask R-CNN.

    Attributes:
        name: Its row in the table.
        model: A key of :func:`~resnext_plugin.benchmark.detector.detector_configs`
            (``'mmdet-stock'``, ``'plugin'``, ``'plugin-cl-fold'`` ...).
        backend: ``'predict'`` (mmdet's own ``predict``), ``'eager'`` (the export wrapper in
            PyTorch) or a key of :data:`resnext_plugin.export.BACKENDS`.
        precision: The exported file's precision. ``tools/export.py`` refuses bf16 for
            detectors (its detections are not those of PyTorch, see ``export/tasks.py``): a
            bf16 row is speed only, what the backend would give.
    """

    name: str
    model: str
    backend: str
    precision: str = "fp32"


CANDIDATES: dict[str, Candidate] = {c.name: c for c in (
    Candidate(REFERENCE, "mmdet-stock", "predict"),
    Candidate("mmdet stock eager", "mmdet-stock", "eager"),
    Candidate("ours eager", "plugin", "eager"),
    Candidate("ours eager channels_last + folded BN", "plugin-cl-fold", "eager"),
    Candidate("ONNX Runtime fp32", "plugin", "onnxruntime"),
    Candidate("OpenVINO fp32", "plugin", "openvino"),
    Candidate("OpenVINO bf16 (speed only: export refuses it)", "plugin", "openvino", "bf16"),
)}
QUICK = (REFERENCE, "ours eager", "OpenVINO fp32")


@dataclass
class Result:
    """One table row."""

    candidate: str
    median_s: float
    spread: float
    ratio: float
    detections: int


def build_models(arch: Arch, names: Sequence[str], scored_classes: int = 5,
                 bias: float = 3.0, gain: float = 30.0) -> dict[str, nn.Module]:
    """The Mask R-CNN of every model the candidates ``names`` use, in eval mode, same weights:
    mmdet's initialisation of the first, ``bias`` added to the classification layer's bias of
    the first ``scored_classes`` classes, its weights times ``gain`` (scores 0.22-0.65 on the
    test's small model, smallest gap between two of them 2.6e-5; with ``gain=1``, 5e-7)."""
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine.config import ConfigDict
    from mmengine.logging import MMLogger

    register_all_modules(init_default_scope=True)
    MMLogger.get_instance("resnext_benchmark", log_level="WARNING")
    configs = detector_configs(arch)
    needed = list(dict.fromkeys(CANDIDATES[name].model for name in names))
    torch.manual_seed(0)
    models = {key: MODELS.build(ConfigDict(configs[key])).eval() for key in needed}
    first = models[needed[0]]
    first.init_weights()
    with torch.no_grad():
        first.roi_head.bbox_head.fc_cls.bias[:scored_classes] += bias
        first.roi_head.bbox_head.fc_cls.weight.mul_(gain)
    for key in needed[1:]:
        models[key].load_state_dict(first.state_dict(), strict=True)
    return models


def _data_sample(height: int, width: int):  # noqa: ANN202
    from mmdet.structures import DetDataSample

    sample = DetDataSample()
    shape = (height, width)
    sample.set_metainfo(dict(img_shape=shape, ori_shape=shape, pad_shape=shape,
                             batch_input_shape=shape, scale_factor=(1.0, 1.0)))
    return sample


def make_step(candidate: Candidate, models: dict, inputs: torch.Tensor, threads: int,
              work: Path, cache: dict) -> tuple[Callable[[], object], Callable[[object], int]]:
    """``(step, count)``: a zero-argument call running ``candidate`` once on ``inputs``, and a
    function giving the number of detections in its result."""
    from resnext_plugin.export import BACKENDS, ExportedRuntime
    from resnext_plugin.export.api import export_onnx
    from resnext_plugin.export.backends import WriteRequest
    from resnext_plugin.export.detector import (
        DYNAMIC_AXES,
        INPUT_NAMES,
        OUTPUT_NAMES,
        MaskRCNNOutputs,
    )

    model = models[candidate.model]
    if candidate.backend == "predict":
        samples = [_data_sample(*inputs.shape[2:])]

        def predict() -> object:
            with torch.no_grad():
                return model.predict(inputs, samples, rescale=False)
        return predict, lambda out: len(out[0].pred_instances)
    wrapper = cache.setdefault(("wrapper", candidate.model), MaskRCNNOutputs(model).eval())
    if candidate.backend == "eager":
        def eager() -> object:
            with torch.no_grad():
                return wrapper(inputs)
        return eager, lambda out: int(out[0].shape[1])
    onnx_key = ("onnx", candidate.model)
    if onnx_key not in cache:
        folder = work / candidate.model
        folder.mkdir(exist_ok=True)
        cache[onnx_key] = folder / "end2end.onnx"
        export_onnx(wrapper, inputs, cache[onnx_key], input_names=INPUT_NAMES,
                    output_names=OUTPUT_NAMES, dynamic_axes=DYNAMIC_AXES)
    path = BACKENDS[candidate.backend].write(
        WriteRequest(cache[onnx_key], cache[onnx_key].parent, candidate.precision))
    shape = tuple(inputs.shape) if candidate.backend == "openvino" else None
    runtime = ExportedRuntime(path, threads=threads, static_shape=shape)
    array = inputs.numpy()
    return (lambda: runtime(array)), lambda out: int(out[0].shape[1])


def run(arch: Arch = Arch(101, 32, 4), image_hw: tuple[int, int] = (800, 1344),
        repeats: int = 3, warmup: int = 1, threads: Optional[int] = None,
        names: Optional[Sequence[str]] = None, log: Callable[[str], None] = print
        ) -> list[Result]:
    """Time the candidates ``names`` (default: all) on one random image of ``image_hw`` (the
    padded input: 800 x 1333 pads to 800 x 1344); ratios to :data:`REFERENCE`."""
    threads = threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    names = list(names or CANDIDATES)
    if REFERENCE not in names:
        names.insert(0, REFERENCE)
    log(f"building {arch.label} Mask R-CNN for {len(names)} candidates")
    models = build_models(arch, names)
    inputs = torch.randn(1, 3, *image_hw, generator=torch.Generator().manual_seed(0))
    cache: dict = {}
    steps, counts = {}, {}
    with tempfile.TemporaryDirectory(prefix="export_det_bench_") as tmp:
        for name in names:
            log(f"preparing {name}")
            step, count = make_step(CANDIDATES[name], models, inputs, threads, Path(tmp), cache)
            steps[name] = step
            counts[name] = count(step())
        log(f"{len(steps)} candidates, {warmup} warm-up + {repeats} interleaved rounds; "
            f"detections: {counts}")
        timings = perf.interleaved_timings(steps, repeats, warmup)
    base = timings[REFERENCE].median
    return [Result(name, t.median, t.spread, base / t.median, counts[name])
            for name, t in timings.items()]


def format_table(results: Sequence[Result]) -> str:
    """Markdown table: median latency, ratio to mmdet's predict, detections."""
    lines = [f"| candidate | median s | vs {REFERENCE} | IQR | detections |",
             "|---|---|---|---|---|"]
    lines += [f"| {r.candidate} | {r.median_s:.2f} | {r.ratio:.2f}x | {r.spread:.0%} | "
              f"{r.detections} |" for r in results]
    return "\n".join(lines)

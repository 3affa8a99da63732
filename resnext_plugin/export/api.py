"""``export_model``: a config and checkpoint to verified ONNX Runtime / OpenVINO files.

Layout of the output directory (mmdeploy's end-to-end names):

* ``end2end.onnx``: the fp32 ONNX graph (always written; ONNX Runtime fp32 runs it);
* ``end2end.xml`` / ``.bin``: OpenVINO fp32; ``end2end_bf16.xml``: OpenVINO with bf16
  inference; ``end2end_int8.onnx`` / ``end2end_int8.xml``: NNCF int8 for each backend;
* ``end2end.json``: the sidecar (task, preprocessing, input and outputs, class names, opset,
  versions, and each file's verification figures).

What differs between an mmpretrain classifier and an mmdet Mask R-CNN (the exported wrapper,
names, dynamic axes, verification, sidecar outputs) is one entry of
:data:`~resnext_plugin.export.tasks.TASKS`, chosen by the config's ``default_scope``.
"""
from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from mmengine.config import Config

from .backends import (
    BACKENDS,
    EXPORTER_PACKAGES,
    QUANTIZER_PACKAGES,
    WriteRequest,
    require_packages,
)
from .classifier import DYNAMIC_AXES, INPUT_NAMES, OUTPUT_NAMES, preprocessing_meta
from .errors import ExportError, VerificationError
from .model import build_model, class_names, load_weights, pipeline_batches
from .precisions import PRECISIONS
from .runtime import ExportedRuntime
from .tasks import ExportTask, task_for
from .verify import OutputCheck, describe

#: ONNX opset of the exported graph (RoiAlign / NonMaxSuppression / GroupConv all present).
OPSET = 17
SIDECAR = "end2end.json"
VERSIONED = ("torch", "onnx", "onnxruntime", "openvino", "nncf", "mmengine", "mmpretrain",
             "mmdet", "mmcv", "resnext_plugin")


@dataclass
class ExportResult:
    """What :func:`export_model` wrote and measured.

    Attributes:
        out_dir: The output directory.
        files: ``(backend, precision)`` -> the file that backend runs.
        checks: ``(backend, precision)`` -> the verification of that file.
        sidecar: Path of ``end2end.json``.
    """

    out_dir: Path
    files: dict[tuple[str, str], Path] = field(default_factory=dict)
    checks: dict[tuple[str, str], list[OutputCheck]] = field(default_factory=dict)
    sidecar: Optional[Path] = None


def plan(backends: Sequence[str], precisions: Sequence[str],
         log: Callable[[str], None] = print) -> list[tuple[str, str]]:
    """The ``(backend, precision)`` pairs to write, after checking names and packages.

    A precision that one requested backend refuses is skipped for it (logged) when another
    requested backend runs it; refused by all of them, it is an error.

    Raises:
        ExportError: An unknown backend or precision, or a precision no requested backend runs.
        MissingBackendError: A package is missing (named, with the pip command).
    """
    for name in backends:
        if name not in BACKENDS:
            raise ExportError(f"unknown backend {name!r} (known: {', '.join(BACKENDS)})")
    for name in precisions:
        if name not in PRECISIONS:
            raise ExportError(f"unknown precision {name!r} (known: {', '.join(PRECISIONS)})")
    require_packages(EXPORTER_PACKAGES, "export to ONNX")
    for name in backends:
        require_packages(BACKENDS[name].packages, f"backend '{name}'")
    if "int8" in precisions:
        require_packages(QUANTIZER_PACKAGES, "--precision int8")
    pairs = []
    for precision in precisions:
        runnable = [b for b in backends if precision not in BACKENDS[b].refused]
        if not runnable:
            BACKENDS[backends[0]].check(precision)  # raises, naming backend and reason
        for name in backends:
            if name in runnable:
                pairs.append((name, precision))
            else:
                log(f"skipped {name} {precision}: {BACKENDS[name].refused[precision]}")
    return pairs


def _versions() -> dict[str, str]:
    versions = {}
    for name in VERSIONED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


def export_onnx(module: torch.nn.Module, example: torch.Tensor, path: Path,
                opset: int = OPSET, input_names: Sequence[str] = INPUT_NAMES,
                output_names: Sequence[str] = OUTPUT_NAMES,
                dynamic_axes: Optional[dict] = None) -> None:
    """``torch.onnx.export`` with the TorchScript-based exporter (``dynamo=False``): the
    ``dynamic_axes`` dynamic (default: the classifier's batch, height and width). torch >=
    2.9's default (dynamo) exporter skips the operator rewrites mmdeploy-style exports rely
    on; the TorchScript route is what mmdeploy's maintained fork pins, and it exports grouped
    convolutions as ONNX ``Conv`` with ``group`` (and Mask R-CNN's ``torchvision`` RoIAlign
    and NMS as ``RoiAlign`` and ``NonMaxSuppression``).

    Raises:
        ExportError: The exporter refused an operator or a dynamic shape (its message kept).
    """
    import onnx

    try:
        with torch.no_grad():
            torch.onnx.export(module, (example,), str(path), dynamo=False,
                              opset_version=opset, input_names=list(input_names),
                              output_names=list(output_names),
                              dynamic_axes=DYNAMIC_AXES if dynamic_axes is None
                              else dynamic_axes,
                              do_constant_folding=True)
    except Exception as err:  # torch raises several exporter error types
        raise ExportError(f"torch.onnx.export (TorchScript exporter, opset {opset}) refused "
                          f"the model: {type(err).__name__}: {err}") from err
    onnx.checker.check_model(str(path))


def export_model(config: str | Path, checkpoint: str | Path, out_dir: str | Path,
                 backends: Sequence[str] = ("onnxruntime", "openvino"),
                 precisions: Sequence[str] = ("fp32",), calib_images: int = 300,
                 verify_images: int = 32, cfg_options: Optional[dict] = None,
                 log: Callable[[str], None] = print) -> ExportResult:
    """Export the model of ``config`` with the weights of ``checkpoint`` and verify every file.

    Args:
        config: An mmpretrain classifier config or an mmdet Mask R-CNN config (the task is
            the config's ``default_scope``, see :data:`~resnext_plugin.export.tasks.TASKS`).
        checkpoint: Weights that fit the config (checked key by key, read as data).
        out_dir: Output directory (created).
        backends: Names from :data:`~resnext_plugin.export.backends.BACKENDS`.
        precisions: Names from :data:`~resnext_plugin.export.precisions.PRECISIONS`.
        calib_images: Training images (config's train pipeline) for int8 calibration.
        verify_images: Test images (config's test pipeline) the verification compares on
            (classifiers: batches of 16; detectors: one image at a time).
        cfg_options: Overrides merged into the config.
        log: Where progress lines go.

    Returns:
        ExportResult: Files and verification figures (also in ``end2end.json``).

    Raises:
        ExportError: Bad checkpoint, refused operator/precision (per backend or per task),
            unknown names, a config of another task.
        MissingBackendError: A backend package is missing.
        VerificationError: A file differs from PyTorch beyond its precision's tolerance; the
            files and the sidecar (with the figures) are still written.
    """
    pairs = plan(backends, precisions, log)
    cfg = Config.fromfile(str(config))
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    task = task_for(cfg, config)
    for precision in precisions:
        task.check(precision)
    out = Path(out_dir)

    model = build_model(cfg)
    meta = load_weights(model, checkpoint, config)
    module = task.wrap(model).eval()
    batches = [inputs.numpy() for inputs, _ in pipeline_batches(
        cfg, model, "test", verify_images, batch_size=task.verify_batch_size)]
    log(f"verification inputs: {sum(len(b) for b in batches)} test images, shape "
        f"{tuple(batches[0].shape[1:])} after the data preprocessor")
    reference = [task.run_torch(module, batch) for batch in batches]

    out.mkdir(parents=True, exist_ok=True)
    result = ExportResult(out)
    onnx_path = out / "end2end.onnx"
    export_onnx(module, torch.from_numpy(batches[0][:1]), onnx_path,
                input_names=task.input_names, output_names=task.output_names,
                dynamic_axes=task.dynamic_axes)
    axes = sorted({axis for named in task.dynamic_axes.values() for axis in named.values()})
    log(f"wrote {onnx_path} ({task.name}, opset {OPSET}, dynamic {'/'.join(axes)})")

    calibration: list[np.ndarray] = []
    if any(p == "int8" for _, p in pairs):
        calibration = [inputs.numpy() for inputs, _ in pipeline_batches(
            cfg, model, "train", calib_images, batch_size=1)]
        log(f"int8 calibration: {len(calibration)} training images (train pipeline)")

    failures = []
    for backend, precision in pairs:
        path = BACKENDS[backend].write(WriteRequest(onnx_path, out, precision, calibration))
        runtime = ExportedRuntime(path)
        exported = [runtime(batch) for batch in batches]
        checks = task.compare(reference, exported, batches)
        result.files[(backend, precision)] = path
        result.checks[(backend, precision)] = checks
        log(f"verified {backend} {precision} {path.name} against PyTorch fp32: "
            f"{describe(checks)}")
        try:
            task.enforce(checks, precision, f"{backend} {precision} ({path.name})")
        except VerificationError as err:
            failures.append(err)

    result.sidecar = _write_sidecar(result, task, cfg, config, checkpoint, model, meta,
                                    tuple(batches[0].shape[2:]), calibration)
    log(f"wrote {result.sidecar}")
    if failures:
        raise failures[0]
    return result


def _test_pipeline(cfg: Config) -> list:
    dataset = cfg.test_dataloader.dataset
    while "pipeline" not in dataset and "dataset" in dataset:
        dataset = dataset.dataset
    return [dict(step) for step in dataset.get("pipeline", [])]


def _write_sidecar(result: ExportResult, task: ExportTask, cfg: Config, config: str | Path,
                   checkpoint: str | Path, model: torch.nn.Module, meta: dict,
                   size: tuple[int, ...], calibration: list) -> Path:
    files: dict[str, dict] = {}
    for (backend, precision), path in result.files.items():
        files.setdefault(backend, {})[precision] = {
            "file": path.name,
            "verification": [check.as_dict() for check in result.checks[(backend, precision)]],
            "tolerance": task.tolerance(precision),
        }
    sidecar = {
        "task": task.name,
        "config": str(config),
        "checkpoint": str(checkpoint),
        "input": {"name": task.input_names[0], "layout": "NCHW", "dtype": "float32",
                  "shape": task.input_shape, "size": list(size), "note": task.input_note},
        "outputs": task.outputs,
        "dynamic_axes": task.dynamic_axes,
        "preprocess": preprocessing_meta(model),
        "test_pipeline": _test_pipeline(cfg),
        "classes": class_names(cfg, meta),
        **task.extra_meta(model),
        "opset": OPSET,
        "exporter": "torch.onnx.export(dynamo=False)",
        "int8_calibration_images": len(calibration),
        "files": files,
        "versions": _versions(),
        "python": sys.version.split()[0],
    }
    path = result.out_dir / SIDECAR
    path.write_text(json.dumps(sidecar, indent=2, default=str) + "\n")
    return path

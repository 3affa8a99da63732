"""``export_model``: a config and checkpoint to verified ONNX Runtime / OpenVINO files.

Layout of the output directory (mmdeploy's end-to-end names):

* ``end2end.onnx``: the fp32 ONNX graph (always written; ONNX Runtime fp32 runs it);
* ``end2end.xml`` / ``.bin``: OpenVINO fp32; ``end2end_bf16.xml``: OpenVINO with bf16
  inference; ``end2end_int8.onnx`` / ``end2end_int8.xml``: NNCF int8 for each backend;
* ``end2end.json``: the sidecar (preprocessing, input and outputs, class names, opset,
  versions, and each file's verification figures).
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
from .classifier import (
    DYNAMIC_AXES,
    INPUT_NAMES,
    OUTPUT_NAMES,
    ClassifierScores,
    preprocessing_meta,
)
from .errors import ExportError, VerificationError
from .model import build_model, class_names, load_weights, pipeline_batches, task_of
from .precisions import PRECISIONS
from .runtime import ExportedRuntime
from .verify import OutputCheck, compare, describe, enforce

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
                opset: int = OPSET) -> None:
    """``torch.onnx.export`` with the TorchScript-based exporter (``dynamo=False``): batch,
    height and width dynamic. torch >= 2.9's default (dynamo) exporter skips the
    operator rewrites mmdeploy-style exports rely on; the TorchScript route is what mmdeploy's
    maintained fork pins, and it exports grouped convolutions as ONNX ``Conv`` with ``group``.

    Raises:
        ExportError: The exporter refused an operator or a dynamic shape (its message kept).
    """
    import onnx

    try:
        with torch.no_grad():
            torch.onnx.export(module, (example,), str(path), dynamo=False,
                              opset_version=opset, input_names=INPUT_NAMES,
                              output_names=OUTPUT_NAMES, dynamic_axes=DYNAMIC_AXES,
                              do_constant_folding=True)
    except Exception as err:  # torch raises several exporter error types
        raise ExportError(f"torch.onnx.export (TorchScript exporter, opset {opset}) refused "
                          f"the model: {type(err).__name__}: {err}") from err
    onnx.checker.check_model(str(path))


def _run_batches(run: Callable[[np.ndarray], list[np.ndarray]], batches: Sequence[np.ndarray]
                 ) -> list[np.ndarray]:
    outputs = [run(batch) for batch in batches]
    return [np.concatenate([out[i] for out in outputs]) for i in range(len(outputs[0]))]


def export_model(config: str | Path, checkpoint: str | Path, out_dir: str | Path,
                 backends: Sequence[str] = ("onnxruntime", "openvino"),
                 precisions: Sequence[str] = ("fp32",), calib_images: int = 300,
                 verify_images: int = 32, cfg_options: Optional[dict] = None,
                 log: Callable[[str], None] = print) -> ExportResult:
    """Export the model of ``config`` with the weights of ``checkpoint`` and verify every file.

    Args:
        config: An mmpretrain classifier config (mmdet detectors: not yet, see below).
        checkpoint: Weights that fit the config (checked key by key, read as data).
        out_dir: Output directory (created).
        backends: Names from :data:`~resnext_plugin.export.backends.BACKENDS`.
        precisions: Names from :data:`~resnext_plugin.export.precisions.PRECISIONS`.
        calib_images: Training images (config's train pipeline) for int8 calibration.
        verify_images: Test images (config's test pipeline) the verification compares on.
        cfg_options: Overrides merged into the config.
        log: Where progress lines go.

    Returns:
        ExportResult: Files and verification figures (also in ``end2end.json``).

    Raises:
        ExportError: Bad checkpoint, refused operator/precision, unknown names.
        MissingBackendError: A backend package is missing.
        VerificationError: A file differs from PyTorch beyond its precision's tolerance; the
            files and the sidecar (with the figures) are still written.
        NotImplementedError: An mmdet config (detector export is not implemented yet).
    """
    pairs = plan(backends, precisions, log)
    cfg = Config.fromfile(str(config))
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if task_of(cfg, config) == "detection":
        raise NotImplementedError(
            f"{config}: Mask R-CNN export is not implemented yet: it needs mmdet's RoI "
            "extractor mapped to ONNX RoiAlign and its batched NMS to NonMaxSuppression "
            "(mmdeploy's rewriters); only mmpretrain classifiers export today")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    result = ExportResult(out)

    model = build_model(cfg)
    meta = load_weights(model, checkpoint, config)
    module = ClassifierScores(model).eval()
    batches = [inputs for inputs, _ in pipeline_batches(cfg, model, "test", verify_images,
                                                        batch_size=16)]
    log(f"verification inputs: {sum(len(b) for b in batches)} test images, shape "
        f"{tuple(batches[0].shape[1:])} after the data preprocessor")
    with torch.no_grad():
        reference = _run_batches(lambda x: [module(torch.from_numpy(x)).numpy()],
                                 [b.numpy() for b in batches])

    onnx_path = out / "end2end.onnx"
    export_onnx(module, batches[0][:1], onnx_path)
    log(f"wrote {onnx_path} (opset {OPSET}, dynamic batch/height/width)")

    calibration: list[np.ndarray] = []
    if any(p == "int8" for _, p in pairs):
        calibration = [inputs.numpy() for inputs, _ in pipeline_batches(
            cfg, model, "train", calib_images, batch_size=1)]
        log(f"int8 calibration: {len(calibration)} training images (train pipeline)")

    failures = []
    for backend, precision in pairs:
        path = BACKENDS[backend].write(WriteRequest(onnx_path, out, precision, calibration))
        runtime = ExportedRuntime(path)
        exported = _run_batches(runtime, [b.numpy() for b in batches])
        checks = compare(OUTPUT_NAMES, reference, exported, top1_outputs=OUTPUT_NAMES)
        result.files[(backend, precision)] = path
        result.checks[(backend, precision)] = checks
        log(f"verified {backend} {precision} {path.name} against PyTorch fp32: "
            f"{describe(checks)}")
        try:
            enforce(checks, precision, f"{backend} {precision} ({path.name})")
        except VerificationError as err:
            failures.append(err)

    result.sidecar = _write_sidecar(result, cfg, config, checkpoint, model, meta,
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


def _write_sidecar(result: ExportResult, cfg: Config, config: str | Path,
                   checkpoint: str | Path, model: torch.nn.Module, meta: dict,
                   size: tuple[int, ...], calibration: list) -> Path:
    files: dict[str, dict] = {}
    for (backend, precision), path in result.files.items():
        files.setdefault(backend, {})[precision] = {
            "file": path.name,
            "verification": [check.as_dict() for check in result.checks[(backend, precision)]],
            "tolerance": {"max_diff": PRECISIONS[precision].max_diff,
                          "min_top1_agreement": PRECISIONS[precision].min_agreement},
        }
    sidecar = {
        "task": "classification",
        "config": str(config),
        "checkpoint": str(checkpoint),
        "input": {"name": INPUT_NAMES[0], "layout": "NCHW", "dtype": "float32",
                  "shape": ["batch", 3, "height", "width"], "size": list(size),
                  "note": "after the data preprocessor: (image - mean) / std, RGB"},
        "outputs": [{"name": OUTPUT_NAMES[0], "shape": ["batch", "num_classes"],
                     "meaning": "class scores (softmax of the head's logits)"}],
        "preprocess": preprocessing_meta(model),
        "test_pipeline": _test_pipeline(cfg),
        "classes": class_names(cfg, meta),
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

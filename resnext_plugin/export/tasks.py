"""What an export does per task: one entry per task in :data:`TASKS`, read by
:func:`~resnext_plugin.export.api.export_model` (wrapper, names, dynamic axes, verification,
sidecar), by :func:`~resnext_plugin.export.evaluation.use_exported_model` (the mmengine model
``tools/test.py`` runs) and by nothing else: adding a task is adding an entry here.

The task of a config is found by its ``default_scope`` (``mmpretrain``: classification,
``mmdet``: detection). mmpretrain and mmdet are imported only when an entry's callables run.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from mmengine.config import Config
from torch import nn

from . import classifier, detector
from .errors import ExportError
from .precisions import PRECISIONS
from .verify import OutputCheck, compare, enforce

#: Per batch, the outputs in the task's output order.
Outputs = Sequence[np.ndarray]


@dataclass(frozen=True)
class ExportTask:
    """One kind of model the export knows.

    Attributes:
        name: ``'classification'`` or ``'detection'`` (the sidecar's ``task``).
        scope: The configs' ``default_scope`` that selects this task.
        wrap: The config's model (weights loaded) -> the module that is exported.
        input_names / output_names / dynamic_axes: ``torch.onnx.export``'s arguments.
        input_shape: The input's shape for the sidecar (names for dynamic axes).
        input_note: What the input holds, for the sidecar.
        outputs: The sidecar's description of every output.
        verify_batch_size: Images per batch in verification (the exported graph's batch).
        compare: ``(reference, exported, inputs)`` per batch -> the figures of every output.
        enforce: ``(checks, precision, what)``: raise ``VerificationError`` beyond tolerance.
        tolerance: Precision -> the bounds ``enforce`` applies (for the sidecar).
        refused: Precision -> why this task does not export in it (an ``ExportError``).
        exported_model: Registry type of the mmengine model ``tools/test.py`` runs a file with.
        preprocessor_type: Data preprocessor type when the config's has no scope.
        model_args: The config -> further arguments of ``exported_model``.
        extra_meta: The model -> further sidecar entries.
    """

    name: str
    scope: str
    wrap: Callable[[nn.Module], nn.Module]
    input_names: list[str]
    output_names: list[str]
    dynamic_axes: dict[str, dict[int, str]]
    input_shape: list
    input_note: str
    outputs: list[dict]
    verify_batch_size: int
    compare: Callable[[Sequence[Outputs], Sequence[Outputs], Sequence[np.ndarray]],
                      list[OutputCheck]]
    enforce: Callable[[Sequence[OutputCheck], str, str], None]
    tolerance: Callable[[str], dict]
    exported_model: str
    preprocessor_type: str
    refused: Mapping[str, str] = field(default_factory=dict)
    model_args: Callable[[Config], dict] = lambda cfg: {}
    extra_meta: Callable[[nn.Module], dict] = lambda model: {}

    def check(self, precision: str) -> None:
        """Raise :class:`ExportError` if this task does not export in ``precision``."""
        if precision in self.refused:
            raise ExportError(f"--precision {precision} is not available for {self.name} "
                              f"export: {self.refused[precision]}")

    def run_torch(self, module: nn.Module, inputs: np.ndarray) -> list[np.ndarray]:
        """The wrapper's outputs for one batch, as numpy arrays in output order."""
        with torch.no_grad():
            outputs = module(torch.from_numpy(inputs))
        if isinstance(outputs, torch.Tensor):
            outputs = (outputs,)
        return [out.detach().cpu().numpy() for out in outputs]


# ------------------------------------------------------------------ classification
def _compare_scores(reference: Sequence[Outputs], exported: Sequence[Outputs],
                    inputs: Sequence[np.ndarray]) -> list[OutputCheck]:
    def joined(batches: Sequence[Outputs]) -> list[np.ndarray]:
        return [np.concatenate([out[i] for out in batches]) for i in range(len(batches[0]))]

    return compare(classifier.OUTPUT_NAMES, joined(reference), joined(exported),
                   top1_outputs=classifier.OUTPUT_NAMES)


def _score_tolerance(precision: str) -> dict:
    bound = PRECISIONS[precision]
    if hasattr(bound, "tolerance"):  # the precision says how it is judged
        return bound.tolerance()
    return {"max_diff": bound.max_diff, "min_top1_agreement": bound.min_agreement}


# ------------------------------------------------------------------ detection
def _compare_detections(reference: Sequence[Outputs], exported: Sequence[Outputs],
                        inputs: Sequence[np.ndarray]) -> list[OutputCheck]:
    sizes = [(int(batch.shape[2]), int(batch.shape[3])) for batch in inputs]
    return detector.compare_detections(reference, exported, sizes)


def _detector_meta(model: nn.Module) -> dict:
    test_cfg = getattr(model, "test_cfg", None)
    return {"test_cfg": test_cfg.to_dict() if hasattr(test_cfg, "to_dict") else test_cfg}


_DETECTION_QUANTIZED = (
    "the exported Mask R-CNN is verified detection by detection against PyTorch (the same "
    "detections, boxes, scores and masks within 1e-3), which a reduced precision does not "
    "keep: a score near score_thr or an IoU near the NMS threshold changes which detections "
    "there are (OpenVINO's bf16 hint on the test model: 97% of confident detections found, "
    "scores up to 0.26 apart), and no AP-based check for detectors is written yet; int8 (NNCF) "
    "of the graph's RoiAlign/NMS parts is not validated either. Use --precision fp32")

TASKS: dict[str, ExportTask] = {
    "mmpretrain": ExportTask(
        name="classification", scope="mmpretrain",
        wrap=lambda model: classifier.ClassifierScores(model),
        input_names=classifier.INPUT_NAMES, output_names=classifier.OUTPUT_NAMES,
        dynamic_axes=classifier.DYNAMIC_AXES,
        input_shape=["batch", 3, "height", "width"],
        input_note="after the data preprocessor: (image - mean) / std, RGB",
        outputs=[{"name": "scores", "shape": ["batch", "num_classes"],
                  "meaning": "class scores (softmax of the head's logits)"}],
        verify_batch_size=16, compare=_compare_scores, enforce=enforce,
        tolerance=_score_tolerance,
        exported_model="resnext_plugin.ExportedClassifier",
        preprocessor_type="mmpretrain.ClsDataPreprocessor"),
    "mmdet": ExportTask(
        name="detection", scope="mmdet",
        wrap=lambda model: detector.MaskRCNNOutputs(model),
        input_names=detector.INPUT_NAMES, output_names=detector.OUTPUT_NAMES,
        dynamic_axes=detector.DYNAMIC_AXES,
        input_shape=[1, 3, "height", "width"],
        input_note="after the data preprocessor: (image - mean) / std, RGB, padded to a "
                   "multiple of pad_size_divisor; batch 1",
        outputs=detector.OUTPUTS_META,
        verify_batch_size=1, compare=_compare_detections,
        enforce=detector.enforce_detections, tolerance=detector.detection_tolerance,
        refused={"int8": _DETECTION_QUANTIZED, "bf16": _DETECTION_QUANTIZED},
        exported_model="resnext_plugin.ExportedDetector",
        preprocessor_type="mmdet.DetDataPreprocessor",
        model_args=lambda cfg: {"mask_thr_binary": detector.mask_threshold(cfg)},
        extra_meta=_detector_meta),
}


def task_for(cfg: Config, config_path: str | Path) -> ExportTask:
    """The task of ``cfg`` by its ``default_scope``.

    Raises:
        ExportError: A scope no task has.
    """
    scope = cfg.get("default_scope")
    if scope not in TASKS:
        known = ", ".join(f"'{s}' ({t.name})" for s, t in TASKS.items())
        raise ExportError(f"{config_path}: default_scope {scope!r} is none the export knows "
                          f"({known})")
    return TASKS[scope]

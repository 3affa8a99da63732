"""Exported models inside mmengine's test loop, so that ``tools/test.py CONFIG end2end.onnx``
reports the config's own metrics for them (the same evaluator as for the PyTorch checkpoint).

:class:`ExportedClassifier` / :class:`ExportedDetector` stand where the config's model stood
(which one: the task's entry in :data:`~resnext_plugin.export.tasks.TASKS`): the config's data
preprocessor prepares each batch as before, the backend computes the outputs, and the data
samples get what the config's evaluator reads (mmpretrain's ``pred_score``/``pred_label``;
mmdet's ``pred_instances`` with boxes, scores, labels and pasted masks).
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import torch
from mmengine.config import Config, ConfigDict
from mmengine.model import BaseModel

from ..registry import MODELS
from .backends import BACKENDS
from .errors import ExportError
from .runtime import ExportedRuntime
from .tasks import task_for

#: Suffixes ``tools/test.py`` takes as an exported model rather than a checkpoint.
EXPORTED_SUFFIXES = tuple(backend.suffix for backend in BACKENDS.values())


def is_exported_model(path: str | Path) -> bool:
    """Whether ``path`` names an exported model file (``.onnx``, ``.xml``)."""
    return Path(path).suffix.lower() in EXPORTED_SUFFIXES


@MODELS.register_module()
class ExportedClassifier(BaseModel):
    """An exported mmpretrain classifier run by its backend, as an mmengine model.

    Args:
        file: ``end2end*.onnx`` (ONNX Runtime) or ``end2end*.xml`` (OpenVINO).
        data_preprocessor: The config's data preprocessor (what the export's input follows).
        threads: Backend threads (``None``: the backend's default).
    """

    def __init__(self, file: str, data_preprocessor: Optional[dict] = None,
                 threads: Optional[int] = None, init_cfg: Optional[dict] = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.runtime = ExportedRuntime(file, threads)

    def forward(self, inputs: torch.Tensor, data_samples: Optional[list] = None,
                mode: str = "predict") -> list:
        """Predictions (mode ``'predict'``, the only one an exported model has)."""
        from mmpretrain.structures import DataSample

        if mode != "predict":
            raise ExportError(f"an exported model only predicts; mode {mode!r} needs the "
                              "PyTorch checkpoint")
        scores = torch.from_numpy(self.runtime(inputs.detach().cpu().float().numpy())[0])
        if data_samples is None:
            data_samples = [DataSample() for _ in range(len(scores))]
        for sample, score in zip(data_samples, scores):
            sample.set_pred_score(score).set_pred_label(score.argmax(dim=0, keepdim=True))
        return data_samples


@MODELS.register_module()
class ExportedDetector(BaseModel):
    """An exported mmdet Mask R-CNN (``dets``/``labels``/``masks``) run by its backend, as an
    mmengine model giving what mmdet's ``predict(rescale=True)`` gives.

    Each image of a batch runs alone (the exported graph's batch is 1), in the padded frame the
    data preprocessor made; its boxes are clipped to the image (``img_shape``), divided by the
    sample's ``scale_factor`` and its masks pasted into the original image with mmdet's own
    ``_do_paste_mask`` and thresholded at ``mask_thr_binary``.

    Args:
        file: ``end2end*.onnx`` (ONNX Runtime) or ``end2end*.xml`` (OpenVINO).
        data_preprocessor: The config's ``DetDataPreprocessor``.
        mask_thr_binary: The config's ``test_cfg.rcnn.mask_thr_binary``.
        threads: Backend threads (``None``: the backend's default).
    """

    def __init__(self, file: str, data_preprocessor: Optional[dict] = None,
                 mask_thr_binary: float = 0.5, threads: Optional[int] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.runtime = ExportedRuntime(file, threads)
        self.mask_thr_binary = mask_thr_binary

    def forward(self, inputs: torch.Tensor, data_samples: Optional[list] = None,
                mode: str = "predict") -> list:
        """Predictions (mode ``'predict'``, the only one an exported model has)."""
        from mmdet.structures import DetDataSample
        from mmengine.structures import InstanceData

        from .detector import paste_masks

        if mode != "predict":
            raise ExportError(f"an exported model only predicts; mode {mode!r} needs the "
                              "PyTorch checkpoint")
        if data_samples is None:
            data_samples = [DetDataSample(metainfo=dict(
                img_shape=tuple(inputs.shape[2:]), ori_shape=tuple(inputs.shape[2:]),
                scale_factor=(1.0, 1.0))) for _ in range(len(inputs))]
        batch = inputs.detach().cpu().float().numpy()
        for index, sample in enumerate(data_samples):
            dets, labels, masks = self.runtime(batch[index:index + 1])
            boxes = torch.from_numpy(np.ascontiguousarray(dets[0, :, :4])).float()
            img_h, img_w = sample.metainfo.get("img_shape", inputs.shape[2:])[:2]
            boxes = torch.min(boxes, boxes.new_tensor([img_w, img_h, img_w, img_h]))
            scale = boxes.new_tensor(sample.metainfo.get("scale_factor", (1.0, 1.0))).repeat(2)
            boxes = boxes / scale
            ori_h, ori_w = sample.metainfo.get("ori_shape", (img_h, img_w))[:2]
            results = InstanceData()
            results.bboxes = boxes
            results.scores = torch.from_numpy(np.ascontiguousarray(dets[0, :, 4])).float()
            results.labels = torch.from_numpy(labels[0].astype(np.int64))
            results.masks = paste_masks(torch.from_numpy(np.ascontiguousarray(masks[0])),
                                        boxes, int(ori_h), int(ori_w), self.mask_thr_binary)
            sample.pred_instances = results
        return data_samples


def use_exported_model(cfg: Config, path: str | Path) -> None:
    """Make ``cfg`` test the exported model at ``path`` instead of a checkpoint, in place: the
    model of the config's task (:data:`~resnext_plugin.export.tasks.TASKS`), with the config's
    data preprocessor.

    Raises:
        ValueError: The config is of no task the export knows (its ``default_scope``).
    """
    try:
        task = task_for(cfg, path)
    except ExportError as err:
        raise ValueError(f"testing an exported model ({path}) needs a config the export "
                         f"knows: {err}") from None
    pre = cfg.model.get("data_preprocessor") or cfg.get("data_preprocessor") or {}
    pre = ConfigDict(pre)
    pre.setdefault("type", task.preprocessor_type)
    if "." not in pre.type:
        pre.type = f"{task.scope}.{pre.type}"
    model = ConfigDict(type=task.exported_model, file=str(path), data_preprocessor=pre)
    model.update(task.model_args(cfg))
    cfg.model = model
    cfg.load_from = None

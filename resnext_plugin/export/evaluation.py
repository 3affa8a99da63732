"""Exported models inside mmengine's test loop, so that ``tools/test.py CONFIG end2end.onnx``
reports the config's own metrics for them (the same evaluator as for the PyTorch checkpoint).

:class:`ExportedClassifier` stands where the config's model stood: the config's data
preprocessor prepares each batch as before, the backend computes the class scores, and the data
samples get mmpretrain's ``pred_score``/``pred_label`` for the evaluator.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch
from mmengine.config import Config, ConfigDict
from mmengine.model import BaseModel

from ..registry import MODELS
from .backends import BACKENDS
from .errors import ExportError
from .runtime import ExportedRuntime

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


def use_exported_model(cfg: Config, path: str | Path) -> None:
    """Make ``cfg`` test the exported model at ``path`` instead of a checkpoint, in place.

    Raises:
        ValueError: The config is not an mmpretrain classifier config (Mask R-CNN export is
            not implemented yet).
    """
    scope = cfg.get("default_scope")
    if scope != "mmpretrain":
        raise ValueError(f"testing an exported model ({path}) needs an mmpretrain classifier "
                         f"config; default_scope is {scope!r} (detector export is not "
                         "implemented yet)")
    pre = cfg.model.get("data_preprocessor") or cfg.get("data_preprocessor") or {}
    pre = ConfigDict(pre)
    pre.setdefault("type", "mmpretrain.ClsDataPreprocessor")
    cfg.model = ConfigDict(type="resnext_plugin.ExportedClassifier", file=str(path),
                           data_preprocessor=pre)
    cfg.load_from = None

"""mmpretrain classifiers as exported graphs: normalised NCHW images in, class scores out."""
from __future__ import annotations

import torch
from torch import nn

from .errors import ExportError

INPUT_NAMES = ["input"]
OUTPUT_NAMES = ["scores"]
DYNAMIC_AXES = {"input": {0: "batch", 2: "height", 3: "width"}, "scores": {0: "batch"}}


class ClassifierScores(nn.Module):
    """What mmpretrain's ``ImageClassifier.predict`` computes after the data preprocessor:
    backbone, neck, head, then the head's softmax (``ClsHead``) or sigmoid
    (``MultiLabelClsHead``), as mmdeploy's classifier rewriter exports it.

    Raises:
        ExportError: The model is not an ``ImageClassifier`` with one of those heads.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        from mmpretrain.models.classifiers import ImageClassifier
        from mmpretrain.models.heads import ClsHead, MultiLabelClsHead

        if not isinstance(model, ImageClassifier):
            raise ExportError(f"classifier export supports mmpretrain's ImageClassifier, "
                              f"the config builds {type(model).__name__}")
        if isinstance(model.head, MultiLabelClsHead):
            self.activation = "sigmoid"
        elif isinstance(model.head, ClsHead):
            self.activation = "softmax"
        else:
            raise ExportError(f"classifier export supports ClsHead and MultiLabelClsHead heads, "
                              f"the config's head is {type(model.head).__name__}")
        self.model = model

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        logits = self.model.head(self.model.extract_feat(inputs))
        if self.activation == "sigmoid":
            return torch.sigmoid(logits)
        return torch.softmax(logits, dim=1)


def preprocessing_meta(model: nn.Module) -> dict:
    """Mean, std, channel order (and, for detectors, padding) of the model's data preprocessor:
    what a caller must apply to an image before the exported model."""
    pre = model.data_preprocessor
    meta: dict = {"type": type(pre).__name__, "layout": "NCHW", "dtype": "float32"}
    if getattr(pre, "_enable_normalize", False):
        meta["mean"] = [float(v) for v in pre.mean.flatten()]
        meta["std"] = [float(v) for v in pre.std.flatten()]
    meta["to_rgb"] = bool(getattr(pre, "to_rgb", getattr(pre, "_channel_conversion", False)))
    if hasattr(pre, "pad_size_divisor"):  # mmdet's DetDataPreprocessor pads the batch
        meta["pad_size_divisor"] = int(pre.pad_size_divisor)
        meta["pad_value"] = float(getattr(pre, "pad_value", 0))
    return meta

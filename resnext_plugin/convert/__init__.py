"""Checkpoint interop: published ResNeXt weights into the plugin, verified key by key.

Sources: torchvision, timm, mmpretrain, mmdet (incl. ``open-mmlab://resnext101_32x4d``),
detectron2 (incl. Caffe2 ``.pkl`` blobs) and the plugin's own training checkpoints. Targets: a
backbone checkpoint for ``init_cfg=dict(type='Pretrained', checkpoint=...)``, an mmpretrain
``ImageClassifier`` checkpoint for ``load_from``, or torchvision's ``ResNet`` layout. The command
line front end is ``tools/convert_checkpoint.py``; see ``docs/checkpoints.md``.
"""
from .api import (
    STYLES,
    TARGETS,
    Conversion,
    backbone_checkpoint,
    classifier_checkpoint,
    convert_checkpoint,
    convert_state_dict,
    torchvision_builder,
    torchvision_state_dict,
)
from .layouts import LAYOUTS, ConversionError, guess_layout, map_weights
from .verify import describe, infer_arch

__all__ = [
    "LAYOUTS", "STYLES", "TARGETS", "Conversion", "ConversionError", "backbone_checkpoint",
    "classifier_checkpoint", "convert_checkpoint", "convert_state_dict", "describe",
    "guess_layout", "infer_arch", "map_weights", "torchvision_builder", "torchvision_state_dict",
]

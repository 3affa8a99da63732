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
from .io import NumpyOnlyUnpickler, extract_weights, load_source_file, save_atomic
from .layouts import LAYOUTS, ConversionError, guess_layout, map_weights
from .verify import describe, infer_arch

__all__ = [
    "LAYOUTS", "STYLES", "TARGETS", "Conversion", "ConversionError", "NumpyOnlyUnpickler",
    "backbone_checkpoint", "classifier_checkpoint", "convert_checkpoint", "convert_state_dict",
    "describe", "extract_weights", "guess_layout", "infer_arch", "load_source_file",
    "map_weights", "save_atomic", "torchvision_builder", "torchvision_state_dict",
]

"""Runner-side pieces of the plugin: hooks, data checks and the CPU-capable distributed set-up.

Importing this package registers ``resnext_plugin.TrainingCurvesHook``,
``resnext_plugin.WeightSyncCheckHook``, ``resnext_plugin.CheckedImageNet`` and
``resnext_plugin.StrictLoadImageFromFile``.
"""
from .data import (
    DATASETS,
    TRANSFORMS,
    CheckedImageNet,
    CorruptImageError,
    DataNotFoundError,
    StrictLoadImageFromFile,
    check_imagenet_layout,
    find_image_corruption,
)
from .dist import cpu_model_wrapper_cfg, has_accelerator, init_distributed, setup_distributed
from .hooks import TrainingCurvesHook, WeightSyncCheckHook, parameter_digests

__all__ = [
    "DATASETS", "TRANSFORMS", "CheckedImageNet", "CorruptImageError", "DataNotFoundError",
    "StrictLoadImageFromFile", "check_imagenet_layout", "find_image_corruption",
    "cpu_model_wrapper_cfg", "has_accelerator", "init_distributed", "setup_distributed",
    "TrainingCurvesHook", "WeightSyncCheckHook", "parameter_digests",
]

"""Runner-side pieces of the plugin: hooks, data checks and the CPU-capable distributed set-up.

Importing this package registers the hooks ``resnext_plugin.TrainingCurvesHook``,
``resnext_plugin.WeightSyncCheckHook``, ``resnext_plugin.StopOnNonFiniteLossHook`` and
``resnext_plugin.ResumableRandomnessHook``, the dataset ``resnext_plugin.CheckedImageNet`` and the
transform ``resnext_plugin.StrictLoadImageFromFile``; ``resnext_plugin.CheckedCocoDataset``
(``coco.py``, which imports mmdet) registers when a config first names it.
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
from .nonfinite import NonFiniteLossError, StopOnNonFiniteLossHook
from .rng import ResumableRandomnessHook, derive_seed
from .runner import build_runner

__all__ = [
    "DATASETS", "TRANSFORMS", "CheckedImageNet", "CorruptImageError", "DataNotFoundError",
    "StrictLoadImageFromFile", "check_imagenet_layout", "find_image_corruption",
    "cpu_model_wrapper_cfg", "has_accelerator", "init_distributed", "setup_distributed",
    "TrainingCurvesHook", "WeightSyncCheckHook", "NonFiniteLossError",
    "StopOnNonFiniteLossHook", "parameter_digests", "build_runner", "ResumableRandomnessHook",
    "derive_seed",
]

"""Data sets and transforms of the plugin (``resnext_plugin.registry.DATASETS``/``TRANSFORMS``).

* ``resnext_plugin.CheckedImageNet`` (``imagenet.py``): a missing data root or a bad annotation
  record is named.
* ``resnext_plugin.CheckedCocoDataset`` (``coco.py``, imports mmdet, so registered on the first
  lookup only): bad COCO records named or counted, missing images found at start.
* ``resnext_plugin.CheckedCIFAR10`` / ``CheckedCIFAR100`` (``cifar.py``): file checks.
* ``resnext_plugin.StrictLoadImageFromFile`` (``transforms/``): a corrupt image file is named.

The ImageNet and CIFAR data sets subclass mmpretrain's: they are imported here only when mmpretrain
is installed (otherwise their names raise an error naming it), so the transforms and the COCO data
set work on a stack without mmpretrain. ``registration.py`` registers all of them on the first
``resnext_plugin.`` data-set lookup.
"""
from typing import Any

from ..deps import is_available, require
from .errors import CorruptImageError, DataNotFoundError
from .transforms import StrictLoadImageFromFile, find_image_corruption

_NEED_MMPRETRAIN = ("CheckedCIFAR10", "CheckedCIFAR100", "CifarFileError", "load_plain_pickle",
                    "CheckedImageNet", "check_imagenet_layout")

if is_available("mmpretrain"):
    from .cifar import CheckedCIFAR10, CheckedCIFAR100, CifarFileError, load_plain_pickle
    from .imagenet import CheckedImageNet, check_imagenet_layout


def __getattr__(name: str) -> Any:
    if name in _NEED_MMPRETRAIN:  # only reached without mmpretrain
        require("mmpretrain", f"resnext_plugin.datasets.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["CheckedCIFAR10", "CheckedCIFAR100", "CheckedImageNet", "CifarFileError",
           "CorruptImageError", "DataNotFoundError", "StrictLoadImageFromFile",
           "check_imagenet_layout", "find_image_corruption", "load_plain_pickle"]

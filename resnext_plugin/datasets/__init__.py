"""Data sets and transforms of the plugin (``resnext_plugin.registry.DATASETS``/``TRANSFORMS``).

* ``resnext_plugin.CheckedImageNet`` (``imagenet.py``): a missing data root or a bad annotation
  record is named.
* ``resnext_plugin.CheckedCocoDataset`` (``coco.py``, imports mmdet, so registered on the first
  lookup only): bad COCO records named or counted, missing images found at start.
* ``resnext_plugin.CheckedCIFAR10`` / ``CheckedCIFAR100`` (``cifar.py``): file checks.
* ``resnext_plugin.StrictLoadImageFromFile`` (``transforms/``): a corrupt image file is named.
"""
from .cifar import CheckedCIFAR10, CheckedCIFAR100, CifarFileError, load_plain_pickle
from .errors import CorruptImageError, DataNotFoundError
from .imagenet import CheckedImageNet, check_imagenet_layout
from .transforms import StrictLoadImageFromFile, find_image_corruption

__all__ = ["CheckedCIFAR10", "CheckedCIFAR100", "CheckedImageNet", "CifarFileError",
           "CorruptImageError", "DataNotFoundError", "StrictLoadImageFromFile",
           "check_imagenet_layout", "find_image_corruption", "load_plain_pickle"]

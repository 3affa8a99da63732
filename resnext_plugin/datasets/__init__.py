"""Data sets the paper experiments read: CIFAR-10/100 with file checks (``cifar.py``).

Importing this package registers ``resnext_plugin.CheckedCIFAR10`` and
``resnext_plugin.CheckedCIFAR100`` in the plugin's ``DATASETS`` registry (configs list it in
``custom_imports``).
"""
from .cifar import CheckedCIFAR10, CheckedCIFAR100, CifarFileError, load_plain_pickle

__all__ = ["CheckedCIFAR10", "CheckedCIFAR100", "CifarFileError", "load_plain_pickle"]

"""Registers the plugin's data sets on the first ``resnext_plugin.`` data-set lookup.

Each data set subclasses one of mmpretrain's or mmdet's; a data set whose framework is not
installed is registered as a stub that raises
:class:`~resnext_plugin.deps.MissingFrameworkError` naming the framework and the extra, so a
classification stack without mmdet (or a detection stack without mmpretrain) still finds its own.
"""
from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from typing import Any, NoReturn

from ..deps import MissingFrameworkError, is_available, missing_message
from ..registry import DATASETS

#: module -> (framework it imports, data sets it registers).
PARTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "resnext_plugin.datasets.imagenet": ("mmpretrain", ("CheckedImageNet",)),
    "resnext_plugin.datasets.cifar": ("mmpretrain", ("CheckedCIFAR10", "CheckedCIFAR100")),
    "resnext_plugin.datasets.coco": ("mmdet", ("CheckedCocoDataset",)),
}


def _missing(name: str, framework: str) -> Callable[..., NoReturn]:
    def build(*args: Any, **kwargs: Any) -> NoReturn:
        raise MissingFrameworkError(missing_message(framework, f"resnext_plugin.{name}"))

    build.__name__ = build.__qualname__ = name
    return build


for _module, (_framework, _names) in PARTS.items():
    if is_available(_framework):
        import_module(_module)
    else:
        for _name in _names:
            DATASETS.register_module(name=_name, module=_missing(_name, _framework))

"""The OpenMMLab frameworks the plugin uses, and the error that names how to get one.

Upstream OpenMMLab and its maintained fork OneDL install the same import names (``mmengine``,
``mmcv``, ``mmpretrain``, ``mmdet``) under different distribution names, so the package metadata
cannot require either without installing it over the other. ``import resnext_plugin`` checks for
mmengine and mmcv (:func:`check_core`); the parts that need mmpretrain, mmdet or mmcv's compiled
ops import them when used, through :func:`require`, which names both distributions and the extra.
"""
from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

#: import name -> (upstream distributions, OneDL distribution, extras that install it).
FRAMEWORKS: dict[str, tuple[str, str, str]] = {
    "mmengine": ("`mmengine`", "`onedl-mmengine`", "[openmmlab-lite], [openmmlab] or [onedl]"),
    "mmcv": ("`mmcv` or `mmcv-lite`", "`onedl-mmcv`", "[openmmlab-lite], [openmmlab] or [onedl]"),
    "mmcv.ops": ("the compiled `mmcv` (not `mmcv-lite`)", "`onedl-mmcv` built with its ops",
                 "[openmmlab] or [onedl]"),
    "mmpretrain": ("`mmpretrain`", "`onedl-mmpretrain`",
                   "[openmmlab-lite], [openmmlab] or [onedl]"),
    "mmdet": ("`mmdet`", "`onedl-mmdetection`", "[openmmlab] or [onedl]"),
}


class MissingFrameworkError(ImportError):
    """A framework a part of the plugin needs is not installed (the message says which)."""


def missing_message(module: str, purpose: str) -> str:
    """The message for a missing framework ``module`` needed for ``purpose``."""
    upstream, onedl, extras = FRAMEWORKS[module]
    return (f"resnext_plugin needs {module} for {purpose}: install upstream {upstream} or OneDL "
            f"{onedl} (e.g. pip install 'resnext_plugin{extras.split(' or ')[-1]}'; extras: "
            f"{extras}; docs/compatibility.md lists the tested stacks)")


def is_available(module: str) -> bool:
    """Whether ``module`` can be imported (without importing it)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent missing, or sys.modules[name] = None
        return False


def require(module: str, purpose: str) -> ModuleType:
    """Import ``module`` (a key of :data:`FRAMEWORKS`) or raise a message naming what to install.

    Raises:
        MissingFrameworkError: the module (or its compiled part) cannot be imported.
    """
    try:
        return importlib.import_module(module)
    except ImportError as err:
        missing = getattr(err, "name", None)
        top = module.split(".")[0]
        # Only a missing framework is reported this way; an import error inside it propagates.
        if missing is None or missing in (module, top) or module == "mmcv.ops":
            raise MissingFrameworkError(
                f"{missing_message(module, purpose)} [{type(err).__name__}: {err}]") from err
        raise


def check_core() -> None:
    """Raise a clear error if mmengine or mmcv (what ``import resnext_plugin`` needs) is missing.

    Raises:
        MissingFrameworkError: naming the upstream and the OneDL distribution.
    """
    for module in ("mmengine", "mmcv"):
        if not is_available(module):
            raise MissingFrameworkError(missing_message(module, "the ResNeXt backbone"))

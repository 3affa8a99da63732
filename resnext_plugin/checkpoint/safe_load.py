"""Reading checkpoints as data: nothing in a checkpoint file can run code.

* torch files (``.pth``, ``.pt``, ``.bin``, mmengine checkpoints): ``torch.load`` with
  ``weights_only=True``. mmengine 0.10.7's own checkpoints hold a ``message_hub`` with
  ``HistoryBuffer`` objects and numpy arrays, which the weights-only unpickler refuses since torch
  2.6; rather than turning ``weights_only`` off, exactly the classes those checkpoints need
  (:func:`mmengine_checkpoint_globals`) are allowed while loading (timm's training checkpoints
  also hold their ``argparse.Namespace``, allowed as plain data). mmengine's own loader gets the
  same list from :func:`resnext_plugin.upstream_fixes.allow_mmengine_checkpoints`. Anything else
  in a pickle (``os.system``, ``eval``, a custom ``__reduce__``) is still refused.
  ``HistoryBuffer.__getstate__`` pickles its statistics methods, which protocol 2 writes as
  ``getattr(HistoryBuffer, 'min')``. Allowing ``builtins.getattr`` itself would reopen code
  execution (``getattr`` chains reach ``__globals__``), so that name is bound to
  :func:`history_buffer_getattr`, which resolves only functions defined on ``HistoryBuffer``.
* ``.safetensors`` (timm's weights on the Hugging Face hub): ``safetensors``.
* detectron2's and Detectron/Caffe2's ``.pkl``: plain pickles of numpy arrays, read by
  :class:`NumpyOnlyUnpickler`, which refuses every global except the few numpy needs to rebuild an
  array.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import pickle
import types
import zipfile
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from mmengine.logging.history_buffer import HistoryBuffer


def history_buffer_getattr(obj: Any, name: str) -> Any:
    """``getattr`` restricted to the plain functions defined on ``HistoryBuffer``."""
    value = vars(obj).get(name) if obj is HistoryBuffer and not name.startswith("_") else None
    if not isinstance(value, types.FunctionType):
        raise pickle.UnpicklingError(
            f"checkpoint asks for getattr({obj!r}, {name!r}); only HistoryBuffer's statistics "
            "methods are allowed")
    return value


def mmengine_checkpoint_globals() -> list:
    """The non-tensor globals an mmengine 0.10.7 checkpoint pickles (message hub, numpy)."""
    from numpy._core.multiarray import _reconstruct, scalar

    dtype_classes = [type(np.dtype(name)) for name in (
        "float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool")]
    return [HistoryBuffer, np.ndarray, np.dtype, _reconstruct, scalar, *dtype_classes,
            (history_buffer_getattr, "builtins.getattr")]


#: (module, name) pairs a pickle of numpy arrays needs; numpy 2 moved ``numpy.core`` to
#: ``numpy._core`` and old files (Python 2 Detectron pickles) name the old module. Protocol-2
#: pickles written by Python 3 store bytes as ``_codecs.encode(str, 'latin1')``.
_NUMPY_GLOBALS = frozenset(
    (module, name)
    for module in ("numpy.core.multiarray", "numpy._core.multiarray")
    for name in ("_reconstruct", "scalar")
) | {("numpy", "ndarray"), ("numpy", "dtype"), ("collections", "OrderedDict"),
     ("_codecs", "encode")}


class NumpyOnlyUnpickler(pickle.Unpickler):
    """An unpickler that builds dicts, lists, strings, numbers and numpy arrays, nothing else."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _NUMPY_GLOBALS or (
                module == "numpy.dtypes" and name.endswith("DType")):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(
            f"global '{module}.{name}' is forbidden: only numpy arrays are read from .pkl "
            "checkpoints (nothing in the file is executed)")


def _load_numpy_pickle(path: str) -> Any:
    try:
        with open(path, "rb") as file:
            data = NumpyOnlyUnpickler(file, encoding="latin1").load()
    except Exception as err:  # EOFError (truncated), UnpicklingError, ...
        raise ValueError(f"cannot load checkpoint {path}: {type(err).__name__}: {err}") from err
    _reject_object_arrays(data, path)
    return data


def _reject_object_arrays(data: Any, path: str) -> None:
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, Mapping):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
        elif isinstance(item, np.ndarray) and item.dtype.hasobject:
            raise ValueError(f"cannot load checkpoint {path}: it holds a numpy array of Python "
                             "objects, not weights")


def load_checkpoint_file(path: str | os.PathLike, map_location: Any = "cpu") -> Any:
    """Load a checkpoint file as data (see the module docstring for the formats).

    Args:
        path: A torch checkpoint, a ``.safetensors`` file, or a detectron2 / Caffe2 ``.pkl``
            (detectron2 uses the same rule: a ``.pkl`` file is a pickle, anything else a torch
            file).
        map_location: Passed to ``torch.load``.

    Returns:
        Whatever the file holds (a dict for every checkpoint we know).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: The file is truncated, not a checkpoint, or wants to run code; the message
            names ``path`` (and what the unpickler refused).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint file not found: {path}")
    if path.endswith(".pkl") and not zipfile.is_zipfile(path):
        return _load_numpy_pickle(path)
    if path.endswith(".safetensors"):
        return _load_safetensors(path)
    try:
        with _also_allowed([*mmengine_checkpoint_globals(), argparse.Namespace]):
            return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises RuntimeError, UnpicklingError, EOFError, ...
        raise ValueError(f"cannot load checkpoint {path}: {type(err).__name__}: {err}") from err


def _also_allowed(extra: list) -> contextlib.AbstractContextManager:
    """``torch.serialization.safe_globals`` for the entries of ``extra`` not allowed already.

    (torch's context removes every entry it was given on exit, also one that was allowed before,
    e.g. by :func:`resnext_plugin.upstream_fixes.allow_mmengine_checkpoints`.)
    """
    allowed = torch.serialization.get_safe_globals()
    return torch.serialization.safe_globals([g for g in extra if g not in allowed])


def _load_safetensors(path: str) -> dict:
    try:
        from safetensors.torch import load_file
    except ImportError as err:  # a dependency of timm, so normally present
        raise ValueError(f"cannot load checkpoint {path}: reading .safetensors needs the "
                         "`safetensors` package (pip install safetensors)") from err
    try:
        return load_file(path, device="cpu")
    except Exception as err:  # SafetensorError (truncated, bad header), OSError
        raise ValueError(f"cannot load checkpoint {path}: {type(err).__name__}: {err}") from err

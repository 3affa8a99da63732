"""Reading third-party checkpoint files without running their code, and writing ours atomically.

Torch files (``.pth``, ``.pt``, ``.bin``, mmengine checkpoints) go through
:func:`resnext_plugin.checkpoint.load_checkpoint_file` (``torch.load(weights_only=True)``; timm's
training checkpoints also hold their ``argparse.Namespace``, which is allowed as plain data).
``.safetensors`` files (timm's weights on the Hugging Face hub) are read by ``safetensors``.
detectron2's and Detectron/Caffe2's ``.pkl`` files are plain pickles of numpy arrays that
``torch.load`` cannot read; :class:`NumpyOnlyUnpickler` reads them and refuses every global except
the few numpy needs to rebuild an array, so no code in such a file can run either.
"""
from __future__ import annotations

import argparse
import os
import pickle
import tempfile
import zipfile
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from ..checkpoint import load_checkpoint_file

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


def load_source_file(path: str | os.PathLike) -> Any:
    """Load a checkpoint as data: weights-only ``torch.load``, or numpy-only unpickling (``.pkl``).

    Args:
        path: A torch checkpoint, a ``.safetensors`` file, or a detectron2 / Caffe2 ``.pkl``
            (detectron2 uses the same rule: a ``.pkl`` file is a pickle, anything else a torch
            file).

    Returns:
        Whatever the file holds (a dict for every checkpoint we know).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: The file is truncated, not a checkpoint, or wants to run code; the message
            names ``path``.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint file not found: {path}")
    if path.endswith(".pkl") and not zipfile.is_zipfile(path):
        return _load_numpy_pickle(path)
    if path.endswith(".safetensors"):
        return _load_safetensors(path)
    with torch.serialization.safe_globals([argparse.Namespace]):
        return load_checkpoint_file(path)


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


def _as_tensor(value: Any, key: str, path: str) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, (np.ndarray, np.generic)) and np.asarray(value).dtype.kind in "fiub":
        return torch.from_numpy(np.array(value, copy=True))
    raise ValueError(f"{path}: entry {key!r} is a {type(value).__name__}, not a tensor")


def extract_weights(
    checkpoint: Any, path: str = "<checkpoint>"
) -> "OrderedDict[str, torch.Tensor]":
    """The weights inside a loaded checkpoint, as tensors, in file order.

    Looks for ``state_dict`` (mmengine, timm), ``model`` (detectron2, some timm/DeiT files),
    ``model_state`` (pycls) and ``blobs`` (Caffe2 Detectron), else takes the mapping itself.
    numpy arrays (detectron2 pickles) become tensors, Caffe2's ``*_momentum`` blobs (optimizer
    state) are dropped and a DataParallel ``module.`` prefix on every key is removed.

    Raises:
        ValueError: No mapping of tensors found, or an entry is not an array; names ``path``.
    """
    if isinstance(checkpoint, Mapping):
        for key in ("state_dict", "model", "model_state", "blobs"):
            if isinstance(checkpoint.get(key), Mapping):
                checkpoint = checkpoint[key]
                break
    if not isinstance(checkpoint, Mapping) or not checkpoint:
        raise ValueError(f"{path}: no weights found (looked for 'state_dict', 'model', "
                         "'model_state', 'blobs' or a plain mapping of tensors)")
    weights: OrderedDict[str, torch.Tensor] = OrderedDict()
    for key, value in checkpoint.items():
        if not isinstance(key, str):
            raise ValueError(f"{path}: weight names must be strings, got {key!r}")
        if key.endswith("_momentum") and isinstance(value, np.ndarray):
            continue
        weights[key] = _as_tensor(value, key, path)
    if weights and all(key.startswith("module.") for key in weights):
        weights = OrderedDict((key[len("module."):], value) for key, value in weights.items())
    return weights


def _file_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def save_atomic(obj: Any, dst: str | os.PathLike) -> None:
    """``torch.save`` to a temporary file next to ``dst``, check it loads, then rename it.

    ``dst`` is either the complete new file or left as it was (an existing file is replaced only
    by a complete, loadable one); the temporary file is removed on any failure.

    Raises:
        FileNotFoundError: The directory of ``dst`` does not exist.
        ValueError: The written file does not load back with ``weights_only=True``.
    """
    dst = os.path.abspath(os.fspath(dst))
    directory = os.path.dirname(dst)
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"output directory does not exist: {directory}")
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(dst)}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as file:
            torch.save(obj, file)
            file.flush()
            os.fsync(file.fileno())
        # What mmengine's torch.load(weights_only=True) will see must load: catches meta
        # entries the weights-only unpickler refuses before they reach a user's config
        # (mmap: the check reads the pickle, not the tensor data).
        try:
            torch.load(tmp, map_location="cpu", weights_only=True, mmap=True)
        except Exception as err:
            raise ValueError(f"{dst}: the converted checkpoint would not load with "
                             f"weights_only=True ({type(err).__name__}: {err}); not written") \
                from err
        os.chmod(tmp, _file_mode())
        os.replace(tmp, dst)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise

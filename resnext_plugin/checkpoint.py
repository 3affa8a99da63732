"""Safe checkpoint loading on torch>=2.6.

mmengine 0.10.7 calls ``torch.load(filename, map_location=...)``; since torch 2.6 that means
``weights_only=True``, and mmengine's own checkpoints hold a ``message_hub`` with ``HistoryBuffer``
objects and numpy arrays, which the weights-only unpickler refuses. Rather than turning
``weights_only`` off (which would let a checkpoint run code), we add exactly the classes those
checkpoints need to torch's allow-list. Anything else in a pickle (``os.system``, ``eval``, a
custom ``__reduce__``) is still refused.

``HistoryBuffer.__getstate__`` also pickles its statistics methods, which protocol 2 writes as
``getattr(HistoryBuffer, 'min')``. Allowing ``builtins.getattr`` itself would reopen code execution
(``getattr`` chains reach ``__globals__``), so that name is bound to :func:`history_buffer_getattr`,
which resolves only functions defined on ``HistoryBuffer``.
"""
from __future__ import annotations

import os
import pickle
import types
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


def allow_mmengine_checkpoint_globals() -> None:
    """Allow-list :func:`mmengine_checkpoint_globals` for ``torch.load(weights_only=True)``."""
    torch.serialization.add_safe_globals(mmengine_checkpoint_globals())


def load_checkpoint_file(path: str | os.PathLike, map_location: Any = "cpu") -> Any:
    """``torch.load`` with ``weights_only=True`` and a clear error naming ``path``.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: ``path`` is not a readable checkpoint (truncated, not a torch file) or asks
            the unpickler for something outside the allow-list (the message says what).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint file not found: {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises RuntimeError, UnpicklingError, EOFError, ...
        raise ValueError(f"cannot load checkpoint {path}: {type(err).__name__}: {err}") from err


def extract_state_dict(checkpoint: Any, path: str = "<checkpoint>") -> Mapping[str, torch.Tensor]:
    """The state dict inside a checkpoint: its ``state_dict``/``model`` entry, or itself."""
    if isinstance(checkpoint, Mapping):
        for key in ("state_dict", "model", "model_state"):
            if isinstance(checkpoint.get(key), Mapping):
                checkpoint = checkpoint[key]
                break
    if not isinstance(checkpoint, Mapping) or not all(
            isinstance(v, torch.Tensor) for v in checkpoint.values()):
        raise ValueError(f"{path}: no state dict of tensors found (looked for 'state_dict', "
                         "'model', 'model_state' or a plain mapping of tensors)")
    return checkpoint

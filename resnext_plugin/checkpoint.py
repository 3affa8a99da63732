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


#: mmengine's model-zoo schemes (``mmengine/runner/checkpoint.py``), as this module resolves them.
ZOO_PREFIXES = ("open-mmlab://", "openmmlab://", "torchvision://", "modelzoo://", "mmcls://")


def zoo_url(name: str) -> str:
    """The download address (or mmengine-home path) of a model-zoo name, from mmengine's maps.

    ``open-mmlab://`` names (deprecated names renamed) come from mmengine's ``openmmlab.json``,
    ``torchvision://`` from torchvision's weight enums, ``mmcls://`` from ``mmcls.json``.

    Raises:
        KeyError: The name is in no map; the message names it and the scheme.
    """
    from mmengine.runner import checkpoint as mm

    prefix = next(p for p in ZOO_PREFIXES if name.startswith(p))
    model = name[len(prefix):]
    if prefix in ("open-mmlab://", "openmmlab://"):
        model = mm.get_deprecated_model_names().get(model, model)
        urls = mm.get_external_models()
    elif prefix == "mmcls://":
        urls = mm.get_mmcls_models()
    else:
        urls = mm.get_torchvision_models()
    if model not in urls:
        raise KeyError(f"checkpoint {name!r}: {model!r} is not in mmengine's {prefix} model zoo")
    return urls[model]


def zoo_checkpoint_path(name: str) -> str:
    """A local file for a model-zoo name: torch's hub cache (``$TORCH_HOME/hub/checkpoints``),
    downloaded there first if missing, or a path under mmengine's home.

    mmengine itself loads these through ``torch.hub.load_state_dict_from_url``, whose
    ``torch.load`` runs with ``weights_only=False``; the file found here is read by
    :func:`load_checkpoint_file` instead, so a tampered cache cannot run code.
    """
    from mmengine.runner.checkpoint import _get_mmengine_home

    url = zoo_url(name)
    if not url.startswith(("http://", "https://")):
        return os.path.join(_get_mmengine_home(), url)
    return cached_download(url)


def cached_download(url: str) -> str:
    """The file of ``url`` in torch's hub cache, downloaded (atomically, by torch) if missing."""
    cache_dir = os.path.join(torch.hub.get_dir(), "checkpoints")
    path = os.path.join(cache_dir, os.path.basename(url.split("?")[0]))
    if not os.path.isfile(path):
        os.makedirs(cache_dir, exist_ok=True)
        torch.hub.download_url_to_file(url, path)
    return path


def read_checkpoint(checkpoint: str, map_location: Any = "cpu") -> Any:
    """A checkpoint by path, model-zoo name (:data:`ZOO_PREFIXES`) or URL, loaded weights-only.

    ``mmcls://`` checkpoints are whole classifiers; as mmengine does, their ``backbone.``
    prefix is removed.
    """
    if checkpoint.startswith(ZOO_PREFIXES):
        loaded = load_checkpoint_file(zoo_checkpoint_path(checkpoint), map_location)
        if checkpoint.startswith("mmcls://"):
            from mmengine.runner.checkpoint import _process_mmcls_checkpoint

            loaded = _process_mmcls_checkpoint(loaded)
        return loaded
    if checkpoint.startswith(("http://", "https://")):
        return load_checkpoint_file(cached_download(checkpoint), map_location)
    return load_checkpoint_file(checkpoint, map_location)


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

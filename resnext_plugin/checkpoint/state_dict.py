"""The state dict inside a loaded checkpoint, whatever wrote it."""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch


def _as_tensor(value: Any, key: str, path: str) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, (np.ndarray, np.generic)) and np.asarray(value).dtype.kind in "fiub":
        return torch.from_numpy(np.array(value, copy=True))
    raise ValueError(f"{path}: entry {key!r} is a {type(value).__name__}, not a tensor")


def extract_state_dict(
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

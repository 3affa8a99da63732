"""The PyTorch side of an export: the config's model with the checkpoint's weights, checked to fit,
and the network inputs the config's own pipelines and data preprocessor make."""
from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from mmengine.config import Config
from torch import nn

from ..checkpoint import extract_state_dict, load_checkpoint_file
from .errors import ExportError


def task_of(cfg: Config, config_path: str | Path) -> str:
    """``'classification'`` (mmpretrain) or ``'detection'`` (mmdet) from ``default_scope``
    (the entry of :data:`~resnext_plugin.export.tasks.TASKS`).

    Raises:
        ExportError: Another scope.
    """
    from .tasks import task_for

    return task_for(cfg, config_path).name


def build_model(cfg: Config) -> nn.Module:
    """The config's model, built in its ``default_scope`` as mmengine's runner builds it (the
    top-level ``data_preprocessor`` of mmpretrain configs merged in), in eval mode, no weights
    initialised or loaded."""
    from mmengine.registry import MODELS, init_default_scope

    init_default_scope(cfg.default_scope)
    model_cfg = cfg.model.copy()
    if cfg.get("data_preprocessor") is not None:
        model_cfg.setdefault("data_preprocessor", cfg.data_preprocessor)
    return MODELS.build(model_cfg).eval()


def _layer(key: str) -> str:
    return key.rsplit(".", 1)[0] if "." in key else key


def load_weights(model: nn.Module, checkpoint: str | Path, config_path: str | Path) -> dict:
    """Load ``checkpoint`` into ``model`` strictly (read as data, never unpickling code).

    Returns:
        dict: The checkpoint's ``meta`` (empty if it has none).

    Raises:
        ExportError: A key the model lacks or needs, or a shape that differs; the message names
            the first such key, its layer, both shapes and both files.
        FileNotFoundError / ValueError: The file is missing or not a checkpoint.
    """
    loaded = load_checkpoint_file(checkpoint)
    weights = extract_state_dict(loaded, str(checkpoint))
    expected = model.state_dict()
    where = f"checkpoint '{checkpoint}' does not fit config '{config_path}'"
    for key, value in weights.items():
        if key not in expected:
            raise ExportError(f"{where}: the checkpoint's '{key}' (layer '{_layer(key)}') has no "
                              f"place in the model ({len(set(weights) - set(expected))} such "
                              "keys)")
        if tuple(value.shape) != tuple(expected[key].shape):
            raise ExportError(f"{where}: '{key}' (layer '{_layer(key)}') has shape "
                              f"{tuple(value.shape)} in the checkpoint and "
                              f"{tuple(expected[key].shape)} in the model")
    missing = [key for key in expected if key not in weights]
    if missing:
        raise ExportError(f"{where}: the model's '{missing[0]}' (layer '{_layer(missing[0])}') "
                          f"is not in the checkpoint ({len(missing)} keys missing)")
    model.load_state_dict(weights, strict=True)
    meta = loaded.get("meta") if isinstance(loaded, dict) else None
    return meta if isinstance(meta, dict) else {}


def _dataset(cfg: Config, split: str) -> Any:
    from mmengine.registry import DATASETS, init_default_scope

    init_default_scope(cfg.default_scope)
    loader = cfg.get(f"{split}_dataloader")
    if not loader:
        raise ExportError(f"the config has no {split}_dataloader to take images from")
    return DATASETS.build(loader.dataset)


def pipeline_batches(cfg: Config, model: nn.Module, split: str, count: int, batch_size: int,
                     seed: int = 0) -> Iterator[tuple[torch.Tensor, list]]:
    """Network inputs of ``count`` images of the ``split`` data set (``'train'`` or
    ``'test'``): the config's pipeline, then the model's data preprocessor (normalised float
    NCHW, as the exported model takes them).

    Images are taken evenly spaced over the data set; random transforms (the train pipeline's
    crops and flips) are seeded with ``seed``.

    Yields:
        tuple: ``(inputs, data_samples)`` per batch of at most ``batch_size`` images.
    """
    from mmengine.dataset import pseudo_collate

    dataset = _dataset(cfg, split)
    count = min(count, len(dataset))
    if count < 1:
        raise ExportError(f"the {split} data set is empty")
    indices = np.linspace(0, len(dataset) - 1, count).round().astype(int).tolist()
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    for start in range(0, count, batch_size):
        items = [dataset[i] for i in indices[start:start + batch_size]]
        with torch.no_grad():
            data = model.data_preprocessor(pseudo_collate(items), False)
        yield data["inputs"].float().contiguous(), data["data_samples"]


def class_names(cfg: Config, meta: dict) -> Optional[list[str]]:
    """Class names from the checkpoint's ``dataset_meta``, else the test data set's."""
    classes = (meta.get("dataset_meta") or {}).get("classes")
    if classes is None:
        try:
            classes = _dataset(cfg, "test").metainfo.get("classes")
        except Exception:  # noqa: BLE001 - no data set on this machine: names are optional
            classes = None
    return list(classes) if classes is not None else None

"""Model-zoo names (``open-mmlab://``, ``torchvision://``, ``mmcls://``) and URLs as local files.

mmengine resolves these names itself, then loads the download with
``torch.hub.load_state_dict_from_url``, whose ``torch.load`` runs with ``weights_only=False``.
Here the same maps give the address, torch's hub cache holds the file, and
:func:`~.safe_load.load_checkpoint_file` reads it, so a tampered cache cannot run code.
"""
from __future__ import annotations

import os
from typing import Any

import torch

from .safe_load import load_checkpoint_file

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


class CheckpointDownloadError(OSError):
    """A checkpoint could not be downloaded; the message says where to place the file instead."""


def hub_checkpoint_dir() -> str:
    """Torch's hub cache for checkpoints (``$TORCH_HOME/hub/checkpoints``, default
    ``~/.cache/torch/hub/checkpoints``): where mmengine's ``load_from_http`` and this module look
    for a downloaded file before downloading it."""
    return os.path.join(torch.hub.get_dir(), "checkpoints")


def download_failure_message(url: str, path: str, reason: BaseException) -> str:
    """One message for a failed download: the URL, the file, the folder and the converter."""
    return (f"cannot download checkpoint {url} ({type(reason).__name__}: {reason}). "
            f"Offline, or if the server refuses (download.openmmlab.com's certificate expired in "
            f"August 2025): fetch {os.path.basename(path)} on a machine that can, and place it in "
            f"{os.path.dirname(path)}/ (torch's hub cache, $TORCH_HOME/hub/checkpoints; "
            f"mmengine's load_from_http uses the same folder); the same config then loads it "
            f"without network (weights-only). Weights from other sources (torchvision, timm, "
            f"mmpretrain, mmdet, detectron2): convert them with tools/convert_checkpoint.py "
            f"(`python tools/convert_checkpoint.py --help`) and give the result as the checkpoint "
            f"path.")


def cached_download(url: str) -> str:
    """The file of ``url`` in torch's hub cache, downloaded (atomically, by torch) if missing.

    Raises:
        CheckpointDownloadError: the download failed (no network, refused, certificate, HTTP
            error); the message names the URL, the file and the folder to place it in.
    """
    cache_dir = hub_checkpoint_dir()
    path = os.path.join(cache_dir, os.path.basename(url.split("?")[0]))
    if not os.path.isfile(path):
        os.makedirs(cache_dir, exist_ok=True)
        try:
            torch.hub.download_url_to_file(url, path, progress=False)
        except (OSError, ValueError) as err:  # URLError, HTTPError, ssl errors, timeouts
            # Not chained: the message is the whole story, not urllib's traceback.
            raise CheckpointDownloadError(download_failure_message(url, path, err)) from None
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

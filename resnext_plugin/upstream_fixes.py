"""Fixes for today's stack where upstream breaks, each applied by an explicit call, logged once.

* :func:`allow_mmengine_checkpoints`: since torch 2.6, ``torch.load`` defaults to
  ``weights_only=True``, and mmengine 0.10.7's own checkpoints (a ``message_hub`` of
  ``HistoryBuffer`` objects, numpy arrays) are refused, so ``load_from``, ``resume`` and
  ``init_cfg=Pretrained`` fail. This adds exactly those classes to torch's allow-list;
  ``weights_only`` stays on, so a checkpoint that would run code is still refused.
* :func:`weights_only_checkpoint_loading`: mmengine's ``CheckpointLoader`` (what ``load_from``,
  ``--resume`` / ``resume=True`` and ``init_cfg=dict(type='Pretrained')`` of any module use) reads
  every local file, URL and model-zoo name through :func:`resnext_plugin.checkpoint.read_checkpoint`
  (weights-only, the allow-list above). Needed on OneDL: onedl-mmengine's ``_safe_torch_load``
  retries a refused file with ``weights_only=False``, which runs a planted pickle; it is replaced
  by a weights-only load too. Upstream, URLs went through ``torch.hub``'s ``weights_only=False``
  default. A failed download names the file and the folder to place it in.
* :func:`atomic_checkpoint_writes`: mmengine writes checkpoints and ``last_checkpoint`` in place;
  a process killed mid-write leaves a truncated file that ``--resume`` picks. This makes
  mmengine's local file backend write atomically
  (:class:`~resnext_plugin.fileio.AtomicLocalBackend`).
* :func:`contiguous_roi_align`: mmcv 2.1.0's RoIAlign kernels (CPU and CUDA) index their input as
  a contiguous NCHW array without checking; a channels_last feature map (an FPN behind a
  ``channels_last=True`` backbone) gives silently wrong RoI features. This makes RoIAlign's
  forward take a contiguous copy of such an input (NCHW inputs are untouched; the backward was
  already right).

Nothing happens on ``import resnext_plugin``. Importing *this* module applies all four, so a
config can name it: ``custom_imports=dict(imports=['resnext_plugin',
'resnext_plugin.upstream_fixes'])`` (all of the project's configs do, so every rank, every tool
and the inference APIs get them); ``tools/train.py`` and ``tools/test.py`` call
:func:`apply_all` themselves for configs that do not.
"""
from __future__ import annotations

import functools
import os
from typing import Any

import torch
from mmengine.logging import print_log

_applied: set[str] = set()


def _log_once(name: str, message: str) -> None:
    if name not in _applied:
        _applied.add(name)
        print_log(f"resnext_plugin.upstream_fixes: {message}", logger="current")


def allow_mmengine_checkpoints() -> None:
    """Add mmengine's checkpoint contents to ``torch.load``'s weights-only allow-list."""
    from .checkpoint.safe_load import mmengine_checkpoint_globals

    torch.serialization.add_safe_globals(mmengine_checkpoint_globals())
    _log_once("checkpoints", "torch.load(weights_only=True) now also accepts mmengine's "
                             "checkpoint contents (HistoryBuffer, numpy arrays and dtypes)")


def _weights_only_scheme_loader(filename: str, map_location: Any = None, *args: Any,
                                **kwargs: Any) -> Any:
    """A ``CheckpointLoader`` scheme: the checkpoint read as data (extra mmengine options such as
    ``model_dir``/``progress`` of ``load_from_http`` do not change what is read)."""
    from .checkpoint import read_checkpoint

    if "://" not in filename:
        filename = os.path.expanduser(filename)
    return read_checkpoint(filename, map_location)


def _weights_only_torch_load(file: Any, map_location: Any = None, weights_only: Any = None) -> Any:
    """Replacement for onedl-mmengine's ``_safe_torch_load``: weights-only, never a fallback."""
    from .checkpoint.safe_load import (
        _also_allowed,
        load_checkpoint_file,
        mmengine_checkpoint_globals,
    )

    if isinstance(file, (str, os.PathLike)):
        return load_checkpoint_file(file, map_location)
    with _also_allowed(mmengine_checkpoint_globals()):  # a buffer (ceph, pavi)
        return torch.load(file, map_location=map_location, weights_only=True)


def weights_only_checkpoint_loading() -> None:
    """Route every scheme of mmengine's ``CheckpointLoader`` through the weights-only reader."""
    from mmengine.runner import checkpoint as mm_checkpoint

    from .checkpoint import ZOO_PREFIXES

    mm_checkpoint.CheckpointLoader.register_scheme(
        prefixes=("", "http://", "https://", *ZOO_PREFIXES), loader=_weights_only_scheme_loader,
        force=True)
    if hasattr(mm_checkpoint, "_safe_torch_load"):  # onedl-mmengine
        mm_checkpoint._safe_torch_load = _weights_only_torch_load
    _log_once("weights_only", "mmengine's checkpoint loader (load_from, resume, Pretrained) reads "
                              "files, URLs and zoo names weights-only (no fallback that runs code)")


def atomic_checkpoint_writes() -> None:
    """Make mmengine's local file backend replace files atomically."""
    from mmengine.fileio import register_backend

    from .fileio import AtomicLocalBackend

    register_backend("local", AtomicLocalBackend, force=True, prefixes="")
    _log_once("atomic", "mmengine's local file backend writes atomically (temporary file, "
                        "fsync, rename)")


_GUARD_FLAG = "__resnext_plugin_contiguous_guard__"


def contiguous_roi_align() -> bool:
    """Make mmcv's ``RoIAlignFunction`` (module and functional form) take contiguous inputs.

    Idempotent. Returns True if the guard was installed now, False if it already was or if mmcv
    has no compiled ops (``mmcv-lite``: no RoIAlign to guard).
    """
    try:
        from mmcv.ops.roi_align import RoIAlignFunction
    except ImportError:  # mmcv-lite, or onedl-mmcv built without ops
        return False

    forward = RoIAlignFunction.forward
    if getattr(forward, _GUARD_FLAG, False):
        return False

    @functools.wraps(forward)
    def contiguous_forward(ctx: Any, input: torch.Tensor, rois: torch.Tensor, *args: Any,
                           **kwargs: Any) -> torch.Tensor:
        return forward(ctx, input.contiguous(), rois, *args, **kwargs)

    setattr(contiguous_forward, _GUARD_FLAG, True)
    RoIAlignFunction.forward = staticmethod(contiguous_forward)
    return True


def apply_all() -> None:
    """Apply every fix above (each is idempotent)."""
    allow_mmengine_checkpoints()
    weights_only_checkpoint_loading()
    atomic_checkpoint_writes()
    if contiguous_roi_align():
        _log_once("roi_align", "mmcv's RoIAlign takes a contiguous copy of channels_last inputs")


apply_all()

"""Fixes for today's stack where upstream breaks, each applied by an explicit call, logged once.

* :func:`allow_mmengine_checkpoints`: since torch 2.6, ``torch.load`` defaults to
  ``weights_only=True``, and mmengine 0.10.7's own checkpoints (a ``message_hub`` of
  ``HistoryBuffer`` objects, numpy arrays) are refused, so ``load_from``, ``resume`` and
  ``init_cfg=Pretrained`` fail. This adds exactly those classes to torch's allow-list;
  ``weights_only`` stays on, so a checkpoint that would run code is still refused.
* :func:`atomic_checkpoint_writes`: mmengine writes checkpoints and ``last_checkpoint`` in place;
  a process killed mid-write leaves a truncated file that ``--resume`` picks. This makes
  mmengine's local file backend write atomically
  (:class:`~resnext_plugin.fileio.AtomicLocalBackend`).
* :func:`contiguous_roi_align`: mmcv 2.1.0's RoIAlign kernels (CPU and CUDA) index their input as
  a contiguous NCHW array without checking; a channels_last feature map (an FPN behind a
  ``channels_last=True`` backbone) gives silently wrong RoI features. This makes RoIAlign's
  forward take a contiguous copy of such an input (NCHW inputs are untouched; the backward was
  already right).

Nothing happens on ``import resnext_plugin``. Importing *this* module applies all three, so a
config can name it: ``custom_imports=dict(imports=['resnext_plugin',
'resnext_plugin.upstream_fixes'])`` (all of the project's configs do, so every rank, every tool
and the inference APIs get them); ``tools/train.py`` and ``tools/test.py`` call
:func:`apply_all` themselves for configs that do not.
"""
from __future__ import annotations

import functools
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

    Idempotent. Returns True if the guard was installed now, False if it already was.
    """
    from mmcv.ops.roi_align import RoIAlignFunction

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
    atomic_checkpoint_writes()
    if contiguous_roi_align():
        _log_once("roi_align", "mmcv's RoIAlign takes a contiguous copy of channels_last inputs")


apply_all()

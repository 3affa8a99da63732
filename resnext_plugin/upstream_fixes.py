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
* :func:`iteration_resume_skips_trained_data`: before mmengine 0.10.3 (open-mmlab/mmengine#1471),
  ``IterBasedTrainLoop`` resumed at iteration k drew the data loader's batches from the first one
  again, so a resumed run trained on other batches than an uninterrupted one. On those versions
  (the 2023 stack: mmengine 0.8.5) this advances the loader k batches after the
  ``before_train_epoch`` hooks, where mmengine >= 0.10.3 does it; newer versions are left alone.

Nothing happens on ``import resnext_plugin``. Importing *this* module applies all five, so a
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


#: Set on every function a fix installs, so that applying a fix twice does nothing.
_GUARD_FLAG = "__resnext_plugin_upstream_fix__"


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


#: The first mmengine whose ``IterBasedTrainLoop`` skips trained batches on resume (#1471).
RESUME_SKIPS_DATA_SINCE = "0.10.3"


def iteration_resume_skips_trained_data() -> bool:
    """On mmengine < 0.10.3, make ``IterBasedTrainLoop.run`` advance its data loader by the
    iterations already trained when it resumes, as mmengine 0.10.3 and later do.

    Idempotent. Returns True if the backport was installed now, False if it already was or if
    mmengine has the fix.
    """
    import mmengine
    from mmengine.runner import IterBasedTrainLoop
    from mmengine.utils import digit_version

    if digit_version(mmengine.__version__) >= digit_version(RESUME_SKIPS_DATA_SINCE):
        return False
    run = IterBasedTrainLoop.run
    if getattr(run, _GUARD_FLAG, False):
        return False

    @functools.wraps(run)
    def run_skipping_trained_data(self: IterBasedTrainLoop) -> Any:
        if self._iter == 0:
            return run(self)
        runner, call_hook = self.runner, self.runner.call_hook

        def call_hook_then_skip(fn_name: str, **kwargs: Any) -> None:
            call_hook(fn_name, **kwargs)
            if fn_name == "before_train_epoch":
                del runner.call_hook  # back to the class's method: skip once
                print_log(f"Advance dataloader {self._iter} steps to skip data that has "
                          "already been trained (resnext_plugin.upstream_fixes)",
                          logger="current")
                for _ in range(self._iter):
                    next(self.dataloader_iterator)

        runner.call_hook = call_hook_then_skip
        try:
            return run(self)
        finally:
            runner.__dict__.pop("call_hook", None)

    setattr(run_skipping_trained_data, _GUARD_FLAG, True)
    IterBasedTrainLoop.run = run_skipping_trained_data
    return True


def apply_all() -> None:
    """Apply every fix above (each is idempotent)."""
    allow_mmengine_checkpoints()
    weights_only_checkpoint_loading()
    atomic_checkpoint_writes()
    if contiguous_roi_align():
        _log_once("roi_align", "mmcv's RoIAlign takes a contiguous copy of channels_last inputs")
    if iteration_resume_skips_trained_data():
        _log_once("resume", "IterBasedTrainLoop skips the batches already trained when it "
                            "resumes (mmengine < 0.10.3, open-mmlab/mmengine#1471)")


apply_all()

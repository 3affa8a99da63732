"""channels_last through a whole detector, safely.

mmcv's RoIAlign kernels (CPU and CUDA) index their input as a contiguous NCHW array and do not
check it: a channels_last feature map gives silently wrong RoI features, so a Mask R-CNN whose
backbone runs ``channels_last=True`` (its FPN then runs NHWC too) would train on garbage RoIs.
:func:`guard_roi_align` makes RoIAlign's forward take a contiguous NCHW copy of such an input (a
no-op for NCHW inputs); the backward was already right (it writes a new NCHW gradient).

:func:`to_channels_last` converts a model's 4-D parameters and buffers (the FPN and the heads
too), so that every convolution runs in oneDNN's/cuDNN's NHWC layout without per-call reorders;
with the guard it is safe for detectors.
"""
from __future__ import annotations

import functools
from typing import Any

import torch
from torch import nn

_GUARD_FLAG = "__resnext_plugin_contiguous_guard__"


def guard_roi_align() -> bool:
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


def to_channels_last(model: nn.Module) -> nn.Module:
    """Convert every 4-D parameter and buffer of ``model`` to ``torch.channels_last`` in place
    (the parameters stay the same objects, so an optimiser built on them stays valid), and
    install :func:`guard_roi_align`. Returns ``model``."""
    guard_roi_align()
    return model.to(memory_format=torch.channels_last)

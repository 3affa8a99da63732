"""channels_last through a whole detector, safely.

mmcv's RoIAlign kernels (CPU and CUDA) index their input as a contiguous NCHW array and do not
check it: a channels_last feature map gives silently wrong RoI features, so a Mask R-CNN whose
backbone runs ``channels_last=True`` (its FPN then runs NHWC too) would train on garbage RoIs.
:func:`~resnext_plugin.upstream_fixes.contiguous_roi_align` makes RoIAlign's forward take a
contiguous NCHW copy of such an input (a no-op for NCHW inputs).

:func:`to_channels_last` converts a model's 4-D parameters and buffers (the FPN and the heads
too), so that every convolution runs in oneDNN's/cuDNN's NHWC layout without per-call reorders;
with the guard it is safe for detectors.
"""
from __future__ import annotations

import torch
from torch import nn

from ..upstream_fixes import contiguous_roi_align


def to_channels_last(model: nn.Module) -> nn.Module:
    """Convert every 4-D parameter and buffer of ``model`` to ``torch.channels_last`` in place
    (the parameters stay the same objects, so an optimiser built on them stays valid), and
    install :func:`~resnext_plugin.upstream_fixes.contiguous_roi_align`. Returns ``model``."""
    contiguous_roi_align()
    return model.to(memory_format=torch.channels_last)

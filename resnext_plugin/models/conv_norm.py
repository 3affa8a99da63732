"""A convolution followed by its norm layer, optionally folded into one convolution per forward.

A BatchNorm in eval mode (``norm_eval=True``, frozen stages, inference) is the per-channel affine
map ``y = s * x + t`` with ``s = gamma / sqrt(running_var + eps)`` and
``t = beta - running_mean * s``. Scaling the convolution's kernel by ``s`` and adding ``t`` as its
bias gives the same output without a pass over the activations for the norm. Unlike
:func:`~resnext_plugin.models.fuse.fuse_conv_bn`, the fold is recomputed from the live parameters
at every forward, so gradients still reach the kernel and the norm's affine parameters and the
model can be trained.
"""
from __future__ import annotations

import torch
from mmcv.cnn.bricks.wrappers import Conv2d as MMCVConv2d
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

#: Convolutions whose forward is a plain convolution of ``weight``, so scaling the kernel scales
#: the output. Weight-standardised and deformable convolutions are never folded.
PLAIN_CONVS: tuple[type, ...] = (nn.Conv2d, MMCVConv2d)


def can_fold(conv: nn.Module, norm: nn.Module) -> bool:
    """Whether ``norm(conv(x))`` is an affine map of the kernel right now (BN in eval mode)."""
    return (type(conv) in PLAIN_CONVS and isinstance(norm, _BatchNorm) and not norm.training
            and norm.running_mean is not None and norm.running_var is not None)


def folded_conv_params(conv: nn.Conv2d, norm: _BatchNorm) -> tuple[torch.Tensor, torch.Tensor]:
    """Kernel and bias of the one convolution that computes ``norm(conv(x))`` for an eval BN.

    Differentiable in ``conv.weight``, ``conv.bias`` and the norm's ``weight`` and ``bias``.
    """
    scale = torch.rsqrt(norm.running_var + norm.eps)
    if norm.weight is not None:
        scale = norm.weight * scale
    shift = -norm.running_mean * scale
    if norm.bias is not None:
        shift = shift + norm.bias
    if conv.bias is not None:
        shift = shift + conv.bias * scale
    weight = conv.weight * scale.reshape(-1, *([1] * (conv.weight.dim() - 1)))
    return weight, shift


def conv_norm(conv: nn.Module, norm: nn.Module, x: torch.Tensor, fold: bool) -> torch.Tensor:
    """``norm(conv(x))``, as one folded convolution when ``fold`` and :func:`can_fold` allow."""
    if fold and can_fold(conv, norm) and x.numel() > 0:
        weight, bias = folded_conv_params(conv, norm)
        return conv._conv_forward(x, weight, bias)
    return norm(conv(x))

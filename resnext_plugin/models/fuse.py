"""Fold inference-mode BatchNorm into the convolution before it.

In eval mode a BatchNorm is a per-channel affine map, ``y = s * x + t`` with
``s = gamma / sqrt(running_var + eps)`` and ``t = beta - running_mean * s``. Applied to a
convolution's output it can be folded into that convolution: scale the kernel of output channel
``c`` by ``s[c]`` and add ``t[c]`` to its bias. The network computes the same function with one
memory pass less per BatchNorm, which is what inference on a CPU is bound by.

The pairs are found from the plugin's own structure (not from module order), so every
BatchNorm is folded into the convolution whose output it actually normalises:

* the stem, ``conv1``/``bn1`` or each convolution of the deep stem (either layout);
* each block, as its class declares (``ResNeXtBlock.fold_pairs``): form ``'c'``'s
  ``conv{1,2,3}``/``norm{1,2,3}``; forms ``'b'`` and ``'a'``'s per-path ``conv1``/``norm1``,
  ``conv2``/``norm2`` (form (a) sums the paths' ``conv3`` before the shared ``norm3``, so it is
  folded into every path's ``conv3``); and the projection shortcut, ``downsample.0/1`` or, with
  ``avg_down``, ``downsample.1/2``.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.utils.fusion import fuse_conv_bn_weights

from .blocks import ResNeXtBlock
from .conv_norm import PLAIN_CONVS


@dataclass
class _Pair:
    """Convolutions whose summed output feeds ``parent.<bn_name>``."""

    name: str
    convs: Sequence[nn.Module]
    parent: nn.Module
    bn_name: str

    @property
    def bn(self) -> nn.Module:
        return getattr(self.parent, self.bn_name)


def _block_pairs(name: str, block: ResNeXtBlock) -> Iterator[_Pair]:
    for path, convs, parent, norm in block.fold_pairs():
        yield _Pair(f"{name}.{path}", convs, parent, norm)


def _stem_pairs(name: str, backbone: nn.Module) -> Iterator[_Pair]:
    prefix = f"{name}." if name else ""
    for conv, norm in backbone.stem_conv_norms():
        parent, norm_name = next((module, child_name) for module in backbone.modules()
                                 for child_name, child in module.named_children()
                                 if child is norm)
        path = next(n for n, m in backbone.named_modules() if m is norm)
        yield _Pair(f"{prefix}{path}", [conv], parent, norm_name)


def _find_pairs(model: nn.Module) -> list[_Pair]:
    pairs: list[_Pair] = []
    found = False
    for name, module in model.named_modules():
        if hasattr(module, "stem_conv_norms"):  # the plugin's ResNeXt
            found = True
            pairs.extend(_stem_pairs(name, module))
        elif isinstance(module, ResNeXtBlock):
            found = True
            pairs.extend(_block_pairs(name, module))
    if not found:
        raise ValueError(
            f"fuse_conv_bn: `model` ({type(model).__name__}) contains no resnext_plugin ResNeXt "
            "or Bottleneck to fuse"
        )
    return pairs


def _foldable(pair: _Pair) -> bool:
    bn = pair.bn
    if not isinstance(bn, _BatchNorm) or bn.running_mean is None or bn.running_var is None:
        return False  # already folded (Identity), another norm, or batch statistics only
    return all(type(conv) in PLAIN_CONVS for conv in pair.convs)


def _double(tensor: torch.Tensor | None) -> torch.Tensor | None:
    return None if tensor is None else tensor.detach().double()


@torch.no_grad()
def _fold(pair: _Pair) -> None:
    """torch's ``fuse_conv_bn_weights`` in float64 (as close to the two-step result as float32
    allows). Summed convolutions (form (a)) share one norm: its shift goes into one bias."""
    bn = pair.bn
    for index, conv in enumerate(pair.convs):
        mean, beta = bn.running_mean, bn.bias
        if index > 0:
            mean = torch.zeros_like(mean)
            beta = None if beta is None else torch.zeros_like(beta)
        weight, bias = fuse_conv_bn_weights(
            _double(conv.weight), _double(conv.bias), _double(mean), _double(bn.running_var),
            bn.eps, _double(bn.weight), _double(beta))
        conv.weight.copy_(weight)
        conv.bias = nn.Parameter(bias.to(conv.weight.dtype),
                                 requires_grad=conv.weight.requires_grad)
    setattr(pair.parent, pair.bn_name, nn.Identity())


def fuse_conv_bn(model: nn.Module) -> nn.Module:
    """Fold every BatchNorm that follows a convolution into it, in place, for inference.

    ``model`` is a :class:`~resnext_plugin.models.ResNeXt` or any module containing one (a
    classifier, a detector) or its bottlenecks; only the plugin's modules are fused. Folded
    BatchNorms become :class:`torch.nn.Identity`, so the model gives the same outputs (within
    float32 rounding) with fewer operations. Norms that cannot be folded are left in place:
    non-BatchNorm layers (GroupNorm), BatchNorms without running statistics, and norms after
    convolutions that are not plain (e.g. weight-standardised). Calling it again is a no-op.

    The fused model is for inference: training it would no longer normalise with batch
    statistics.

    Args:
        model (nn.Module): The backbone (or a model holding it). Its BatchNorms must be in eval
            mode (``model.eval()``): folding uses their running statistics.

    Returns:
        nn.Module: ``model`` itself, fused.

    Raises:
        ValueError: If ``model`` holds no plugin ResNeXt or Bottleneck, or a BatchNorm to be
            folded is in training mode.

    Example:
        >>> import torch
        >>> from resnext_plugin.models import ResNeXt
        >>> from resnext_plugin.models.fuse import fuse_conv_bn
        >>> model = ResNeXt(50, num_stages=1, out_indices=(0,)).eval()
        >>> x = torch.rand(1, 3, 64, 64)
        >>> reference = model(x)[0]
        >>> fused = fuse_conv_bn(model)
        >>> bool(torch.allclose(fused(x)[0], reference, atol=1e-5))
        True
        >>> any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
        False
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"fuse_conv_bn: `model` must be an nn.Module, got {type(model).__name__}")
    pairs = [pair for pair in _find_pairs(model) if _foldable(pair)]
    training = [pair.name for pair in pairs if pair.bn.training]
    if training:
        raise ValueError(
            f"fuse_conv_bn: BatchNorm `{training[0]}` (and {len(training) - 1} more) is in "
            "training mode; call model.eval() first, folding uses the running statistics"
        )
    for pair in pairs:
        _fold(pair)
    return model

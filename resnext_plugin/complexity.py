"""Model complexity as the paper counts it, measured on built models.

Parameters are counted from the module; FLOPs are the multiply-adds of convolutions and
fully-connected layers, recorded by forward hooks during one forward pass. Nothing here restates
the architecture: :func:`solve_width` (the rule behind Table 2) builds the real block for each
candidate width and counts it the same way.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

from .models.blocks import Bottleneck
from .models.resnext import ResNeXt

#: Table 2's template block: the conv2 stage of ResNet-50 (256-d in and out).
TEMPLATE_CHANNELS = 256
#: ResNet-50's bottleneck: cardinality 1, width 64.
RESNET_GROUPS, RESNET_WIDTH = 1, 64


@dataclass(frozen=True)
class Complexity:
    """Parameters and multiply-adds (per image) of a model."""

    params: int
    flops: int

    @property
    def gflops(self) -> float:
        return self.flops / 1e9

    @property
    def mparams(self) -> float:
        return self.params / 1e6


def count_parameters(model: nn.Module, layer_types: Optional[tuple[type, ...]] = None) -> int:
    """Number of parameters, of all modules or only of modules of ``layer_types``."""
    if layer_types is None:
        return sum(p.numel() for p in model.parameters())
    return sum(p.numel() for m in model.modules() if isinstance(m, layer_types)
               for p in m.parameters(recurse=False))


def _multiply_adds(module: nn.Module, output: torch.Tensor) -> int:
    if isinstance(module, nn.Conv2d):
        kernel = module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]
        return output[0].numel() * kernel
    if isinstance(module, nn.Linear):
        return output[0].numel() * module.in_features
    return 0


@torch.no_grad()
def count_flops(model: nn.Module, input_shape: tuple[int, ...] = (3, 224, 224)) -> int:
    """Multiply-adds of convolutions and linear layers for one image of ``input_shape``."""
    total = 0

    def hook(module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
        nonlocal total
        total += _multiply_adds(module, output)

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (nn.Conv2d, nn.Linear))]
    was_training = model.training
    try:
        model.eval()
        model(torch.zeros(1, *input_shape))
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return total


class _LinearClassifier(nn.Module):
    """Backbone, global average pooling and a linear head: what the paper's Table 1 counts."""

    def __init__(self, backbone: ResNeXt, num_classes: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.fc = nn.Linear(backbone.feat_dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.backbone(x)[-1].mean(dim=(2, 3)))


def classifier_complexity(
    depth: int = 50, groups: int = 32, width_per_group: int = 4, num_classes: int = 1000,
    input_size: int = 224,
) -> Complexity:
    """Complexity of ResNeXt-``depth`` (C x d) with a linear ``num_classes`` head (Table 1)."""
    model = _LinearClassifier(
        ResNeXt(depth, groups=groups, width_per_group=width_per_group, init_cfg=None), num_classes)
    return Complexity(count_parameters(model), count_flops(model, (3, input_size, input_size)))


def block_parameters(groups: int, width: int, channels: int = TEMPLATE_CHANNELS) -> int:
    """Convolution parameters of one bottleneck block of cardinality ``groups``, width ``width``."""
    block = Bottleneck(channels, channels, groups=groups, group_width=width)
    return count_parameters(block, (nn.Conv2d,))


def solve_width(groups: int, reference: tuple[int, int] = (RESNET_GROUPS, RESNET_WIDTH),
                channels: int = TEMPLATE_CHANNELS) -> int:
    """The bottleneck width d that keeps a block of cardinality ``groups`` closest in parameters
    to the ``reference`` (C, d) block: the rule behind the paper's Table 2."""
    if groups < 1:
        raise ValueError(f"solve_width: `groups` must be >= 1, got {groups}")
    target = block_parameters(*reference, channels=channels)
    best_width, best_gap = 1, None
    width = 1
    while True:
        params = block_parameters(groups, width, channels)
        gap = abs(params - target)
        if best_gap is None or gap < best_gap:
            best_width, best_gap = width, gap
        if params > target:  # parameters grow with width: nothing further is closer
            return best_width
        width += 1

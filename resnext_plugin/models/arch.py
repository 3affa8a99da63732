"""A ResNeXt's architecture read back from its weights.

Depth comes from the blocks per stage (:data:`ARCH_SETTINGS`, the one table of depths), the
cardinality C and the bottleneck width d from the first grouped convolution:
``layer1.0.conv2.weight`` has shape ``(C*d, d, 3, 3)``. The strict pretrained loader names both
sides' architectures with it, and the checkpoint converter builds its reference model from it.
"""
from __future__ import annotations

import re
from collections.abc import Mapping

import torch

from .blocks import EXPANSION
from .key_layouts import STEM_FIRST_CONV, STEM_LAST_CONV, has_avg_down, stem_layout

#: Blocks per stage for each depth (paper Table 1 and its 101/152-layer siblings).
ARCH_SETTINGS: dict[int, tuple[int, ...]] = {
    29: (3, 3, 3),  # the paper's CIFAR ResNeXt-29 (Sec. 5.3): three stages of three blocks
    50: (3, 4, 6, 3),
    101: (3, 4, 23, 3),
    152: (3, 8, 36, 3),
    200: (3, 24, 36, 3),  # ResNet-200 of the paper's Table 4
}

_BLOCK_PREFIX = re.compile(r"^layer(\d+)\.(\d+)\.")


class ArchitectureError(ValueError):
    """Weights that are not those of a ResNeXt; the message names the first offending key."""


def describe(arch: Mapping) -> str:
    """``'ResNeXt-101 (32x8d)'``, plus the stem and shortcut variants when not the default."""
    extras = [name for name in ("deep_stem", "avg_down") if arch.get(name)]
    text = f"ResNeXt-{arch['depth']} ({arch['groups']}x{arch['width_per_group']}d)"
    return text + (f" with {', '.join(extras)}" if extras else "")


def _require(weights: Mapping[str, torch.Tensor], key: str, why: str) -> torch.Tensor:
    if key not in weights:
        raise ArchitectureError(f"missing key {key!r}: {why}")
    return weights[key]


def _stage_blocks(weights: Mapping[str, torch.Tensor]) -> list[int]:
    blocks: dict[int, set[int]] = {}
    for key in weights:
        match = _BLOCK_PREFIX.match(key)
        if match:
            blocks.setdefault(int(match[1]), set()).add(int(match[2]))
    if not blocks:
        raise ArchitectureError("no residual stage weights (layer1.*) found")
    counts = []
    for stage in range(1, max(blocks) + 1):
        if stage not in blocks:
            raise ArchitectureError(f"missing key 'layer{stage}.0.conv1.weight': stage {stage} has "
                                  f"no weights but stage {max(blocks)} has")
        present = blocks[stage]
        for index in range(max(present) + 1):
            if index not in present:
                raise ArchitectureError(f"missing key 'layer{stage}.{index}.conv1.weight': block "
                                      f"{index} of stage {stage} has no weights")
        counts.append(max(present) + 1)
    return counts


def _depth(counts: list[int]) -> int:
    matches = [depth for depth, blocks in ARCH_SETTINGS.items()
               if tuple(blocks[: len(counts)]) == tuple(counts)]
    if not matches:
        table = ", ".join(f"{d}: {b}" for d, b in ARCH_SETTINGS.items())
        raise ArchitectureError(f"blocks per stage {tuple(counts)} match no ResNeXt depth "
                              f"({table}); last block 'layer{len(counts)}.{counts[-1] - 1}'")
    return matches[0]  # fewer than 4 stages: the shallowest depth, whose weights are the same


def infer_arch(weights: Mapping[str, torch.Tensor]) -> dict:
    """ResNeXt constructor arguments that reproduce the shapes of ``weights`` (plugin names).

    Returns:
        dict: ``depth``, ``groups``, ``width_per_group``, ``in_channels``, ``stem_channels``,
        ``base_channels``, ``num_stages``, ``deep_stem``, ``avg_down``.

    Raises:
        ArchitectureError: A block is not a bottleneck, or a tensor the inference reads is missing
            or of the wrong rank; the message names the key.
    """
    counts = _stage_blocks(weights)
    for stage, num_blocks in enumerate(counts, start=1):
        for index in range(num_blocks):
            for conv in ("conv1", "conv2", "conv3"):
                _require(weights, f"layer{stage}.{index}.{conv}.weight",
                         f"layer{stage}.{index} is not a ResNeXt bottleneck (1x1 conv1, grouped "
                         "3x3 conv2, 1x1 conv3); another architecture, e.g. a BasicBlock "
                         "ResNet-18/34?")
    conv2 = weights["layer1.0.conv2.weight"]
    if conv2.dim() != 4 or tuple(conv2.shape[2:]) != (3, 3) or conv2.shape[0] % conv2.shape[1]:
        raise ArchitectureError(f"key 'layer1.0.conv2.weight' has shape {tuple(conv2.shape)}; a "
                              "ResNeXt's grouped 3x3 convolution has shape (C*d, d, 3, 3)")
    width, groups = int(conv2.shape[1]), int(conv2.shape[0] // conv2.shape[1])
    # the deep stem: mmpretrain's ConvModules (stem.{0,1,2}.conv) or mmdet's flat stem.{0,3,6}
    layout = stem_layout(weights)
    deep_stem = layout in ("convmodule", "sequential")
    if deep_stem:
        first = weights[STEM_FIRST_CONV[layout]]
        last = _require(weights, STEM_LAST_CONV[layout], "the deep stem has three convolutions")
    else:
        first = last = _require(weights, "conv1.weight", "the stem convolution")
    conv3 = weights["layer1.0.conv3.weight"]
    if conv3.dim() != 4 or conv3.shape[0] % EXPANSION:
        raise ArchitectureError(f"key 'layer1.0.conv3.weight' has shape {tuple(conv3.shape)}; "
                              f"its output channels must be {EXPANSION} x base_channels")
    return dict(
        depth=_depth(counts),
        groups=groups,
        width_per_group=width,
        in_channels=int(first.shape[1]),
        stem_channels=int(last.shape[0]),
        base_channels=int(conv3.shape[0] // EXPANSION),
        num_stages=len(counts),
        deep_stem=deep_stem,
        # avg_down (ResNet-D) puts an average pool at downsample.0, the projection after it.
        avg_down=has_avg_down([k for k, v in weights.items() if v.dim() == 4], len(counts)),
    )


def describe_weights(state_dict: Mapping[str, torch.Tensor]) -> str:
    """:func:`describe` of :func:`infer_arch`, or a sentence saying it is no ResNeXt."""
    try:
        return describe(infer_arch(state_dict))
    except ArchitectureError:
        return "an architecture that is not a ResNeXt of this layout"

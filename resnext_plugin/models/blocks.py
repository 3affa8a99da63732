"""The ResNeXt bottleneck block in the paper's three equivalent templates (Fig. 3).

* ``'c'``: one grouped 3x3 convolution (C groups). The fast form, and the only one whose
  state-dict keys (``conv1..3``, ``bn1..3``) match mmpretrain's, mmdet's and torchvision's blocks.
* ``'b'``: early concatenation. C paths of (1x1, 3x3) convolutions of width d each, concatenated,
  then one 1x1 convolution (``conv3``).
* ``'a'``: C complete paths (1x1, 3x3, 1x1) whose outputs are summed, then ``bn3``.

BatchNorm normalises each channel on its own, so splitting ``bn1``/``bn2`` per path and applying
``bn3`` after the aggregation keeps the three forms the same function (see
:func:`resnext_plugin.models.block_forms.convert_block_form`). That holds for per-channel norms
(BN, SyncBN); a GroupNorm spans channels across paths and would differ.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.utils.checkpoint as cp
from mmcv.cnn import build_conv_layer, build_norm_layer
from mmcv.cnn.bricks import DropPath
from torch import nn

BLOCK_FORMS = ("a", "b", "c")
STYLES = ("pytorch", "caffe")
EXPANSION = 4


class _Path(nn.Module):
    """``conv1, bn1, relu, conv2, bn2, relu[, conv3]``: one path of forms (a) and (b)."""

    def __init__(
        self,
        in_channels: int,
        width: int,
        out_channels: Optional[int],
        conv1_stride: int,
        conv2_stride: int,
        dilation: int,
        conv_cfg: Optional[dict],
        norm_cfg: dict,
    ) -> None:
        super().__init__()
        self.conv1 = build_conv_layer(
            conv_cfg, in_channels, width, kernel_size=1, stride=conv1_stride, bias=False
        )
        self.bn1 = build_norm_layer(norm_cfg, width)[1]
        self.conv2 = build_conv_layer(
            conv_cfg, width, width, kernel_size=3, stride=conv2_stride,
            padding=dilation, dilation=dilation, bias=False,
        )
        self.bn2 = build_norm_layer(norm_cfg, width)[1]
        self.relu = nn.ReLU(inplace=True)
        if out_channels is not None:
            self.conv3 = build_conv_layer(conv_cfg, width, out_channels, kernel_size=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.conv3(out) if hasattr(self, "conv3") else out


class Bottleneck(nn.Module):
    """ResNeXt bottleneck: aggregated transformation, then the residual addition.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels (``EXPANSION`` times the stage's base width).
        groups (int): Cardinality C.
        group_width (int): Width of one group (path) in this block, ``d * 2**stage``.
        stride (int): Stride of the block. Defaults to 1.
        dilation (int): Dilation of the 3x3 convolution. Defaults to 1.
        style (str): ``'pytorch'`` puts the stride on the 3x3 convolution, ``'caffe'`` on the
            first 1x1. Defaults to ``'pytorch'``.
        block_form (str): Fig. 3 template, ``'a'``, ``'b'`` or ``'c'``. Defaults to ``'c'``.
        downsample (nn.Module, optional): Projection of the identity. Defaults to None.
        conv_cfg (dict, optional): Convolution config. Defaults to None (``nn.Conv2d``).
        norm_cfg (dict): Normalisation config. Defaults to ``dict(type='BN')``.
        drop_path_rate (float): Stochastic depth rate of the residual branch. Defaults to 0.
        with_cp (bool): Recompute the block in backward to save memory. Defaults to False.

    Example:
        >>> import torch
        >>> block = Bottleneck(256, 256, groups=32, group_width=4)
        >>> print(tuple(block(torch.rand(1, 256, 8, 8)).shape))
        (1, 256, 8, 8)
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        groups: int,
        group_width: int,
        stride: int = 1,
        dilation: int = 1,
        style: str = "pytorch",
        block_form: str = "c",
        downsample: Optional[nn.Module] = None,
        conv_cfg: Optional[dict] = None,
        norm_cfg: Optional[dict] = None,
        drop_path_rate: float = 0.0,
        with_cp: bool = False,
    ) -> None:
        super().__init__()
        norm_cfg = dict(type="BN") if norm_cfg is None else norm_cfg
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.groups = groups
        self.group_width = group_width
        self.mid_channels = groups * group_width
        self.block_form = block_form
        self.with_cp = with_cp
        conv1_stride, conv2_stride = (1, stride) if style == "pytorch" else (stride, 1)

        if block_form == "c":
            self.conv1 = build_conv_layer(
                conv_cfg, in_channels, self.mid_channels, kernel_size=1, stride=conv1_stride,
                bias=False,
            )
            self.bn1 = build_norm_layer(norm_cfg, self.mid_channels)[1]
            self.conv2 = build_conv_layer(
                conv_cfg, self.mid_channels, self.mid_channels, kernel_size=3,
                stride=conv2_stride, padding=dilation, dilation=dilation, groups=groups,
                bias=False,
            )
            self.bn2 = build_norm_layer(norm_cfg, self.mid_channels)[1]
        else:
            path_out = out_channels if block_form == "a" else None
            self.paths = nn.ModuleList(
                _Path(in_channels, group_width, path_out, conv1_stride, conv2_stride, dilation,
                      conv_cfg, norm_cfg)
                for _ in range(groups)
            )
        if block_form != "a":
            self.conv3 = build_conv_layer(
                conv_cfg, self.mid_channels, out_channels, kernel_size=1, bias=False
            )
        self.bn3 = build_norm_layer(norm_cfg, out_channels)[1]
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.drop_path = DropPath(drop_path_rate) if drop_path_rate > 0 else nn.Identity()

    def _aggregate(self, x: torch.Tensor) -> torch.Tensor:
        """The aggregated transformation before ``bn3``: sum over the C paths."""
        if self.block_form == "c":
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.relu(self.bn2(self.conv2(out)))
            return self.conv3(out)
        if self.block_form == "b":
            return self.conv3(torch.cat([path(x) for path in self.paths], dim=1))
        out = self.paths[0](x)
        for path in self.paths[1:]:
            out = out + path(x)
        return out

    def _residual(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        return self.drop_path(self.bn3(self._aggregate(x))) + identity

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.with_cp and x.requires_grad:
            out = cp.checkpoint(self._residual, x, use_reentrant=False)
        else:
            out = self._residual(x)
        return self.relu(out)


def make_downsample(
    in_channels: int,
    out_channels: int,
    stride: int,
    avg_down: bool,
    conv_cfg: Optional[dict],
    norm_cfg: dict,
) -> Optional[nn.Sequential]:
    """Projection shortcut of a stage's first block, or None when the identity fits.

    With ``avg_down`` (ResNet-D) a stride-2 average pool precedes a stride-1 1x1 convolution, so
    the keys are ``downsample.1/2``; otherwise ``downsample.0/1`` as in torchvision.
    """
    if stride == 1 and in_channels == out_channels:
        return None
    layers: list[nn.Module] = []
    conv_stride = stride
    if avg_down and stride != 1:
        conv_stride = 1
        layers.append(
            nn.AvgPool2d(kernel_size=stride, stride=stride, ceil_mode=True, count_include_pad=False)
        )
    layers.append(
        build_conv_layer(conv_cfg, in_channels, out_channels, kernel_size=1, stride=conv_stride,
                         bias=False)
    )
    layers.append(build_norm_layer(norm_cfg, out_channels)[1])
    return nn.Sequential(*layers)


def make_stage(
    num_blocks: int,
    in_channels: int,
    out_channels: int,
    groups: int,
    group_width: int,
    stride: int,
    dilation: int,
    style: str,
    avg_down: bool,
    block_form: str,
    conv_cfg: Optional[dict],
    norm_cfg: dict,
    drop_path_rates: list[float],
    with_cp: bool,
) -> nn.Sequential:
    """A stage (``layer{i}``): ``num_blocks`` bottlenecks, the first one strided and projected."""
    blocks = []
    for index in range(num_blocks):
        first = index == 0
        blocks.append(
            Bottleneck(
                in_channels if first else out_channels,
                out_channels,
                groups=groups,
                group_width=group_width,
                stride=stride if first else 1,
                dilation=dilation,
                style=style,
                block_form=block_form,
                downsample=make_downsample(in_channels, out_channels, stride, avg_down, conv_cfg,
                                           norm_cfg) if first else None,
                conv_cfg=conv_cfg,
                norm_cfg=norm_cfg,
                drop_path_rate=drop_path_rates[index],
                with_cp=with_cp,
            )
        )
    return nn.Sequential(*blocks)

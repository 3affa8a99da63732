"""The ResNeXt bottleneck block in the paper's three equivalent templates (Fig. 3).

* ``'c'``: one grouped 3x3 convolution (C groups). The fast form, and the only one whose
  state-dict keys (``conv1..3``, ``bn1..3``) match mmpretrain's, mmdet's and torchvision's blocks.
  It alone takes mmdet's deformable convolution (``dcn``) and plugins.
* ``'b'``: early concatenation. C paths of (1x1, 3x3) convolutions of width d each, concatenated,
  then one 1x1 convolution (``conv3``).
* ``'a'``: C complete paths (1x1, 3x3, 1x1) whose outputs are summed, then the third norm.

Norm layers are named by type as mmcv names them (``bn1``, ``gn1``, ...), as in mmpretrain and
mmdet; ``norm1``/``norm2``/``norm3`` return them. BatchNorm normalises each channel on its own, so
splitting the first two norms per path and applying the third after the aggregation keeps the
three forms the same function (see :func:`resnext_plugin.models.block_forms.convert_block_form`).
That holds for per-channel norms (BN, SyncBN); a GroupNorm spans channels across paths and would
differ.
"""
from __future__ import annotations

import copy
from typing import Optional

import torch
import torch.utils.checkpoint as cp
from mmcv.cnn import build_conv_layer, build_norm_layer, build_plugin_layer
from mmcv.cnn.bricks import DropPath
from mmengine.model import BaseModule
from mmengine.model import Sequential as InitSequential
from torch import nn

from .conv_norm import conv_norm

BLOCK_FORMS = ("a", "b", "c")
STYLES = ("pytorch", "caffe")
EXPANSION = 4
PLUGIN_POSITIONS = ("after_conv1", "after_conv2", "after_conv3")


def _conv(conv_cfg: Optional[dict], in_channels: int, out_channels: int, kernel_size: int,
          stride: int = 1, dilation: int = 1, groups: int = 1) -> nn.Module:
    padding = dilation if kernel_size == 3 else 0
    return build_conv_layer(conv_cfg, in_channels, out_channels, kernel_size=kernel_size,
                            stride=stride, padding=padding, dilation=dilation, groups=groups,
                            bias=False)


class _NormNames:
    """``norm1``/``norm2``/``norm3``: the norm layers under their type-derived names."""

    @property
    def norm1(self) -> nn.Module:
        return getattr(self, self.norm1_name)

    @property
    def norm2(self) -> nn.Module:
        return getattr(self, self.norm2_name)

    def _add_norm(self, index: int, norm_cfg: dict, channels: int) -> None:
        name, layer = build_norm_layer(norm_cfg, channels, postfix=index)
        setattr(self, f"norm{index}_name", name)
        self.add_module(name, layer)


class _Path(_NormNames, nn.Module):
    """``conv1, norm1, relu, conv2, norm2, relu[, conv3]``: one path of forms (a) and (b)."""

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
        self.conv1 = _conv(conv_cfg, in_channels, width, 1, stride=conv1_stride)
        self._add_norm(1, norm_cfg, width)
        self.conv2 = _conv(conv_cfg, width, width, 3, stride=conv2_stride, dilation=dilation)
        self._add_norm(2, norm_cfg, width)
        self.relu = nn.ReLU(inplace=True)
        if out_channels is not None:
            self.conv3 = _conv(conv_cfg, width, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.norm1(self.conv1(x)))
        out = self.relu(self.norm2(self.conv2(out)))
        return self.conv3(out) if hasattr(self, "conv3") else out


class Bottleneck(_NormNames, BaseModule):
    """ResNeXt bottleneck: aggregated transformation, then the residual addition.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels (``expansion`` times the stage's base width).
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
        dcn (dict, optional): Config of the 3x3 convolution instead of ``conv_cfg`` (mmcv's
            ``'DCN'``, ``'DCNv2'``, ...), grouped by ``groups``. Its ``fallback_on_stride=True``
            keeps a plain convolution where the 3x3 convolution is strided. Form (c) only.
        plugins (list[dict], optional): mmcv plugin layers, ``dict(cfg=..., position=...)`` with
            ``position`` one of ``after_conv1``/``after_conv2`` (at the grouped width) or
            ``after_conv3`` (at ``out_channels``); ``cfg`` may hold a ``postfix`` for the module
            name. Form (c) only.
        drop_path_rate (float): Stochastic depth rate of the residual branch. Defaults to 0.
        with_cp (bool): Recompute the block in backward to save memory. Defaults to False.
        residual (bool): Add the identity (or its projection). False gives the paper's
            no-shortcut ablation (Sec. 5.1). Defaults to True.
        fold_frozen_bn (bool): Fold each eval-mode BatchNorm into the convolution before it at
            every forward (see :mod:`resnext_plugin.models.conv_norm`). Defaults to False.

    Example:
        >>> import torch
        >>> block = Bottleneck(256, 256, groups=32, group_width=4)
        >>> print(tuple(block(torch.rand(1, 256, 8, 8)).shape), block.norm3_name)
        (1, 256, 8, 8) bn3
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
        dcn: Optional[dict] = None,
        plugins: Optional[list[dict]] = None,
        drop_path_rate: float = 0.0,
        with_cp: bool = False,
        residual: bool = True,
        fold_frozen_bn: bool = False,
    ) -> None:
        super().__init__()
        norm_cfg = dict(type="BN") if norm_cfg is None else norm_cfg
        if style not in STYLES:
            raise ValueError(f"Bottleneck: `style` must be one of {STYLES}, got {style!r}")
        if block_form not in BLOCK_FORMS:
            raise ValueError(f"Bottleneck: `block_form` must be one of {BLOCK_FORMS}, "
                             f"got {block_form!r}")
        if block_form != "c" and (dcn is not None or plugins):
            raise ValueError(f"Bottleneck: `dcn` and `plugins` need block_form='c' (one grouped "
                             f"convolution); got block_form={block_form!r}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.groups = groups
        self.group_width = group_width
        self.mid_channels = groups * group_width
        self.stride = stride
        self.dilation = dilation
        self.style = style
        self.block_form = block_form
        self.with_cp = with_cp
        self.residual = residual
        self.fold_frozen_bn = fold_frozen_bn
        self.dcn = copy.deepcopy(dcn)
        self.with_dcn = dcn is not None
        self.conv1_stride, self.conv2_stride = (1, stride) if style == "pytorch" else (stride, 1)

        if block_form == "c":
            self.conv1 = _conv(conv_cfg, in_channels, self.mid_channels, 1,
                               stride=self.conv1_stride)
            self._add_norm(1, norm_cfg, self.mid_channels)
            self.conv2 = _conv(self._conv2_cfg(conv_cfg), self.mid_channels, self.mid_channels,
                               3, stride=self.conv2_stride, dilation=dilation, groups=groups)
            self._add_norm(2, norm_cfg, self.mid_channels)
        else:
            path_out = out_channels if block_form == "a" else None
            self.paths = nn.ModuleList(
                _Path(in_channels, group_width, path_out, self.conv1_stride, self.conv2_stride,
                      dilation, conv_cfg, norm_cfg)
                for _ in range(groups)
            )
        if block_form != "a":
            self.conv3 = _conv(conv_cfg, self.mid_channels, out_channels, 1)
        self._add_norm(3, norm_cfg, out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.drop_path = DropPath(drop_path_rate) if drop_path_rate > 0 else nn.Identity()
        self._make_plugins(plugins or [])

    @property
    def norm3(self) -> nn.Module:
        return getattr(self, self.norm3_name)

    def _conv2_cfg(self, conv_cfg: Optional[dict]) -> Optional[dict]:
        """``conv_cfg``, or the deformable convolution where ``dcn`` asks for one."""
        if self.dcn is None:
            return conv_cfg
        if conv_cfg is not None:
            raise ValueError(f"Bottleneck: `conv_cfg` must be None when `dcn` is given (the 3x3 "
                             f"convolution is built from dcn); got conv_cfg={conv_cfg!r}")
        dcn = dict(self.dcn)
        if dcn.pop("fallback_on_stride", False) and self.conv2_stride > 1:
            return None
        return dcn

    def _make_plugins(self, plugins: list[dict]) -> None:
        for position in PLUGIN_POSITIONS:
            setattr(self, f"{position}_plugin_names", [])
        self.with_plugins = bool(plugins)
        for index, plugin in enumerate(plugins):
            position = plugin.get("position")
            if position not in PLUGIN_POSITIONS:
                raise ValueError(f"Bottleneck: `plugins[{index}]` position must be one of "
                                 f"{PLUGIN_POSITIONS}, got {position!r}")
            cfg = dict(plugin["cfg"])
            postfix = cfg.pop("postfix", "")
            channels = self.out_channels if position == "after_conv3" else self.mid_channels
            name, layer = build_plugin_layer(cfg, in_channels=channels, postfix=postfix)
            if hasattr(self, name):
                raise ValueError(f"Bottleneck: `plugins[{index}]` would be a second module "
                                 f"{name!r}; give each plugin of one type its own `postfix`")
            self.add_module(name, layer)
            getattr(self, f"{position}_plugin_names").append(name)

    def _plugins(self, x: torch.Tensor, position: str) -> torch.Tensor:
        for name in getattr(self, f"{position}_plugin_names"):
            x = getattr(self, name)(x)
        return x

    def _branch(self, x: torch.Tensor) -> torch.Tensor:
        """The residual branch up to and including the third norm (and its plugins)."""
        fold = self.fold_frozen_bn
        if self.block_form == "c":
            out = self.relu(conv_norm(self.conv1, self.norm1, x, fold))
            out = self._plugins(out, "after_conv1")
            if self.with_dcn:  # mmcv's deformable convolutions need NCHW-contiguous input
                out = out.contiguous()
            out = self.relu(conv_norm(self.conv2, self.norm2, out, fold))
            out = self._plugins(out, "after_conv2")
            out = conv_norm(self.conv3, self.norm3, out, fold)
            return self._plugins(out, "after_conv3")
        if self.block_form == "b":
            return self.norm3(self.conv3(torch.cat([path(x) for path in self.paths], dim=1)))
        out = self.paths[0](x)
        for path in self.paths[1:]:
            out = out + path(x)
        return self.norm3(out)

    def _residual(self, x: torch.Tensor) -> torch.Tensor:
        out = self.drop_path(self._branch(x))
        if not self.residual:
            return out
        identity = x if self.downsample is None else self.downsample(x)
        return out + identity

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.with_cp and x.requires_grad:
            out = cp.checkpoint(self._residual, x, use_reentrant=False)
        else:
            out = self._residual(x)
        return self.relu(out)


class Downsample(nn.Sequential):
    """Projection shortcut: ``[AvgPool2d,] conv, norm`` (keys ``downsample.{0,1}`` or, with
    ``avg_down``, ``downsample.{1,2}``), with the norm optionally folded into the conv."""

    def __init__(self, *layers: nn.Module, fold_frozen_bn: bool = False) -> None:
        super().__init__(*layers)
        self.fold_frozen_bn = fold_frozen_bn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        *pool, conv, norm = self
        for layer in pool:
            x = layer(x)
        return conv_norm(conv, norm, x, self.fold_frozen_bn)


def make_downsample(
    in_channels: int,
    out_channels: int,
    stride: int,
    avg_down: bool,
    conv_cfg: Optional[dict],
    norm_cfg: dict,
    fold_frozen_bn: bool = False,
    avg_pool_at_stride_one: bool = False,
) -> Optional[Downsample]:
    """Projection shortcut of a stage's first block, or None when the identity fits.

    With ``avg_down`` (ResNet-D) a stride-2 average pool precedes a stride-1 1x1 convolution, so
    the keys are ``downsample.1/2``; otherwise ``downsample.0/1`` as in torchvision. mmdet also
    puts a (kernel 1, identity) pool in the stride-1 stage (``avg_pool_at_stride_one``), which
    moves that stage's keys too.
    """
    if stride == 1 and in_channels == out_channels:
        return None
    layers: list[nn.Module] = []
    conv_stride = stride
    if avg_down and (stride != 1 or avg_pool_at_stride_one):
        conv_stride = 1
        layers.append(
            nn.AvgPool2d(kernel_size=stride, stride=stride, ceil_mode=True, count_include_pad=False)
        )
    layers.append(_conv(conv_cfg, in_channels, out_channels, 1, stride=conv_stride))
    layers.append(build_norm_layer(norm_cfg, out_channels)[1])
    return Downsample(*layers, fold_frozen_bn=fold_frozen_bn)


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
    dcn: Optional[dict] = None,
    plugins: Optional[list[dict]] = None,
    residual: bool = True,
    fold_frozen_bn: bool = False,
    avg_pool_at_stride_one: bool = False,
) -> InitSequential:
    """A stage (``layer{i}``): ``num_blocks`` bottlenecks, the first one strided and projected.

    The stage is mmengine's ``Sequential`` so that ``init_weights`` reaches the blocks' layers
    that initialise themselves (mmcv's modulated deformable convolutions zero their offsets).
    """
    blocks = []
    for index in range(num_blocks):
        first = index == 0
        downsample = None
        if first and residual:
            downsample = make_downsample(in_channels, out_channels, stride, avg_down, conv_cfg,
                                         norm_cfg, fold_frozen_bn, avg_pool_at_stride_one)
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
                downsample=downsample,
                conv_cfg=conv_cfg,
                norm_cfg=norm_cfg,
                dcn=dcn,
                plugins=plugins,
                drop_path_rate=drop_path_rates[index],
                with_cp=with_cp,
                residual=residual,
                fold_frozen_bn=fold_frozen_bn,
            )
        )
    return InitSequential(*blocks)

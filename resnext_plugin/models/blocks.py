"""The ResNeXt bottleneck block in the paper's three equivalent templates (Fig. 3), one class each.

:class:`ResNeXtBlock` is the frame every form shares: the stride placement (``style``), the third
norm, the shortcut, stochastic depth, gradient checkpointing and the final ReLU. A form only says
how its aggregated transformation is built and run up to that third norm:

* ``'c'`` (:class:`Bottleneck`): one grouped 3x3 convolution (C groups). The fast form, and the
  only one whose state-dict keys (``conv1..3``, ``bn1..3``) match mmpretrain's, mmdet's and
  torchvision's blocks. It alone takes mmdet's deformable convolution (``dcn``) and plugins.
* ``'b'`` (:class:`EarlyConcatBlock`): early concatenation. C paths of (1x1, 3x3) convolutions of
  width d each, concatenated, then one 1x1 convolution (``conv3``).
* ``'a'`` (:class:`ParallelPathsBlock`): C complete paths (1x1, 3x3, 1x1) whose outputs are
  summed, then the third norm.

:data:`BLOCKS` maps each ``block_form`` name to its class; a new variant is one subclass of
:class:`ResNeXtBlock` and one entry there (see docs/architecture.md).

Norm layers are named by type as mmcv names them (``bn1``, ``gn1``, ...), as in mmpretrain and
mmdet; ``norm1``/``norm2``/``norm3`` return them. BatchNorm normalises each channel on its own, so
splitting the first two norms per path and applying the third after the aggregation keeps the
three forms the same function (see :func:`resnext_plugin.models.block_forms.convert_block_form`).
That holds for per-channel norms (BN, SyncBN); a GroupNorm spans channels across paths and would
differ.

Arguments are checked once, by the backbone (:mod:`resnext_plugin.models.spec`); the blocks trust
them.
"""
from __future__ import annotations

import copy
from abc import abstractmethod
from collections.abc import Iterator
from typing import Any, ClassVar, Optional

import torch
import torch.utils.checkpoint as cp
from mmcv.cnn import build_conv_layer, build_norm_layer, build_plugin_layer
from mmcv.cnn.bricks import DropPath
from mmengine.model import BaseModule
from mmengine.model import Sequential as InitSequential
from torch import nn

from .conv_norm import conv_norm

STYLES = ("pytorch", "caffe")
EXPANSION = 4
PLUGIN_POSITIONS = ("after_conv1", "after_conv2", "after_conv3")

#: A BatchNorm to fold and the convolutions whose summed output it normalises: (the norm's path
#: inside the module, the convolutions, the norm's parent module, the norm's name in the parent).
FoldPair = tuple[str, list[nn.Module], nn.Module, str]


def _norm_cfg(norm_cfg: Optional[dict]) -> dict:
    return dict(type="BN") if norm_cfg is None else norm_cfg


def _conv(conv_cfg: Optional[dict], in_channels: int, out_channels: int, kernel_size: int,
          stride: int = 1, dilation: int = 1, groups: int = 1) -> nn.Module:
    padding = dilation if kernel_size == 3 else 0
    return build_conv_layer(conv_cfg, in_channels, out_channels, kernel_size=kernel_size,
                            stride=stride, padding=padding, dilation=dilation, groups=groups,
                            bias=False)


class _NormNames:
    """``norm1``/``norm2``: the norm layers under their type-derived names."""

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

    def _conv_norm_pairs(self, indices: tuple[int, ...]) -> Iterator[FoldPair]:
        for i in indices:
            norm = getattr(self, f"norm{i}_name")
            yield norm, [getattr(self, f"conv{i}")], self, norm


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


class Downsample(nn.Sequential):
    """Projection shortcut: ``[AvgPool2d,] conv, norm`` (keys ``downsample.{0,1}`` or, with
    ``avg_down``, ``downsample.{1,2}``), with the norm optionally folded into the conv."""

    #: Fold an eval-mode BatchNorm at each forward; set model-wide by ``ResNeXt.fold_frozen_bn``.
    fold_frozen_bn: bool = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        *pool, conv, norm = self
        for layer in pool:
            x = layer(x)
        return conv_norm(conv, norm, x, self.fold_frozen_bn)

    def fold_pairs(self) -> Iterator[FoldPair]:
        """The (conv, norm) pair, as :data:`FoldPair`."""
        last = len(self) - 1
        yield str(last), [self[last - 1]], self, str(last)


class ResNeXtBlock(_NormNames, BaseModule):
    """The frame of every ResNeXt block: aggregated transformation, then the residual addition.

    A subclass builds its transformation in :meth:`_make_branch` (everything before the third
    norm, which the frame adds) and runs it in :meth:`_branch`; :meth:`_branch_fold_pairs` tells
    :func:`~resnext_plugin.models.fuse.fuse_conv_bn` which convolutions feed which norm, and
    :attr:`per_path_layers` tells :func:`~resnext_plugin.models.block_forms.convert_block_form`
    which layers it holds per path.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels (``expansion`` times the stage's base width).
        groups (int): Cardinality C.
        group_width (int): Width of one group (path) in this block, ``d * 2**stage``.
        stride (int): Stride of the block. Defaults to 1.
        dilation (int): Dilation of the 3x3 convolution. Defaults to 1.
        style (str): ``'pytorch'`` puts the stride on the 3x3 convolution, ``'caffe'`` on the
            first 1x1. Defaults to ``'pytorch'``.
        downsample (nn.Module, optional): Projection of the identity. Defaults to None.
        conv_cfg (dict, optional): Convolution config. Defaults to None (``nn.Conv2d``).
        norm_cfg (dict): Normalisation config. Defaults to ``dict(type='BN')``.
        drop_path_rate (float): Stochastic depth rate of the residual branch. Defaults to 0.
        with_cp (bool): Recompute the block in backward to save memory. Defaults to False.
        residual (bool): Add the identity (or its projection). False gives the paper's
            no-shortcut ablation (Sec. 5.1). Defaults to True.
        **options: The form's own options, passed to :meth:`_make_branch`.
    """

    #: Whether the form takes mmdet's ``dcn`` and ``plugins`` (they need one grouped 3x3 conv).
    takes_dcn_and_plugins: ClassVar[bool] = False
    #: Regex of the layers held per path (state-dict keys ``paths.{k}.<layer>.*``); None when the
    #: block holds every weight whole, as form (c) does (weights convert between forms via (c)).
    per_path_layers: ClassVar[Optional[str]] = None
    #: Fold eval-mode BatchNorms at each forward; set model-wide by ``ResNeXt.fold_frozen_bn``.
    fold_frozen_bn: bool = False
    #: Whether the 3x3 convolution is deformable (form (c) given ``dcn``).
    with_dcn: bool = False

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        groups: int,
        group_width: int,
        stride: int = 1,
        dilation: int = 1,
        style: str = "pytorch",
        downsample: Optional[nn.Module] = None,
        conv_cfg: Optional[dict] = None,
        norm_cfg: Optional[dict] = None,
        drop_path_rate: float = 0.0,
        with_cp: bool = False,
        residual: bool = True,
        **options: Any,
    ) -> None:
        super().__init__()
        norm_cfg = _norm_cfg(norm_cfg)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.groups = groups
        self.group_width = group_width
        self.mid_channels = groups * group_width
        self.stride = stride
        self.dilation = dilation
        self.style = style
        self.with_cp = with_cp
        self.residual = residual
        self.conv1_stride, self.conv2_stride = (1, stride) if style == "pytorch" else (stride, 1)
        self._make_branch(conv_cfg, norm_cfg, **options)
        self._add_norm(3, norm_cfg, out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.drop_path = DropPath(drop_path_rate) if drop_path_rate > 0 else nn.Identity()

    @property
    def norm3(self) -> nn.Module:
        return getattr(self, self.norm3_name)

    @abstractmethod
    def _make_branch(self, conv_cfg: Optional[dict], norm_cfg: dict, **options: Any) -> None:
        """Build the transformation's layers before the third norm (``norm3``)."""

    @abstractmethod
    def _branch(self, x: torch.Tensor) -> torch.Tensor:
        """The residual branch up to and including the third norm."""

    @abstractmethod
    def _branch_fold_pairs(self) -> Iterator[FoldPair]:
        """The branch's BatchNorms and the convolutions they follow, as :data:`FoldPair`."""

    def fold_pairs(self) -> Iterator[FoldPair]:
        """Every BatchNorm of the block with the convolutions it follows (the shortcut too)."""
        yield from self._branch_fold_pairs()
        if self.downsample is not None:
            for path, convs, parent, norm in self.downsample.fold_pairs():
                yield f"downsample.{path}", convs, parent, norm

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


class Bottleneck(ResNeXtBlock):
    """Form (c): ``conv1`` 1x1, ``conv2`` grouped 3x3, ``conv3`` 1x1 (the peers' Bottleneck).

    Takes :class:`ResNeXtBlock`'s arguments and:

    Args:
        dcn (dict, optional): Config of the 3x3 convolution instead of ``conv_cfg`` (mmcv's
            ``'DCN'``, ``'DCNv2'``, ...), grouped by ``groups``. Its ``fallback_on_stride=True``
            keeps a plain convolution where the 3x3 convolution is strided.
        plugins (list[dict], optional): mmcv plugin layers, ``dict(cfg=..., position=...)`` with
            ``position`` one of ``after_conv1``/``after_conv2`` (at the grouped width) or
            ``after_conv3`` (at ``out_channels``); ``cfg`` may hold a ``postfix`` for the module
            name.

    Example:
        >>> import torch
        >>> block = Bottleneck(256, 256, groups=32, group_width=4)
        >>> print(tuple(block(torch.rand(1, 256, 8, 8)).shape), block.norm3_name)
        (1, 256, 8, 8) bn3
    """

    takes_dcn_and_plugins = True

    def __init__(self, *args: Any, plugins: Optional[list[dict]] = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._make_plugins(plugins or [])  # after the frame: the peers' module (and key) order

    def _make_branch(self, conv_cfg: Optional[dict], norm_cfg: dict,
                     dcn: Optional[dict] = None) -> None:
        self.dcn = copy.deepcopy(dcn)
        self.with_dcn = dcn is not None
        self.conv1 = _conv(conv_cfg, self.in_channels, self.mid_channels, 1,
                           stride=self.conv1_stride)
        self._add_norm(1, norm_cfg, self.mid_channels)
        self.conv2 = _conv(self._conv2_cfg(conv_cfg), self.mid_channels, self.mid_channels, 3,
                           stride=self.conv2_stride, dilation=self.dilation, groups=self.groups)
        self._add_norm(2, norm_cfg, self.mid_channels)
        self.conv3 = _conv(conv_cfg, self.mid_channels, self.out_channels, 1)

    def _conv2_cfg(self, conv_cfg: Optional[dict]) -> Optional[dict]:
        """``conv_cfg``, or the deformable convolution where ``dcn`` asks for one."""
        if self.dcn is None:
            return conv_cfg
        dcn = dict(self.dcn)
        if dcn.pop("fallback_on_stride", False) and self.conv2_stride > 1:
            return None
        return dcn

    def _make_plugins(self, plugins: list[dict]) -> None:
        for position in PLUGIN_POSITIONS:
            setattr(self, f"{position}_plugin_names", [])
        self.with_plugins = bool(plugins)
        for index, plugin in enumerate(plugins):
            position = plugin["position"]
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
        fold = self.fold_frozen_bn
        out = self.relu(conv_norm(self.conv1, self.norm1, x, fold))
        out = self._plugins(out, "after_conv1")
        if self.with_dcn:  # mmcv's deformable convolutions need NCHW-contiguous input
            out = out.contiguous()
        out = self.relu(conv_norm(self.conv2, self.norm2, out, fold))
        out = self._plugins(out, "after_conv2")
        out = conv_norm(self.conv3, self.norm3, out, fold)
        return self._plugins(out, "after_conv3")

    def _branch_fold_pairs(self) -> Iterator[FoldPair]:
        return self._conv_norm_pairs((1, 2, 3))


class _PathsBlock(ResNeXtBlock):
    """Forms (a) and (b): C :class:`_Path` s (``paths.{k}``) of width d each."""

    #: Whether each path ends in its own ``conv3`` (form (a)) or the block has one (form (b)).
    path_conv3: ClassVar[bool]

    def _make_branch(self, conv_cfg: Optional[dict], norm_cfg: dict) -> None:
        path_out = self.out_channels if self.path_conv3 else None
        self.paths = nn.ModuleList(
            _Path(self.in_channels, self.group_width, path_out, self.conv1_stride,
                  self.conv2_stride, self.dilation, conv_cfg, norm_cfg)
            for _ in range(self.groups)
        )
        if not self.path_conv3:
            self.conv3 = _conv(conv_cfg, self.mid_channels, self.out_channels, 1)

    def _branch_fold_pairs(self) -> Iterator[FoldPair]:
        for k, path in enumerate(self.paths):
            for name, convs, parent, norm in path._conv_norm_pairs((1, 2)):
                yield f"paths.{k}.{name}", convs, parent, norm


class EarlyConcatBlock(_PathsBlock):
    """Form (b): the paths' 3x3 outputs concatenated, then one 1x1 ``conv3``."""

    path_conv3 = False
    per_path_layers = r"conv[12]|[a-z]+n[12]"

    def _branch(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm3(self.conv3(torch.cat([path(x) for path in self.paths], dim=1)))

    def _branch_fold_pairs(self) -> Iterator[FoldPair]:
        yield from super()._branch_fold_pairs()
        yield self.norm3_name, [self.conv3], self, self.norm3_name


class ParallelPathsBlock(_PathsBlock):
    """Form (a): complete paths (1x1, 3x3, 1x1) summed, then the shared third norm."""

    path_conv3 = True
    per_path_layers = r"conv[123]|[a-z]+n[12]"

    def _branch(self, x: torch.Tensor) -> torch.Tensor:
        out = self.paths[0](x)
        for path in self.paths[1:]:
            out = out + path(x)
        return self.norm3(out)

    def _branch_fold_pairs(self) -> Iterator[FoldPair]:
        yield from super()._branch_fold_pairs()  # the summed conv3s share norm3: folded into all
        yield self.norm3_name, [path.conv3 for path in self.paths], self, self.norm3_name


#: ``block_form`` -> block class. A new variant is one :class:`ResNeXtBlock` subclass and one
#: entry here; the backbone, the fusion and the weight conversion read everything else from it.
BLOCKS: dict[str, type[ResNeXtBlock]] = {
    "a": ParallelPathsBlock,
    "b": EarlyConcatBlock,
    "c": Bottleneck,
}


def make_downsample(
    in_channels: int,
    out_channels: int,
    stride: int,
    avg_down: bool,
    conv_cfg: Optional[dict],
    norm_cfg: Optional[dict],
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
    layers.append(build_norm_layer(_norm_cfg(norm_cfg), out_channels)[1])
    return Downsample(*layers)


def make_stage(
    num_blocks: int,
    in_channels: int,
    out_channels: int,
    stride: int,
    block: type[ResNeXtBlock] = Bottleneck,
    avg_down: bool = False,
    avg_pool_at_stride_one: bool = False,
    **block_kwargs: Any,
) -> InitSequential:
    """A stage (``layer{i}``): ``num_blocks`` blocks, the first one strided and projected.

    ``block_kwargs`` go to every block; one ending in ``_per_block`` is a list with one value per
    block (as detectron2's ``make_stage``), e.g. ``drop_path_rate_per_block=[0.0, 0.05]``. The
    stage is mmengine's ``Sequential`` so that ``init_weights`` reaches the blocks' layers that
    initialise themselves (mmcv's modulated deformable convolutions zero their offsets).
    """
    per_block = {key: block_kwargs.pop(key) for key in list(block_kwargs)
                 if key.endswith("_per_block")}
    downsample = None
    if block_kwargs.get("residual", True):
        downsample = make_downsample(in_channels, out_channels, stride, avg_down,
                                     block_kwargs.get("conv_cfg"), block_kwargs.get("norm_cfg"),
                                     avg_pool_at_stride_one)
    blocks = []
    for index in range(num_blocks):
        first = index == 0
        own = {key[: -len("_per_block")]: values[index] for key, values in per_block.items()}
        blocks.append(block(in_channels if first else out_channels, out_channels,
                            stride=stride if first else 1,
                            downsample=downsample if first else None, **own, **block_kwargs))
    return InitSequential(*blocks)

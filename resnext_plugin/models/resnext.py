"""ResNeXt backbone (Xie et al., "Aggregated Residual Transformations for Deep Neural Networks").

Every width is derived from one table (blocks per stage) and two numbers, the cardinality C
(``groups``) and the bottleneck width d (``width_per_group``): stage i's grouped 3x3 convolution
is C*d*2**i wide and its output is ``base_channels * 2**i * 4`` channels.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Optional, Union

import torch
import torch.nn.functional as F
from mmcv.cnn import ConvModule, build_conv_layer, build_norm_layer
from mmengine.model import BaseModule
from mmengine.model.weight_init import constant_init
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from ..registry import MODELS
from .arch import ARCH_SETTINGS
from .blocks import BLOCKS, Downsample, ResNeXtBlock, make_stage
from .conv_norm import conv_norm
from .fuse import fuse_conv_bn
from .pretrained import load_pretrained
from .spec import OMITTED, InitCfg, Omitted, ResNeXtSpec, check_arguments, check_flag


@MODELS.register_module()
class ResNeXt(BaseModule):
    """ResNeXt backbone, registered as ``resnext_plugin.ResNeXt``.

    Arguments are the union of mmpretrain's and mmdet's ``ResNeXt`` (and ``ResNet``), with their
    meaning; state-dict keys are theirs (``conv1``, ``bn1``/``gn1``...,
    ``layer{i}.{j}.conv{1,2,3}``, ``downsample.{0,1}``; the deep stem as the scope's peer lays it
    out), so checkpoints move
    between them with ``strict=True``. Arguments left out take the defaults of the peer whose
    registry scope builds the model (see :mod:`resnext_plugin.models.peer_defaults`).

    Args:
        depth (int): 50, 101, 152 or 200 (ImageNet), or 29 (CIFAR: three stages).
        groups (int): Cardinality C. Defaults to 32.
        width_per_group (int, optional): Bottleneck width d of the first stage; stage i's grouped
            convolution is ``C * d * 2**i`` wide. Defaults to 4 (``base_channels`` when
            ``groups=1``: a ResNet, as both peers build it).
        base_width (int, optional): mmdet's name for ``width_per_group``; give one, not both.
        in_channels (int): Input image channels. Defaults to 3.
        stem_channels (int, optional): Output channels of the stem. Defaults to 64 (mmpretrain)
            or ``base_channels`` (mmdet).
        base_channels (int): Stage 0's output is ``expansion * base_channels`` channels, doubled
            per stage. Defaults to 64.
        expansion (int, optional): Ratio of a stage's output to ``base_channels * 2**i``.
            Defaults to 4.
        num_stages (int, optional): Number of stages, 1 to 4 (1 to 3 for depth 29). Defaults to
            all of the depth's stages.
        strides (Sequence[int], optional): Stride of each stage's first block, one per stage.
            Defaults to the first ``num_stages`` of (1, 2, 2, 2).
        dilations (Sequence[int], optional): Dilation of each stage. Defaults to all 1.
        out_indices (Sequence[int], optional): Stages whose outputs are returned (negative
            indices count from the last stage). Defaults to (3,) (mmpretrain) or (0, 1, 2, 3)
            (mmdet).
        style (str): ``'pytorch'`` (stride on the 3x3) or ``'caffe'`` (stride on the first 1x1).
        deep_stem (bool): Three 3x3 convolutions instead of the 7x7 stem. Defaults to False.
        avg_down (bool): Average-pool before the projection shortcut (ResNet-D). Defaults to False.
        frozen_stages (int): Freeze the stem (0) and stages 1..frozen_stages: no gradient, norms
            in eval mode, also after ``train()``. -1 freezes nothing. Defaults to -1.
        conv_cfg (dict, optional): Convolution config (e.g. ``dict(type='ConvWS')``).
        norm_cfg (dict): Normalisation config. Defaults to ``dict(type='BN', requires_grad=True)``.
        norm_eval (bool, optional): Keep every BatchNorm in eval mode during training. Defaults
            to False (mmpretrain) or True (mmdet).
        dcn (dict, optional): mmdet's deformable 3x3 convolution, e.g.
            ``dict(type='DCN', deform_groups=1, fallback_on_stride=False)``, in the stages
            ``stage_with_dcn`` selects. ``fallback_on_stride=True`` keeps a plain convolution
            where the 3x3 convolution is strided.
        stage_with_dcn (Sequence[bool], optional): One flag per stage. Defaults to all False.
        plugins (list[dict], optional): mmdet's plugins, e.g. GCNet's
            ``dict(cfg=dict(type='ContextBlock', ratio=1/16), stages=(False, True, True, True),
            position='after_conv3')``, built by mmcv's ``build_plugin_layer``.
        with_cp (bool): Gradient checkpointing per block. Defaults to False.
        zero_init_residual (bool, optional): Zero-initialise each block's last norm, so that
            every block starts as the identity. Defaults to True, and to False with
            ``residual=False`` (without a shortcut a zero norm would block the signal; asking
            for both is an error).
        drop_path_rate (float): Stochastic depth, rising linearly over the blocks to this rate.
        block_form (str): The block class, a key of :data:`~resnext_plugin.models.blocks.BLOCKS`:
            the paper's Fig. 3 template ``'a'``, ``'b'`` or ``'c'`` (one grouped convolution, the
            fast one and the default).
        channels_last (bool): Run the network in ``torch.channels_last`` memory format.
        residual (bool): False removes every shortcut (the paper's Sec. 5.1 ablation).
        stem_type (str): ``'imagenet'`` (7x7 or deep stem, then max-pool) or ``'cifar'`` (one
            3x3 stride-1 convolution, no max-pool; the paper's CIFAR networks).
        fold_frozen_bn (bool): At every forward, fold each eval-mode BatchNorm into the plain
            convolution before it (gradients still reach both). Defaults to False.
        defaults (str, optional): ``'mmdet'`` or ``'mmpretrain'``: whose defaults fill the
            arguments left out. Defaults to the registry scope's.
        pretrained (str, optional): Deprecated (mmdet): the same as
            ``init_cfg=dict(type='Pretrained', checkpoint=pretrained)``.
        init_cfg (dict | list[dict], optional): mmengine initialisation config. A
            ``Pretrained`` entry loads strictly; ``open-mmlab://``, ``torchvision://`` and
            ``mmcls://`` names resolve through mmengine's model zoo. Left out: Kaiming
            convolutions and norms at 1 (:data:`~resnext_plugin.models.spec.DEFAULT_INIT_CFG`);
            None: the same for mmdet, no initialisation for mmpretrain.

    Example:
        >>> import torch
        >>> from resnext_plugin.models import ResNeXt
        >>> model = ResNeXt(depth=50, groups=32, width_per_group=4, out_indices=(0, 1, 2, 3))
        >>> _ = model.eval()
        >>> for out in model(torch.rand(1, 3, 64, 64)):
        ...     print(tuple(out.shape))
        (1, 256, 16, 16)
        (1, 512, 8, 8)
        (1, 1024, 4, 4)
        (1, 2048, 2, 2)
        >>> [(f["num_chs"], f["reduction"]) for f in model.feature_info]
        [(256, 4), (512, 8), (1024, 16), (2048, 32)]
    """

    arch_settings = ARCH_SETTINGS

    def __init__(
        self,
        depth: int,
        groups: int = 32,
        width_per_group: Optional[int] = None,
        base_width: Optional[int] = None,
        in_channels: int = 3,
        stem_channels: Optional[int] = None,
        base_channels: int = 64,
        expansion: Optional[int] = None,
        num_stages: Optional[int] = None,
        strides: Optional[Sequence[int]] = None,
        dilations: Optional[Sequence[int]] = None,
        out_indices: Optional[Sequence[int]] = None,
        style: str = "pytorch",
        deep_stem: bool = False,
        avg_down: bool = False,
        frozen_stages: int = -1,
        conv_cfg: Optional[dict] = None,
        norm_cfg: Optional[dict] = None,
        norm_eval: Optional[bool] = None,
        dcn: Optional[dict] = None,
        stage_with_dcn: Optional[Sequence[bool]] = None,
        plugins: Optional[list[dict]] = None,
        with_cp: bool = False,
        zero_init_residual: Optional[bool] = None,
        drop_path_rate: float = 0.0,
        block_form: str = "c",
        channels_last: bool = False,
        residual: bool = True,
        stem_type: str = "imagenet",
        fold_frozen_bn: bool = False,
        defaults: Optional[str] = None,
        pretrained: Optional[str] = None,
        init_cfg: Union[InitCfg, Omitted] = OMITTED,
    ) -> None:
        arguments = {name: value for name, value in locals().items()
                     if name not in ("self", "__class__")}
        spec = check_arguments(arguments)
        super().__init__(init_cfg=spec.init_cfg)
        self.spec = spec
        for name in spec.MODEL_ATTRIBUTES:
            setattr(self, name, getattr(spec, name))
        self._make_stem(spec)
        self._make_stages(spec)
        self.fold_frozen_bn = spec.fold_frozen_bn
        if spec.channels_last:
            self.to(memory_format=torch.channels_last)
            for module in self.modules():  # mmcv's deformable convolutions need NCHW tensors
                if isinstance(module, ResNeXtBlock) and module.with_dcn:
                    module.conv2.to(memory_format=torch.contiguous_format)
        self._freeze_stages()

    def stage_out_channels(self, stage: int) -> int:
        """Output channels of stage ``stage`` (0-based)."""
        return self.base_channels * 2**stage * self.expansion

    def stage_width(self, stage: int) -> int:
        """Width of stage ``stage``'s grouped 3x3 convolution: C * d * 2**stage."""
        return self.groups * self.width_per_group * 2**stage

    @property
    def arch_kwargs(self) -> dict:
        """Constructor arguments that determine the parameter shapes."""
        return dict(depth=self.depth, groups=self.groups, width_per_group=self.width_per_group,
                    in_channels=self.in_channels, stem_channels=self.stem_channels,
                    base_channels=self.base_channels, num_stages=self.num_stages,
                    deep_stem=self.deep_stem, avg_down=self.avg_down, block_form=self.block_form)

    @property
    def fold_frozen_bn(self) -> bool:
        """Whether eval-mode BatchNorms are folded into their convolutions at each forward."""
        return self._fold_frozen_bn

    @fold_frozen_bn.setter
    def fold_frozen_bn(self, value: bool) -> None:
        self._fold_frozen_bn = check_flag("fold_frozen_bn", value)
        for module in self.modules():
            if isinstance(module, (ResNeXtBlock, Downsample)):
                module.fold_frozen_bn = value

    @property
    def norm1(self) -> nn.Module:
        """The stem's norm layer (``bn1``, ``gn1``, ...; not with a deep stem)."""
        return getattr(self, self.norm1_name)

    @property
    def stem_stride(self) -> int:
        """Downsampling of the stem (with its max-pool): 4, or 1 for the CIFAR stem."""
        return 1 if self.stem_type == "cifar" else 4

    def _make_stem(self, spec: ResNeXtSpec) -> None:
        """``conv1``/``bn1``/``relu`` (7x7, or 3x3 for CIFAR) or the deep ``stem``; ``maxpool``."""
        conv_cfg, norm_cfg = spec.conv_cfg, spec.norm_cfg
        if spec.deep_stem:
            half = spec.stem_channels // 2
            shapes = ((spec.in_channels, half, 2), (half, half, 1), (half, spec.stem_channels, 1))
            if spec.deep_stem_layout == "sequential":  # mmdet: conv, norm, ReLU, ... (stem.0/1/3)
                layers: list[nn.Module] = []
                for cin, cout, stride in shapes:
                    layers += [build_conv_layer(conv_cfg, cin, cout, kernel_size=3,
                                                stride=stride, padding=1, bias=False),
                               build_norm_layer(norm_cfg, cout)[1], nn.ReLU(inplace=True)]
                self.stem = nn.Sequential(*layers)
            else:  # mmpretrain: three ConvModules (stem.0.conv, stem.0.bn, ...)
                self.stem = nn.Sequential(*(
                    ConvModule(cin, cout, kernel_size=3, stride=stride, padding=1,
                               conv_cfg=conv_cfg, norm_cfg=norm_cfg, inplace=True)
                    for cin, cout, stride in shapes))
        else:
            kernel, stride = (3, 1) if spec.stem_type == "cifar" else (7, 2)
            self.conv1 = build_conv_layer(conv_cfg, spec.in_channels, spec.stem_channels,
                                          kernel_size=kernel, stride=stride,
                                          padding=kernel // 2, bias=False)
            self.norm1_name, norm1 = build_norm_layer(norm_cfg, spec.stem_channels, postfix=1)
            self.add_module(self.norm1_name, norm1)
            self.relu = nn.ReLU(inplace=True)
        if spec.stem_type == "cifar":
            self.maxpool = nn.Identity()
        else:
            self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)

    def _make_stages(self, spec: ResNeXtSpec) -> None:
        """``layer1``..``layer{num_stages}`` of ``BLOCKS[block_form]``, and ``feature_info``."""
        block = BLOCKS[spec.block_form]
        rates = torch.linspace(0, spec.drop_path_rate, sum(ARCH_SETTINGS[spec.depth])).tolist()
        self.res_layers: list[str] = []
        self.feature_info: list[dict] = []
        stage_in, reduction = spec.stem_channels, self.stem_stride
        for i, num_blocks in enumerate(spec.stage_blocks):
            stage_out = self.stage_out_channels(i)
            reduction *= spec.strides[i]
            first = sum(spec.stage_blocks[:i])
            stage = make_stage(num_blocks, stage_in, stage_out, spec.strides[i], block,
                               avg_down=spec.avg_down,
                               avg_pool_at_stride_one=spec.avg_pool_at_stride_one,
                               drop_path_rate_per_block=rates[first:first + num_blocks],
                               **spec.stage_block_kwargs(i))
            name = f"layer{i + 1}"
            self.add_module(name, stage)
            self.res_layers.append(name)
            self.feature_info.append(dict(num_chs=stage_out, reduction=reduction, module=name))
            stage_in = stage_out
        self.out_channels = tuple(self.feature_info[i]["num_chs"] for i in spec.out_indices)
        self.out_strides = tuple(self.feature_info[i]["reduction"] for i in spec.out_indices)
        self.feat_dim = self.feature_info[-1]["num_chs"]

    def stem_conv_norms(self) -> list[tuple[nn.Module, nn.Module]]:
        """The stem's (convolution, norm) pairs, in order, whatever its layout."""
        if not self.deep_stem:
            return [(self.conv1, self.norm1)]
        if self.deep_stem_layout == "sequential":
            return [(self.stem[i], self.stem[i + 1]) for i in range(0, len(self.stem), 3)]
        return [(module.conv, module.norm) for module in self.stem]

    def _stem_forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self._fold_frozen_bn:
            if self.deep_stem:
                return self.stem(x)
            return self.relu(self.norm1(self.conv1(x)))
        for conv, norm in self.stem_conv_norms():
            x = F.relu(conv_norm(conv, norm, x, fold=True), inplace=True)
        return x

    def _stem_modules(self) -> list[nn.Module]:
        return [self.stem] if self.deep_stem else [self.conv1, self.norm1]

    def frozen_modules(self) -> list[nn.Module]:
        """The modules ``frozen_stages`` freezes: the stem, then stages 1..frozen_stages."""
        if self.frozen_stages < 0:
            return []
        stages = [getattr(self, name) for name in self.res_layers[: self.frozen_stages]]
        return self._stem_modules() + stages

    def _freeze_stages(self) -> None:
        for module in self.frozen_modules():
            # as both peers: the plain stem's conv keeps its (meaningless) training flag
            if module is not getattr(self, "conv1", None):
                module.eval()
            for param in module.parameters():
                param.requires_grad = False

    def train(self, mode: bool = True) -> "ResNeXt":
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for module in self.modules():
                if isinstance(module, _BatchNorm):
                    module.eval()
        return self

    def _pretrained_cfg(self) -> Optional[dict]:
        cfgs = self.init_cfg if isinstance(self.init_cfg, list) else [self.init_cfg]
        found = [c for c in cfgs if isinstance(c, dict) and c.get("type") == "Pretrained"]
        return found[-1] if found else None

    def init_weights(self) -> None:
        """Initialise as ``init_cfg`` says. A ``Pretrained`` entry is loaded strictly by
        :func:`~resnext_plugin.models.pretrained.load_pretrained` (mmengine's loader would accept
        a checkpoint of another depth or width with only a warning)."""
        pretrained = self._pretrained_cfg()
        if pretrained is None:
            super().init_weights()
            if self.zero_init_residual and self.spec.zero_init_allowed:
                for module in self.modules():
                    if isinstance(module, ResNeXtBlock):
                        constant_init(module.norm3, 0)
            return
        unknown = set(pretrained) - {"type", "checkpoint", "prefix", "map_location"}
        if unknown or "checkpoint" not in pretrained:
            raise ValueError(f"ResNeXt: init_cfg Pretrained takes `checkpoint` (required), "
                             f"`prefix` and `map_location`; got keys {sorted(pretrained)}")
        load_pretrained(self, pretrained["checkpoint"], prefix=pretrained.get("prefix"),
                        map_location=pretrained.get("map_location", "cpu"))
        self._is_init = True

    def fuse(self) -> "ResNeXt":
        """Fold each BatchNorm into the convolution before it, for inference (eval mode)."""
        return fuse_conv_bn(self)

    def get_layer_depth(self, param_name: str, prefix: str = "") -> tuple[int, int]:
        """Layer id of a parameter and the number of layer ids, for layer-wise lr decay
        (mmpretrain's ``LearningRateDecayOptimWrapperConstructor``), numbered as mmpretrain's
        ``ResNet`` numbers them: the stem 0, stage 1 one id, stages 2 and 3 split into groups of
        blocks, stage 4 one id, anything after the backbone (the head) the last."""
        depths = self.stage_blocks
        if len(depths) != 4:
            raise NotImplementedError(f"ResNeXt.get_layer_depth: needs 4 stages, the model has "
                                      f"{len(depths)}")
        per_id = {4: 2, 8: 4, 24: 4, 30: 5}.get(depths[1]), {6: 3, 23: 3, 36: 4, 48: 6}.get(
            depths[2])
        if None in per_id:
            raise NotImplementedError(f"ResNeXt.get_layer_depth: no layer grouping for blocks "
                                      f"per stage {depths}")
        ids2, ids3 = (math.ceil(n / k - 1e-5) for n, k in zip(depths[1:3], per_id))
        last = 2 + ids2 + ids3
        num_ids = last + 2
        if not param_name.startswith(prefix):
            return last + 1, num_ids
        name = param_name[len(prefix):]
        if not name.startswith("layer"):
            return 0, num_ids
        stage, block = (int(part) for part in name[len("layer"):].split(".")[:2])
        if stage == 1:
            return 1, num_ids
        if stage == 2:
            return 2 + block // per_id[0], num_ids
        if stage == 3:
            return 2 + ids2 + block // per_id[1], num_ids
        return last, num_ids

    def _check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"ResNeXt expects input of shape (N, {self.in_channels}, H, W) "
                f"(in_channels={self.in_channels}), got {tuple(x.shape)}"
            )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        self._check_input(x)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        x = self.maxpool(self._stem_forward(x))
        outs = []
        for i, name in enumerate(self.res_layers):
            x = getattr(self, name)(x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)

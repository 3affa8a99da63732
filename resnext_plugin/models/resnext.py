"""ResNeXt backbone (Xie et al., "Aggregated Residual Transformations for Deep Neural Networks").

Every width is derived from one table (blocks per stage) and two numbers, the cardinality C
(``groups``) and the bottleneck width d (``width_per_group``): stage i's grouped 3x3 convolution
is C*d*2**i wide and its output is ``base_channels * 2**i * 4`` channels.
"""
from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Sequence
from typing import Any, Optional, Union

import torch
import torch.nn.functional as F
from mmcv.cnn import ConvModule, build_conv_layer, build_norm_layer
from mmengine.model import BaseModule
from mmengine.model.weight_init import constant_init
from mmengine.registry import MODELS as ROOT_MODELS
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from ..deps import require
from ..registry import MODELS
from .arch import ARCH_SETTINGS
from .blocks import BLOCK_FORMS, EXPANSION, STYLES, Bottleneck, Downsample, make_stage
from .conv_norm import conv_norm
from .fuse import fuse_conv_bn
from .peer_defaults import fill_defaults
from .pretrained import load_pretrained

STEM_TYPES = ("imagenet", "cifar")

DEFAULT_STRIDES = (1, 2, 2, 2)
DEFAULT_INIT_CFG = [
    dict(type="Kaiming", layer=["Conv2d"]),
    dict(type="Constant", val=1, layer=["_BatchNorm", "GroupNorm"]),
]


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def _positive_int(name: str, value: Any) -> int:
    _check(isinstance(value, int) and not isinstance(value, bool) and value >= 1,
           f"ResNeXt: `{name}` must be an integer >= 1, got {value!r}")
    return value


def _flag(name: str, value: Any) -> bool:
    _check(isinstance(value, bool), f"ResNeXt: `{name}` must be True or False, got {value!r}")
    return value


def _layer_cfg(name: str, cfg: Any) -> Optional[dict]:
    """A deep copy of a conv/norm config, after checking that its ``type`` is registered."""
    if cfg is None:
        return None
    _check(isinstance(cfg, dict) and "type" in cfg,
           f"ResNeXt: `{name}` must be a dict with a 'type' (or None), got {cfg!r}")
    layer_type = cfg["type"]
    if isinstance(layer_type, str):
        _check(ROOT_MODELS.get(layer_type) is not None,
               f"ResNeXt: `{name}` type {layer_type!r} is not a registered layer "
               "(mmcv registers e.g. 'BN', 'SyncBN', 'GN', 'Conv2d')")
    return copy.deepcopy(cfg)


def _per_stage(name: str, values: Any, num_stages: int) -> tuple[int, ...]:
    _check(isinstance(values, Sequence) and len(values) == num_stages,
           f"ResNeXt: `{name}` must have one entry per stage (num_stages={num_stages}), "
           f"got {values!r}")
    return tuple(_positive_int(f"{name}[{i}]", v) for i, v in enumerate(values))


def _dcn_cfg(dcn: Any, stage_with_dcn: Any, num_stages: int) -> tuple[Optional[dict], tuple]:
    """``dcn`` checked and copied, and ``stage_with_dcn`` as one bool per stage."""
    if dcn is None:
        _check(stage_with_dcn is None or (isinstance(stage_with_dcn, Sequence)
                                          and len(stage_with_dcn) == num_stages),
               f"ResNeXt: `stage_with_dcn` must have one bool per stage (num_stages="
               f"{num_stages}), got {stage_with_dcn!r}")
        return None, (False,) * num_stages
    # registers DCN, DCNv2 and mmcv's other deformable convolutions (needs the compiled mmcv)
    require("mmcv.ops", "deformable convolution (ResNeXt `dcn`)")

    dcn = _layer_cfg("dcn", dcn)
    stages = (False,) * num_stages if stage_with_dcn is None else stage_with_dcn
    _check(isinstance(stages, Sequence) and len(stages) == num_stages
           and all(isinstance(s, bool) for s in stages),
           f"ResNeXt: `stage_with_dcn` must have one bool per stage (num_stages={num_stages}), "
           f"got {stage_with_dcn!r}")
    return dcn, tuple(stages)


def _stage_plugins(plugins: Any, num_stages: int) -> list[list[dict]]:
    """mmdet's ``plugins`` list split per stage (each entry's ``stages`` says where)."""
    if plugins is None:
        return [[] for _ in range(num_stages)]
    _check(isinstance(plugins, Sequence) and not isinstance(plugins, str),
           f"ResNeXt: `plugins` must be a list of dict(cfg=..., position=..., stages=...), "
           f"got {plugins!r}")
    per_stage: list[list[dict]] = [[] for _ in range(num_stages)]
    for index, plugin in enumerate(plugins):
        _check(isinstance(plugin, dict) and isinstance(plugin.get("cfg"), dict)
               and "type" in plugin["cfg"] and "position" in plugin,
               f"ResNeXt: `plugins[{index}]` must be a dict with `cfg` (a dict with 'type') and "
               f"`position`, got {plugin!r}")
        plugin_type = plugin["cfg"]["type"]
        if isinstance(plugin_type, str) and ROOT_MODELS.get(plugin_type) is None:
            raise KeyError(f"ResNeXt: `plugins[{index}].cfg` type {plugin_type!r} is not a "
                           "registered plugin layer (mmcv registers e.g. 'ContextBlock', "
                           "'GeneralizedAttention', 'NonLocal2d')")
        unknown = set(plugin) - {"cfg", "position", "stages"}
        _check(not unknown, f"ResNeXt: `plugins[{index}]` has unknown keys {sorted(unknown)} "
                            "(allowed: cfg, position, stages)")
        stages = plugin.get("stages")
        _check(stages is None or (isinstance(stages, Sequence) and len(stages) == num_stages),
               f"ResNeXt: `plugins[{index}].stages` must have one bool per stage (num_stages="
               f"{num_stages}), got {stages!r}")
        for stage in range(num_stages):
            if stages is None or stages[stage]:
                per_stage[stage].append(dict(cfg=copy.deepcopy(plugin["cfg"]),
                                             position=plugin["position"]))
    return per_stage


def _init_cfg(init_cfg: Any, pretrained: Any, peer: str) -> Union[dict, list, None]:
    """The effective ``init_cfg``: mmdet's deprecated ``pretrained`` and each peer's default."""
    omitted = init_cfg is DEFAULT_INIT_CFG
    if pretrained is not None:
        if not isinstance(pretrained, str):
            raise TypeError(f"ResNeXt: `pretrained` must be a checkpoint path or URL (str) or "
                            f"None, got {pretrained!r}")
        _check(omitted or init_cfg is None,
               "ResNeXt: give `init_cfg` or the deprecated `pretrained`, not both "
               f"(got init_cfg={init_cfg!r}, pretrained={pretrained!r})")
        warnings.warn("ResNeXt: `pretrained` is deprecated, use "
                      "init_cfg=dict(type='Pretrained', checkpoint=...)", DeprecationWarning,
                      stacklevel=3)
        return dict(type="Pretrained", checkpoint=pretrained)
    if omitted or (init_cfg is None and peer == "mmdet"):
        return copy.deepcopy(DEFAULT_INIT_CFG)
    _check(init_cfg is None or isinstance(init_cfg, dict) or (
        isinstance(init_cfg, list) and all(isinstance(c, dict) for c in init_cfg)),
           f"ResNeXt: `init_cfg` must be a dict, a list of dicts or None, got {init_cfg!r}")
    return copy.deepcopy(init_cfg)


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
        block_form (str): The paper's Fig. 3 template: ``'a'``, ``'b'`` or ``'c'`` (one grouped
            convolution, the fast one and the default).
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
            ``mmcls://`` names resolve through mmengine's model zoo.

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
        init_cfg: Union[dict, list, None] = DEFAULT_INIT_CFG,
    ) -> None:
        peer, chosen = fill_defaults(
            dict(out_indices=out_indices, norm_eval=norm_eval, stem_channels=stem_channels),
            defaults)
        super().__init__(init_cfg=_init_cfg(init_cfg, pretrained, peer))
        self.peer = peer
        # mmdet zero-initialises the last norms only under its default init (see peer_defaults)
        self._zero_init_allowed = chosen["zero_init_with_init_cfg"] or (
            pretrained is None and (init_cfg is None or init_cfg is DEFAULT_INIT_CFG))
        _check(depth in ARCH_SETTINGS,
               f"ResNeXt: `depth` must be one of {sorted(ARCH_SETTINGS)}, got {depth!r}")
        _check(width_per_group is None or base_width is None,
               "ResNeXt: give `width_per_group` or its mmdet alias `base_width`, not both "
               f"(got width_per_group={width_per_group!r}, base_width={base_width!r})")
        self.depth = depth
        self.groups = _positive_int("groups", groups)
        self.base_channels = _positive_int("base_channels", base_channels)
        width = base_width if width_per_group is None else width_per_group
        if width is None:
            width = base_channels if groups == 1 else 4
        self.width_per_group = _positive_int("width_per_group", width)
        self.in_channels = _positive_int("in_channels", in_channels)
        stem_channels = chosen["stem_channels"]
        self.stem_channels = _positive_int(
            "stem_channels", base_channels if stem_channels is None else stem_channels)
        self.expansion = _positive_int("expansion", EXPANSION if expansion is None else expansion)
        max_stages = len(ARCH_SETTINGS[depth])
        num_stages = max_stages if num_stages is None else num_stages
        _check(isinstance(num_stages, int) and 1 <= num_stages <= max_stages,
               f"ResNeXt: `num_stages` must be an integer in [1, {max_stages}] for depth {depth},"
               f" got {num_stages!r}")
        self.num_stages = num_stages
        self.strides = _per_stage(
            "strides", DEFAULT_STRIDES[:num_stages] if strides is None else strides, num_stages)
        self.dilations = _per_stage(
            "dilations", (1,) * num_stages if dilations is None else dilations, num_stages)
        self.out_indices = self._normalise_out_indices(chosen["out_indices"], num_stages)
        _check(style in STYLES, f"ResNeXt: `style` must be one of {STYLES}, got {style!r}")
        _check(block_form in BLOCK_FORMS,
               f"ResNeXt: `block_form` must be one of {BLOCK_FORMS}, got {block_form!r}")
        _check(stem_type in STEM_TYPES,
               f"ResNeXt: `stem_type` must be one of {STEM_TYPES}, got {stem_type!r}")
        _check(isinstance(frozen_stages, int) and -1 <= frozen_stages <= num_stages,
               f"ResNeXt: `frozen_stages` must be an integer in [-1, num_stages={num_stages}], "
               f"got {frozen_stages!r}")
        _check(isinstance(drop_path_rate, (int, float)) and 0.0 <= drop_path_rate < 1.0,
               f"ResNeXt: `drop_path_rate` must be in [0, 1), got {drop_path_rate!r}")
        self.deep_stem = _flag("deep_stem", deep_stem)
        _check(not deep_stem or self.stem_channels % 2 == 0,
               f"ResNeXt: `stem_channels` must be even with deep_stem=True, got "
               f"{self.stem_channels}")
        _check(not (deep_stem and stem_type == "cifar"),
               "ResNeXt: `deep_stem=True` is an ImageNet stem; stem_type='cifar' has one 3x3 "
               "convolution")
        self.style = style
        self.stem_type = stem_type
        self.avg_down = _flag("avg_down", avg_down)
        self.frozen_stages = frozen_stages
        self.conv_cfg = _layer_cfg("conv_cfg", conv_cfg)
        self.norm_cfg = _layer_cfg("norm_cfg", dict(type="BN", requires_grad=True)
                                   if norm_cfg is None else norm_cfg)
        self.norm_eval = _flag("norm_eval", chosen["norm_eval"])
        self.deep_stem_layout = chosen["deep_stem_layout"]
        self.dcn, self.stage_with_dcn = _dcn_cfg(dcn, stage_with_dcn, num_stages)
        _check(self.dcn is None or block_form == "c",
               f"ResNeXt: `dcn` needs block_form='c' (one grouped convolution), got "
               f"block_form={block_form!r}")
        _check(self.dcn is None or self.conv_cfg is None,
               f"ResNeXt: `conv_cfg` must be None when `dcn` is given (the 3x3 convolutions of "
               f"the DCN stages are built from dcn), got conv_cfg={conv_cfg!r}")
        self.plugins = copy.deepcopy(plugins)
        stage_plugins = _stage_plugins(plugins, num_stages)
        _check(not any(stage_plugins) or block_form == "c",
               f"ResNeXt: `plugins` need block_form='c' (one grouped convolution), got "
               f"block_form={block_form!r}")
        self.with_cp = _flag("with_cp", with_cp)
        if zero_init_residual is None:
            zero_init_residual = residual is not False
        self.zero_init_residual = _flag("zero_init_residual", zero_init_residual)
        _check(not (zero_init_residual and residual is False),
               "ResNeXt: `zero_init_residual=True` needs the shortcuts: with residual=False a "
               "zero-initialised last norm would stop every block's signal")
        self.block_form = block_form
        self.channels_last = _flag("channels_last", channels_last)
        self.residual = _flag("residual", residual)
        self._fold_frozen_bn = _flag("fold_frozen_bn", fold_frozen_bn)
        self.stage_blocks = ARCH_SETTINGS[depth][:num_stages]

        self._make_stem()
        dpr = torch.linspace(0, drop_path_rate, sum(ARCH_SETTINGS[depth])).tolist()
        self.res_layers: list[str] = []
        self.feature_info: list[dict] = []
        stage_in, reduction = self.stem_channels, self.stem_stride
        for i, num_blocks in enumerate(self.stage_blocks):
            stage_out = self.stage_out_channels(i)
            reduction *= self.strides[i]
            stage = make_stage(
                num_blocks, stage_in, stage_out,
                groups=self.groups,
                group_width=self.width_per_group * 2**i,
                stride=self.strides[i],
                dilation=self.dilations[i],
                style=style,
                avg_down=avg_down,
                block_form=block_form,
                conv_cfg=self.conv_cfg,
                norm_cfg=self.norm_cfg,
                drop_path_rates=dpr[:num_blocks],
                with_cp=with_cp,
                dcn=self.dcn if self.stage_with_dcn[i] else None,
                plugins=stage_plugins[i],
                residual=residual,
                fold_frozen_bn=fold_frozen_bn,
                avg_pool_at_stride_one=chosen["avg_pool_at_stride_one"],
            )
            dpr = dpr[num_blocks:]
            name = f"layer{i + 1}"
            self.add_module(name, stage)
            self.res_layers.append(name)
            self.feature_info.append(dict(num_chs=stage_out, reduction=reduction, module=name))
            stage_in = stage_out
        self.out_channels = tuple(self.feature_info[i]["num_chs"] for i in self.out_indices)
        self.out_strides = tuple(self.feature_info[i]["reduction"] for i in self.out_indices)
        self.feat_dim = self.feature_info[-1]["num_chs"]
        if channels_last:
            self.to(memory_format=torch.channels_last)
            for module in self.modules():  # mmcv's deformable convolutions need NCHW tensors
                if isinstance(module, Bottleneck) and module.with_dcn:
                    module.conv2.to(memory_format=torch.contiguous_format)
        self._freeze_stages()

    @staticmethod
    def _normalise_out_indices(out_indices: Any, num_stages: int) -> tuple[int, ...]:
        if isinstance(out_indices, int):
            out_indices = (out_indices,)
        _check(isinstance(out_indices, Sequence) and len(out_indices) > 0
               and all(isinstance(i, int) and -num_stages <= i < num_stages for i in out_indices),
               f"ResNeXt: `out_indices` must be stage indices in [-{num_stages}, {num_stages - 1}] "
               f"(num_stages={num_stages}), got {out_indices!r}")
        normalised = tuple(sorted({i % num_stages for i in out_indices}))
        _check(len(normalised) == len(out_indices),
               f"ResNeXt: `out_indices` has duplicates: {out_indices!r}")
        return normalised

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
        self._fold_frozen_bn = _flag("fold_frozen_bn", value)
        for module in self.modules():
            if isinstance(module, (Bottleneck, Downsample)):
                module.fold_frozen_bn = value

    @property
    def norm1(self) -> nn.Module:
        """The stem's norm layer (``bn1``, ``gn1``, ...; not with a deep stem)."""
        return getattr(self, self.norm1_name)

    @property
    def stem_stride(self) -> int:
        """Downsampling of the stem (with its max-pool): 4, or 1 for the CIFAR stem."""
        return 1 if self.stem_type == "cifar" else 4

    def _make_stem(self) -> None:
        if self.deep_stem:
            half = self.stem_channels // 2
            shapes = ((self.in_channels, half, 2), (half, half, 1), (half, self.stem_channels, 1))
            if self.deep_stem_layout == "sequential":  # mmdet: conv, norm, ReLU, ... (stem.0/1/3)
                layers: list[nn.Module] = []
                for cin, cout, stride in shapes:
                    layers += [build_conv_layer(self.conv_cfg, cin, cout, kernel_size=3,
                                                stride=stride, padding=1, bias=False),
                               build_norm_layer(self.norm_cfg, cout)[1], nn.ReLU(inplace=True)]
                self.stem = nn.Sequential(*layers)
            else:  # mmpretrain: three ConvModules (stem.0.conv, stem.0.bn, ...)
                self.stem = nn.Sequential(*(
                    ConvModule(cin, cout, kernel_size=3, stride=stride, padding=1,
                               conv_cfg=self.conv_cfg, norm_cfg=self.norm_cfg, inplace=True)
                    for cin, cout, stride in shapes))
        else:
            kernel, stride = (3, 1) if self.stem_type == "cifar" else (7, 2)
            self.conv1 = build_conv_layer(self.conv_cfg, self.in_channels, self.stem_channels,
                                          kernel_size=kernel, stride=stride,
                                          padding=kernel // 2, bias=False)
            self.norm1_name, norm1 = build_norm_layer(self.norm_cfg, self.stem_channels,
                                                      postfix=1)
            self.add_module(self.norm1_name, norm1)
            self.relu = nn.ReLU(inplace=True)
        if self.stem_type == "cifar":
            self.maxpool = nn.Identity()
        else:
            self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)

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
            if self.zero_init_residual and self._zero_init_allowed:
                for module in self.modules():
                    if isinstance(module, Bottleneck):
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

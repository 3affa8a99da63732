"""ResNeXt backbone (Xie et al., "Aggregated Residual Transformations for Deep Neural Networks").

Every width is derived from one table (blocks per stage) and two numbers, the cardinality C
(``groups``) and the bottleneck width d (``width_per_group``): stage i's grouped 3x3 convolution
is C*d*2**i wide and its output is ``base_channels * 2**i * 4`` channels.
"""
from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any, Optional, Union

import torch
from mmcv.cnn import ConvModule, build_conv_layer, build_norm_layer
from mmengine.model import BaseModule
from mmengine.model.weight_init import constant_init
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from ..registry import MODELS
from .blocks import BLOCK_FORMS, EXPANSION, STYLES, Bottleneck, make_stage
from .pretrained import load_pretrained

#: Blocks per stage for each depth (paper Table 1 and its 101/152-layer siblings).
ARCH_SETTINGS: dict[int, tuple[int, int, int, int]] = {
    50: (3, 4, 6, 3),
    101: (3, 4, 23, 3),
    152: (3, 8, 36, 3),
}

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
        from mmengine.registry import MODELS as ROOT_MODELS

        _check(ROOT_MODELS.get(layer_type) is not None,
               f"ResNeXt: `{name}` type {layer_type!r} is not a registered layer "
               "(mmcv registers e.g. 'BN', 'SyncBN', 'GN', 'Conv2d')")
    return copy.deepcopy(cfg)


def _per_stage(name: str, values: Any, num_stages: int) -> tuple[int, ...]:
    _check(isinstance(values, Sequence) and len(values) == num_stages,
           f"ResNeXt: `{name}` must have one entry per stage (num_stages={num_stages}), "
           f"got {values!r}")
    return tuple(_positive_int(f"{name}[{i}]", v) for i, v in enumerate(values))


@MODELS.register_module()
class ResNeXt(BaseModule):
    """ResNeXt backbone, registered as ``resnext_plugin.ResNeXt``.

    Arguments follow mmpretrain's ``ResNeXt``; state-dict keys are the same (``conv1``, ``bn1``,
    ``layer{i}.{j}.conv{1,2,3}``, ``bn{1,2,3}``, ``downsample.{0,1}``), so checkpoints move between
    them with ``strict=True``.

    Args:
        depth (int): 50, 101 or 152.
        groups (int): Cardinality C. Defaults to 32.
        width_per_group (int, optional): Bottleneck width d of the first stage; stage i's grouped
            convolution is ``C * d * 2**i`` wide. Defaults to 4.
        base_width (int, optional): mmdet's name for ``width_per_group``; give one, not both.
        in_channels (int): Input image channels. Defaults to 3.
        stem_channels (int): Output channels of the stem. Defaults to 64.
        base_channels (int): Stage 0's output is ``4 * base_channels`` channels, doubled per stage.
            Defaults to 64.
        num_stages (int): Number of stages, 1 to 4. Defaults to 4.
        strides (Sequence[int], optional): Stride of each stage's first block, one per stage.
            Defaults to the first ``num_stages`` of (1, 2, 2, 2).
        dilations (Sequence[int], optional): Dilation of each stage. Defaults to all 1.
        out_indices (Sequence[int]): Stages whose outputs are returned (negative indices count
            from the last stage). Defaults to (3,).
        style (str): ``'pytorch'`` (stride on the 3x3) or ``'caffe'`` (stride on the first 1x1).
        deep_stem (bool): Three 3x3 convolutions instead of the 7x7 stem. Defaults to False.
        avg_down (bool): Average-pool before the projection shortcut (ResNet-D). Defaults to False.
        frozen_stages (int): Freeze the stem (0) and stages 1..frozen_stages: no gradient, norms
            in eval mode, also after ``train()``. -1 freezes nothing. Defaults to -1.
        conv_cfg (dict, optional): Convolution config. Defaults to None.
        norm_cfg (dict): Normalisation config. Defaults to ``dict(type='BN', requires_grad=True)``.
        norm_eval (bool): Keep every BatchNorm in eval mode during training. Defaults to False.
        with_cp (bool): Gradient checkpointing per block. Defaults to False.
        zero_init_residual (bool): Zero-initialise each block's last BN. Defaults to True.
        drop_path_rate (float): Stochastic depth, rising linearly over the blocks to this rate.
        block_form (str): The paper's Fig. 3 template: ``'a'``, ``'b'`` or ``'c'`` (one grouped
            convolution, the fast one and the default).
        channels_last (bool): Run the network in ``torch.channels_last`` memory format.
        init_cfg (dict | list[dict], optional): mmengine initialisation config.

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
        stem_channels: int = 64,
        base_channels: int = 64,
        num_stages: int = 4,
        strides: Optional[Sequence[int]] = None,
        dilations: Optional[Sequence[int]] = None,
        out_indices: Sequence[int] = (3,),
        style: str = "pytorch",
        deep_stem: bool = False,
        avg_down: bool = False,
        frozen_stages: int = -1,
        conv_cfg: Optional[dict] = None,
        norm_cfg: Optional[dict] = None,
        norm_eval: bool = False,
        with_cp: bool = False,
        zero_init_residual: bool = True,
        drop_path_rate: float = 0.0,
        block_form: str = "c",
        channels_last: bool = False,
        init_cfg: Union[dict, list, None] = copy.deepcopy(DEFAULT_INIT_CFG),
    ) -> None:
        super().__init__(init_cfg=copy.deepcopy(init_cfg))
        _check(depth in ARCH_SETTINGS,
               f"ResNeXt: `depth` must be one of {sorted(ARCH_SETTINGS)}, got {depth!r}")
        _check(width_per_group is None or base_width is None,
               "ResNeXt: give `width_per_group` or its mmdet alias `base_width`, not both "
               f"(got width_per_group={width_per_group!r}, base_width={base_width!r})")
        width = base_width if width_per_group is None else width_per_group
        self.groups = _positive_int("groups", groups)
        self.width_per_group = _positive_int("width_per_group", 4 if width is None else width)
        self.in_channels = _positive_int("in_channels", in_channels)
        self.stem_channels = _positive_int("stem_channels", stem_channels)
        self.base_channels = _positive_int("base_channels", base_channels)
        _check(isinstance(num_stages, int) and 1 <= num_stages <= 4,
               f"ResNeXt: `num_stages` must be 1, 2, 3 or 4, got {num_stages!r}")
        self.num_stages = num_stages
        self.strides = _per_stage(
            "strides", DEFAULT_STRIDES[:num_stages] if strides is None else strides, num_stages)
        self.dilations = _per_stage(
            "dilations", (1,) * num_stages if dilations is None else dilations, num_stages)
        self.out_indices = self._normalise_out_indices(out_indices, num_stages)
        _check(style in STYLES, f"ResNeXt: `style` must be one of {STYLES}, got {style!r}")
        _check(block_form in BLOCK_FORMS,
               f"ResNeXt: `block_form` must be one of {BLOCK_FORMS}, got {block_form!r}")
        _check(isinstance(frozen_stages, int) and -1 <= frozen_stages <= num_stages,
               f"ResNeXt: `frozen_stages` must be an integer in [-1, num_stages={num_stages}], "
               f"got {frozen_stages!r}")
        _check(isinstance(drop_path_rate, (int, float)) and 0.0 <= drop_path_rate < 1.0,
               f"ResNeXt: `drop_path_rate` must be in [0, 1), got {drop_path_rate!r}")
        _check(not deep_stem or stem_channels % 2 == 0,
               f"ResNeXt: `stem_channels` must be even with deep_stem=True, got {stem_channels}")
        _check(init_cfg is None or isinstance(init_cfg, dict) or (
            isinstance(init_cfg, list) and all(isinstance(c, dict) for c in init_cfg)),
               f"ResNeXt: `init_cfg` must be a dict, a list of dicts or None, got {init_cfg!r}")
        self.depth = depth
        self.style = style
        self.deep_stem = _flag("deep_stem", deep_stem)
        self.avg_down = _flag("avg_down", avg_down)
        self.frozen_stages = frozen_stages
        self.conv_cfg = _layer_cfg("conv_cfg", conv_cfg)
        self.norm_cfg = _layer_cfg("norm_cfg", dict(type="BN", requires_grad=True)
                                   if norm_cfg is None else norm_cfg)
        self.norm_eval = _flag("norm_eval", norm_eval)
        self.with_cp = _flag("with_cp", with_cp)
        self.zero_init_residual = _flag("zero_init_residual", zero_init_residual)
        self.block_form = block_form
        self.channels_last = _flag("channels_last", channels_last)
        self.stage_blocks = ARCH_SETTINGS[depth][:num_stages]

        self._make_stem()
        dpr = torch.linspace(0, drop_path_rate, sum(ARCH_SETTINGS[depth])).tolist()
        self.res_layers: list[str] = []
        self.feature_info: list[dict] = []
        stage_in, reduction = stem_channels, 4
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
        return self.base_channels * 2**stage * EXPANSION

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

    def _make_stem(self) -> None:
        if self.deep_stem:
            half = self.stem_channels // 2
            self.stem = nn.Sequential(*(
                ConvModule(cin, cout, kernel_size=3, stride=stride, padding=1,
                           conv_cfg=self.conv_cfg, norm_cfg=self.norm_cfg, inplace=True)
                for cin, cout, stride in ((self.in_channels, half, 2), (half, half, 1),
                                          (half, self.stem_channels, 1))
            ))
        else:
            self.conv1 = build_conv_layer(self.conv_cfg, self.in_channels, self.stem_channels,
                                          kernel_size=7, stride=2, padding=3, bias=False)
            self.bn1 = build_norm_layer(self.norm_cfg, self.stem_channels)[1]
            self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)

    def _stem_modules(self) -> list[nn.Module]:
        return [self.stem] if self.deep_stem else [self.conv1, self.bn1]

    def frozen_modules(self) -> list[nn.Module]:
        """The modules ``frozen_stages`` freezes: the stem, then stages 1..frozen_stages."""
        if self.frozen_stages < 0:
            return []
        stages = [getattr(self, name) for name in self.res_layers[: self.frozen_stages]]
        return self._stem_modules() + stages

    def _freeze_stages(self) -> None:
        for module in self.frozen_modules():
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
            if self.zero_init_residual:
                for module in self.modules():
                    if isinstance(module, Bottleneck):
                        constant_init(module.bn3, 0)
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
        from .fuse import fuse_conv_bn

        return fuse_conv_bn(self)

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
        if self.deep_stem:
            x = self.stem(x)
        else:
            x = self.relu(self.bn1(self.conv1(x)))
        x = self.maxpool(x)
        outs = []
        for i, name in enumerate(self.res_layers):
            x = getattr(self, name)(x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)

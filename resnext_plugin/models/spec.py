"""The ResNeXt constructor's arguments, checked once into a frozen :class:`ResNeXtSpec`.

:func:`check_arguments` is the one place that validates the backbone's configuration: every bad
value raises a ``ValueError`` (``TypeError``/``KeyError`` where the peers raise those) naming the
argument; omitted arguments take the registry scope's peer defaults
(:mod:`resnext_plugin.models.peer_defaults`). The network is then built from the spec alone.
"""
from __future__ import annotations

import copy
import enum
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Optional, Union

from mmengine.registry import MODELS as ROOT_MODELS

from ..deps import require
from .arch import ARCH_SETTINGS
from .blocks import BLOCKS, EXPANSION, PLUGIN_POSITIONS, STYLES
from .peer_defaults import fill_defaults

STEM_TYPES = ("imagenet", "cifar")
DEFAULT_STRIDES = (1, 2, 2, 2)
DEFAULT_INIT_CFG = [
    dict(type="Kaiming", layer=["Conv2d"]),
    dict(type="Constant", val=1, layer=["_BatchNorm", "GroupNorm"]),
]


class Omitted(enum.Enum):
    """The type of :data:`OMITTED`, the default of an argument whose absence means something."""

    OMITTED = "omitted"

    def __repr__(self) -> str:
        return "<omitted>"


#: ``init_cfg`` was not given: the default initialisation (mmdet: also zero-init of last norms).
OMITTED = Omitted.OMITTED
InitCfg = Union[dict, list, None]


@dataclass(frozen=True)
class ResNeXtSpec:
    """A checked ResNeXt configuration: every default filled in, every value validated."""

    depth: int
    groups: int
    width_per_group: int
    in_channels: int
    stem_channels: int
    base_channels: int
    expansion: int
    num_stages: int
    stage_blocks: tuple[int, ...]
    strides: tuple[int, ...]
    dilations: tuple[int, ...]
    out_indices: tuple[int, ...]
    style: str
    stem_type: str
    deep_stem: bool
    deep_stem_layout: str
    avg_down: bool
    avg_pool_at_stride_one: bool
    frozen_stages: int
    conv_cfg: Optional[dict]
    norm_cfg: dict
    norm_eval: bool
    dcn: Optional[dict]
    stage_with_dcn: tuple[bool, ...]
    plugins: Optional[list]
    stage_plugins: tuple[list[dict], ...]
    with_cp: bool
    zero_init_residual: bool
    zero_init_allowed: bool
    drop_path_rate: float
    block_form: str
    channels_last: bool
    residual: bool
    fold_frozen_bn: bool
    init_cfg: InitCfg

    #: The spec's fields the backbone also carries as attributes (the peers' attribute names).
    MODEL_ATTRIBUTES = (
        "depth", "groups", "width_per_group", "in_channels", "stem_channels", "base_channels",
        "expansion", "num_stages", "stage_blocks", "strides", "dilations", "out_indices",
        "style", "stem_type", "deep_stem", "deep_stem_layout", "avg_down", "frozen_stages",
        "conv_cfg", "norm_cfg", "norm_eval", "dcn", "stage_with_dcn", "plugins", "with_cp",
        "zero_init_residual", "block_form", "channels_last", "residual")

    def stage_block_kwargs(self, stage: int) -> dict[str, Any]:
        """The block arguments of stage ``stage`` (0-based) that come from the configuration."""
        kwargs: dict[str, Any] = dict(
            groups=self.groups, group_width=self.width_per_group * 2**stage,
            dilation=self.dilations[stage], style=self.style, conv_cfg=self.conv_cfg,
            norm_cfg=self.norm_cfg, with_cp=self.with_cp, residual=self.residual)
        if self.stage_with_dcn[stage]:
            kwargs["dcn"] = self.dcn
        if self.stage_plugins[stage]:
            kwargs["plugins"] = self.stage_plugins[stage]
        return kwargs


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def _positive_int(name: str, value: Any) -> int:
    _check(isinstance(value, int) and not isinstance(value, bool) and value >= 1,
           f"ResNeXt: `{name}` must be an integer >= 1, got {value!r}")
    return value


def check_flag(name: str, value: Any) -> bool:
    """``value`` if it is a bool, else a ``ValueError`` naming the argument ``name``."""
    _check(isinstance(value, bool), f"ResNeXt: `{name}` must be True or False, got {value!r}")
    return value


def _choice(name: str, value: Any, choices: Sequence[str]) -> str:
    _check(value in choices, f"ResNeXt: `{name}` must be one of {choices}, got {value!r}")
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


def _out_indices(out_indices: Any, num_stages: int) -> tuple[int, ...]:
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


def _stage_plugins(plugins: Any, num_stages: int) -> tuple[list[dict], ...]:
    """mmdet's ``plugins`` list split per stage (each entry's ``stages`` says where)."""
    per_stage: tuple[list[dict], ...] = tuple([] for _ in range(num_stages))
    if plugins is None:
        return per_stage
    _check(isinstance(plugins, Sequence) and not isinstance(plugins, str),
           f"ResNeXt: `plugins` must be a list of dict(cfg=..., position=..., stages=...), "
           f"got {plugins!r}")
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
        _check(plugin["position"] in PLUGIN_POSITIONS,
               f"ResNeXt: `plugins[{index}]` position must be one of {PLUGIN_POSITIONS}, got "
               f"{plugin['position']!r}")
        for stage in range(num_stages):
            if stages is None or stages[stage]:
                per_stage[stage].append(dict(cfg=copy.deepcopy(plugin["cfg"]),
                                             position=plugin["position"]))
    return per_stage


def _init_cfg(init_cfg: Union[InitCfg, Omitted], pretrained: Any, peer: str) -> InitCfg:
    """The effective ``init_cfg``: mmdet's deprecated ``pretrained`` and each peer's default."""
    omitted = init_cfg is OMITTED
    if pretrained is not None:
        if not isinstance(pretrained, str):
            raise TypeError(f"ResNeXt: `pretrained` must be a checkpoint path or URL (str) or "
                            f"None, got {pretrained!r}")
        _check(omitted or init_cfg is None,
               "ResNeXt: give `init_cfg` or the deprecated `pretrained`, not both "
               f"(got init_cfg={init_cfg!r}, pretrained={pretrained!r})")
        warnings.warn("ResNeXt: `pretrained` is deprecated, use "
                      "init_cfg=dict(type='Pretrained', checkpoint=...)", DeprecationWarning,
                      stacklevel=4)
        return dict(type="Pretrained", checkpoint=pretrained)
    if omitted or (init_cfg is None and peer == "mmdet"):
        return copy.deepcopy(DEFAULT_INIT_CFG)
    _check(init_cfg is None or isinstance(init_cfg, dict) or (
        isinstance(init_cfg, list) and all(isinstance(c, dict) for c in init_cfg)),
           f"ResNeXt: `init_cfg` must be a dict, a list of dicts or None, got {init_cfg!r}")
    return copy.deepcopy(init_cfg)


def _needs_form_with_extras(what: str, given: bool, block_form: str) -> None:
    """``dcn`` and ``plugins`` only in the forms whose class takes them."""
    forms = " or ".join(f"block_form={form!r}" for form, block in BLOCKS.items()
                        if block.takes_dcn_and_plugins)
    _check(not given or BLOCKS[block_form].takes_dcn_and_plugins,
           f"ResNeXt: {what} {forms} (one grouped convolution), got block_form={block_form!r}")


def _widths(args: Mapping[str, Any], stem_channels: Optional[int]) -> dict[str, int]:
    """``depth`` and the widths: C, d (or mmdet's ``base_width``), the stem's and the stages'."""
    depth, groups, base_channels = args["depth"], args["groups"], args["base_channels"]
    _check(depth in ARCH_SETTINGS,
           f"ResNeXt: `depth` must be one of {sorted(ARCH_SETTINGS)}, got {depth!r}")
    width_per_group, base_width = args["width_per_group"], args["base_width"]
    _check(width_per_group is None or base_width is None,
           "ResNeXt: give `width_per_group` or its mmdet alias `base_width`, not both "
           f"(got width_per_group={width_per_group!r}, base_width={base_width!r})")
    _positive_int("groups", groups)
    _positive_int("base_channels", base_channels)
    width = base_width if width_per_group is None else width_per_group
    if width is None:
        width = base_channels if groups == 1 else 4
    expansion = EXPANSION if args["expansion"] is None else args["expansion"]
    return dict(
        depth=depth, groups=groups, base_channels=base_channels,
        width_per_group=_positive_int("width_per_group", width),
        in_channels=_positive_int("in_channels", args["in_channels"]),
        stem_channels=_positive_int("stem_channels",
                                    base_channels if stem_channels is None else stem_channels),
        expansion=_positive_int("expansion", expansion))


def _stages(args: Mapping[str, Any], depth: int, out_indices: Any) -> dict[str, Any]:
    """The stages: how many, their blocks, strides and dilations, and the returned ones."""
    max_stages = len(ARCH_SETTINGS[depth])
    num_stages = max_stages if args["num_stages"] is None else args["num_stages"]
    _check(isinstance(num_stages, int) and 1 <= num_stages <= max_stages,
           f"ResNeXt: `num_stages` must be an integer in [1, {max_stages}] for depth {depth},"
           f" got {num_stages!r}")
    strides, dilations = args["strides"], args["dilations"]
    return dict(
        num_stages=num_stages, stage_blocks=ARCH_SETTINGS[depth][:num_stages],
        strides=_per_stage("strides", DEFAULT_STRIDES[:num_stages] if strides is None
                           else strides, num_stages),
        dilations=_per_stage("dilations", (1,) * num_stages if dilations is None else dilations,
                             num_stages),
        out_indices=_out_indices(out_indices, num_stages))


def check_arguments(args: Mapping[str, Any]) -> ResNeXtSpec:
    """Validate the ``ResNeXt`` constructor's arguments (name -> value) and resolve defaults.

    Raises:
        ValueError: A value is out of range or of the wrong type; the message names the argument.
        TypeError: ``pretrained`` is not a string. KeyError: a plugin type is not registered.
    """
    peer, chosen = fill_defaults({key: args[key] for key in
                                  ("out_indices", "norm_eval", "stem_channels")}, args["defaults"])
    init_cfg, pretrained = args["init_cfg"], args["pretrained"]
    resolved_init_cfg = _init_cfg(init_cfg, pretrained, peer)
    widths = _widths(args, chosen["stem_channels"])
    stages = _stages(args, widths["depth"], chosen["out_indices"])
    num_stages = stages["num_stages"]
    style = _choice("style", args["style"], STYLES)
    block_form = _choice("block_form", args["block_form"], tuple(BLOCKS))
    stem_type = _choice("stem_type", args["stem_type"], STEM_TYPES)
    frozen_stages, drop_path_rate = args["frozen_stages"], args["drop_path_rate"]
    _check(isinstance(frozen_stages, int) and -1 <= frozen_stages <= num_stages,
           f"ResNeXt: `frozen_stages` must be an integer in [-1, num_stages={num_stages}], "
           f"got {frozen_stages!r}")
    _check(isinstance(drop_path_rate, (int, float)) and 0.0 <= drop_path_rate < 1.0,
           f"ResNeXt: `drop_path_rate` must be in [0, 1), got {drop_path_rate!r}")
    deep_stem = check_flag("deep_stem", args["deep_stem"])
    _check(not deep_stem or widths["stem_channels"] % 2 == 0,
           f"ResNeXt: `stem_channels` must be even with deep_stem=True, got "
           f"{widths['stem_channels']}")
    _check(not (deep_stem and stem_type == "cifar"),
           "ResNeXt: `deep_stem=True` is an ImageNet stem; stem_type='cifar' has one 3x3 "
           "convolution")
    avg_down = check_flag("avg_down", args["avg_down"])
    conv_cfg = _layer_cfg("conv_cfg", args["conv_cfg"])
    norm_cfg = _layer_cfg("norm_cfg", dict(type="BN", requires_grad=True)
                          if args["norm_cfg"] is None else args["norm_cfg"])
    norm_eval = check_flag("norm_eval", chosen["norm_eval"])
    dcn, stage_with_dcn = _dcn_cfg(args["dcn"], args["stage_with_dcn"], num_stages)
    _needs_form_with_extras("`dcn` needs", dcn is not None, block_form)
    _check(dcn is None or conv_cfg is None,
           f"ResNeXt: `conv_cfg` must be None when `dcn` is given (the 3x3 convolutions of "
           f"the DCN stages are built from dcn), got conv_cfg={args['conv_cfg']!r}")
    stage_plugins = _stage_plugins(args["plugins"], num_stages)
    _needs_form_with_extras("`plugins` need", any(stage_plugins), block_form)
    with_cp = check_flag("with_cp", args["with_cp"])
    residual, zero_init_residual = args["residual"], args["zero_init_residual"]
    if zero_init_residual is None:
        zero_init_residual = residual is not False
    check_flag("zero_init_residual", zero_init_residual)
    _check(not (zero_init_residual and residual is False),
           "ResNeXt: `zero_init_residual=True` needs the shortcuts: with residual=False a "
           "zero-initialised last norm would stop every block's signal")
    return ResNeXtSpec(
        **widths, **stages, style=style,
        stem_type=stem_type, deep_stem=deep_stem, deep_stem_layout=chosen["deep_stem_layout"],
        avg_down=avg_down, avg_pool_at_stride_one=chosen["avg_pool_at_stride_one"],
        frozen_stages=frozen_stages, conv_cfg=conv_cfg, norm_cfg=norm_cfg, norm_eval=norm_eval,
        dcn=dcn, stage_with_dcn=stage_with_dcn, plugins=copy.deepcopy(args["plugins"]),
        stage_plugins=stage_plugins, with_cp=with_cp, zero_init_residual=zero_init_residual,
        # mmdet zero-initialises the last norms only under its default init (see peer_defaults)
        zero_init_allowed=chosen["zero_init_with_init_cfg"] or (
            pretrained is None and (init_cfg is None or init_cfg is OMITTED)),
        drop_path_rate=drop_path_rate, block_form=block_form,
        channels_last=check_flag("channels_last", args["channels_last"]),
        residual=check_flag("residual", residual),
        fold_frozen_bn=check_flag("fold_frozen_bn", args["fold_frozen_bn"]),
        init_cfg=resolved_init_cfg)

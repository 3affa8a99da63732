"""Key names of every published ResNeXt layout, mapped onto the plugin's.

The plugin's names are mmpretrain's: ``conv1``, ``bn1`` (or ``stem.{0,1,2}.conv/bn`` with a deep
stem), ``layer{i}.{j}.conv{1,2,3}``, ``bn{1,2,3}``, ``downsample.{k}``. A layout is a function
from a source state dict to :class:`MappedWeights`: backbone tensors renamed to those names, the
linear classifier (if any), and the source keys that belong to other parts of a model (an FPN,
detection heads) and are left out on purpose. A key the layout does not know raises
:class:`ConversionError` naming it: a wrong ``--from``, or a checkpoint of another architecture.

Downsample indices keep the source's numbering here (timm's ``avg_down`` puts the projection at
``downsample.1`` even in stage 1); :mod:`.verify` renumbers them against a built model. The deep
stem's and the shortcut's layouts live in :mod:`resnext_plugin.models.key_layouts`.
"""
from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Optional

import torch

from ..models.key_layouts import sequential_to_convmodule, stem_layout

LAYOUTS = ("torchvision", "timm", "mmpretrain", "mmdet", "detectron2", "plugin")


class ConversionError(ValueError):
    """A checkpoint cannot be converted; the message names the file and the first offending key."""


@dataclass
class MappedWeights:
    """A source state dict split into backbone (plugin names), classifier and the rest."""

    backbone: "OrderedDict[str, torch.Tensor]" = field(default_factory=OrderedDict)
    origin: dict[str, str] = field(default_factory=dict)  # plugin key -> source key
    head: "OrderedDict[str, torch.Tensor]" = field(default_factory=OrderedDict)  # weight, bias
    head_origin: dict[str, str] = field(default_factory=dict)
    ignored: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    affine_only_norms: bool = False  # Caffe2 BN blobs: scale and bias, no running statistics

    def add(self, plugin_key: str, source_key: str, tensor: torch.Tensor) -> None:
        if plugin_key in self.backbone:
            raise ConversionError(f"keys {self.origin[plugin_key]!r} and {source_key!r} both map "
                                  f"to the plugin key {plugin_key!r}")
        self.backbone[plugin_key] = tensor
        self.origin[plugin_key] = source_key

    def add_head(self, param: str, source_key: str, tensor: torch.Tensor) -> None:
        if param in self.head:
            raise ConversionError(f"two classifier {param}s: {self.head_origin[param]!r} and "
                                  f"{source_key!r}")
        self.head[param] = tensor
        self.head_origin[param] = source_key


_NORM = r"(?:weight|bias|running_mean|running_var|num_batches_tracked)"
_BLOCK = rf"layer[1-4]\.\d+\.(?:conv[123]\.weight|bn[123]\.{_NORM}|downsample\.[0-2]\.{_NORM})"
#: torchvision's names, which are also mmdet's and mmpretrain's for a plain stem.
_TORCHVISION_KEY = re.compile(rf"^(?:conv1\.weight|bn1\.{_NORM}|{_BLOCK})$")
_STEM_CONVMODULE_KEY = re.compile(rf"^stem\.[0-2]\.(?:conv\.weight|bn\.{_NORM})$")
_PATHS_KEY = re.compile(rf"^layer[1-4]\.\d+\.paths\.\d+\.(?:conv[123]\.weight|bn[123]\.{_NORM})$")
# Deep stems as nn.Sequential(conv, bn, relu, conv, bn, relu, conv[, bn, relu]).
_TIMM_STEM_KEY = re.compile(rf"^conv1\.(?P<idx>[0-6])\.(?P<param>{_NORM})$")
_MMDET_STEM_KEY = re.compile(rf"^stem\.(?P<idx>[0-8])\.(?P<param>{_NORM})$")

_Rename = Callable[[str], Optional[str]]


def _sequential_stem(match: Optional[re.Match], last_bn: Optional[str] = None) -> Optional[str]:
    """``conv, bn, relu`` triplets at indices 0/1, 3/4, 6/7 -> ``stem.{i}.conv``/``stem.{i}.bn``
    (convolutions have a weight only; timm's last norm is ``last_bn``, not in the triplets)."""
    if match is None:
        return None
    idx, param = int(match["idx"]), match["param"]
    conv_index, position = divmod(idx, 3)
    if (position == 0 and param != "weight") or (position == 1 and conv_index == 2 and last_bn):
        return None
    return sequential_to_convmodule(idx, param)


def _rename_torchvision(key: str) -> Optional[str]:
    return key if _TORCHVISION_KEY.match(key) else None


def _rename_timm(deep_stem: bool) -> _Rename:
    def rename(key: str) -> Optional[str]:
        if deep_stem:
            if key.startswith("bn1."):  # timm's deep stem ends in conv1.6 followed by bn1
                return f"stem.2.bn.{key[4:]}"
            if key.startswith("conv1."):
                return _sequential_stem(_TIMM_STEM_KEY.match(key), last_bn="bn1")
        return _rename_torchvision(key)
    return rename


def _rename_mmpretrain(key: str) -> Optional[str]:
    return key if _TORCHVISION_KEY.match(key) or _STEM_CONVMODULE_KEY.match(key) else None


def _rename_plugin(key: str) -> Optional[str]:
    return key if _rename_mmpretrain(key) or _PATHS_KEY.match(key) else None


def _rename_mmdet(key: str) -> Optional[str]:
    if key.startswith("stem."):
        return _sequential_stem(_MMDET_STEM_KEY.match(key))
    return _rename_torchvision(key)


def _unknown(layout: str, key: str, expected: str, weights: Mapping[str, torch.Tensor]) -> str:
    message = (f"{layout} layout: key {key!r} is not a ResNeXt weight in this layout (expected "
               f"{expected}); unknown layout or a checkpoint of another architecture")
    guess = guess_layout(weights)
    if guess is not None and guess != layout:
        message += f"; the keys look like a {guess} checkpoint: try --from {guess}"
    return message


def _map_flat(weights: Mapping[str, torch.Tensor], layout: str, rename: _Rename,
              head_names: Mapping[str, str], expected: str) -> MappedWeights:
    """Every key is a backbone or classifier weight (ImageNet classification checkpoints)."""
    mapped = MappedWeights()
    for key, tensor in weights.items():
        if key in head_names:
            mapped.add_head(head_names[key], key, tensor)
            continue
        target = rename(key)
        if target is None:
            raise ConversionError(_unknown(layout, key, expected, weights))
        mapped.add(target, key, tensor)
    return mapped


def _map_prefixed(weights: Mapping[str, torch.Tensor], layout: str, rename: _Rename,
                  head_names: Mapping[str, str], expected: str) -> MappedWeights:
    """Model checkpoints: ``backbone.*`` is the backbone, the head is kept, the rest left out."""
    mapped = MappedWeights()
    for key, tensor in weights.items():
        if key in head_names:
            mapped.add_head(head_names[key], key, tensor)
        elif key.startswith("backbone."):
            target = rename(key[len("backbone."):])
            if target is None:
                raise ConversionError(_unknown(layout, key, "backbone." + expected, weights))
            mapped.add(target, key, tensor)
        else:
            mapped.ignored.append(key)
    return mapped


_FC = {"fc.weight": "weight", "fc.bias": "bias"}
_HEAD_FC = {"head.fc.weight": "weight", "head.fc.bias": "bias"}
_PLAIN = "conv1.weight, bn1.*, layer{1-4}.{j}.conv{1,2,3}/bn{1,2,3}/downsample.*"


def map_torchvision(weights: Mapping[str, torch.Tensor]) -> MappedWeights:
    """torchvision ``ResNet``: the plugin's names, classifier ``fc``."""
    return _map_flat(weights, "torchvision", _rename_torchvision, _FC, _PLAIN + ", fc.*")


def map_timm(weights: Mapping[str, torch.Tensor]) -> MappedWeights:
    """timm ``ResNet``: torchvision's names; deep stems (``*d`` models) as ``conv1.{0..6}``."""
    deep_stem = stem_layout(weights) == "timm"
    return _map_flat(weights, "timm", _rename_timm(deep_stem), _FC,
                     _PLAIN + ", conv1.{0,1,3,4,6}.* (deep stem), fc.*")


def _map_openmmlab(weights: Mapping[str, torch.Tensor], layout: str, rename: _Rename,
                   bare_head: Mapping[str, str], prefixed_head: Mapping[str, str],
                   expected: str) -> MappedWeights:
    if any(key.startswith("backbone.") for key in weights):
        mapped = _map_prefixed(weights, layout, rename, prefixed_head, expected)
        if mapped.ignored:
            parts = sorted({key.split(".")[0] + ".*" for key in mapped.ignored})
            mapped.notes.append(f"left out {len(mapped.ignored)} keys of other model parts "
                                f"({', '.join(parts)})")
        return mapped
    return _map_flat(weights, layout, rename, bare_head, expected)


def map_mmpretrain(weights: Mapping[str, torch.Tensor]) -> MappedWeights:
    """mmpretrain ``ImageClassifier`` (``backbone.*``, ``head.fc.*``) or a bare ``ResNeXt``."""
    return _map_openmmlab(weights, "mmpretrain", _rename_mmpretrain, {}, _HEAD_FC,
                          _PLAIN + ", stem.{0,1,2}.conv/bn (deep stem)")


def map_plugin(weights: Mapping[str, torch.Tensor]) -> MappedWeights:
    """Our own checkpoints: mmpretrain's layout, blocks possibly in form (a)/(b) (``paths.*``)."""
    return _map_openmmlab(weights, "plugin", _rename_plugin, {}, _HEAD_FC,
                          _PLAIN + ", stem.*, layer{i}.{j}.paths.*")


def map_mmdet(weights: Mapping[str, torch.Tensor]) -> MappedWeights:
    """mmdet detector (``backbone.*``; neck and heads left out) or a bare backbone file.

    The bare files of mmdet's model zoo (``open-mmlab://resnext101_32x4d``, converted from the
    original Facebook release) use torchvision's names and may carry the ImageNet ``fc``.
    """
    return _map_openmmlab(weights, "mmdet", _rename_mmdet, _FC, {},
                          _PLAIN + ", stem.{0,1,3,4,6,7}.* (deep stem), fc.*")


# --- detectron2 ---------------------------------------------------------------------------
_D2_NORM = {"weight": "weight", "bias": "bias", "running_mean": "running_mean",
            "running_var": "running_var", "num_batches_tracked": "num_batches_tracked"}
_D2_KEY = re.compile(
    r"^(?:(?P<stem>stem\.conv1\.)|res(?P<stage>[2-5])\.(?P<block>\d+)\."
    r"(?P<layer>conv[123]|shortcut)\.)(?P<rest>weight|norm\.[a-z_]+)$"
)
_D2_HEAD = {"linear.weight": "weight", "linear.bias": "bias",  # ResNet(num_classes=...), Caffe2
            "stem.fc.weight": "weight", "stem.fc.bias": "bias",  # convert-torchvision-to-d2.py
            "fc1000.weight": "weight", "fc1000.bias": "bias"}
_C2_NORM = {"s": "weight", "b": "bias", "rm": "running_mean", "riv": "running_var"}
_C2_KEY = re.compile(
    r"^(?:(?P<stem>conv1_w)|res_conv1_(?P<stem_norm>bn|gn)_(?P<stem_param>s|b|rm|riv)"
    r"|res(?P<stage>[2-5])_(?P<block>\d+)_branch(?P<branch>1|2a|2b|2c)"
    r"(?:_w|_(?P<norm>bn|gn)_(?P<param>s|b|rm|riv)))$"
)
_C2_HEAD = {"pred_w": "linear.weight", "pred_b": "linear.bias",
            "fc1000_w": "linear.weight", "fc1000_b": "linear.bias"}
_C2_BRANCH = {"1": "shortcut", "2a": "conv1", "2b": "conv2", "2c": "conv3"}


def _c2_to_d2_name(key: str) -> Optional[str]:
    """Caffe2 Detectron blob name -> detectron2 name (as detectron2's ``c2_model_loading``)."""
    if key in _C2_HEAD:
        return _C2_HEAD[key]
    match = _C2_KEY.match(key)
    if match is None:
        return None
    if match["stem"]:
        return "stem.conv1.weight"
    if match["stem_param"]:
        if match["stem_norm"] == "gn":
            raise ConversionError(f"detectron2 layout: {key!r} is a GroupNorm weight; only "
                                  "BatchNorm / FrozenBN backbones convert to the plugin")
        return f"stem.conv1.norm.{_C2_NORM[match['stem_param']]}"
    layer = f"res{match['stage']}.{match['block']}.{_C2_BRANCH[match['branch']]}"
    if match["norm"] == "gn":
        raise ConversionError(f"detectron2 layout: {key!r} is a GroupNorm weight; only "
                              "BatchNorm / FrozenBN backbones convert to the plugin")
    return f"{layer}.norm.{_C2_NORM[match['param']]}" if match["param"] else f"{layer}.weight"


def _d2_to_plugin_name(name: str) -> Optional[str]:
    match = _D2_KEY.match(name)
    if match is None:
        return None
    rest = match["rest"]
    if rest != "weight":
        param = _D2_NORM.get(rest[len("norm."):])
        if param is None:
            return None
    if match["stem"]:
        return "conv1.weight" if rest == "weight" else f"bn1.{param}"
    block = f"layer{int(match['stage']) - 1}.{match['block']}"
    if match["layer"] == "shortcut":
        return (f"{block}.downsample.0.weight" if rest == "weight"
                else f"{block}.downsample.1.{param}")
    index = match["layer"][-1]
    return f"{block}.conv{index}.weight" if rest == "weight" else f"{block}.bn{index}.{param}"


def _is_c2(weights: Mapping[str, torch.Tensor]) -> bool:
    return "conv1_w" in weights or any("_branch2a_" in key for key in weights)


def map_detectron2(weights: Mapping[str, torch.Tensor]) -> MappedWeights:
    """detectron2 ``ResNet`` (``stem.conv1``, ``res2..res5``, ``shortcut``, ``*.norm``).

    Accepts ImageNet backbone files (no prefix; Caffe2 blob names such as
    ``res2_0_branch2a_w`` are renamed first, as detectron2 does) and whole detectors: an FPN
    backbone under ``backbone.bottom_up.``, a C4 backbone under ``backbone.`` with ``res5`` in
    ``roi_heads.res5.``. Everything else in a detector is left out.
    """
    mapped = MappedWeights()
    if _is_c2(weights):
        renamed: OrderedDict[str, torch.Tensor] = OrderedDict()
        source: dict[str, str] = {}
        for key, tensor in weights.items():
            name = _c2_to_d2_name(key)
            if name is None:
                mapped.ignored.append(key)
                continue
            renamed[name] = tensor
            source[name] = key
        mapped.affine_only_norms = True
        mapped.notes.append("Caffe2 blob names (conv1_w, res2_0_branch2a_w, ...) read as "
                            "detectron2 names")
    else:
        renamed, source = OrderedDict(weights), {key: key for key in weights}
    stems = [key for key in renamed if key.endswith("stem.conv1.weight")]
    if len(stems) != 1:
        first = next(iter(weights), "<empty>")
        found = f"found {len(stems)}: {stems[:3]}" if stems else f"first key {first!r}"
        raise ConversionError(
            "detectron2 layout: expected exactly one 'stem.conv1.weight' (or Caffe2 'conv1_w') "
            f"key, {found}; unknown layout"
            + (f"; the keys look like a {guess} checkpoint: try --from {guess}"
               if (guess := guess_layout(weights)) not in (None, "detectron2") else ""))
    prefix = stems[0][: -len("stem.conv1.weight")]
    c4_res5 = "roi_heads.res5." if prefix == "backbone." else None
    for name, tensor in renamed.items():
        if prefix == "" and name in _D2_HEAD:
            mapped.add_head(_D2_HEAD[name], source[name], tensor)
            continue
        if name.startswith(prefix):
            local = name[len(prefix):]
        elif c4_res5 is not None and name.startswith(c4_res5):
            local = "res5." + name[len(c4_res5):]
        else:
            mapped.ignored.append(source[name])
            continue
        target = _d2_to_plugin_name(local)
        if target is None:
            raise ConversionError(_unknown(
                "detectron2", source[name],
                f"{prefix}stem.conv1.*, {prefix}res{{2-5}}.{{j}}.conv{{1,2,3}}/shortcut[.norm].*"
                + (", linear.*" if prefix == "" else ""), weights))
        mapped.add(target, source[name], tensor)
    if mapped.ignored:
        mapped.notes.append(f"left out {len(mapped.ignored)} keys outside the backbone "
                            f"(first: {mapped.ignored[0]!r})")
    return mapped


_MAPPERS: dict[str, Callable[[Mapping[str, torch.Tensor]], MappedWeights]] = {
    "torchvision": map_torchvision,
    "timm": map_timm,
    "mmpretrain": map_mmpretrain,
    "mmdet": map_mmdet,
    "detectron2": map_detectron2,
    "plugin": map_plugin,
}


def map_weights(weights: Mapping[str, torch.Tensor], layout: str) -> MappedWeights:
    """Rename ``weights`` of layout ``layout`` (one of :data:`LAYOUTS`) to the plugin's names.

    Raises:
        ConversionError: ``layout`` is unknown, the file is empty, or a key is not part of the
            layout (the message names it and, when the keys fit another layout, suggests it).
    """
    if layout not in _MAPPERS:
        raise ConversionError(f"unknown source layout {layout!r}; choose one of {LAYOUTS}")
    if not weights:
        raise ConversionError(f"{layout} layout: the checkpoint holds no weights")
    mapped = _MAPPERS[layout](weights)
    if not mapped.backbone:
        raise ConversionError(f"{layout} layout: no backbone weights found (first key "
                              f"{next(iter(weights))!r})")
    return mapped


#: The source whose checkpoints lay a deep stem out that way (``models.key_layouts``).
_STEM_LAYOUT_SOURCES = {"timm": "timm", "convmodule": "mmpretrain", "sequential": "mmdet"}


def guess_layout(weights: Mapping[str, torch.Tensor]) -> Optional[str]:
    """The layout a state dict's names suggest, for error messages; None if none fits."""
    keys = list(weights)
    if _is_c2(weights) or any(k.endswith("stem.conv1.weight") for k in keys):
        return "detectron2"
    if any(".paths." in k for k in keys):
        return "plugin"
    if any(k.startswith("backbone.") for k in keys):
        return "mmpretrain" if any(k.startswith("head.fc.") for k in keys) else "mmdet"
    stem = stem_layout(weights)
    if stem is not None:
        return _STEM_LAYOUT_SOURCES[stem]
    if "conv1.weight" in weights and any(k.startswith("layer1.") for k in keys):
        return "torchvision"
    return None

"""Checkpoint key layouts where ResNeXt implementations differ: the deep stem and the shortcut.

Everything else is named alike everywhere (``conv1``, ``bn1``, ``layer{i}.{j}.conv{1,2,3}``...).
This module owns the two places that are not, and how to tell them apart; the strict loader
(:mod:`.pretrained`), arch inference (:mod:`.arch`) and the checkpoint converter
(:mod:`resnext_plugin.convert`) all call it.

Deep stem, three (conv, norm, ReLU) triplets:

* ``'convmodule'`` (mmpretrain, and the plugin's canonical names): ``stem.{i}.conv``,
  ``stem.{i}.<norm>`` for i = 0, 1, 2;
* ``'sequential'`` (mmdet): one flat ``nn.Sequential``, ``stem.{3i}`` (conv) and ``stem.{3i+1}``
  (norm);
* ``'timm'``: the same triplets under ``conv1.{3i}``/``conv1.{3i+1}``, but the last norm is the
  model's ``bn1``.

Projection shortcut: ``downsample.{0,1}`` (conv, norm), or with an average pool in front
(``avg_down``, ResNet-D) ``downsample.{1,2}``; mmdet pools in the stride-1 stage too, mmpretrain
and timm do not, so one stage's indices differ between them.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Optional, TypeVar

#: The key of each deep-stem layout's first convolution weight, which identifies the layout.
STEM_FIRST_CONV = {"convmodule": "stem.0.conv.weight", "sequential": "stem.0.weight",
                   "timm": "conv1.0.weight"}
#: The key of each layout's last stem convolution weight (its output channels: the stem's).
STEM_LAST_CONV = {"convmodule": "stem.2.conv.weight", "sequential": "stem.6.weight",
                  "timm": "conv1.6.weight"}
CONVMODULE_STEM_KEY = re.compile(
    r"^stem\.(?P<index>[0-2])\.(?P<layer>conv|[a-z]+n)\.(?P<param>.+)$")
SEQUENTIAL_STEM_KEY = re.compile(r"^stem\.(?P<index>[0-8])\.(?P<param>[^.]+)$")
DOWNSAMPLE_KEY = re.compile(
    r"^(?P<block>layer\d+\.\d+\.downsample)\.(?P<index>\d+)\.(?P<param>.+)$")

_Tensor = TypeVar("_Tensor")


def stem_layout(keys: Iterable[str]) -> Optional[str]:
    """``'convmodule'``, ``'sequential'`` or ``'timm'`` for a deep stem's keys; None otherwise."""
    keys = set(keys)
    return next((layout for layout, key in STEM_FIRST_CONV.items() if key in keys), None)


def sequential_to_convmodule(index: int, param: str, norm: str = "bn") -> Optional[str]:
    """The ``'convmodule'`` name of position ``index`` of a flat (conv, norm, ReLU) x 3 stem;
    None for a ReLU's position (it has no weights)."""
    conv_index, position = divmod(index, 3)
    if position == 0:
        return f"stem.{conv_index}.conv.{param}"
    if position == 1:
        return f"stem.{conv_index}.{norm}.{param}"
    return None


def convmodule_to_sequential(index: int, layer: str, param: str) -> str:
    """The ``'sequential'`` name of ``stem.{index}.{layer}.{param}`` (layer: conv or a norm)."""
    return f"stem.{3 * index + (0 if layer == 'conv' else 1)}.{param}"


def _stem_renames(keys: Iterable[str], own: Iterable[str]) -> dict[str, str]:
    own = list(own)
    layout = stem_layout(own)
    norm = next((m["layer"] for k in own if (m := CONVMODULE_STEM_KEY.match(k))
                 and m["layer"] != "conv"), None)
    renames = {}
    for key in keys:
        if layout == "sequential" and (module_key := CONVMODULE_STEM_KEY.match(key)):
            renames[key] = convmodule_to_sequential(int(module_key["index"]),
                                                    module_key["layer"], module_key["param"])
        elif norm and (flat_key := SEQUENTIAL_STEM_KEY.match(key)):
            renamed = sequential_to_convmodule(int(flat_key["index"]), flat_key["param"], norm)
            renames[key] = key if renamed is None else renamed
    return renames


def shortcut_indices(keys: Iterable[str]) -> dict[str, list[int]]:
    """Each projection shortcut (``layer{i}.{j}.downsample``) and its layer indices, sorted."""
    found: dict[str, set[int]] = {}
    for key in keys:
        if match := DOWNSAMPLE_KEY.match(key):
            found.setdefault(match["block"], set()).add(int(match["index"]))
    return {block: sorted(indices) for block, indices in found.items()}


def _shortcut_renames(keys: Iterable[str], own: Iterable[str]) -> dict[str, str]:
    keys = list(keys)
    theirs, ours = shortcut_indices(keys), shortcut_indices(own)
    moves = {block: dict(zip(indices, ours[block])) for block, indices in theirs.items()
             if block in ours and len(ours[block]) == len(indices) and ours[block] != indices}
    renames = {}
    for key in keys:
        match = DOWNSAMPLE_KEY.match(key)
        if match and match["block"] in moves:
            index = moves[match["block"]][int(match["index"])]
            renames[key] = f"{match['block']}.{index}.{match['param']}"
    return renames


def has_avg_down(conv_keys: Iterable[str], stage: int) -> bool:
    """Whether stage ``stage``'s first shortcut has an average pool in front (``avg_down``): its
    convolution is not at ``downsample.0``. ``conv_keys``: the keys of 4-d (convolution) weights.
    """
    block = f"layer{stage}.0.downsample"
    indices = [int(m["index"]) for key in conv_keys if (m := DOWNSAMPLE_KEY.match(key))
               and m["param"] == "weight" and m["block"] == block]
    return bool(indices) and indices[0] != 0


def layout_renames(keys: Iterable[str], own: Iterable[str]) -> dict[str, str]:
    """Source key -> key in the layout of ``own`` (a model's keys), for the deep stem and the
    shortcut indices; keys already in that layout are left out. Tensors stay as they are."""
    keys, own = list(keys), list(own)
    return {**_stem_renames(keys, own), **_shortcut_renames(keys, own)}


def match_layout(state_dict: Mapping[str, _Tensor],
                 own: Iterable[str]) -> dict[str, _Tensor]:
    """``state_dict`` (in its order) with the keys renamed to the layout of ``own``."""
    renames = layout_renames(state_dict, own)
    return {renames.get(key, key): value for key, value in state_dict.items()}

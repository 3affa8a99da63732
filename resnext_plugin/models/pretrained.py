"""Strict loading of pretrained backbone weights.

mmengine's ``PretrainedInit`` loads with ``strict=False`` and only logs size mismatches, so a
ResNeXt-101 checkpoint in a ResNeXt-50 (or 32x8d weights in a 32x4d model) would load partially and
train on. :func:`load_pretrained` instead refuses any checkpoint whose backbone tensors do not match
the model, naming the first offending key and the architecture each side has.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Optional

import torch
from mmengine.logging import print_log
from torch import nn

from ..checkpoint import extract_state_dict, read_checkpoint
from .arch import describe_weights
from .block_forms import convert_block_form
from .blocks import BLOCKS
from .key_layouts import match_layout

_BACKBONE_KEY = re.compile(r"^(layer\d+\.|conv1\.|[a-z]+n1\.|stem\.)")


def select_prefix(state_dict: Mapping[str, torch.Tensor], prefix: Optional[str],
                  source: str) -> dict[str, torch.Tensor]:
    """The entries under ``prefix`` with the prefix removed (all entries when it is None)."""
    if not prefix:
        whole_model = any(k.startswith("backbone.") for k in state_dict)
        if whole_model and "layer1.0.conv1.weight" not in state_dict:
            raise ValueError(f"{source}: keys start with 'backbone.' (a whole-model checkpoint); "
                             "set prefix='backbone.' in init_cfg or convert it with "
                             "tools/convert_checkpoint.py --to backbone")
        return dict(state_dict)
    selected = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
    if not selected:
        sample = ", ".join(list(state_dict)[:3])
        raise ValueError(f"{source}: no key starts with prefix {prefix!r} (first keys: {sample})")
    return selected


def load_pretrained(model: nn.Module, checkpoint: str, prefix: Optional[str] = None,
                    map_location: Any = "cpu") -> dict[str, list[str]]:
    """Load backbone weights into ``model``, refusing any mismatch of the backbone's tensors.

    Args:
        model (nn.Module): The backbone.
        checkpoint (str): Path or URL of the checkpoint.
        prefix (str, optional): Take only keys under this prefix (e.g. ``'backbone.'``), stripped.
        map_location: Passed to ``torch.load``. Defaults to ``'cpu'``.

    Returns:
        dict: ``missing`` (only ``num_batches_tracked`` buffers may be) and ``ignored`` (keys the
        backbone does not have, such as a classifier's ``fc.*``), both also logged.

    Raises:
        ValueError: a tensor's shape differs, or a backbone key is missing or extra (another
            depth or cardinality); the message names the first such key and both architectures.
    """
    state_dict = select_prefix(extract_state_dict(read_checkpoint(checkpoint, map_location),
                                                  checkpoint), prefix, checkpoint)
    own = model.state_dict()
    state_dict = match_layout(state_dict, own)  # the other peer's deep stem and shortcut names
    block_form = getattr(model, "block_form", "c")
    if BLOCKS[block_form].per_path_layers and not any(".paths." in k for k in state_dict):
        state_dict = convert_block_form(state_dict, model.groups, "c", block_form)

    def mismatch(detail: str) -> ValueError:
        return ValueError(f"pretrained checkpoint {checkpoint} (prefix={prefix!r}) does not fit "
                          f"this backbone: {detail}; the checkpoint holds "
                          f"{describe_weights(state_dict)}, the model is {describe_weights(own)}")

    for key, value in state_dict.items():
        if key in own and own[key].shape != value.shape:
            raise mismatch(f"`{key}` has shape {tuple(value.shape)} in the checkpoint and "
                           f"{tuple(own[key].shape)} in the model")
    missing = [k for k in own if k not in state_dict]
    hard_missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if hard_missing:
        raise mismatch(f"`{hard_missing[0]}` is missing ({len(hard_missing)} keys missing)")
    ignored = [k for k in state_dict if k not in own]
    extra_backbone = [k for k in ignored if _BACKBONE_KEY.match(k)]
    if extra_backbone:
        raise mismatch(f"unexpected key `{extra_backbone[0]}` ({len(extra_backbone)} backbone "
                       "keys the model does not have)")
    model.load_state_dict({k: v for k, v in state_dict.items() if k in own}, strict=False)
    print_log(f"loaded {len(own) - len(missing)} tensors from {checkpoint} (prefix={prefix!r}); "
              f"missing: {missing or 'none'}; ignored: {ignored or 'none'}", logger="current")
    return dict(missing=missing, ignored=ignored)

"""Conversion between the paper's three equivalent block templates (Fig. 3).

Form (c) holds each block's grouped weights whole; forms (a) and (b) hold them per path:

* ``conv1``/``bn1``/``conv2``/``bn2`` of (c) split along their output channels into
  ``paths.{k}.conv1/bn1/conv2/bn2``, d channels a path (the grouped 3x3 is block-diagonal,
  so group k's kernel is exactly path k's 3x3);
* ``conv3`` stays whole in (b), and in (a) splits along its input channels into
  ``paths.{k}.conv3``, whose outputs are summed before the shared ``bn3``.
"""
from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Iterable, Mapping

import torch

from .blocks import BLOCKS

_BLOCK_KEY = re.compile(
    r"^(?P<block>(?:.*\.)?layer\d+\.\d+\.)(?:paths\.(?P<path>\d+)\.)?(?P<layer>conv[123]|[a-z]+n[123])"
    r"\.(?P<param>[^.]+)$"
)
_NOTHING = re.compile(r"(?!)")


def _per_path(form: str) -> re.Pattern:
    """The layers form ``form`` holds per path (its class's ``per_path_layers``)."""
    layers = BLOCKS[form].per_path_layers
    return _NOTHING if layers is None else re.compile(rf"^(?:{layers})$")


def _check_form(name: str, form: str) -> None:
    if form not in BLOCKS:
        raise ValueError(f"convert_block_form: `{name}` must be one of {tuple(BLOCKS)}, got "
                         f"{form!r}")


def _to_form_c(block: dict, groups: int, src_form: str) -> dict:
    """Merge one block's per-path tensors (keys like ``paths.3.conv1.weight``) into form (c)."""
    merged = {key: value for key, value in block.items() if not key.startswith("paths.")}
    layers = {k.split(".")[2] for k in block if k.startswith("paths.0.")}
    for layer in sorted(filter(_per_path(src_form).match, layers)):
        params = {k.split(".", 3)[3] for k in block if k.startswith("paths.0.") and
                  k.split(".")[2] == layer}
        for param in params:
            parts = [block[f"paths.{k}.{layer}.{param}"] for k in range(groups)]
            if param == "num_batches_tracked":
                merged[f"{layer}.{param}"] = parts[0]
            else:
                merged[f"{layer}.{param}"] = torch.cat(parts, dim=1 if layer == "conv3" else 0)
    return merged


def _from_form_c(block: dict, groups: int, dst_form: str) -> dict:
    per_path = _per_path(dst_form)
    split = {key: value for key, value in block.items() if not per_path.match(key.split(".")[0])}
    for key, value in block.items():
        layer, param = key.split(".", 1)
        if not per_path.match(layer):
            continue
        if param == "num_batches_tracked":
            parts = [value.clone() for _ in range(groups)]
        else:
            parts = value.chunk(groups, dim=1 if layer == "conv3" else 0)
        for k, part in enumerate(parts):
            split[f"paths.{k}.{layer}.{param}"] = part.clone()
    return split


def convert_block_form(
    state_dict: Mapping[str, torch.Tensor], groups: int, src_form: str, dst_form: str
) -> "OrderedDict[str, torch.Tensor]":
    """Convert a ResNeXt state dict from one Fig. 3 block template to another.

    Args:
        state_dict (Mapping[str, Tensor]): Weights of a model built with ``block_form=src_form``
            (any prefix before ``layer{i}.{j}.`` is kept).
        groups (int): The cardinality C the model was built with.
        src_form (str): ``'a'``, ``'b'`` or ``'c'``.
        dst_form (str): ``'a'``, ``'b'`` or ``'c'``.

    Returns:
        OrderedDict[str, Tensor]: Weights for the same model built with ``block_form=dst_form``;
        loading them gives the same outputs.

    Example:
        >>> from resnext_plugin.models import ResNeXt, convert_block_form
        >>> c = ResNeXt(50, groups=4, width_per_group=24, num_stages=1, out_indices=(0,))
        >>> a = ResNeXt(50, groups=4, width_per_group=24, num_stages=1, out_indices=(0,),
        ...             block_form='a')
        >>> print(a.load_state_dict(convert_block_form(c.state_dict(), 4, 'c', 'a')))
        <All keys matched successfully>
    """
    _check_form("src_form", src_form)
    _check_form("dst_form", dst_form)
    blocks: dict[str, dict] = {}
    out: "OrderedDict[str, torch.Tensor]" = OrderedDict()
    for key, value in state_dict.items():
        match = _BLOCK_KEY.match(key)
        if match is None:
            out[key] = value
            continue
        prefix = match["block"]
        if prefix not in blocks:
            blocks[prefix] = {}
            out[prefix] = None  # keeps the block's place in the key order
        blocks[prefix][key[len(prefix):]] = value
    for prefix, block in blocks.items():
        missing = [k for k in range(groups)
                   if BLOCKS[src_form].per_path_layers and f"paths.{k}.conv1.weight" not in block]
        if missing:
            raise ValueError(f"convert_block_form: block {prefix!r} has no path {missing[0]} "
                             f"(groups={groups}, src_form={src_form!r})")
        blocks[prefix] = _from_form_c(_to_form_c(block, groups, src_form), groups, dst_form)
    result: "OrderedDict[str, torch.Tensor]" = OrderedDict()
    for key, value in out.items():
        if key in blocks:
            result.update((key + name, tensor) for name, tensor in blocks[key].items())
        else:
            result[key] = value
    return result


def detect_block_form(keys: Iterable[str]) -> str:
    """The block form of a state dict's keys: the form whose per-path layers (its class's
    ``per_path_layers``) are exactly the layers the first block holds under ``paths.{k}.``.

    Raises:
        ValueError: No form holds the first block's layers that way.
    """
    per_path: set[str] = set()
    whole: set[str] = set()
    first = None
    for key in keys:
        match = _BLOCK_KEY.match(key)
        if match is None:
            continue
        first = first or match["block"]
        if match["block"] == first:
            (whole if match["path"] is None else per_path).add(match["layer"])
    for form in BLOCKS:
        pattern = _per_path(form)
        if all(map(pattern.match, per_path)) and not any(map(pattern.match, whole)):
            return form
    raise ValueError(f"detect_block_form: no block form holds {sorted(per_path)} per path and "
                     f"{sorted(whole)} whole (block {first!r})")

"""Inferring a ResNeXt's architecture from its tensors, and checking them against a built model.

Depth comes from the blocks per stage (:data:`ARCH_SETTINGS`), the cardinality C and the
bottleneck width d from the first grouped convolution: ``layer1.0.conv2.weight`` has shape
``(C*d, d, 3, 3)``. The plugin model built from that guess is the reference: every tensor must
exist there with the same shape, and every tensor it has must come from the file.
"""
from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Mapping

import torch

from ..models import ResNeXt, convert_block_form
from ..models import arch as model_arch
from ..models.arch import describe
from ..models.block_forms import detect_block_form
from ..models.key_layouts import layout_renames
from .layouts import ConversionError, MappedWeights

_PATH_INDEX = re.compile(r"^layer1\.0\.paths\.(\d+)\.")
#: BatchNorm eps of the plugin's default ``norm_cfg``; Caffe2's affine-only norms get
#: ``running_var = 1 - eps`` so that the converted BN computes exactly ``scale * x + bias``.
BN_EPS = 1e-5


def to_block_form_c(mapped: MappedWeights) -> str:
    """Merge per-path weights (the plugin's block forms (a)/(b)) into form (c); return the form."""
    groups = {int(m[1]) for key in mapped.backbone if (m := _PATH_INDEX.match(key))}
    if not groups:
        return "c"
    try:
        form = detect_block_form(mapped.backbone)
    except ValueError as err:
        raise ConversionError(f"cannot merge per-path weights into form (c): {err}") from err
    try:
        merged = convert_block_form(mapped.backbone, len(groups), form, "c")
    except (KeyError, ValueError) as err:
        raise ConversionError(f"cannot merge block form ({form}) weights into form (c): {err}") \
            from err
    # Merged tensors have no single source key; name the block they came from.
    mapped.origin = {key: mapped.origin.get(key, key.rsplit(".", 2)[0] + ".paths.*")
                     for key in merged}
    mapped.backbone = merged
    mapped.notes.append(f"merged block form ({form}) weights, {len(groups)} paths a block, into "
                        "form (c); build the backbone with the default block_form='c' (or "
                        f"block_form='{form}' and resnext_plugin.convert_block_form)")
    return form


def infer_arch(weights: Mapping[str, torch.Tensor]) -> dict:
    """:func:`resnext_plugin.models.arch.infer_arch`, failing with a :class:`ConversionError`."""
    try:
        return model_arch.infer_arch(weights)
    except model_arch.ArchitectureError as err:
        raise ConversionError(str(err)) from err


def build_reference(arch: Mapping, style: str = "pytorch") -> ResNeXt:
    """The plugin backbone whose state dict the converted weights must match."""
    return ResNeXt(**arch, style=style, out_indices=tuple(range(arch["num_stages"])),
                   defaults="mmpretrain", init_cfg=None)


def _match_model_layout(mapped: MappedWeights, expected: Mapping[str, torch.Tensor]) -> None:
    """Rename keys to the model's layout (:mod:`resnext_plugin.models.key_layouts`): each
    shortcut's conv/bn to the indices the model uses (timm: 1/2 even in stage 1)."""
    renames = layout_renames(mapped.backbone, expected)
    if renames:
        mapped.backbone = OrderedDict((renames.get(k, k), v) for k, v in mapped.backbone.items())
        mapped.origin = {renames.get(k, k): v for k, v in mapped.origin.items()}


def _fill_norm_buffers(mapped: MappedWeights, expected: Mapping[str, torch.Tensor]) -> None:
    """Add the BN buffers older or Caffe2 files lack (``num_batches_tracked``, running stats)."""
    filled_counts, filled_stats = 0, 0
    for key, reference in expected.items():
        if key in mapped.backbone:
            continue
        module, _, param = key.rpartition(".")
        has_affine = f"{module}.weight" in mapped.backbone and f"{module}.bias" in mapped.backbone
        if param == "num_batches_tracked" and f"{module}.running_mean" in expected:
            value, filled_counts = torch.zeros_like(reference), filled_counts + 1
        elif mapped.affine_only_norms and has_affine and param in ("running_mean", "running_var"):
            value = torch.zeros_like(mapped.backbone[f"{module}.weight"])
            if param == "running_var":
                value.fill_(1.0 - BN_EPS)
                filled_stats += 1
        else:
            continue
        mapped.backbone[key] = value
        mapped.origin[key] = f"<{param} filled in>"
    if filled_counts:
        mapped.notes.append(f"the file has no num_batches_tracked for {filled_counts} BatchNorm "
                            "layers: set to 0 (not used in eval mode)")
    if filled_stats:
        mapped.notes.append(f"{filled_stats} norms hold only scale and bias (Caffe2 "
                            "AffineChannel): running_mean=0, running_var=1-eps so that BN "
                            "computes scale * x + bias")


def verify(mapped: MappedWeights, arch: Mapping, style: str) -> "OrderedDict[str, torch.Tensor]":
    """Check ``mapped.backbone`` key by key against the plugin model built from ``arch``.

    Returns:
        OrderedDict: The backbone weights in the model's key order, ready for
        ``load_state_dict(strict=True)``.

    Raises:
        ConversionError: The first key (in file order) that the model lacks or whose shape
            differs, else the first key of the model that the file lacks.
    """
    name = describe(arch)
    expected = build_reference(arch, style).state_dict()
    _match_model_layout(mapped, expected)
    _fill_norm_buffers(mapped, expected)
    for key, tensor in mapped.backbone.items():
        source = mapped.origin[key]
        shown = repr(source) + ("" if source == key else f" (plugin key {key!r})")
        if key not in expected:
            raise ConversionError(f"key {shown} has no counterpart in a {name}")
        if tuple(tensor.shape) != tuple(expected[key].shape):
            raise ConversionError(f"key {shown} has shape {tuple(tensor.shape)}, a {name} "
                                  f"expects {tuple(expected[key].shape)}")
    for key in expected:
        if key not in mapped.backbone:
            raise ConversionError(f"missing key {key!r} (plugin name): a {name} needs it and "
                                  "the file has no counterpart")
    return OrderedDict((key, mapped.backbone[key]) for key in expected)


def verify_head(mapped: MappedWeights, feat_dim: int) -> None:
    """The classifier must be ``Linear(feat_dim, num_classes)``: weight and bias, matching."""
    if not mapped.head:
        return
    for param in ("weight", "bias"):
        if param not in mapped.head:
            other = next(iter(mapped.head_origin.values()))
            raise ConversionError(f"classifier {param} missing (found {other!r} only)")
    weight, bias = mapped.head["weight"], mapped.head["bias"]
    if weight.dim() != 2 or weight.shape[1] != feat_dim:
        raise ConversionError(f"key {mapped.head_origin['weight']!r} has shape "
                              f"{tuple(weight.shape)}, the classifier of this backbone expects "
                              f"(num_classes, {feat_dim})")
    if tuple(bias.shape) != (weight.shape[0],):
        raise ConversionError(f"key {mapped.head_origin['bias']!r} has shape {tuple(bias.shape)},"
                              f" expected ({weight.shape[0]},)")

"""Convert a published ResNeXt checkpoint into the plugin's layouts (and to torchvision's).

>>> conversion = convert_state_dict(torchvision_model.state_dict(), "torchvision")  # doctest: +SKIP
>>> conversion.backbone_kwargs  # doctest: +SKIP
{'depth': 50, 'groups': 32, 'width_per_group': 4}
"""
from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Optional

import torch

from ..checkpoint import extract_state_dict, load_checkpoint_file, save_atomic
from ..models import ARCH_SETTINGS
from ..models.blocks import EXPANSION, STYLES
from .layouts import LAYOUTS, ConversionError, map_weights
from .verify import describe, infer_arch, to_block_form_c, verify, verify_head

#: ResNeXt arguments whose plugin default differs from "absent" and so always go to configs.
_ALWAYS_SHOWN = ("depth", "groups", "width_per_group")
_ARCH_DEFAULTS = dict(in_channels=3, stem_channels=64, base_channels=64, num_stages=4,
                      deep_stem=False, avg_down=False, style="pytorch")


@dataclass
class Conversion:
    """Verified plugin weights of one source checkpoint and what was inferred about it.

    Attributes:
        layout: The source layout (one of :data:`LAYOUTS`).
        state_dict: Backbone weights with the plugin's keys, in the model's order; loads into
            ``ResNeXt(**backbone_kwargs)`` with ``strict=True``.
        head: The linear classifier (``weight``, ``bias``), or None when the source has none.
        arch: Inferred shape-defining ResNeXt arguments (see :func:`.verify.infer_arch`).
        style: ``'pytorch'`` (stride on conv2) or ``'caffe'`` (stride on conv1).
        notes: What the conversion did beyond renaming (left-out keys, filled buffers, ...).
        source_keys: Number of tensors in the source state dict.
    """

    layout: str
    state_dict: "OrderedDict[str, torch.Tensor]"
    head: Optional["OrderedDict[str, torch.Tensor]"]
    arch: dict
    style: str
    notes: list[str] = field(default_factory=list)
    source_keys: int = 0

    @property
    def name(self) -> str:
        return describe(self.arch) + (", caffe style" if self.style == "caffe" else "")

    @property
    def num_classes(self) -> Optional[int]:
        return None if self.head is None else int(self.head["weight"].shape[0])

    @property
    def feat_dim(self) -> int:
        return self.arch["base_channels"] * 2 ** (self.arch["num_stages"] - 1) * EXPANSION

    @property
    def backbone_kwargs(self) -> dict:
        """``ResNeXt`` arguments for a config: depth, C, d and whatever differs from defaults."""
        full = dict(self.arch, style=self.style)
        return {key: value for key, value in full.items()
                if key in _ALWAYS_SHOWN or _ARCH_DEFAULTS.get(key) != value}

    def meta(self, source_file: Optional[str] = None) -> dict:
        """The ``meta`` entry of written checkpoints (plain types: loads with weights_only)."""
        blocks = tuple(_blocks(self.arch))
        return dict(
            arch=dict(self.arch, style=self.style, stage_blocks=list(blocks)),
            depth=self.arch["depth"],
            groups=self.arch["groups"],
            width_per_group=self.arch["width_per_group"],
            style=self.style,
            backbone_kwargs=self.backbone_kwargs,
            num_classes=self.num_classes,
            source=dict(layout=self.layout, file=source_file, num_tensors=self.source_keys),
            notes=list(self.notes),
            converted_by="resnext_plugin.convert",
        )

    def summary(self) -> list[str]:
        """Human-readable lines: what was inferred and what was done."""
        arch = self.arch
        lines = [f"inferred: {self.name}: depth={arch['depth']} (blocks per stage "
                 f"{tuple(_blocks(arch))}), groups C={arch['groups']}, width_per_group "
                 f"d={arch['width_per_group']}, style='{self.style}'",
                 f"backbone: {len(self.state_dict)} tensors, "
                 + ("classifier: none" if self.head is None
                    else f"classifier: {self.num_classes} classes")]
        return lines + [f"note: {note}" for note in self.notes]


def _blocks(arch: Mapping) -> list[int]:
    return list(ARCH_SETTINGS[arch["depth"]][: arch["num_stages"]])


def _resolve_style(layout: str, style: Optional[str], stride_in_1x1: Optional[bool]) -> str:
    if style is not None and style not in STYLES:
        raise ConversionError(f"`style` must be one of {STYLES}, got {style!r}")
    if layout != "detectron2":
        if stride_in_1x1 is not None:
            raise ConversionError("`stride_in_1x1` is detectron2's MODEL.RESNETS.STRIDE_IN_1X1; "
                                  f"for {layout} checkpoints give `style` instead")
        return style or "pytorch"
    if stride_in_1x1 is None:
        raise ConversionError(
            "detectron2 checkpoints do not record MODEL.RESNETS.STRIDE_IN_1X1, and it decides "
            "where the stride sits: give stride_in_1x1=True (--stride-in-1x1: detectron2's "
            "default, the MSRA R-50/R-101 Caffe2 weights) or False (--no-stride-in-1x1: the "
            "X-101-32x8d / X-152 ResNeXts and torchvision-converted files)")
    derived = "caffe" if stride_in_1x1 else "pytorch"
    if style is not None and style != derived:
        raise ConversionError(f"stride_in_1x1={stride_in_1x1} means style='{derived}', but "
                              f"style={style!r} was given")
    return derived


def convert_state_dict(
    weights: Mapping[str, torch.Tensor],
    layout: str,
    *,
    style: Optional[str] = None,
    stride_in_1x1: Optional[bool] = None,
) -> Conversion:
    """Map, infer and verify: source weights of ``layout`` -> plugin backbone (+ classifier).

    Args:
        weights: The source state dict (tensors, source names).
        layout: ``'torchvision'``, ``'timm'``, ``'mmpretrain'``, ``'mmdet'``, ``'detectron2'``
            or ``'plugin'``.
        style: Where the stride sits; the weights cannot tell. Defaults to ``'pytorch'``.
        stride_in_1x1: detectron2 only, and required there: its ``STRIDE_IN_1X1``
            (True means ``style='caffe'``).

    Returns:
        Conversion: verified against a plugin ``ResNeXt`` built from the inferred arguments.

    Raises:
        ConversionError: Unknown layout or key, missing key, shape mismatch, another
            architecture; the message names the first offending key.
    """
    resolved_style = _resolve_style(layout, style, stride_in_1x1)
    mapped = map_weights(weights, layout)
    notes = list(mapped.notes)
    mapped.notes = []
    if layout == "plugin":
        to_block_form_c(mapped)
    arch = infer_arch(mapped.backbone)
    state_dict = verify(mapped, arch, resolved_style)
    conversion = Conversion(layout=layout, state_dict=state_dict, head=None, arch=arch,
                            style=resolved_style, source_keys=len(weights))
    verify_head(mapped, conversion.feat_dim)
    conversion.head = OrderedDict(mapped.head) if mapped.head else None
    if layout == "detectron2":
        notes.append(f"stride_in_1x1={stride_in_1x1}: build the backbone with "
                     f"style='{resolved_style}'")
    conversion.notes = notes + mapped.notes
    return conversion


def backbone_checkpoint(conversion: Conversion, source_file: Optional[str] = None) -> dict:
    """``{'state_dict': <backbone, no prefix>, 'meta': ...}`` for ``init_cfg=Pretrained``."""
    return dict(state_dict=OrderedDict(conversion.state_dict),
                meta=conversion.meta(source_file))


def classifier_checkpoint(conversion: Conversion, source_file: Optional[str] = None) -> dict:
    """mmpretrain ``ImageClassifier`` layout (``backbone.*``, ``head.fc.*``) for ``load_from``.

    Raises:
        ConversionError: The source has no classifier.
    """
    if conversion.head is None:
        raise ConversionError(f"the {conversion.layout} checkpoint has no classifier (fc) "
                              "weights: convert it --to backbone")
    state_dict = OrderedDict(("backbone." + k, v) for k, v in conversion.state_dict.items())
    state_dict.update(("head.fc." + k, v) for k, v in conversion.head.items())
    return dict(state_dict=state_dict, meta=conversion.meta(source_file))


def torchvision_state_dict(conversion: Conversion) -> "OrderedDict[str, torch.Tensor]":
    """torchvision ``ResNet`` state dict (``fc`` included when there is a classifier).

    Raises:
        ConversionError: The backbone is not expressible by torchvision's ResNet (caffe style,
            deep stem, avg_down, other stem/base widths, fewer than 4 stages).
    """
    full = dict(conversion.arch, style=conversion.style)
    unsupported = {key: value for key, value in full.items()
                   if key in _ARCH_DEFAULTS and _ARCH_DEFAULTS[key] != value}
    if unsupported:
        raise ConversionError(f"torchvision's ResNet cannot express {conversion.name} "
                              f"({unsupported}): it has a 7x7 stem of 64 channels, 4 stages, "
                              "the stride on conv2 (style='pytorch') and no avg_down")
    state_dict = OrderedDict(conversion.state_dict)
    if conversion.head is not None:
        state_dict.update(("fc." + k, v) for k, v in conversion.head.items())
    return state_dict


def torchvision_builder(conversion: Conversion) -> str:
    """The torchvision call that builds a model for :func:`torchvision_state_dict`'s output."""
    arch = conversion.arch
    classes = conversion.num_classes or 1000
    return (f"torchvision.models.resnet.ResNet(torchvision.models.resnet.Bottleneck, "
            f"{_blocks(arch)}, groups={arch['groups']}, width_per_group={arch['width_per_group']}"
            f", num_classes={classes})")


def _backbone_config(conversion: Conversion) -> str:
    kwargs = ", ".join(f"{k}={v!r}" for k, v in conversion.backbone_kwargs.items())
    return f"dict(type='resnext_plugin.ResNeXt', {kwargs}"


def _backbone_usage(conversion: Conversion, dst: str) -> str:
    return (f"use: backbone={_backbone_config(conversion)}, init_cfg=dict(type='Pretrained', "
            f"checkpoint='{dst}'))")


def _classifier_usage(conversion: Conversion, dst: str) -> str:
    return (f"use: load_from='{dst}' with backbone={_backbone_config(conversion)}) and "
            f"head=dict(type='LinearClsHead', num_classes={conversion.num_classes}, "
            f"in_channels={conversion.feat_dim}); or, for the backbone alone, "
            f"init_cfg=dict(type='Pretrained', checkpoint='{dst}', prefix='backbone.')")


def _torchvision_usage(conversion: Conversion, dst: str) -> str:
    strict = "" if conversion.num_classes else ", strict=False)  # the file has no fc"
    return (f"use: model = {torchvision_builder(conversion)}; "
            f"model.load_state_dict(torch.load('{dst}'){strict or ')'}")


@dataclass(frozen=True)
class Target:
    """One output layout of :func:`convert_checkpoint`.

    Attributes:
        write: What is saved: ``write(conversion, source_file_name)``.
        usage: One line saying how to load the written file: ``usage(conversion, dst)``.
        help: The layout, for ``--to``'s help.
    """

    write: Callable[[Conversion, Optional[str]], Any]
    usage: Callable[[Conversion, str], str]
    help: str


#: The output layouts, by name (``--to``); a new one is one entry here.
TARGET_TABLE: dict[str, Target] = {
    "backbone": Target(backbone_checkpoint, _backbone_usage,
                       "state_dict without prefix + meta, for init_cfg=Pretrained (default)"),
    "classifier": Target(classifier_checkpoint, _classifier_usage,
                         "mmpretrain ImageClassifier (backbone.*, head.fc.*) for load_from"),
    "torchvision": Target(lambda conversion, _name: torchvision_state_dict(conversion),
                          _torchvision_usage, "a plain torchvision ResNet state dict"),
}
TARGETS = tuple(TARGET_TABLE)


def usage_hint(conversion: Conversion, dst: str, target: str) -> str:
    """How to load what :func:`convert_checkpoint` wrote to ``dst`` as ``target``."""
    return TARGET_TABLE[target].usage(conversion, dst)


def convert_checkpoint(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    layout: str,
    to: str = "backbone",
    *,
    style: Optional[str] = None,
    stride_in_1x1: Optional[bool] = None,
) -> Conversion:
    """Read ``src`` (weights only), convert and verify it, and write ``dst`` atomically.

    Args:
        src: Source checkpoint (torch file, or detectron2/Caffe2 ``.pkl``).
        dst: Output path; written to a temporary file in its directory, then renamed.
        layout: Source layout, one of :data:`LAYOUTS`.
        to: One of :data:`TARGET_TABLE`: ``'backbone'`` (``state_dict`` without prefix +
            ``meta``), ``'classifier'`` (mmpretrain ``ImageClassifier`` keys + ``meta``) or
            ``'torchvision'`` (a plain torchvision ``ResNet`` state dict).
        style: See :func:`convert_state_dict`.
        stride_in_1x1: See :func:`convert_state_dict`.

    Raises:
        FileNotFoundError: ``src`` or the directory of ``dst`` does not exist.
        ValueError: ``src`` cannot be read safely (truncated, not a checkpoint, code in it).
        ConversionError: See :func:`convert_state_dict`; also ``src`` and ``dst`` being the same
            file. Nothing is written then.
    """
    if to not in TARGETS:
        raise ConversionError(f"`to` must be one of {TARGETS}, got {to!r}")
    if layout not in LAYOUTS:
        raise ConversionError(f"unknown source layout {layout!r}; choose one of {LAYOUTS}")
    src, dst = os.fspath(src), os.fspath(dst)
    try:  # before reading a large file: a missing detectron2 flag fails fast
        _resolve_style(layout, style, stride_in_1x1)
    except ConversionError as err:
        raise ConversionError(f"{src}: {err}") from err
    if os.path.exists(dst) and os.path.exists(src) and os.path.samefile(src, dst):
        raise ConversionError(f"refusing to overwrite the source checkpoint {src} with its "
                              "conversion: choose another DST")
    raw = load_checkpoint_file(src)
    try:
        conversion = convert_state_dict(extract_state_dict(raw, src), layout, style=style,
                                        stride_in_1x1=stride_in_1x1)
    except ConversionError as err:
        raise ConversionError(f"{src}: {err}") from err
    author = raw.get("__author__") if isinstance(raw, Mapping) else None
    if isinstance(author, str):
        conversion.notes.append(f"file author: {author!r}")
    if layout == "detectron2":
        conversion.notes.append(
            "detectron2 weights fix the input format: Caffe2 / MSRA files take BGR 0-255 with "
            "mean [103.53, 116.28, 123.675], std [1, 1, 1]; FAIR X-101-32x8d/X-152 take BGR with "
            "std [57.375, 57.12, 58.395]; torchvision-converted files take RGB; set "
            "data_preprocessor (mean, std, bgr_to_rgb) to match")
    save_atomic(TARGET_TABLE[to].write(conversion, os.path.basename(src)), dst)
    return conversion

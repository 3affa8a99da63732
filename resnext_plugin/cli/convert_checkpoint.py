"""Command line of ``tools/convert_checkpoint.py``: convert a published ResNeXt checkpoint into
the plugin's layout, verified key by key (see ``docs/checkpoints.md``).

Exit status 0 on success; 1 with a one-line ``error:`` message (naming the file and the first
offending key) when the input cannot be converted. DST is then left untouched.
"""
from __future__ import annotations

import argparse
import sys

from ..convert.api import STYLES, TARGETS, Conversion, convert_checkpoint, torchvision_builder
from ..convert.layouts import LAYOUTS


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Convert torchvision / timm / mmpretrain / mmdet / detectron2 / plugin "
                    "ResNeXt weights into a checkpoint the plugin's configs load.")
    parser.add_argument("src", metavar="SRC", help="source checkpoint (.pth, .pt, .pkl, ...)")
    parser.add_argument("dst", metavar="DST", help="output checkpoint (written atomically)")
    parser.add_argument("--from", dest="layout", required=True, choices=LAYOUTS,
                        help="layout of SRC")
    parser.add_argument("--to", dest="target", default="backbone", choices=TARGETS,
                        help="backbone: state_dict without prefix + meta, for init_cfg="
                             "Pretrained (default); classifier: mmpretrain ImageClassifier "
                             "(backbone.*, head.fc.*) for load_from; torchvision: a plain "
                             "torchvision ResNet state dict")
    parser.add_argument("--style", choices=STYLES, default=None,
                        help="where the stride sits (the weights cannot tell); default pytorch")
    parser.add_argument("--stride-in-1x1", dest="stride_in_1x1",
                        action=argparse.BooleanOptionalAction, default=None,
                        help="detectron2 only, required there: its MODEL.RESNETS.STRIDE_IN_1X1 "
                             "(True = stride on conv1 = style='caffe')")
    return parser.parse_args(argv)


def usage_hint(conversion: Conversion, dst: str, target: str) -> str:
    kwargs = ", ".join(f"{k}={v!r}" for k, v in conversion.backbone_kwargs.items())
    backbone = f"dict(type='resnext_plugin.ResNeXt', {kwargs}"
    if target == "backbone":
        return (f"use: backbone={backbone}, init_cfg=dict(type='Pretrained', "
                f"checkpoint='{dst}'))")
    if target == "classifier":
        return (f"use: load_from='{dst}' with backbone={backbone}) and "
                f"head=dict(type='LinearClsHead', num_classes={conversion.num_classes}, "
                f"in_channels={conversion.feat_dim}); or, for the backbone alone, "
                f"init_cfg=dict(type='Pretrained', checkpoint='{dst}', prefix='backbone.')")
    strict = "" if conversion.num_classes else ", strict=False)  # the file has no fc"
    return (f"use: model = {torchvision_builder(conversion)}; "
            f"model.load_state_dict(torch.load('{dst}'){strict or ')'}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        conversion = convert_checkpoint(args.src, args.dst, args.layout, args.target,
                                        style=args.style, stride_in_1x1=args.stride_in_1x1)
    except (OSError, ValueError) as err:  # ConversionError is a ValueError
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"read {args.src} ({args.layout}, {conversion.source_keys} tensors)")
    for line in conversion.summary():
        print(line)
    print(f"wrote {args.dst} ({args.target} layout)")
    print(usage_hint(conversion, args.dst, args.target))
    return 0

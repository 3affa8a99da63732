"""Command line of ``tools/convert_checkpoint.py``: convert a published ResNeXt checkpoint into
the plugin's layout, verified key by key (see ``docs/checkpoints.md``).

Exit status 0 on success; 1 with a one-line ``error:`` message (naming the file and the first
offending key) when the input cannot be converted. DST is then left untouched.
"""
from __future__ import annotations

import argparse
import sys

from ..convert.api import STYLES, TARGET_TABLE, convert_checkpoint, usage_hint
from ..convert.layouts import LAYOUTS


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Convert torchvision / timm / mmpretrain / mmdet / detectron2 / plugin "
                    "ResNeXt weights into a checkpoint the plugin's configs load.")
    parser.add_argument("src", metavar="SRC", help="source checkpoint (.pth, .pt, .pkl, ...)")
    parser.add_argument("dst", metavar="DST", help="output checkpoint (written atomically)")
    parser.add_argument("--from", dest="layout", required=True, choices=LAYOUTS,
                        help="layout of SRC")
    parser.add_argument("--to", dest="target", default="backbone", choices=list(TARGET_TABLE),
                        help="; ".join(f"{name}: {target.help}"
                                       for name, target in TARGET_TABLE.items()))
    parser.add_argument("--style", choices=STYLES, default=None,
                        help="where the stride sits (the weights cannot tell); default pytorch")
    parser.add_argument("--stride-in-1x1", dest="stride_in_1x1",
                        action=argparse.BooleanOptionalAction, default=None,
                        help="detectron2 only, required there: its MODEL.RESNETS.STRIDE_IN_1X1 "
                             "(True = stride on conv1 = style='caffe')")
    return parser.parse_args(argv)


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

"""Convert a published ResNeXt checkpoint into the plugin's layout, verified key by key.

Examples:
    python tools/convert_checkpoint.py resnext50_32x4d-1a0047aa.pth x50.pth --from torchvision
    python tools/convert_checkpoint.py x50.pth x50_cls.pth --from torchvision --to classifier
    python tools/convert_checkpoint.py X-101-32x8d.pkl x101.pth --from detectron2 \\
        --no-stride-in-1x1
    python tools/convert_checkpoint.py work_dirs/x50/epoch_100.pth x50_backbone.pth --from plugin

Exit status 0 on success; 1 with a one-line ``error:`` message (naming the file and the first
offending key) when the input cannot be converted. DST is then left untouched.
"""
import sys

from resnext_plugin.convert.cli import main

if __name__ == "__main__":
    sys.exit(main())

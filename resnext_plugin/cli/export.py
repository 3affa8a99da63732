"""Command line of ``tools/export.py``: a config and checkpoint to verified ONNX Runtime and
OpenVINO files (mmdeploy's ``end2end.onnx`` / ``end2end.xml`` layout, ``end2end.json`` sidecar).

Every export ends by running each written file beside PyTorch on the config's test images and
printing the largest score difference and the top-1 agreement. Exit status: 0 when every file
is within its precision's tolerance; 1 when one is not (the message names the output and the
file; the files stay for inspection); 2 for bad input (a checkpoint that does not fit the
config, a missing backend package, a refused precision), with one ``export.py: error:`` line.

Examples:
    python tools/export.py configs/demo/resnext50_32x4d_imagenet_demo.py CKPT --out deploy/x
    python tools/export.py CONFIG CKPT --out DIR --backend openvino --precision fp32 bf16 int8
    python tools/test.py CONFIG DIR/end2end.onnx      # the config's metrics, exported model
"""
from __future__ import annotations

import argparse
import sys

from mmengine.config import DictAction

from .. import upstream_fixes
from ..export import (
    BACKENDS,
    PRECISIONS,
    ExportError,
    MissingBackendError,
    VerificationError,
    export_model,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Export a config and checkpoint to verified ONNX Runtime / OpenVINO files "
                    "(end2end.onnx, end2end.xml, end2end.json); see docs/export.md.")
    parser.add_argument("config", help="mmpretrain classifier or mmdet Mask R-CNN config")
    parser.add_argument("checkpoint", help="checkpoint whose weights fit the config")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--backend", nargs="+", choices=list(BACKENDS),
                        default=list(BACKENDS), help="backends to write (default: all)")
    parser.add_argument("--precision", nargs="+", choices=list(PRECISIONS), default=["fp32"],
                        help="; ".join(f"{p.name}: {p.description}"
                                       for p in PRECISIONS.values()) + " (default: fp32)")
    parser.add_argument("--calib-images", type=int, default=300,
                        help="training images (the config's train pipeline) that calibrate "
                             "int8 (default 300)")
    parser.add_argument("--verify-images", type=int, default=32,
                        help="test images (the config's test pipeline) the verification "
                             "compares on (default 32)")
    parser.add_argument("--cfg-options", nargs="+", action=DictAction, metavar="KEY=VALUE",
                        help="override config settings")
    args = parser.parse_args(argv)
    for name in ("calib_images", "verify_images"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    upstream_fixes.apply_all()
    try:
        result = export_model(args.config, args.checkpoint, args.out, args.backend,
                              args.precision, calib_images=args.calib_images,
                              verify_images=args.verify_images, cfg_options=args.cfg_options)
    except VerificationError as err:
        print(f"export.py: verification failed: {err}", file=sys.stderr)
        return 1
    except (MissingBackendError, ExportError, FileNotFoundError, ValueError) as err:
        print(f"export.py: error: {err}", file=sys.stderr)
        return 2
    except NotImplementedError as err:
        print(f"export.py: error: {err}", file=sys.stderr)
        return 2
    print(f"export done: {len(result.files)} verified file(s) in {result.out_dir}")
    return 0

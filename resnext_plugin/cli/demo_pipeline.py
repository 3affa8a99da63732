"""The end-to-end demo behind `make demo`: pretrain, convert, transfer to Mask R-CNN, evaluate.

Steps, each through the project's own command-line tools (their ``main``, in this one process
unless ``--isolated``; the chain itself is :mod:`resnext_plugin.cli.demo_chain`):

1. generate the demo data: ``tools/make_demo_imagenet.py`` and ``tools/make_demo_coco.py``;
2. demo ImageNet pretraining: ``tools/train.py configs/demo/resnext50_32x4d_imagenet_demo.py``,
   evaluated with ``tools/test.py`` (top-1);
3. conversion of the classifier checkpoint to a backbone checkpoint:
   ``tools/convert_checkpoint.py SRC DST --from plugin --to backbone``;
4. the untrained detector (pretrained backbone, randomly initialised FPN and heads) evaluated
   with ``tools/test.py``: the baseline;
5. Mask R-CNN transfer training:
   ``tools/train.py configs/demo/mask-rcnn_resnext50-32x4d_fpn_demo.py``;
6. COCO evaluation (pycocotools bbox and segm AP) with ``tools/test.py``, and a drawn prediction
   with ``tools/demo.py``;
7. a summary (printed and written to ``<work-root>/summary.json``).

Example:
    python tools/demo_pipeline.py                      # what `make demo` runs
    python tools/demo_pipeline.py --skip-pretrain      # reuse the pretraining of an earlier run
    python tools/demo_pipeline.py --threads 1          # leave the other cores to other work
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence

from resnext_plugin.cli.demo_chain import (
    DemoOptions,
    InProcessTools,
    SubprocessTools,
    default_threads,
    format_summary,
    run_demo,
    write_summary,
)
from resnext_plugin.paths import REPO_ROOT as ROOT  # the demo's configs and tools; it runs there


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work-root", default="work_dirs/demo",
                        help="folder for every run's logs and checkpoints")
    parser.add_argument("--imagenet-root", default="data/demo_imagenet")
    parser.add_argument("--coco-root", default="data/demo_coco")
    parser.add_argument("--skip-pretrain", action="store_true",
                        help="reuse <work-root>/imagenet's last checkpoint instead of pretraining")
    parser.add_argument("--pretrain-options", nargs="*", default=[], metavar="KEY=VALUE",
                        help="--cfg-options for the pretraining run (e.g. to shorten it)")
    parser.add_argument("--detection-options", nargs="*", default=[], metavar="KEY=VALUE",
                        help="--cfg-options for the Mask R-CNN training and tests")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads every step computes with (default: all cores this "
                             f"process may use, {default_threads()} here)")
    parser.add_argument("--isolated", action="store_true",
                        help="run each tool in its own Python process (each start imports "
                             "torch, mmengine and mmdet again: slower)")
    args = parser.parse_args(argv)
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    return args


def use_threads(threads: int) -> None:
    """Compute with ``threads`` threads here and in every process started from here."""
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(threads)
    import torch

    torch.set_num_threads(threads)


def main(argv: Sequence[str] | None = None) -> int:
    start = time.perf_counter()
    args = parse_args(argv)
    os.chdir(ROOT)
    threads = args.threads or default_threads()
    use_threads(threads)
    print(f"using {threads} CPU thread(s) per step (--threads to change)", flush=True)
    options = DemoOptions(work_root=args.work_root, imagenet_root=args.imagenet_root,
                          coco_root=args.coco_root, skip_pretrain=args.skip_pretrain,
                          pretrain_options=args.pretrain_options,
                          detection_options=args.detection_options, threads=threads,
                          repo_root=str(ROOT))
    tools = SubprocessTools(ROOT / "tools") if args.isolated else InProcessTools(threads)
    try:
        summary = run_demo(options, tools)
    except (RuntimeError, FileNotFoundError, ValueError) as err:
        print(f"demo_pipeline: error: {err}", file=sys.stderr)
        return 1
    summary["total_s"] = round(time.perf_counter() - start, 1)
    write_summary(summary, args.work_root)
    print("\n" + format_summary(summary))
    return 0


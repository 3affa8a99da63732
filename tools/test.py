"""Evaluate a checkpoint with an OpenMMLab 2.0 config (mmpretrain, mmdet or plain mmengine).

Runs the config's ``test_dataloader`` and ``test_evaluator`` with mmengine's ``Runner`` in the
config's ``default_scope``; multi-process runs also work without a GPU.

Examples:
    python tools/test.py configs/demo/resnext50_32x4d_imagenet_demo.py work_dirs/x/epoch_8.pth
    python tools/test.py CONFIG CKPT --out results/metrics.json     # the metrics as JSON
    python tools/test.py CONFIG CKPT --out results/preds.pkl        # the raw predictions
    bash tools/dist_test.sh CONFIG CKPT 8
"""
from __future__ import annotations

import argparse
import json
import os
import os.path as osp
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mmengine.config import Config, ConfigDict, DictAction  # noqa: E402
from mmengine.dist import is_main_process  # noqa: E402

from resnext_plugin.engine.data import DataNotFoundError  # noqa: E402
from resnext_plugin.engine.dist import setup_distributed  # noqa: E402
from resnext_plugin.engine.runner import (  # noqa: E402
    add_launcher_args,
    build_runner,
    export_local_rank,
    load_config,
    require_file,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", help="test config file path")
    parser.add_argument("checkpoint", help="checkpoint file")
    parser.add_argument("--work-dir", help="where the test log goes "
                        "(default: ./work_dirs/<config name>)")
    parser.add_argument("--out", help="write the metrics (.json) or the raw predictions "
                        "(.pkl / .pickle, mmengine's DumpResults) to this file")
    parser.add_argument("--cfg-options", nargs="+", action=DictAction, metavar="KEY=VALUE",
                        help="override config settings")
    add_launcher_args(parser)
    args = parser.parse_args(argv)
    export_local_rank(args)
    return args


def build_config(args: argparse.Namespace) -> Config:
    """The config file with the command line applied (a new object).

    Raises:
        FileNotFoundError: The config or the checkpoint does not exist.
        ValueError: ``--out`` has another extension than .json, .pkl or .pickle.
    """
    require_file("config file", args.config)
    require_file("checkpoint", args.checkpoint)
    if args.out and not args.out.endswith((".json", ".pkl", ".pickle")):
        raise ValueError(f"--out must end with .json, .pkl or .pickle, got '{args.out}'")
    cfg = load_config(args)
    cfg.load_from = args.checkpoint
    cfg.resume = False
    if args.out and args.out.endswith((".pkl", ".pickle")):
        evaluators = cfg.test_evaluator
        evaluators = list(evaluators) if isinstance(evaluators, (list, tuple)) else [evaluators]
        evaluators.append(ConfigDict(type="DumpResults", out_file_path=args.out))
        cfg.test_evaluator = evaluators
    return cfg


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        cfg = build_config(args)
    except (FileNotFoundError, ValueError) as err:
        print(f"test.py: error: {err}", file=sys.stderr)
        return 2
    cfg = setup_distributed(cfg, args.launcher)
    runner = build_runner(cfg)
    try:
        metrics = runner.test()
    except DataNotFoundError as err:
        print(f"test.py: error: {err}", file=sys.stderr)
        return 2
    if args.out and args.out.endswith(".json") and is_main_process():
        os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            json.dump({k: v for k, v in metrics.items() if isinstance(v, (int, float, str))},
                      f, indent=2)
        print(f"metrics written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

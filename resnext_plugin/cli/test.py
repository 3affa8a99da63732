"""Evaluate a checkpoint with an OpenMMLab 2.0 config (mmpretrain, mmdet or plain mmengine).

Runs the config's ``test_dataloader`` and ``test_evaluator`` with mmengine's ``Runner`` in the
config's ``default_scope``; multi-process runs also work without a GPU. The options are those of
mmdet's and mmpretrain's own ``tools/test.py`` (``--out``, ``--out-item``, ``--show-dir``,
``--show``, ``--wait-time``, ``--interval``, ``--tta``), for both kinds of config.

Examples:
    python tools/test.py configs/demo/resnext50_32x4d_imagenet_demo.py work_dirs/x/epoch_8.pth
    python tools/test.py CONFIG CKPT --out results/metrics.json     # the metrics
    python tools/test.py CONFIG CKPT --out results/preds.pkl        # every prediction
    python tools/test.py CONFIG CKPT --show-dir results/drawn       # predictions drawn on images
    python tools/test.py CONFIG CKPT --tta                          # the config's tta_model
    python tools/test.py CONFIG DIR/end2end.onnx                    # an exported model
    bash tools/dist_test.sh CONFIG CKPT 8
"""
from __future__ import annotations

import argparse
import os
import os.path as osp

import mmengine
from mmengine.config import Config
from mmengine.dist import is_main_process
from mmengine.runner import Runner

from resnext_plugin.cli.runner_setup import (
    load_config,
    parse_launcher_args,
    require_file,
    run_tool,
)
from resnext_plugin.engine.testing import (
    add_prediction_dump,
    enable_visualization,
    fresh_visualizer_name,
    resolve_out_item,
    use_tta,
)
from resnext_plugin.export.evaluation import is_exported_model, use_exported_model


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", help="test config file path")
    parser.add_argument("checkpoint", help="checkpoint file, or an exported model "
                        "(end2end.onnx / end2end.xml from tools/export.py)")
    parser.add_argument("--work-dir", help="where the test log goes "
                        "(default: ./work_dirs/<config name>)")
    parser.add_argument("--out", help="write the predictions (.pkl / .pickle: mmdet's "
                        "DumpDetResults for mmdet configs, mmengine's DumpResults otherwise) or "
                        "the metrics (.json / .yaml / .yml) to this file")
    parser.add_argument("--out-item", choices=["metrics", "pred"],
                        help="what --out holds, as in mmpretrain's tools/test.py (default: by "
                        "the suffix of --out; 'metrics' may also be written as .pkl)")
    parser.add_argument("--show-dir", help="draw the predictions (mmdet: beside the ground "
                        "truth) onto the test images and save them in this directory")
    parser.add_argument("--show", action="store_true",
                        help="display the drawn predictions in a window")
    parser.add_argument("--wait-time", type=float, default=2.0,
                        help="seconds each window stays with --show")
    parser.add_argument("--interval", type=int, default=None,
                        help="mmpretrain configs: draw every n-th test sample (default 1)")
    parser.add_argument("--tta", action="store_true",
                        help="test-time augmentation with the config's tta_model and "
                        "tta_pipeline (the ImageNet configs: horizontal flip; the Mask R-CNN "
                        "configs have none, mmdet's DetTTAModel refuses masks)")
    return parse_launcher_args(
        parser, argv, cfg_options_help="override config settings (before --tta replaces the "
        "test pipeline: override tta_pipeline.* to change the TTA pipeline)")


def build_config(args: argparse.Namespace) -> Config:
    """The config file with the command line applied (a new object).

    Raises:
        FileNotFoundError: The config or the checkpoint does not exist.
        ValueError: A bad ``--out``/``--out-item`` pair; ``--tta`` on a config without
            ``tta_model``/``tta_pipeline``; ``--show``/``--show-dir`` on a config without a
            visualization hook.
    """
    require_file("config file", args.config)
    require_file("checkpoint", args.checkpoint)
    out_item = resolve_out_item(args.out, args.out_item)
    cfg = load_config(args)
    if is_exported_model(args.checkpoint):  # end2end.onnx / .xml from tools/export.py
        use_exported_model(cfg, args.checkpoint)
    else:
        cfg.load_from = args.checkpoint
    cfg.resume = False
    fresh_visualizer_name(cfg)
    if args.show or args.show_dir:
        enable_visualization(cfg, args.show_dir, args.show, args.wait_time, args.interval)
    elif args.interval is not None:
        raise ValueError("--interval needs --show or --show-dir")
    if args.tta:
        try:
            use_tta(cfg)
        except ValueError as err:
            raise ValueError(f"{args.config}: {err}") from None
    if out_item == "pred":
        add_prediction_dump(cfg, args.out)
    return cfg


def write_metrics(metrics: dict, out: str) -> None:
    """``metrics`` to ``out`` in the format its suffix names (mmengine's ``dump``)."""
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    mmengine.dump(metrics, out, **({"indent": 2} if out.lower().endswith(".json") else {}))
    print(f"metrics written to {out}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def test(runner: Runner) -> int:
        metrics = runner.test()
        if resolve_out_item(args.out, args.out_item) == "metrics" and is_main_process():
            write_metrics(metrics, args.out)
        elif args.out and is_main_process():
            print(f"predictions written to {args.out}")
        return 0

    return run_tool("test.py", args, build_config, test)

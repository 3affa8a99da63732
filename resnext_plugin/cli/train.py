"""Train a model from an OpenMMLab 2.0 config (mmpretrain, mmdet or plain mmengine).

The runner is mmengine's ``Runner`` (or the config's ``runner_type``) in the config's
``default_scope``, as with mmpretrain's and mmdet's own ``tools/train.py``. Multi-process runs
(``--launcher pytorch|slurm|mpi``) also work without a GPU: see
:mod:`resnext_plugin.engine.dist`.

Examples:
    python tools/train.py configs/demo/resnext50_32x4d_imagenet_demo.py
    python tools/train.py CONFIG --work-dir work_dirs/x --resume            # latest checkpoint
    python tools/train.py CONFIG --resume work_dirs/x/epoch_3.pth --amp --auto-scale-lr
    python tools/train.py CONFIG --amp --channels-last --compile            # speed knobs
    bash tools/dist_train.sh CONFIG 8                                       # torchrun, 8 procs
"""
from __future__ import annotations

import argparse
import os.path as osp

from mmengine.config import Config
from mmengine.runner import Runner

from resnext_plugin.cli.runner_setup import (
    load_config,
    parse_launcher_args,
    require_file,
    run_tool,
)
from resnext_plugin.engine.amp import AmpOptimWrapper  # noqa: F401  (registers it)
from resnext_plugin.engine.speed import AMP_DTYPES, apply_speed_knobs


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", help="train config file path")
    parser.add_argument("--work-dir", help="where logs and checkpoints go "
                        "(default: the config's work_dir, else ./work_dirs/<config name>)")
    parser.add_argument("--resume", nargs="?", type=str, const="auto", metavar="CKPT",
                        help="resume from CKPT; without CKPT, from the latest checkpoint in the "
                        "work dir")
    parser.add_argument("--amp", action="store_true",
                        help="automatic mixed precision (resnext_plugin.AmpOptimWrapper): fp16 "
                        "on CUDA; bf16 on CPUs that run it natively (AVX-512 BF16/AMX), "
                        "otherwise fp32 with a logged reason")
    parser.add_argument("--amp-dtype", choices=AMP_DTYPES, default=None,
                        help="with --amp: autocast dtype (auto: float16 on CUDA, bfloat16 on "
                        "CPU; never bf16 on a CPU without native bf16)")
    parser.add_argument("--channels-last", action="store_true",
                        help="run the backbone in channels_last memory format "
                        "(model.backbone.channels_last=True; the plugin's ResNeXt only)")
    parser.add_argument("--compile", nargs="?", const=True, default=False, metavar="BACKEND",
                        help="torch.compile the training step (mmengine's compile=True); "
                        "optionally a backend, e.g. aot_eager")
    parser.add_argument("--auto-scale-lr", action="store_true",
                        help="scale the lr linearly with the total batch size "
                        "(auto_scale_lr.base_batch_size of the config)")
    parser.add_argument("--no-validate", action="store_true",
                        help="do not validate during training")
    return parse_launcher_args(
        parser, argv, cfg_options_help="override config settings, e.g. train_cfg.max_epochs=2 "
        "'model.backbone.out_indices=(3,)'")


def build_config(args: argparse.Namespace) -> Config:
    """The config file with the command line applied (a new object).

    Raises:
        FileNotFoundError: The config or the ``--resume`` checkpoint does not exist.
        ValueError: ``--amp`` with another optim_wrapper type, ``--channels-last`` with another
            backbone, ``--auto-scale-lr`` without ``auto_scale_lr``.
    """
    require_file("config file", args.config)
    cfg = load_config(args)
    apply_speed_knobs(cfg, amp=args.amp, amp_dtype=args.amp_dtype,
                      channels_last=args.channels_last, compile=args.compile)

    if args.auto_scale_lr:
        if "base_batch_size" not in cfg.get("auto_scale_lr", {}):
            raise ValueError("--auto-scale-lr: the config has no "
                             "auto_scale_lr=dict(base_batch_size=...)")
        cfg.auto_scale_lr.enable = True

    if args.resume == "auto":
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        if not osp.isfile(args.resume):
            raise FileNotFoundError(f"--resume: checkpoint not found: '{args.resume}'")
        cfg.resume = True
        cfg.load_from = args.resume

    if args.no_validate:
        cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    return cfg


def train(runner: Runner) -> int:
    """Train; exit status 0."""
    runner.train()
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_tool("train.py", parse_args(argv), build_config, train)

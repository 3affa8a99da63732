"""Build the runner a config asks for, in the config's own registry scope; the command-line
handling ``tools/train.py`` and ``tools/test.py`` share."""
from __future__ import annotations

import argparse
import os
import os.path as osp

from mmengine.config import Config, DictAction
from mmengine.registry import RUNNERS, init_default_scope
from mmengine.runner import Runner

from .dist import LAUNCHERS


def build_runner(cfg: Config) -> Runner:
    """mmengine's ``Runner.from_cfg`` or, if the config names one, its ``runner_type``.

    Works for mmpretrain, mmdet and plain mmengine configs alike: the runner switches to the
    config's ``default_scope`` (``'mmengine'`` when it has none).
    """
    if "runner_type" in cfg:
        init_default_scope(cfg.get("default_scope", "mmengine"))
        return RUNNERS.build(cfg)
    return Runner.from_cfg(cfg)


def add_launcher_args(parser: argparse.ArgumentParser) -> None:
    """``--launcher`` and the ``--local-rank`` that ``torch.distributed.launch`` passes."""
    parser.add_argument("--launcher", choices=LAUNCHERS, default="none",
                        help="job launcher (pytorch = torchrun)")
    # torch.distributed.launch passes --local-rank (older: --local_rank).
    parser.add_argument("--local_rank", "--local-rank", type=int, default=0,
                        help=argparse.SUPPRESS)


def parse_launcher_args(parser: argparse.ArgumentParser, argv: list[str] | None,
                        cfg_options_help: str) -> argparse.Namespace:
    """Add ``--cfg-options`` and the launcher arguments to ``parser``, parse ``argv`` and export
    ``LOCAL_RANK`` (what ``tools/train.py`` and ``tools/test.py`` share)."""
    parser.add_argument("--cfg-options", nargs="+", action=DictAction, metavar="KEY=VALUE",
                        help=cfg_options_help)
    add_launcher_args(parser)
    args = parser.parse_args(argv)
    export_local_rank(args)
    return args


def export_local_rank(args: argparse.Namespace) -> None:
    """Export ``--local-rank`` as ``LOCAL_RANK`` unless the launcher already did."""
    if "LOCAL_RANK" not in os.environ:
        os.environ["LOCAL_RANK"] = str(args.local_rank)


def require_file(what: str, path: str) -> None:
    """Raise ``FileNotFoundError`` naming ``what`` and ``path`` if ``path`` is not a file."""
    if not osp.isfile(path):
        raise FileNotFoundError(f"{what} not found: '{path}'")


def load_config(args: argparse.Namespace) -> Config:
    """``args.config`` with ``--cfg-options``, ``--launcher`` and the work dir applied.

    The work dir is ``--work-dir``, else the config's ``work_dir``, else
    ``./work_dirs/<config name>``.
    """
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    cfg.launcher = args.launcher
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get("work_dir") is None:
        cfg.work_dir = osp.join("./work_dirs", osp.splitext(osp.basename(args.config))[0])
    return cfg

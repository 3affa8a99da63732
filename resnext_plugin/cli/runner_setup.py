"""What ``tools/train.py`` and ``tools/test.py`` share: their launcher and ``--cfg-options``
arguments, the config with the command line applied, and the fixes, process group and runner
set up before running."""
from __future__ import annotations

import argparse
import os
import os.path as osp
import sys
from collections.abc import Callable, Sequence
from typing import Optional

from mmengine.config import Config, DictAction
from mmengine.runner import Runner

from resnext_plugin import upstream_fixes
from resnext_plugin.datasets import DataNotFoundError
from resnext_plugin.engine.dist import LAUNCHERS, setup_distributed
from resnext_plugin.engine.runner import build_runner


def add_cfg_options(parser: argparse.ArgumentParser, help: Optional[str] = None,
                    default: Optional[dict] = None) -> None:
    """``--cfg-options KEY=VALUE ...``, parsed by mmengine's ``DictAction``."""
    parser.add_argument("--cfg-options", nargs="+", action=DictAction, metavar="KEY=VALUE",
                        default=default, help=help)


def parse_launcher_args(parser: argparse.ArgumentParser, argv: Optional[Sequence[str]],
                        cfg_options_help: str) -> argparse.Namespace:
    """Add ``--cfg-options``, ``--launcher`` and the ``--local-rank`` that
    ``torch.distributed.launch`` passes to ``parser``, parse ``argv`` and export ``LOCAL_RANK``
    (unless the launcher already did)."""
    add_cfg_options(parser, cfg_options_help)
    parser.add_argument("--launcher", choices=LAUNCHERS, default="none",
                        help="job launcher (pytorch = torchrun)")
    # torch.distributed.launch passes --local-rank (older: --local_rank).
    parser.add_argument("--local_rank", "--local-rank", type=int, default=0,
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    os.environ.setdefault("LOCAL_RANK", str(args.local_rank))
    return args


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


def runner_or_error(tool: str, args: argparse.Namespace,
                    build_config: Callable[[argparse.Namespace], Config]) -> Optional[Runner]:
    """The runner for ``args``, or ``None`` after printing ``<tool>: error: ...`` when the config
    or a file it names is bad (the caller exits with 2).

    :func:`resnext_plugin.upstream_fixes.apply_all` runs first, also for configs that do not
    import it; the process group is set up (without a GPU too) before the runner is built.
    """
    upstream_fixes.apply_all()
    try:
        cfg = build_config(args)
    except (FileNotFoundError, ValueError) as err:
        print(f"{tool}: error: {err}", file=sys.stderr)
        return None
    return build_runner(setup_distributed(cfg, args.launcher))


def run_tool(tool: str, args: argparse.Namespace,
             build_config: Callable[[argparse.Namespace], Config],
             run: Callable[[Runner], int]) -> int:
    """The frame of ``tools/train.py`` and ``tools/test.py``: the runner for ``args``
    (:func:`runner_or_error`), then ``run(runner)``'s exit status.

    Exit status 2 with ``<tool>: error: ...`` on stderr when the config or a file it names is bad,
    or when the data is missing (:class:`~resnext_plugin.datasets.DataNotFoundError`, also written
    to the run's log).
    """
    runner = runner_or_error(tool, args, build_config)
    if runner is None:
        return 2
    try:
        return run(runner)
    except DataNotFoundError as err:
        runner.logger.error(str(err))
        print(f"{tool}: error: {err}", file=sys.stderr)
        return 2

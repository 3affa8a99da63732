"""What ``tools/train.py`` and ``tools/test.py`` do before running: fixes, config, process group,
runner."""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Optional

from mmengine.config import Config
from mmengine.runner import Runner

from resnext_plugin import upstream_fixes
from resnext_plugin.engine.dist import setup_distributed
from resnext_plugin.engine.runner import build_runner


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

"""Build the runner a config asks for, in the config's own registry scope.

The command-line handling around it (``--cfg-options``, ``--launcher``, ``--work-dir``) is in
:mod:`resnext_plugin.cli.runner_setup`.
"""
from __future__ import annotations

from mmengine.config import Config
from mmengine.registry import RUNNERS, init_default_scope
from mmengine.runner import Runner


def build_runner(cfg: Config) -> Runner:
    """mmengine's ``Runner.from_cfg`` or, if the config names one, its ``runner_type``.

    Works for mmpretrain, mmdet and plain mmengine configs alike: the runner switches to the
    config's ``default_scope`` (``'mmengine'`` when it has none).
    """
    if "runner_type" in cfg:
        init_default_scope(cfg.get("default_scope", "mmengine"))
        return RUNNERS.build(cfg)
    return Runner.from_cfg(cfg)

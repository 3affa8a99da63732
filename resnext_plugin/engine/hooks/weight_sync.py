"""``resnext_plugin.WeightSyncCheckHook``: every rank holds bit-identical parameters.

In distributed training, checks that DDP averaged the gradients, and stops the run if not.
"""
from __future__ import annotations

import hashlib
import json
import os
import os.path as osp
from typing import Any, Optional

import torch
from mmengine.dist import all_gather_object, get_rank, get_world_size
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from ...registry import HOOKS


def parameter_digests(model: torch.nn.Module) -> dict[str, str]:
    """SHA-1 of every parameter's bytes, by name (``module.`` of a wrapper dropped)."""
    if is_model_wrapper(model):
        model = model.module
    return {name: hashlib.sha1(p.detach().cpu().contiguous().numpy().tobytes()).hexdigest()
            for name, p in model.named_parameters()}


@HOOKS.register_module()
class WeightSyncCheckHook(Hook):
    """Check that all ranks hold bit-identical parameters (DDP's gradient averaging at work).

    Before training and every ``interval`` iterations each rank hashes its parameters; the
    digests are gathered, rank 0 logs the result, and a mismatch raises ``RuntimeError`` naming
    the first differing parameter. Does nothing outside distributed training.

    Args:
        interval: Check every this many training iterations.
        out_dir: If given, every rank also writes ``rank{r}_iter{i}.json`` (its digests) there,
            for an outside check.
    """

    priority = "LOW"

    def __init__(self, interval: int = 50, out_dir: Optional[str] = None) -> None:
        if interval < 1:
            raise ValueError(f"WeightSyncCheckHook: `interval` must be >= 1, got {interval!r}")
        self.interval = interval
        self.out_dir = out_dir

    def before_train(self, runner) -> None:
        self._check(runner, runner.iter)

    def after_train_iter(self, runner, batch_idx: int, data_batch: Any = None,
                         outputs: Any = None) -> None:
        if self.every_n_train_iters(runner, self.interval) or self.is_last_train_iter(runner):
            self._check(runner, runner.iter + 1)

    def _check(self, runner, iteration: int) -> None:
        if get_world_size() < 2:
            return
        digests = parameter_digests(runner.model)
        if self.out_dir:
            os.makedirs(self.out_dir, exist_ok=True)
            with open(osp.join(self.out_dir, f"rank{get_rank()}_iter{iteration}.json"), "w") as f:
                json.dump(digests, f)
        gathered = all_gather_object(digests)
        for rank, other in enumerate(gathered[1:], start=1):
            for name, digest in gathered[0].items():
                if other.get(name) != digest:
                    raise RuntimeError(
                        f"WeightSyncCheckHook: after iteration {iteration} parameter '{name}' "
                        f"differs between rank 0 and rank {rank}; gradients are not averaged "
                        "across ranks (is the model wrapped in DistributedDataParallel?)")
        overall = hashlib.sha1("".join(gathered[0].values()).encode()).hexdigest()[:12]
        runner.logger.info(f"WeightSyncCheckHook: iteration {iteration}: parameters identical on "
                           f"all {len(gathered)} ranks (digest {overall})")

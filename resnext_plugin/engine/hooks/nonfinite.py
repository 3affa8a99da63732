"""Stop training on a NaN or infinite loss before that state is checkpointed.

mmengine 0.10.7 trains on through a non-finite loss: the weights turn to NaN and the next
``CheckpointHook`` saves them, so the run's newest checkpoint, the one ``--resume`` picks, is
useless. This hook runs after every training iteration, before the checkpoint hook (higher
priority), agrees across ranks (so that no rank is left waiting in a collective) and raises
:class:`NonFiniteLossError` naming the iteration, the loss terms and the last good checkpoint.
(mmdet's ``CheckInvalidLossHook`` asserts after the step, every 50 iterations by default, on
rank-local values, and exists only in mmdet.)
"""
from __future__ import annotations

import math
from typing import Any, Optional

import torch
from mmengine.dist import all_reduce, get_world_size
from mmengine.hooks import Hook
from mmengine.runner.checkpoint import find_latest_checkpoint

from ...registry import HOOKS


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite."""


def _non_finite_terms(outputs: Optional[dict]) -> dict[str, float]:
    terms: dict[str, float] = {}
    for name, value in (outputs or {}).items():
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            value = value.item()
        if isinstance(value, float) and not math.isfinite(value):
            terms[name] = value
    return terms


@HOOKS.register_module()
class StopOnNonFiniteLossHook(Hook):
    """Raise :class:`NonFiniteLossError` when any logged loss term is NaN or infinite.

    Args:
        interval (int): Check every ``interval`` iterations. Defaults to 1 (each iteration; the
            check reads values the logger reads anyway).
    """

    priority = "ABOVE_NORMAL"  # before CheckpointHook (VERY_LOW) writes this iteration's state

    def __init__(self, interval: int = 1) -> None:
        if not isinstance(interval, int) or interval < 1:
            raise ValueError(f"StopOnNonFiniteLossHook: `interval` must be an integer >= 1, "
                             f"got {interval!r}")
        self.interval = interval

    def after_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None,
                         outputs: Optional[dict] = None) -> None:
        if not self.every_n_train_iters(runner, self.interval):
            return
        terms = _non_finite_terms(outputs)
        bad = torch.tensor(float(bool(terms)))
        if get_world_size() > 1:
            all_reduce(bad, op="max")  # every rank stops together
        if bad.item() == 0:
            return
        last = find_latest_checkpoint(runner.work_dir)
        where = f"the local loss terms {terms}" if terms else "another rank's loss"
        raise NonFiniteLossError(
            f"non-finite loss at iteration {runner.iter + 1} (epoch {runner.epoch + 1}): {where}. "
            f"Training stopped before this state was checkpointed; the last good checkpoint is "
            f"{last or 'none (no checkpoint written yet)'} in {runner.work_dir}. Lower the "
            "learning rate or enable gradient clipping (optim_wrapper.clip_grad), then resume "
            "with --resume.")

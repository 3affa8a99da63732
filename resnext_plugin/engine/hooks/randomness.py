"""Random draws that depend on the training step, not on the process's history, so that a
resumed run draws what an uninterrupted one draws.

mmengine 0.10.7 seeds the generators once, when the runner starts, and a resumed run is a new
start: after resuming at epoch k of an ``EpochBasedTrainLoop``, ``RandomFlip`` and
``RandomResizedCrop`` (NumPy) and mmdet's proposal samplers (torch) draw epoch 1's numbers again,
and the validation data loader, which the uninterrupted run built in between, has consumed a
torch draw that the resumed run never sees. :class:`ResumableRandomnessHook` reseeds instead:

* before each training epoch, Python's ``random``, NumPy's global generator and torch's
  generators from (the run's seed, the epoch, the rank when ``diff_rank_seed``);
* before each training iteration, torch's generators from (seed, iteration, rank), for the draws
  inside the model (RoI sampling, dropout, stochastic depth).

Nothing is stored in the checkpoint: mmengine already saves the run's seed and restores it on
resume. With an ``IterBasedTrainLoop``, mmengine replays the skipped batches after
``before_train_epoch``, which reproduces the data-side draws; the per-iteration torch seed
reproduces the model-side ones. Data-loader workers (``num_workers > 0``) have their own
generators, which mmengine seeds from the seed and the worker index whenever they start; with
``persistent_workers=True`` they continue across epochs and a resumed run restarts them, so
exact resumption needs ``persistent_workers=False`` or ``num_workers=0``.
"""
from __future__ import annotations

import random
from typing import Any, Optional

import numpy as np
import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook

from ...registry import HOOKS

_EPOCH, _ITER = 0, 1


def derive_seed(seed: int, kind: int, step: int, rank: int) -> int:
    """A 63-bit seed from (seed, kind of step, step, rank), well mixed by NumPy's SeedSequence."""
    entropy = [int(seed) & 0xFFFFFFFFFFFFFFFF, kind, int(step), int(rank)]
    return int(np.random.SeedSequence(entropy).generate_state(2, np.uint32).view(np.uint64)[0]
               >> np.uint64(1))


@HOOKS.register_module()
class ResumableRandomnessHook(Hook):
    """Reseed the generators from the training step so that resumed runs repeat their draws.

    Args:
        per_iteration (bool): Also reseed torch before every training iteration (model-side
            draws). Defaults to True.
    """

    priority = "VERY_HIGH"

    def __init__(self, per_iteration: bool = True) -> None:
        if not isinstance(per_iteration, bool):
            raise TypeError(f"ResumableRandomnessHook: `per_iteration` must be a bool, got "
                            f"{per_iteration!r}")
        self.per_iteration = per_iteration

    @staticmethod
    def _seed_and_rank(runner: Any) -> tuple[int, int]:
        diff_rank_seed = (getattr(runner, "_randomness_cfg", None) or {}).get(
            "diff_rank_seed", False)
        return int(runner.seed), get_rank() if diff_rank_seed else 0

    def before_train_epoch(self, runner: Any) -> None:
        seed, rank = self._seed_and_rank(runner)
        value = derive_seed(seed, _EPOCH, runner.epoch, rank)
        random.seed(value)
        np.random.seed(value % 2**32)
        torch.manual_seed(value)

    def before_train_iter(self, runner: Any, batch_idx: int,
                          data_batch: Optional[Any] = None) -> None:
        if self.per_iteration:
            seed, rank = self._seed_and_rank(runner)
            torch.manual_seed(derive_seed(seed, _ITER, runner.iter, rank))

"""``resnext_plugin.TrainingCurvesHook``: the training losses and validation metrics as a PNG.

Drawn into the work dir (``training_curves.png``), refreshed after every validation and at the end
of training. The hook keeps its own history rather than reading mmengine's ``LocalVisBackend``
``scalars.json``: that file is per run (a new timestamped folder after ``--resume``), while this
history travels inside the checkpoints, so a resumed run draws the whole curve.
"""
from __future__ import annotations

import math
import os.path as osp
from collections.abc import Mapping
from typing import Any, Optional

import torch
from mmengine.dist import is_main_process
from mmengine.hooks import Hook

from ...checkpoint.atomic import atomic_write
from ...registry import HOOKS

_CURVES_META_KEY = "training_curves"


def _scalar(value: Any) -> Optional[float]:
    """``value`` as a finite float, or ``None`` when it is not a number."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            return None
        value = value.item()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = float(value)
        return value if math.isfinite(value) else None
    return None


def _moving_average(values: list[float], window: int) -> list[float]:
    out, total = [], 0.0
    for i, value in enumerate(values):
        total += value
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


@HOOKS.register_module()
class TrainingCurvesHook(Hook):
    """Write a PNG of the training loss(es) and validation metrics into the work dir.

    The left panel shows every ``loss*`` value the model returns per iteration (the total
    ``loss`` bold, with a moving average); the right panel every numeric validation metric
    against the iteration it was measured at (percentages as mmpretrain reports them). Only the
    main process records and draws. The history is saved in each checkpoint's ``meta``, so a
    resumed run draws the whole run.

    Args:
        filename: PNG file name inside the work dir.
        smooth: Window (iterations) of the moving average drawn over the total loss.
        dpi: Resolution of the PNG.
    """

    priority = "VERY_LOW"

    def __init__(self, filename: str = "training_curves.png", smooth: int = 20,
                 dpi: int = 100) -> None:
        if not filename.lower().endswith(".png"):
            raise ValueError(f"TrainingCurvesHook: `filename` must end with .png, got {filename!r}")
        if smooth < 1:
            raise ValueError(f"TrainingCurvesHook: `smooth` must be >= 1, got {smooth!r}")
        self.filename = filename
        self.smooth = smooth
        self.dpi = dpi
        self.losses: dict[str, list[list[float]]] = {}  # name -> [[iter, value], ...]
        self.metrics: dict[str, list[list[float]]] = {}
        self._restored: Optional[dict] = None

    # -- recording ------------------------------------------------------------------------------
    def before_train(self, runner) -> None:
        # A checkpoint read by `load_from` (fine-tuning) starts a new run at iteration 0; only a
        # resumed run continues the saved curves.
        restored, self._restored = self._restored, None
        if restored and runner.iter > 0:
            for key, store in (("losses", self.losses), ("metrics", self.metrics)):
                for name, points in restored.get(key, {}).items():
                    store[name] = [list(p) for p in points if p[0] <= runner.iter]

    def after_train_iter(self, runner, batch_idx: int, data_batch: Any = None,
                         outputs: Optional[Mapping] = None) -> None:
        if not is_main_process() or not isinstance(outputs, Mapping):
            return
        for name, value in outputs.items():
            number = _scalar(value)
            if name.startswith("loss") and number is not None:
                self.losses.setdefault(name, []).append([runner.iter + 1, number])

    def after_val_epoch(self, runner, metrics: Optional[dict] = None) -> None:
        if not is_main_process() or not metrics:
            return
        for name, value in metrics.items():
            number = _scalar(value)
            if number is not None:
                self.metrics.setdefault(name, []).append([runner.iter, number])
        self.draw(self.path(runner))

    def after_train(self, runner) -> None:
        if is_main_process():
            self.draw(self.path(runner))

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint.setdefault("meta", {})[_CURVES_META_KEY] = dict(
            losses=self.losses, metrics=self.metrics)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        saved = checkpoint.get("meta", {}).get(_CURVES_META_KEY)
        if isinstance(saved, dict):
            self._restored = saved

    # -- drawing --------------------------------------------------------------------------------
    def path(self, runner) -> str:
        """Where the PNG goes: ``<work_dir>/<filename>``."""
        return osp.join(runner.work_dir, self.filename)

    def draw(self, path: str) -> Optional[str]:
        """Draw the recorded curves into ``path`` (written atomically); ``None`` if empty."""
        if not self.losses and not self.metrics:
            return None
        import matplotlib

        matplotlib.use("Agg", force=False)
        from matplotlib.figure import Figure

        fig = Figure(figsize=(11, 4.2), dpi=self.dpi)
        ax_loss, ax_metric = fig.subplots(1, 2)
        for name, points in sorted(self.losses.items(), key=lambda kv: kv[0] != "loss"):
            xs, ys = zip(*points)
            total = name == "loss"
            ax_loss.plot(xs, ys, lw=0.8 if total else 0.6, alpha=0.45 if total else 0.7,
                         label=name)
            if total and len(ys) > 1:
                ax_loss.plot(xs, _moving_average(list(ys), self.smooth), lw=2.0,
                             label=f"loss (mean of {self.smooth})")
        ax_loss.set(title="training loss", xlabel="iteration", ylabel="loss")
        if self.losses:
            ax_loss.legend(fontsize=8)
        for name, points in sorted(self.metrics.items()):
            xs, ys = zip(*points)
            ax_metric.plot(xs, ys, marker="o", ms=3, label=name)
            ax_metric.annotate(f"{ys[-1]:.4g}", (xs[-1], ys[-1]), fontsize=8,
                               textcoords="offset points", xytext=(3, 3))
        ax_metric.set(title="validation", xlabel="iteration", ylabel="metric")
        if self.metrics:
            ax_metric.legend(fontsize=8)
        else:
            ax_metric.text(0.5, 0.5, "no validation yet", ha="center", va="center",
                           transform=ax_metric.transAxes)
        for ax in (ax_loss, ax_metric):
            ax.grid(alpha=0.3)
        fig.tight_layout()
        atomic_write(path, lambda file: fig.savefig(file, format="png"))
        return path

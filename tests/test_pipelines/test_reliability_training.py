"""Reliability of real training runs: non-finite losses, a dying rank, killed runs.

Every test drives ``tools/train.py`` in subprocesses on the tiny generated ImageNet of
``test_pretrain`` (16 px images, a two-stage ResNeXt-50 32x4d).
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from helpers import checkpoint_state_dict, tiny_classifier_config
from test_pretrain import PY, ROOT, _check, _env, _free_port, _run, tiny_data

from resnext_plugin.engine.hooks import StopOnNonFiniteLossHook

__all__ = ["tiny_data"]  # the fixture, imported for pytest

NAN_GUARD = "\ncustom_hooks = [dict(type='resnext_plugin.StopOnNonFiniteLossHook')]\n"


def _finite(path: Path) -> bool:
    state = checkpoint_state_dict(path)
    return all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())


def test_non_finite_loss_stops_training_and_keeps_the_last_good_checkpoint(tmp_path, tiny_data):
    # Epoch 1 trains normally; from epoch 2 the lr is multiplied by 1e38 and the loss overflows.
    config = tiny_classifier_config(tmp_path, tiny_data, NAN_GUARD + (
        "param_scheduler = [dict(type='MultiStepLR', by_epoch=True, milestones=[1], "
        "gamma=1e38)]\n"))
    work_dir = tmp_path / "work"
    proc = _run([PY, "tools/train.py", str(config), "--work-dir", str(work_dir), "--no-validate",
                 "--cfg-options", "train_cfg.max_epochs=3"])
    log = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "NonFiniteLossError: non-finite loss at iteration" in log, log[-3000:]
    assert "epoch 2" in log and "epoch_1.pth" in log
    assert sorted(p.name for p in work_dir.glob("*.pth")) == ["epoch_1.pth"]
    assert _finite(work_dir / "epoch_1.pth")
    assert (work_dir / "last_checkpoint").read_text().strip().endswith("epoch_1.pth")


def test_nan_guard_rejects_a_bad_interval():
    with pytest.raises(ValueError, match="`interval` must be an integer >= 1"):
        StopOnNonFiniteLossHook(interval=0)


def _launch_rank(config: Path, work_dir: Path, rank: int, port: int, log: Path,
                 *extra: str) -> subprocess.Popen:
    env = _env(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1",
               MASTER_PORT=str(port))
    return subprocess.Popen(
        [PY, "tools/train.py", str(config), "--work-dir", str(work_dir), "--launcher", "pytorch",
         "--no-validate", *extra], cwd=ROOT, env=env, stdout=log.open("w"),
        stderr=subprocess.STDOUT)


def test_a_dying_rank_stops_the_other_in_bounded_time_and_resume_continues(tmp_path, tiny_data):
    """No agent (torchrun) watches these two ranks: rank 0 alone must notice rank 1's death."""
    config = tiny_classifier_config(tmp_path, tiny_data,
                          "env_cfg = dict(dist_cfg=dict(backend='gloo', timeout=60))\n")
    work_dir = tmp_path / "work"
    pointer = work_dir / "last_checkpoint"
    logs = [tmp_path / "rank0.log", tmp_path / "rank1.log"]
    port = _free_port()
    # Far more epochs than can run before the kill, whatever the machine's speed; the demo
    # config keeps one checkpoint, so the test follows `last_checkpoint`, not a file name.
    procs = [_launch_rank(config, work_dir, r, port, logs[r], "--cfg-options",
                          "train_cfg.max_epochs=100000") for r in (0, 1)]
    try:
        deadline = time.monotonic() + 240
        while not pointer.exists():
            assert time.monotonic() < deadline, logs[0].read_text()[-3000:]
            assert procs[0].poll() is None, logs[0].read_text()[-3000:]
            time.sleep(0.2)
        time.sleep(1.0)
        os.kill(procs[1].pid, signal.SIGKILL)
        killed_at = time.monotonic()
        code = procs[0].wait(timeout=120)
        waited = time.monotonic() - killed_at
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    log = logs[0].read_text()
    assert code != 0 and waited < 120
    assert any(word in log for word in ("Connection closed", "Connection reset", "timed out",
                                        "DistBackendError", "RuntimeError")), log[-3000:]

    # Relaunch both ranks with --resume: training continues from the last complete checkpoint.
    last = Path(pointer.read_text().strip())
    assert last.is_file() and _finite(last)
    reached = int(re.fullmatch(r"epoch_(\d+)\.pth", last.name).group(1))
    port = _free_port()
    resumed = [_launch_rank(config, work_dir, r, port, tmp_path / f"resume{r}.log", "--resume",
                            "--cfg-options", f"train_cfg.max_epochs={reached + 1}")
               for r in (0, 1)]
    codes = [proc.wait(timeout=300) for proc in resumed]
    log = (tmp_path / "resume0.log").read_text()
    assert codes == [0, 0], log[-3000:]
    assert f"resumed epoch: {reached}," in log
    assert f"Epoch(train) [{reached + 1}][" in log
    assert (work_dir / f"epoch_{reached + 1}.pth").exists()
    assert _finite(work_dir / f"epoch_{reached + 1}.pth")


# Fast sibling (default run): test_reliability_backbone.py::test_sigkill_during_a_checkpoint_write
@pytest.mark.slow
def test_sigkill_at_random_points_never_leaves_a_checkpoint_resume_fails_on(tmp_path, tiny_data):
    """Kill a run at a few points, including inside checkpoint writes (every iteration saves),
    then resume: each time the run continues from its last complete checkpoint."""
    config = tiny_classifier_config(tmp_path, tiny_data, "default_hooks = dict(checkpoint=dict("
                          "by_epoch=False, interval=1, max_keep_ckpts=2, save_best=None))\n")
    work_dir = tmp_path / "work"
    args = [PY, "tools/train.py", str(config), "--work-dir", str(work_dir), "--no-validate",
            "--cfg-options", "train_cfg.max_epochs=3"]
    for delay in (0.0, 0.35, 0.7):
        proc = subprocess.Popen(args + (["--resume"] if work_dir.exists() else []), cwd=ROOT,
                                env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 240
        start = len(list(work_dir.glob("iter_*.pth"))) if work_dir.exists() else 0
        while proc.poll() is None and time.monotonic() < deadline:
            if work_dir.exists() and (work_dir / "last_checkpoint").exists() and \
                    len(list(work_dir.glob("iter_*.pth"))) > start:
                break
            time.sleep(0.05)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        pointer = (work_dir / "last_checkpoint").read_text().strip()
        assert pointer and Path(pointer).is_file()
        assert _finite(Path(pointer))  # loads with weights_only: complete
    log = _check(_run(args + ["--resume"])).stdout
    assert "Epoch(train) [3][6/6]" in log  # finished the last epoch
    last = Path((work_dir / "last_checkpoint").read_text().strip())
    assert _finite(last)

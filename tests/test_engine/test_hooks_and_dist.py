"""The training-curves hook and distributed set-up without a GPU (resnext_plugin.engine)."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from mmengine.config import Config
from PIL import Image

from resnext_plugin.engine.dist import (
    cpu_model_wrapper_cfg,
    has_accelerator,
    init_distributed,
    setup_distributed,
)
from resnext_plugin.engine.hooks import TrainingCurvesHook

ROOT = Path(__file__).resolve().parents[2]

# ------------------------------------------------------------------------------- hooks
def test_training_curves_hook_draws_a_png(tmp_path: Path) -> None:
    hook = TrainingCurvesHook(filename="curves.png", smooth=3)
    assert hook.draw(str(tmp_path / "empty.png")) is None
    hook.losses["loss"] = [[i, 2.0 / i] for i in range(1, 30)]
    hook.metrics["accuracy/top1"] = [[10, 40.0], [20, 75.0]]
    path = hook.draw(str(tmp_path / "curves.png"))
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size == (1100, 420)
        assert np.asarray(image.convert("L")).std() > 10  # something was drawn
    with pytest.raises(ValueError, match="filename"):
        TrainingCurvesHook(filename="curves.jpg")


# ------------------------------------------------------------------------------- distributed
def test_cpu_model_wrapper_has_no_device_ids() -> None:
    cfg = Config(dict(find_unused_parameters=True))
    wrapper = cpu_model_wrapper_cfg(cfg)
    assert wrapper == dict(type="MMDistributedDataParallel", broadcast_buffers=False,
                           find_unused_parameters=True, device_ids=None)
    custom = Config(dict(model_wrapper_cfg=dict(type="MMDistributedDataParallel",
                                                broadcast_buffers=True)))
    assert cpu_model_wrapper_cfg(custom)["broadcast_buffers"] is True
    assert "device_ids" not in custom.model_wrapper_cfg  # the caller's config is untouched


def test_setup_distributed_without_launcher_copies_the_config() -> None:
    cfg = Config(dict(env_cfg=dict(dist_cfg=dict(backend="nccl"))))
    out = setup_distributed(cfg, "none")
    assert out.launcher == "none" and "launcher" not in cfg and "model_wrapper_cfg" not in out
    with pytest.raises(ValueError, match="launcher"):
        setup_distributed(cfg, "kubernetes")
    with pytest.raises(ValueError, match="launcher"):
        init_distributed("ssh")


_SLURM_WORKER = """\
import atexit, os, sys, torch, torch.distributed as dist
from resnext_plugin.engine.dist import init_distributed
# atexit runs handlers last-in first-out: this one runs after the plugin's own.
atexit.register(lambda: print('group alive at exit:', dist.is_initialized(), file=sys.stderr))
init_distributed('slurm', backend='nccl', timeout=60)
x = torch.tensor([float(dist.get_rank() + 1)])
dist.all_reduce(x)
print(dist.get_backend(), dist.get_rank(), dist.get_world_size(), os.environ['LOCAL_RANK'],
      x.item())
"""


@pytest.mark.skipif(has_accelerator(), reason="checks the CPU (gloo) path")
def test_slurm_launcher_on_cpu_uses_gloo(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    procs = []
    for rank in range(2):
        env = dict(os.environ, SLURM_PROCID=str(rank), SLURM_NTASKS="2", SLURM_LOCALID=str(rank),
                   SLURM_NODELIST="localhost", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
                   PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
        procs.append(subprocess.Popen([sys.executable, "-c", _SLURM_WORKER], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outputs = [p.communicate(timeout=180) for p in procs]
    for proc, (_, err) in zip(procs, outputs):
        assert proc.returncode == 0, err[-3000:]
    lines = sorted(out.strip().splitlines()[-1] for out, _ in outputs)
    assert lines == ["gloo 0 2 0 3.0", "gloo 1 2 1 3.0"]
    # The process group is destroyed before interpreter finalisation (a finished rank could
    # otherwise abort there, tearing down gloo's threads): see test_clean_exit.py.
    for _, err in outputs:
        assert "group alive at exit: False" in err, err[-3000:]



"""Distributed set-up for mmengine 0.10.7's runners that also works without CUDA.

mmengine's ``init_dist`` calls ``torch.cuda.set_device`` for the ``pytorch``, ``slurm`` and ``mpi``
launchers, and ``Runner.wrap_model`` hands ``device_ids=[LOCAL_RANK]`` to DDP; both fail on a
machine without a GPU. :func:`setup_distributed` runs before the runner is built:

* with an accelerator it calls mmengine's own ``init_dist`` (nccl and ``device_ids`` as before);
* without one it sets up the same environment variables as mmengine, skips ``set_device``, uses
  gloo instead of nccl, and returns a config whose model wrapper gets ``device_ids=None``.

``Runner.setup_env`` skips ``init_dist`` when a process group already exists, so the runner then
uses the group made here.

Neither mmengine nor torch destroys the process group when a run ends. Left to interpreter
finalisation, gloo's worker threads and their pending ``AsyncWork`` objects (which hold tensors
with Python references) are torn down while the interpreter is going away, and a rank of a
finished run may die with ``terminate called without an active exception`` (SIGABRT), a failed
job to torchrun and slurm. The group made here is therefore destroyed at exit
(:func:`shutdown_distributed`, registered with ``atexit``), while the interpreter is still whole.
"""
from __future__ import annotations

import atexit
import copy
import datetime
import os
import subprocess

import torch
import torch.distributed as torch_dist
from mmengine.config import Config
from mmengine.device import is_mlu_available, is_npu_available
from mmengine.dist import init_dist
from mmengine.logging import print_log
from mmengine.registry import MODEL_WRAPPERS
from torch.nn.parallel import DistributedDataParallel

try:
    from mmengine.device import is_musa_available
except ImportError:  # mmengine < 0.10 (the upstream-2023 stack) knows no MUSA devices
    def is_musa_available() -> bool:
        return False

LAUNCHERS = ("none", "pytorch", "slurm", "mpi")
#: Backends that need a CUDA device; replaced by gloo on a machine without one.
_GPU_ONLY_BACKENDS = ("nccl",)


def has_accelerator() -> bool:
    """Whether mmengine would place the model on an accelerator (CUDA, NPU, MLU or MUSA)."""
    return (torch.cuda.is_available() or is_npu_available() or is_mlu_available()
            or is_musa_available())


def _set_slurm_env(port: int | None) -> None:
    """Export RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT as mmengine does (slurm)."""
    proc_id = int(os.environ["SLURM_PROCID"])
    ntasks = int(os.environ["SLURM_NTASKS"])
    local_rank = int(os.environ.get("SLURM_LOCALID", proc_id))
    if port is not None:
        os.environ["MASTER_PORT"] = str(port)
    os.environ.setdefault("MASTER_PORT", "29500")
    if "MASTER_ADDR" not in os.environ:
        node_list = os.environ["SLURM_NODELIST"]
        os.environ["MASTER_ADDR"] = subprocess.getoutput(
            f"scontrol show hostname {node_list} | head -n1")
    os.environ["WORLD_SIZE"] = str(ntasks)
    os.environ["LOCAL_RANK"] = str(local_rank)
    os.environ["RANK"] = str(proc_id)


def _set_mpi_env() -> None:
    """Export RANK, WORLD_SIZE and LOCAL_RANK from Open MPI's variables, as mmengine does."""
    if "MASTER_ADDR" not in os.environ:
        raise KeyError("launcher 'mpi': the environment variable MASTER_ADDR is not set")
    os.environ.setdefault("MASTER_PORT", "29500")
    os.environ["WORLD_SIZE"] = os.environ["OMPI_COMM_WORLD_SIZE"]
    os.environ["RANK"] = os.environ["OMPI_COMM_WORLD_RANK"]
    os.environ["LOCAL_RANK"] = os.environ["OMPI_COMM_WORLD_LOCAL_RANK"]


def init_distributed(launcher: str, backend: str = "nccl", **kwargs) -> None:
    """Initialise the default process group like ``mmengine.dist.init_dist``, also on CPU.

    Args:
        launcher: One of ``'pytorch'``, ``'slurm'``, ``'mpi'`` (``'none'`` does nothing).
        backend: The configured backend (``env_cfg.dist_cfg.backend``). Kept with an accelerator;
            on CPU a GPU-only backend (nccl) becomes gloo.
        **kwargs: Passed on like mmengine's ``dist_cfg`` (``timeout`` in seconds, slurm ``port``).

    Raises:
        ValueError: ``launcher`` is unknown.
    """
    if launcher not in LAUNCHERS:
        raise ValueError(f"launcher must be one of {LAUNCHERS}, got {launcher!r}")
    if launcher == "none" or torch_dist.is_initialized():
        return
    atexit.register(shutdown_distributed)
    if has_accelerator():
        init_dist(launcher, backend=backend, **kwargs)
        return
    kwargs = dict(kwargs)
    kwargs.pop("init_backend", None)
    port = kwargs.pop("port", None)
    if kwargs.get("timeout") is not None:
        kwargs["timeout"] = datetime.timedelta(seconds=kwargs["timeout"])
    if launcher == "slurm":
        _set_slurm_env(port)
    elif launcher == "mpi":
        _set_mpi_env()
    if backend in _GPU_ONLY_BACKENDS:
        backend = "gloo"
    torch_dist.init_process_group(backend=backend, rank=int(os.environ["RANK"]),
                                  world_size=int(os.environ["WORLD_SIZE"]), **kwargs)
    print_log(f"distributed on CPU: backend {backend}, rank {torch_dist.get_rank()} of "
              f"{torch_dist.get_world_size()}", logger="current")


def shutdown_distributed() -> None:
    """Destroy the default process group (and every group made from it), if one exists.

    Runs at exit of every process that :func:`init_distributed` set up; safe to call earlier
    and more than once. It is local: it waits for no other rank, so a rank whose peer died
    still exits.
    """
    if torch_dist.is_available() and torch_dist.is_initialized():
        torch_dist.destroy_process_group()


def cpu_model_wrapper_cfg(cfg: Config) -> dict:
    """The ``model_wrapper_cfg`` that ``Runner.wrap_model`` needs on CPU: DDP without device ids.

    Keeps a configured wrapper and its arguments; only ``device_ids`` becomes ``None`` when the
    wrapper is a ``DistributedDataParallel`` (mmengine would put ``[LOCAL_RANK]`` there).
    """
    wrapper = copy.deepcopy(cfg.get("model_wrapper_cfg")) or dict(
        type="MMDistributedDataParallel", broadcast_buffers=False,
        find_unused_parameters=cfg.get("find_unused_parameters", False))
    wrapper.setdefault("type", "MMDistributedDataParallel")
    wrapper_cls = MODEL_WRAPPERS.get(wrapper["type"]) if isinstance(wrapper["type"], str) \
        else wrapper["type"]
    if isinstance(wrapper_cls, type) and issubclass(wrapper_cls, DistributedDataParallel):
        wrapper["device_ids"] = None
    return wrapper


def setup_distributed(cfg: Config, launcher: str) -> Config:
    """Initialise the process group for ``launcher`` and return a config the runner can use.

    Call it before ``Runner.from_cfg``. The caller's ``cfg`` is not modified.

    Args:
        cfg: The full config (its ``env_cfg.dist_cfg`` gives backend and options).
        launcher: ``'none'``, ``'pytorch'``, ``'slurm'`` or ``'mpi'``.

    Returns:
        A copy of ``cfg`` with ``launcher`` set and, on CPU, a model wrapper without device ids.
    """
    if launcher not in LAUNCHERS:
        raise ValueError(f"launcher must be one of {LAUNCHERS}, got {launcher!r}")
    cfg = copy.deepcopy(cfg)
    cfg.launcher = launcher
    if launcher == "none":
        return cfg
    dist_cfg = dict(cfg.get("env_cfg", {}).get("dist_cfg", {}))
    backend = dist_cfg.pop("backend", "nccl")
    init_distributed(launcher, backend=backend, **dist_cfg)
    if not has_accelerator():
        cfg.model_wrapper_cfg = cpu_model_wrapper_cfg(cfg)
    return cfg

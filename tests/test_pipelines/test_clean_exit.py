"""Every rank of a finished multi-process run exits 0, whichever launcher started it.

A rank that aborts after training (``terminate called without an active exception``, SIGABRT)
is a failed job to torchrun and to slurm. K consecutive two-rank pairs (train one epoch, then
``--resume`` for a second) go through the three launch paths in turn: ``tools/train.py`` with
the launcher variables set by hand, ``tools/dist_train.sh`` (torchrun) and ``--launcher slurm``
with Slurm's variables (as ``srun`` sets them). K = 3 in the default run, 20 with ``--runslow``.
"""
from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import tiny_classifier_config
from test_pretrain import PY, ROOT, _env, _free_port, tiny_data

__all__ = ["tiny_data"]  # the fixture, imported for pytest

ABORT_SIGNS = ("terminate called", "Aborted", "SIGABRT", "exitcode  : -6", "Signal 6")


def _ranks(argv: Callable[[int], list[str]], envs: list[dict], log_dir: Path,
           timeout: float = 900) -> list[tuple[int, str]]:
    """Start one process per entry of ``envs``; return each one's exit code and output."""
    procs = []
    for rank, env in enumerate(envs):
        log = (log_dir / f"rank{rank}.log").open("w")
        procs.append((subprocess.Popen(argv(rank), cwd=ROOT, env=_env(**env), stdout=log,
                                       stderr=subprocess.STDOUT), log))
    results = []
    try:
        for rank, (proc, log) in enumerate(procs):
            code = proc.wait(timeout=timeout)
            log.close()
            results.append((code, (log_dir / f"rank{rank}.log").read_text()))
    finally:
        for proc, _ in procs:
            if proc.poll() is None:
                proc.kill()
    return results


def _by_hand(config: Path, work_dir: Path, log_dir: Path, *args: str) -> list[tuple[int, str]]:
    port = str(_free_port())
    envs = [dict(RANK=str(r), LOCAL_RANK=str(r), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1",
                 MASTER_PORT=port, OMP_NUM_THREADS="1") for r in (0, 1)]
    return _ranks(lambda r: [PY, "tools/train.py", str(config), "--work-dir", str(work_dir),
                             "--launcher", "pytorch", *args], envs, log_dir)


def _slurm(config: Path, work_dir: Path, log_dir: Path, *args: str) -> list[tuple[int, str]]:
    port = str(_free_port())
    envs = [dict(SLURM_PROCID=str(r), SLURM_NTASKS="2", SLURM_LOCALID=str(r),
                 SLURM_NODELIST="localhost", MASTER_ADDR="127.0.0.1", MASTER_PORT=port,
                 OMP_NUM_THREADS="1") for r in (0, 1)]
    return _ranks(lambda r: [PY, "tools/train.py", str(config), "--work-dir", str(work_dir),
                             "--launcher", "slurm", *args], envs, log_dir)


def _torchrun(config: Path, work_dir: Path, log_dir: Path, *args: str) -> list[tuple[int, str]]:
    """torchrun's exit code is 0 only when every worker exited 0 (it reports the others)."""
    envs = [dict(PORT=str(_free_port()), OMP_NUM_THREADS="1")]
    return _ranks(lambda _: ["bash", "tools/dist_train.sh", str(config), "2", "--work-dir",
                             str(work_dir), *args], envs, log_dir)


LAUNCHES = {"by-hand": _by_hand, "torchrun": _torchrun, "slurm": _slurm}


def _assert_clean(results: list[tuple[int, str]], what: str) -> None:
    for rank, (code, log) in enumerate(results):
        assert code == 0, f"{what}: process {rank} exited {code}\n{log[-4000:]}"
        signs = [sign for sign in ABORT_SIGNS if sign in log]
        assert not signs, f"{what}: process {rank} printed {signs}\n{log[-4000:]}"


def _train_then_resume(pairs: int, tmp_path: Path, tiny_data: Path) -> None:
    config = tiny_classifier_config(tmp_path, tiny_data,
                          "env_cfg = dict(dist_cfg=dict(backend='gloo', timeout=120))\n")
    names = list(LAUNCHES)
    for k in range(pairs):
        name = names[k % len(names)]
        launch = LAUNCHES[name]
        work_dir = tmp_path / f"work{k}"
        logs = tmp_path / f"logs{k}"
        (logs / "train").mkdir(parents=True)
        (logs / "resume").mkdir()
        _assert_clean(launch(config, work_dir, logs / "train", "--no-validate"),
                      f"pair {k} ({name}), training")
        assert (work_dir / "epoch_1.pth").is_file()
        resumed = launch(config, work_dir, logs / "resume", "--no-validate", "--resume",
                         "--cfg-options", "train_cfg.max_epochs=2")
        _assert_clean(resumed, f"pair {k} ({name}), resumed")
        assert "resumed epoch: 1," in resumed[0][1]
        assert (work_dir / "epoch_2.pth").is_file()


def test_every_rank_of_consecutive_runs_exits_clean(tmp_path: Path, tiny_data: Path) -> None:
    _train_then_resume(3, tmp_path, tiny_data)


@pytest.mark.slow
def test_every_rank_of_twenty_consecutive_runs_exits_clean(tmp_path: Path,
                                                           tiny_data: Path) -> None:
    _train_then_resume(20, tmp_path, tiny_data)

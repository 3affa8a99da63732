"""ImageNet pretraining through mmpretrain on mmengine's runners, end to end.

Every test runs the real tools (``tools/train.py``, ``tools/test.py``, ``tools/dist_train.sh``)
in subprocesses on a tiny generated data set, with the demo config shrunk through a derived
config (16 px images, batch 4, a two-stage ResNeXt-50 32x4d so checkpoints stay small). The
full demo pretraining is the ``slow`` test at the end.
"""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers import DEMO_CLASSIFIER, checkpoint_state_dict, logged_training, tiny_classifier_config

from resnext_plugin.demo_data.imagenet import DemoImageNetSpec, make_demo_imagenet

ROOT = Path(__file__).resolve().parents[2]
PY = sys.executable



def _env(**extra: str) -> dict:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="2", MKL_NUM_THREADS="2", PYTHONPATH=str(ROOT))
    env.update(extra)
    return env


def _run(cmd: list[str], timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=ROOT, env=_env(**env), capture_output=True, text=True,
                          timeout=timeout)
    return proc


def _check(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert proc.returncode == 0, (
        f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    return proc


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 classes x 6 training images, 2 validation images per class, 24 px."""
    root = tmp_path_factory.mktemp("demo_imagenet")
    make_demo_imagenet(root, DemoImageNetSpec(num_classes=4, train_per_class=6, val_per_class=2,
                                              image_size=24, seed=1))
    return root


def test_single_process_train_then_test(tmp_path: Path, tiny_data: Path) -> None:
    config = tiny_classifier_config(tmp_path, tiny_data)
    work_dir = tmp_path / "work"
    train = _check(_run([PY, "tools/train.py", str(config), "--work-dir", str(work_dir),
                         "--cfg-options", "train_cfg.max_epochs=2"]))
    log = train.stdout + train.stderr
    # 24 images / batch 4 = 6 iterations per epoch; progress lines carry eta and loss.
    assert "Epoch(train) [2][6/6]" in log and "eta:" in log and "loss:" in log
    assert "Epoch(val) [2][1/1]" in log and "accuracy/top1" in log
    ckpt = work_dir / "epoch_2.pth"
    assert ckpt.is_file()
    assert (work_dir / "last_checkpoint").read_text().strip().endswith("epoch_2.pth")
    png = work_dir / "training_curves.png"
    assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    out = tmp_path / "metrics.json"
    test = _check(_run([PY, "tools/test.py", str(config), str(ckpt), "--work-dir",
                        str(tmp_path / "test_work"), "--out", str(out)]))
    metrics = json.loads(out.read_text())
    assert 0.0 <= metrics["accuracy/top1"] <= 100.0
    assert metrics["accuracy/top5"] >= metrics["accuracy/top1"]
    # The checkpoint was really loaded (mmengine logs it) and the test loop ran over 8 images.
    assert f"Load checkpoint from {ckpt}" in test.stdout + test.stderr
    assert "Epoch(test) [1/1]" in test.stdout + test.stderr


# Records, per rank, every file a process opens for writing under a directory (Python's audit
# hook on `open`), so the test sees who wrote the checkpoints and logs.
_SITECUSTOMIZE = """\
import os, sys
_root = os.environ.get("AUDIT_WRITES_UNDER")
_out = os.environ.get("AUDIT_WRITES_LOG")
if _root and _out:
    _rank = os.environ.get("RANK", "none")
    _flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND
    def _hook(event, args):
        if event != "open":
            return
        path, mode, flags = args
        path = os.fspath(path) if isinstance(path, os.PathLike) else path
        if not isinstance(path, str):
            return
        writes = any(c in mode for c in "wax+") if isinstance(mode, str) else bool(flags & _flags)
        if writes and os.path.abspath(path).startswith(_root):
            with open(f"{_out}.rank{_rank}", "a") as f:
                f.write(os.path.abspath(path) + "\\n")
    sys.addaudithook(_hook)
"""


def test_dist_train_two_cpu_processes(tmp_path: Path, tiny_data: Path) -> None:
    sync_dir = tmp_path / "sync"
    config = tiny_classifier_config(tmp_path, tiny_data, extra=(
        "custom_hooks = [dict(type='resnext_plugin.TrainingCurvesHook'),\n"
        f"                dict(type='resnext_plugin.WeightSyncCheckHook', interval=1,"
        f" out_dir={str(sync_dir)!r})]\n"))
    work_dir = tmp_path / "work"
    audit = tmp_path / "audit"
    audit.mkdir()
    (audit / "sitecustomize.py").write_text(_SITECUSTOMIZE)
    proc = _check(_run(
        ["bash", "tools/dist_train.sh", str(config), "2", "--work-dir", str(work_dir)],
        PORT=str(_free_port()), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
        PYTHONPATH=f"{audit}{os.pathsep}{ROOT}", AUDIT_WRITES_UNDER=str(work_dir),
        AUDIT_WRITES_LOG=str(tmp_path / "writes")))
    log = proc.stdout + proc.stderr
    assert "Distributed training: True" in log
    # DefaultSampler splits 24 images between 2 ranks: 12 each, batch 4 -> 3 iterations; the
    # lr is the recipe's 0.1 per 256 images for 2 x 4 images.
    assert "Epoch(train) [1][2/3]  lr: 3.1250e-03" in log
    assert "parameters identical on all 2 ranks" in log

    # Both ranks ran and hashed their parameters; after every step the hashes agree, although
    # each rank saw other images: the gradients were averaged.
    for it in range(4):
        rank0 = json.loads((sync_dir / f"rank0_iter{it}.json").read_text())
        rank1 = json.loads((sync_dir / f"rank1_iter{it}.json").read_text())
        assert rank0 == rank1, f"ranks differ after iteration {it}"
    before = json.loads((sync_dir / "rank0_iter0.json").read_text())
    after = json.loads((sync_dir / "rank0_iter3.json").read_text())
    changed = [name for name in before if before[name] != after[name]]
    assert "head.fc.weight" in changed and len(changed) > len(before) // 2

    # Only rank 0 wrote into the work dir: checkpoint, log, scalars, config dump.
    writers = {p.name.split(".rank")[1]: set(p.read_text().split())
               for p in tmp_path.glob("writes.rank*")}
    assert set(writers) == {"0"}, f"ranks that wrote into the work dir: {sorted(writers)}"
    written = writers["0"]
    assert any("epoch_1.pth" in path for path in written)  # (maybe via a temporary file)
    assert any(p.endswith(".log") for p in written)
    assert len(list(work_dir.glob("*/*.log"))) == 1
    assert (work_dir / "training_curves.png").is_file()

    # The same tools evaluate with two processes.
    out = tmp_path / "dist_metrics.json"
    _check(_run(["bash", "tools/dist_test.sh", str(config), str(work_dir / "epoch_1.pth"), "2",
                 "--work-dir", str(tmp_path / "test_work"), "--out", str(out)],
                PORT=str(_free_port()), OMP_NUM_THREADS="1"))
    assert 0.0 <= json.loads(out.read_text())["accuracy/top1"] <= 100.0


RESUME_EXTRA = """\
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=12)
val_dataloader = None
val_cfg = None
val_evaluator = None
param_scheduler = dict(_delete_=True, type='MultiStepLR', by_epoch=False, milestones=[6],
                       gamma=0.1)
default_hooks = dict(checkpoint=dict(by_epoch=False, interval=4, max_keep_ckpts=-1),
                     logger=dict(interval=1))
"""


def test_interrupted_then_resumed_equals_uninterrupted(tmp_path: Path, tiny_data: Path) -> None:
    config = tiny_classifier_config(tmp_path, tiny_data, extra=RESUME_EXTRA)
    full_dir, killed_dir = tmp_path / "full", tmp_path / "killed"
    _check(_run([PY, "tools/train.py", str(config), "--work-dir", str(full_dir)]))

    # Kill the second run (SIGKILL, no clean-up) once its first checkpoint is on disk.
    proc = subprocess.Popen([PY, "tools/train.py", str(config), "--work-dir", str(killed_dir)],
                            cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    try:
        while not (killed_dir / "last_checkpoint").exists():
            assert proc.poll() is None, "the run ended before its first checkpoint"
            assert time.monotonic() < deadline, "no checkpoint within 300 s"
            time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert not (killed_dir / "iter_12.pth").exists(), "killed too late: the run had finished"
    stopped_at = (killed_dir / "last_checkpoint").read_text().strip()

    resumed = _check(_run([PY, "tools/train.py", str(config), "--work-dir", str(killed_dir),
                           "--resume"]))
    assert f"Auto resumed from the latest checkpoint {stopped_at}" in resumed.stdout + \
        resumed.stderr

    full = checkpoint_state_dict(full_dir / "iter_12.pth")
    again = checkpoint_state_dict(killed_dir / "iter_12.pth")
    assert full.keys() == again.keys()
    for name in full:
        assert torch.equal(full[name], again[name]), f"{name} differs after resume"
    # The logged values after the resume point equal the uninterrupted run's (the smoothed loss
    # too: its window lives in the checkpointed message hub).
    resumed_from = int(re.search(r"iter_(\d+)\.pth", stopped_at).group(1))
    logged_full = logged_training(full_dir, ("loss", "lr"))
    logged_again = logged_training(killed_dir, ("loss", "lr"))
    assert all(set(values) == {"loss", "lr"} for values in logged_full.values())
    after = [i for i in sorted(logged_full) if i > resumed_from]
    assert after and all(logged_full[i] == logged_again[i] for i in after), \
        [(i, logged_full[i], logged_again.get(i)) for i in after]
    # ...and the run did learn something: the weights moved away from the first checkpoint.
    first = checkpoint_state_dict(full_dir / "iter_4.pth")
    assert not torch.equal(first["head.fc.weight"], full["head.fc.weight"])


def test_missing_data_root_stops_at_once(tmp_path: Path) -> None:
    missing = tmp_path / "no_imagenet_here"
    start = time.monotonic()
    proc = _run([PY, "tools/train.py", str(DEMO_CLASSIFIER), "--work-dir", str(tmp_path / "work"),
                 "--cfg-options", f"train_dataloader.dataset.data_root={missing}",
                 f"val_dataloader.dataset.data_root={missing}",
                 f"test_dataloader.dataset.data_root={missing}"])
    elapsed = time.monotonic() - start
    assert proc.returncode == 2, proc.stderr[-3000:]
    err = proc.stderr
    assert f"'{missing}'" in err
    assert "train/<class>/<image>.JPEG" in err and "meta/" in err and "val.txt" in err
    assert "make demo" in err and "tools/make_demo_imagenet.py" in err
    assert "Epoch(train)" not in proc.stdout + err
    assert elapsed < 120


def test_corrupt_jpeg_in_the_data_names_the_file(tmp_path: Path) -> None:
    root = tmp_path / "data"
    make_demo_imagenet(root, DemoImageNetSpec(num_classes=2, train_per_class=4, val_per_class=1,
                                              image_size=24))
    victim = next(iter(sorted((root / "train").glob("*/*.jpg"))))
    content = victim.read_bytes()
    scan = content.rfind(b"\xff\xda")
    victim.write_bytes(content[: (scan + len(content)) // 2])  # a download cut inside the scan
    config = tiny_classifier_config(tmp_path, root)
    proc = _run([PY, "tools/train.py", str(config), "--work-dir", str(tmp_path / "work"),
                 "--cfg-options", "train_dataloader.batch_size=8"])
    assert proc.returncode != 0
    assert "CorruptImageError" in proc.stderr
    assert f"corrupt image file '{victim}'" in proc.stderr
    assert "truncated JPEG" in proc.stderr


@pytest.mark.slow
def test_demo_pretraining_reaches_90_percent(tmp_path: Path) -> None:
    """The real demo config on the default demo data: top-1 >= 90% (make demo's first half)."""
    data = tmp_path / "demo_imagenet"
    _check(_run([PY, "tools/make_demo_imagenet.py", "--out", str(data)]))
    work_dir = tmp_path / "work"
    start = time.monotonic()
    proc = _check(_run([PY, "tools/train.py", str(DEMO_CLASSIFIER), "--work-dir", str(work_dir),
                        "--cfg-options", f"train_dataloader.dataset.data_root={data}",
                        f"val_dataloader.dataset.data_root={data}",
                        f"test_dataloader.dataset.data_root={data}"], timeout=3600))
    minutes = (time.monotonic() - start) / 60
    top1 = [float(line.split("accuracy/top1:")[1].split()[0])
            for line in proc.stdout.splitlines() if "Epoch(val)" in line]
    print(f"demo pretraining: {minutes:.1f} min, top-1 per epoch {top1}")
    assert top1 and top1[-1] >= 90.0
    assert (work_dir / "training_curves.png").is_file()

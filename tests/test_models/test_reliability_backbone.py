"""Reliability of the pieces under every run: atomic checkpoint writes and the backbone's shapes
over the whole valid argument space."""
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mmengine.fileio import get_file_backend
from mmengine.fileio.backends import LocalBackend

from resnext_plugin.fileio import AtomicLocalBackend
from resnext_plugin.models import ResNeXt

PAYLOAD = 256 * 1024 * 1024  # large enough that a write takes a while


def _write_forever(backend_cls, path, started):
    backend = backend_cls()
    data = b"\x01" * PAYLOAD
    started.set()
    while True:
        backend.put(data, path)


@pytest.mark.parametrize("backend_cls,survives", [(AtomicLocalBackend, True),
                                                  (LocalBackend, False)])
def test_sigkill_during_a_checkpoint_write(tmp_path, backend_cls, survives):
    """Killed while writing, the atomic backend leaves the old or the complete new file; mmengine's
    own backend (the control) leaves a truncated one."""
    path = tmp_path / "iter_1.pth"
    path.write_bytes(b"old")
    ctx = mp.get_context("fork")
    outcomes = set()
    for attempt in range(3):
        started = ctx.Event()
        proc = ctx.Process(target=_write_forever, args=(backend_cls, str(path), started))
        proc.start()
        assert started.wait(60)
        time.sleep(0.4 + 0.3 * attempt)
        os.kill(proc.pid, signal.SIGKILL)
        proc.join()
        size = path.stat().st_size
        outcomes.add("intact" if size in (3, PAYLOAD) else "truncated")
    if survives:
        assert outcomes == {"intact"}
    else:
        assert "truncated" in outcomes


def test_importing_the_plugin_changes_nothing_outside_it():
    # In a fresh interpreter: the fixes are explicit (resnext_plugin.upstream_fixes), so a plain
    # import leaves mmengine's file backend and torch's allow-list as they were.
    code = ("import torch, resnext_plugin\n"
            "from mmengine.fileio import get_file_backend\n"
            "from mmengine.fileio.backends import LocalBackend\n"
            "from mmengine.logging.history_buffer import HistoryBuffer\n"
            "assert type(get_file_backend('x.pth')) is LocalBackend\n"
            "assert HistoryBuffer not in torch.serialization.get_safe_globals()\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr


def test_upstream_fixes_make_local_writes_atomic(tmp_path):
    from resnext_plugin import upstream_fixes

    upstream_fixes.atomic_checkpoint_writes()
    backend = get_file_backend(str(tmp_path / "x.pth"))
    assert isinstance(backend, AtomicLocalBackend)
    backend.put_text("iter_3.pth", tmp_path / "last_checkpoint")
    assert (tmp_path / "last_checkpoint").read_text() == "iter_3.pth"
    assert os.listdir(tmp_path) == ["last_checkpoint"]


@st.composite
def valid_arch(draw):
    num_stages = draw(st.integers(1, 4))
    out_indices = draw(st.lists(st.integers(0, num_stages - 1), min_size=1, max_size=num_stages,
                                unique=True))
    return dict(
        depth=draw(st.sampled_from([50, 101, 152])),
        groups=draw(st.integers(1, 4)),
        width_per_group=draw(st.integers(1, 4)),
        num_stages=num_stages,
        out_indices=tuple(out_indices),
        strides=tuple(draw(st.lists(st.integers(1, 2), min_size=num_stages,
                                    max_size=num_stages))),
        dilations=tuple(draw(st.lists(st.integers(1, 2), min_size=num_stages,
                                      max_size=num_stages))),
        style=draw(st.sampled_from(["pytorch", "caffe"])),
        deep_stem=draw(st.booleans()),
        avg_down=draw(st.booleans()),
        base_channels=4, stem_channels=8,
    )


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(arch=valid_arch(), size=st.sampled_from([32, 48]))
def test_output_shapes_match_published_channels_and_strides(arch, size):
    model = ResNeXt(**arch).eval()
    with torch.no_grad():
        outs = model(torch.rand(1, 3, size, size))
    assert len(outs) == len(arch["out_indices"]) == len(model.out_channels)
    for out, stage in zip(outs, model.out_indices):
        expected = size
        for stride in (2, 2, *arch["strides"][: stage + 1]):  # stem conv, max-pool, stages
            expected = -(-expected // stride)
        assert out.shape == (1, model.feature_info[stage]["num_chs"], expected, expected)
        assert model.feature_info[stage]["reduction"] == 4 * torch.tensor(
            arch["strides"][: stage + 1]).prod().item()

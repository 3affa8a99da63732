"""Loading a checkpoint never runs code, on every stack: mmengine's ``load_from``, resume and
``init_cfg=Pretrained`` of any module go through the weights-only reader once
:mod:`resnext_plugin.upstream_fixes` is applied (as the configs and tools do). On OneDL,
onedl-mmengine's ``_safe_torch_load`` would retry a refused file with ``weights_only=False``.

A zoo name whose download fails stops with one message naming the URL, the file, the folder that
makes the config work offline, and the converter."""
from __future__ import annotations

import json
import os
import socket

import pytest
import torch
from helpers import tiny
from mmengine.model import BaseModule
from mmengine.runner import checkpoint as mm_checkpoint
from test_checkpoint.test_checkpoints import PlantedCode, make_runner

from resnext_plugin import upstream_fixes
from resnext_plugin.checkpoint import ZOO_PREFIXES, CheckpointDownloadError

REFUSED = "(?i)cannot load checkpoint.*(weights.only|unsupported global|not allowed)"


@pytest.fixture
def planted(tmp_path):
    upstream_fixes.apply_all()
    marker = tmp_path / "code_ran"
    ckpt = tmp_path / "evil.pth"
    torch.save({"state_dict": tiny().state_dict(), "meta": PlantedCode(marker)}, ckpt)
    return ckpt, marker


def test_every_scheme_of_mmengines_loader_reads_weights_only():
    upstream_fixes.apply_all()
    schemes = mm_checkpoint.CheckpointLoader._schemes
    for prefix in ("", "http://", "https://", *ZOO_PREFIXES):
        assert schemes[prefix] is upstream_fixes._weights_only_scheme_loader, prefix


def test_planted_pickle_as_load_from_resume_and_init_cfg_is_refused(planted, tmp_path):
    ckpt, marker = planted
    with pytest.raises(ValueError, match=REFUSED):
        make_runner(tmp_path / "load", 2, load_from=str(ckpt)).load_or_resume()
    with pytest.raises(ValueError, match=REFUSED):
        make_runner(tmp_path / "resume", 2, load_from=str(ckpt), resume=True).load_or_resume()
    # init_cfg of a module that is not ours: mmengine's PretrainedInit -> CheckpointLoader.
    head = BaseModule(init_cfg=dict(type="Pretrained", checkpoint=str(ckpt)))
    head.fc = torch.nn.Linear(2, 2)
    with pytest.raises(ValueError, match=REFUSED):
        head.init_weights()
    assert not marker.exists()


def test_onedl_fallback_to_weights_only_false_is_closed(planted):
    if not hasattr(mm_checkpoint, "_safe_torch_load"):
        pytest.skip("upstream mmengine has no _safe_torch_load (OneDL's fallback loader)")
    ckpt, marker = planted
    with pytest.raises(ValueError, match=REFUSED):
        mm_checkpoint._safe_torch_load(str(ckpt), map_location="cpu")
    with open(ckpt, "rb") as buffer, pytest.raises(Exception, match="(?i)weights.only"):
        mm_checkpoint._safe_torch_load(buffer, map_location="cpu")
    assert not marker.exists()


def closed_loopback_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def unreachable_zoo(tmp_path, monkeypatch):
    """open-mmlab://resnext101_32x4d mapped (through mmengine's own open_mmlab.json override in
    $MMENGINE_HOME) to its file name on a closed loopback port; an empty torch hub cache."""
    upstream_fixes.apply_all()
    name = "resnext101_32x4d"
    file_name = os.path.basename(mm_checkpoint.get_external_models()[name])
    url = f"http://127.0.0.1:{closed_loopback_port()}/pretrain/third_party/{file_name}"
    home = tmp_path / "mmengine_home"
    home.mkdir()
    (home / "open_mmlab.json").write_text(json.dumps({name: url}))
    monkeypatch.setenv("MMENGINE_HOME", str(home))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return f"open-mmlab://{name}", url, file_name, tmp_path / "torch" / "hub" / "checkpoints"


def assert_names_everything(message: str, url: str, file_name: str, folder) -> None:
    assert url in message and f"fetch {file_name}" in message
    assert f"place it in {folder}/" in message
    assert "python tools/convert_checkpoint.py --help" in message
    assert "Traceback" not in message


def test_unreachable_zoo_weights_stop_with_one_message_and_work_once_placed(unreachable_zoo):
    name, url, file_name, folder = unreachable_zoo
    # What load_from / resume / any module's Pretrained use.
    with pytest.raises(CheckpointDownloadError) as caught:
        mm_checkpoint._load_checkpoint(name, map_location="cpu")
    assert_names_everything(str(caught.value), url, file_name, folder)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    # The backbone's own init_cfg (as in the Mask R-CNN configs).
    model = tiny(init_cfg=dict(type="Pretrained", checkpoint=name))
    with pytest.raises(CheckpointDownloadError) as caught:
        model.init_weights()
    assert_names_everything(str(caught.value), url, file_name, folder)
    # Placing the file where the message says makes the same name load without network.
    torch.save({"state_dict": tiny().state_dict()}, folder / file_name)
    loaded = mm_checkpoint._load_checkpoint(name, map_location="cpu")
    assert set(loaded["state_dict"]) == set(tiny().state_dict())

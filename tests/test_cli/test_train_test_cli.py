"""tools/train.py and tools/test.py (resnext_plugin.cli.train/test): flags onto the config."""
from __future__ import annotations

import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# ------------------------------------------------------------------------------- tools (CLI)
def _tool(name: str):
    return importlib.import_module(f"resnext_plugin.cli.{name}")


DEMO = str(ROOT / "configs" / "demo" / "resnext50_32x4d_imagenet_demo.py")


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """parse_args exports LOCAL_RANK (as mmpretrain's tools do); undo it after the test."""
    monkeypatch.setenv("LOCAL_RANK", "0")


def test_train_cli_maps_flags_onto_the_config(tmp_path: Path, cli_env: None) -> None:
    train = _tool("train")
    cfg = train.build_config(train.parse_args([DEMO]))
    assert cfg.work_dir == "./work_dirs/resnext50_32x4d_imagenet_demo"
    assert cfg.launcher == "none" and not cfg.resume and cfg.load_from is None
    cfg = train.build_config(train.parse_args(
        [DEMO, "--work-dir", str(tmp_path), "--resume", "--no-validate", "--cfg-options",
         "train_cfg.max_epochs=2", "model.backbone.out_indices=(3,)"]))
    assert cfg.work_dir == str(tmp_path) and cfg.resume and cfg.load_from is None
    assert cfg.val_dataloader is None and cfg.val_cfg is None and cfg.val_evaluator is None
    assert cfg.train_cfg.max_epochs == 2 and cfg.model.backbone.out_indices == (3, )
    ckpt = tmp_path / "epoch_1.pth"
    ckpt.write_bytes(b"")
    cfg = train.build_config(train.parse_args([DEMO, "--resume", str(ckpt)]))
    assert cfg.resume and cfg.load_from == str(ckpt)
    real = str(ROOT / "configs" / "resnext50_32x4d_imagenet.py")
    cfg = train.build_config(train.parse_args([real, "--auto-scale-lr"]))
    assert cfg.auto_scale_lr == dict(base_batch_size=256, enable=True)
    with pytest.raises(FileNotFoundError, match="nowhere.pth"):
        train.build_config(train.parse_args([DEMO, "--resume", str(tmp_path / "nowhere.pth")]))
    with pytest.raises(FileNotFoundError, match="config file not found"):
        train.build_config(train.parse_args([str(tmp_path / "nope.py")]))
    # --amp works without a GPU too (fp32 on CPUs without native bf16):
    # tests/test_engine/test_amp.py
    cfg = train.build_config(train.parse_args([DEMO, "--amp"]))
    assert cfg.optim_wrapper.type == "resnext_plugin.AmpOptimWrapper"


def test_test_cli_loads_the_checkpoint_and_adds_a_dump(tmp_path: Path, cli_env: None) -> None:
    test = _tool("test")
    ckpt = tmp_path / "model.pth"
    ckpt.write_bytes(b"")
    cfg = test.build_config(test.parse_args([DEMO, str(ckpt), "--out", str(tmp_path / "p.pkl")]))
    assert cfg.load_from == str(ckpt) and cfg.resume is False
    assert [e["type"] for e in cfg.test_evaluator] == ["Accuracy", "DumpResults"]
    with pytest.raises(ValueError, match="--out"):
        test.build_config(test.parse_args([DEMO, str(ckpt), "--out", str(tmp_path / "x.txt")]))
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        test.build_config(test.parse_args([DEMO, str(tmp_path / "missing.pth")]))


def test_missing_data_is_one_error_line_and_exit_2(tmp_path: Path, cli_env: None,
                                                   capsys: pytest.CaptureFixture) -> None:
    """The frame train.py and test.py share (cli.runner_setup.run_tool): data that is not there
    stops the run with ``<tool>: error: ...`` naming the folder, not a traceback."""
    test = _tool("test")
    ckpt = tmp_path / "model.pth"
    ckpt.write_bytes(b"")
    missing = tmp_path / "no_imagenet_here"
    code = test.main([DEMO, str(ckpt), "--work-dir", str(tmp_path / "work"), "--cfg-options",
                      f"test_dataloader.dataset.data_root={missing}"])
    assert code == 2
    err = capsys.readouterr().err
    assert "test.py: error:" in err and str(missing) in err

"""Bad configs: unknown keys, wrong types and missing imports give errors that name
the key, the argument or the module."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from helpers import tiny
from mmengine.config import Config
from mmengine.registry import init_default_scope

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("kwargs,pattern", [
    (dict(depth="50"), r"`depth` must be one of \[29, 50, 101, 152, 200\], got '50'"),
    (dict(groups=32.0), r"`groups` must be an integer >= 1, got 32.0"),
    (dict(width_per_group="4"), r"`width_per_group` must be an integer >= 1, got '4'"),
    (dict(frozen_stages="1"), r"`frozen_stages` must be an integer"),
    (dict(norm_eval="yes"), r"`norm_eval` must be True or False, got 'yes'"),
    (dict(with_cp=1), r"`with_cp` must be True or False, got 1"),
    (dict(channels_last="true"), r"`channels_last` must be True or False"),
    (dict(deep_stem=None), r"`deep_stem` must be True or False"),
    (dict(zero_init_residual="no"), r"`zero_init_residual` must be True or False"),
    (dict(strides=2), r"`strides` must have one entry per stage"),
    (dict(out_indices="3"), r"`out_indices` must be stage indices"),
    (dict(norm_cfg="BN"), r"`norm_cfg` must be a dict with a 'type' \(or None\), got 'BN'"),
    (dict(norm_cfg=dict(requires_grad=True)), r"`norm_cfg` must be a dict with a 'type'"),
    (dict(norm_cfg=dict(type="BatchNorm")), r"`norm_cfg` type 'BatchNorm' is not a registered"),
    (dict(conv_cfg="Conv2d"), r"`conv_cfg` must be a dict with a 'type'"),
    (dict(init_cfg="ckpt.pth"), r"`init_cfg` must be a dict, a list of dicts or None"),
])
def test_wrong_types_name_the_argument(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        tiny(**kwargs)


@pytest.mark.parametrize("config,scope", [
    ("configs/mask-rcnn_resnext50-32x4d_fpn_1x_coco.py", "mmdet"),
    ("configs/resnext50_32x4d_imagenet.py", "mmpretrain"),
])
def test_unknown_backbone_key_is_named(config, scope):
    pytest.importorskip(scope, reason=f"{config} needs {scope} (not on this stack)")
    cfg = Config.fromfile(str(ROOT / config))
    cfg.model.backbone.frozen_stage = 1  # a typo of frozen_stages
    cfg.model.backbone.init_cfg = None
    init_default_scope(scope)
    registry = __import__(f"{scope}.registry", fromlist=["MODELS"]).MODELS
    with pytest.raises(TypeError, match=r"ResNeXt.*unexpected keyword argument 'frozen_stage'"):
        registry.build(cfg.model)


def _train(config: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "tools/train.py", str(config), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def test_custom_imports_of_a_missing_module_stop_the_tool(tmp_path):
    config = tmp_path / "typo.py"
    config.write_text(f"_base_ = {str(ROOT / 'configs/resnext50_32x4d_imagenet.py')!r}\n"
                      "custom_imports = dict(imports=['resnext_plugn'], "
                      "allow_failed_imports=False)\n")
    proc = _train(config, "--work-dir", str(tmp_path / "work"))
    assert proc.returncode != 0
    assert "No module named 'resnext_plugn'" in proc.stderr, proc.stderr[-2000:]
    assert not (tmp_path / "work").exists() or not any((tmp_path / "work").rglob("*.pth"))


def test_a_misspelt_cfg_option_is_named_by_the_tool(tmp_path):
    pytest.importorskip("mmpretrain", reason="the ImageNet config needs mmpretrain")
    proc = _train(ROOT / "configs/resnext50_32x4d_imagenet.py", "--work-dir",
                  str(tmp_path / "work"), "--cfg-options", "model.backbone.width_per_grop=4")
    assert proc.returncode != 0
    assert "unexpected keyword argument 'width_per_grop'" in proc.stderr, proc.stderr[-2000:]

"""The ImageNet configs follow the paper's recipe; the demo config changes size and schedule."""
from __future__ import annotations

from pathlib import Path

import pytest
from mmengine.config import Config

ROOT = Path(__file__).resolve().parents[2]

# ------------------------------------------------------------------------------- configs
@pytest.mark.parametrize("name, depth, groups, width", [
    ("resnext50_32x4d_imagenet.py", 50, 32, 4),
    ("resnext101_32x4d_imagenet.py", 101, 32, 4),
    ("resnext101_64x4d_imagenet.py", 101, 64, 4),
    ("resnext152_32x4d_imagenet.py", 152, 32, 4),
])
def test_configs_follow_the_paper_recipe(name: str, depth: int, groups: int, width: int) -> None:
    cfg = Config.fromfile(str(ROOT / "configs" / name))
    assert cfg.default_scope == "mmpretrain"
    assert cfg.custom_imports["imports"] == ["resnext_plugin", "resnext_plugin.upstream_fixes"]
    backbone = cfg.model.backbone
    assert (backbone.type, backbone.depth, backbone.groups, backbone.width_per_group) == (
        "resnext_plugin.ResNeXt", depth, groups, width)
    assert cfg.model.type == "ImageClassifier" and cfg.model.neck.type == "GlobalAveragePooling"
    assert cfg.model.head.num_classes == 1000 and cfg.model.head.in_channels == 2048
    assert cfg.optim_wrapper.optimizer == dict(type="SGD", lr=0.1, momentum=0.9,
                                               weight_decay=1e-4)
    assert cfg.param_scheduler.milestones == [30, 60, 90] and cfg.param_scheduler.gamma == 0.1
    assert cfg.train_cfg.max_epochs == 100 and cfg.auto_scale_lr.base_batch_size == 256
    assert cfg.train_dataloader.batch_size == 32
    assert cfg.train_dataloader.dataset.data_root == "data/imagenet"
    train, test = cfg.train_dataloader.dataset.pipeline, cfg.test_dataloader.dataset.pipeline
    assert [t.type for t in train] == ["resnext_plugin.StrictLoadImageFromFile",
                                       "RandomResizedCrop", "RandomFlip", "PackInputs"]
    assert train[1].scale == 224 and train[2].direction == "horizontal"
    assert (test[1].type, test[1].scale, test[1].edge) == ("ResizeEdge", 256, "short")
    assert (test[2].type, test[2].crop_size) == ("CenterCrop", 224)
    assert cfg.val_evaluator == dict(type="Accuracy", topk=(1, 5))


def test_demo_config_changes_only_data_size_batch_and_schedule() -> None:
    real = Config.fromfile(str(ROOT / "configs" / "resnext50_32x4d_imagenet.py")).to_dict()
    demo = Config.fromfile(str(ROOT / "configs" / "demo" / "resnext50_32x4d_imagenet_demo.py"))
    demo = demo.to_dict()
    allowed = {"train_dataloader", "val_dataloader", "test_dataloader", "train_pipeline",
               "test_pipeline", "data_root", "image_size", "batch_size", "train_cfg",
               "param_scheduler", "auto_scale_lr", "default_hooks", "tta_pipeline"}
    changed = {k for k in set(real) | set(demo) if real.get(k) != demo.get(k)}
    assert changed <= allowed, changed - allowed
    # tools/test.py --tta: the demo's own test pipeline, with the flip views before packing.
    assert demo["tta_pipeline"][:-1] == demo["test_pipeline"][:-1]
    assert demo["tta_pipeline"][-1] == real["tta_pipeline"][-1]
    for key in ("model", "optim_wrapper", "val_evaluator", "data_preprocessor", "randomness"):
        assert demo[key] == real[key]
    assert demo["train_dataloader"]["dataset"]["data_root"] == "data/demo_imagenet"
    # The augmentations are the real ones, at the demo's image size.
    assert [t["type"] for t in demo["train_pipeline"]] == [t["type"] for t in
                                                            real["train_pipeline"]]
    assert demo["auto_scale_lr"] == dict(base_batch_size=256, enable=True)
    # Only how often to log and how many checkpoints to keep differ among the hooks.
    for name, hook in real["default_hooks"].items():
        if name not in ("logger", "checkpoint"):
            assert demo["default_hooks"][name] == hook



"""Small models and fixtures shared by the tests (on the path through pyproject's `pythonpath`)."""
import json
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from resnext_plugin.checkpoint.safe_load import load_checkpoint_file
from resnext_plugin.models import ResNeXt

ROOT = Path(__file__).resolve().parents[1]
DEMO_CLASSIFIER = ROOT / "configs" / "demo" / "resnext50_32x4d_imagenet_demo.py"

# The demo classifier config shrunk for end-to-end tests: 16 px images, batch 4, a two-stage
# ResNeXt-50 32x4d (small checkpoints), no data-loader workers.
TINY_CLASSIFIER = """\
_base_ = [{base!r}]
data_root = {data_root!r}
train_pipeline = [
    dict(type='resnext_plugin.StrictLoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=16),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='resnext_plugin.StrictLoadImageFromFile'),
    dict(type='ResizeEdge', scale=18, edge='short'),
    dict(type='CenterCrop', crop_size=16),
    dict(type='PackInputs'),
]
train_dataloader = dict(batch_size=4, num_workers=0, persistent_workers=False,
                        dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(batch_size=8, num_workers=0, persistent_workers=False,
                      dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader
model = dict(backbone=dict(num_stages=2, strides=(1, 2), dilations=(1, 1), out_indices=(1, )),
             head=dict(in_channels=512))
train_cfg = dict(max_epochs=1)
default_hooks = dict(logger=dict(interval=2), checkpoint=dict(save_best=None))
randomness = dict(seed=0, deterministic=True)
"""


def tiny_classifier_config(tmp_path: Path, data_root: Path, extra: str = "",
                           name: str = "tiny.py") -> Path:
    """A config file in ``tmp_path``: the demo classifier shrunk to 16 px images and two stages
    (small checkpoints), on the data under ``data_root``, with ``extra`` appended."""
    path = tmp_path / name
    path.write_text(TINY_CLASSIFIER.format(base=str(DEMO_CLASSIFIER), data_root=str(data_root))
                    + extra)
    return path


def tiny(**kwargs) -> ResNeXt:
    args = dict(depth=50, groups=4, width_per_group=4, num_stages=2, out_indices=(0, 1),
                base_channels=16, stem_channels=16)
    args.update(kwargs)
    return ResNeXt(**args)


def randomise_bn(model: nn.Module, seed: int = 0) -> None:
    """Non-trivial BN statistics and affine parameters, so eval-mode comparisons mean something."""
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=gen) * 0.1)


def checkpoint_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The ``state_dict`` of an mmengine checkpoint, read weights-only by the plugin's own reader
    (plain ``torch.load(weights_only=True)`` refuses mmengine's message hub unless something in
    the process happened to allow its classes first)."""
    return load_checkpoint_file(path)["state_dict"]


def logged_training(work_dir: Path, keys: Sequence[str]) -> dict[int, dict]:
    """``keys`` of every logged training iteration, from all runs' ``vis_data/scalars.json``
    under ``work_dir`` (oldest run first, so a resumed run's entries replace the killed one's)."""
    logged = {}
    for path in sorted(work_dir.glob("*/vis_data/scalars.json")):
        for line in path.read_text().splitlines():
            entry = json.loads(line)
            if "loss" in entry:
                logged[entry["iter"]] = {k: entry[k] for k in keys if k in entry}
    return logged


def random_detector_state(config: str | Path) -> tuple[dict, list[str]]:
    """The Mask R-CNN of ``config`` with random weights (seed 0, randomised BN): its state dict
    and class names (``class_0``, ...)."""
    from mmdet.registry import MODELS
    from mmengine.config import Config
    from mmengine.registry import DefaultScope

    cfg = Config.fromfile(str(config))
    cfg.model.backbone.init_cfg = None
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope("mmdet"):
        model = MODELS.build(cfg.model)
    randomise_bn(model)
    classes = [f"class_{i}" for i in range(cfg.model.roi_head.bbox_head.num_classes)]
    return model.state_dict(), classes


def save_detector_checkpoint(state: dict, classes: list[str], path: Path) -> None:
    """Save ``state`` with ``classes`` in its ``dataset_meta``, as a trained run's checkpoint."""
    torch.save(dict(state_dict=state, meta=dict(dataset_meta=dict(classes=classes))), path)


def untrained_detector_checkpoint(config: str | Path, path: Path) -> list[str]:
    """Save the Mask R-CNN of ``config`` with random weights (randomised BN) to ``path``; return
    its class names (``class_0``, ...), also stored in the checkpoint's ``dataset_meta``.

    Random weights score every class alike (far below the 0.05 threshold); a bias towards class 0
    makes the untrained detector report boxes and masks.
    """
    state, classes = random_detector_state(config)
    state["roi_head.bbox_head.fc_cls.bias"][0] = 8.0
    save_detector_checkpoint(state, classes, path)
    return classes


def coco_data_options(root: str | Path) -> list[str]:
    """``--cfg-options`` pointing every loader and evaluator of a Mask R-CNN config at the
    COCO-layout data set under ``root``."""
    root = f"{str(root).rstrip('/')}/"
    options = [f"{loader}.dataset.data_root={root}"
               for loader in ("train_dataloader", "val_dataloader", "test_dataloader")]
    return options + [f"{evaluator}.ann_file={root}annotations/instances_val2017.json"
                      for evaluator in ("val_evaluator", "test_evaluator")]

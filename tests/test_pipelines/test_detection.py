"""Mask R-CNN with the plugin backbone through mmdet: configs, parameters, one training step.

The transfer run, conversion and demo tools are in ``test_detection_transfer.py``.
"""
from __future__ import annotations

import copy
import math

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import Runner

from resnext_plugin.demo_data.coco import DemoCocoSpec, make_demo_coco
from resnext_plugin.models import ResNeXt

#: config name -> (depth, groups C, width d, schedule)
CONFIGS = {
    "mask-rcnn_resnext50-32x4d_fpn_1x_coco": (50, 32, 4, "1x"),
    "mask-rcnn_resnext101-32x4d_fpn_1x_coco": (101, 32, 4, "1x"),
    "mask-rcnn_resnext101-64x4d_fpn_1x_coco": (101, 64, 4, "1x"),
    "mask-rcnn_resnext101-32x4d_fpn_ms-poly-3x_coco": (101, 32, 4, "3x"),
    "mask-rcnn_resnext101-64x4d_fpn_ms-poly-3x_coco": (101, 64, 4, "3x"),
}
TINY_SCALE = (64, 64)


def load_config(repo_root, name: str) -> Config:
    return Config.fromfile(str(repo_root / "configs" / f"{name}.py"))


def build_detector(cfg: Config) -> torch.nn.Module:
    init_default_scope("mmdet")
    from mmdet.registry import MODELS

    return MODELS.build(copy.deepcopy(cfg.model))


def inner_dataset(dataset_cfg):
    """The COCO dataset config, inside a RepeatDataset wrapper or not."""
    return dataset_cfg.dataset if dataset_cfg.type == "RepeatDataset" else dataset_cfg


def shrink_pipeline(pipeline: list) -> list:
    """The same transforms, resizing to tiny images instead of COCO's 1333x800."""
    pipeline = copy.deepcopy(pipeline)
    for transform in pipeline:
        if transform["type"] == "Resize":
            transform["scale"] = TINY_SCALE
        elif transform["type"] == "RandomResize":
            transform["scale"] = [(64, 48), TINY_SCALE]
    return pipeline


@pytest.fixture(scope="module")
def tiny_coco(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny_coco")
    make_demo_coco(root, DemoCocoSpec(num_train=4, num_val=2, image_size=64, seed=3))
    return root


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_config_recipe(repo_root, name):
    depth, groups, width, schedule = CONFIGS[name]
    cfg = load_config(repo_root, name)
    assert cfg.custom_imports == dict(imports=["resnext_plugin", "resnext_plugin.upstream_fixes"],
                                      allow_failed_imports=False)
    assert cfg.default_scope == "mmdet"
    assert cfg.model.type == "MaskRCNN"
    backbone = cfg.model.backbone
    assert backbone.type == "resnext_plugin.ResNeXt"
    assert (backbone.depth, backbone.groups, backbone.width_per_group) == (depth, groups, width)
    assert tuple(backbone.out_indices) == (0, 1, 2, 3)
    assert backbone.frozen_stages == 1 and backbone.norm_eval is True
    assert backbone.style == "pytorch"
    assert backbone.init_cfg.type == "Pretrained"
    assert f"resnext{depth}_{groups}x{width}d" in backbone.init_cfg.checkpoint

    # mmdet's SGD recipe: lr 0.02 for 16 images, warm-up 500 iterations.
    optimizer = cfg.optim_wrapper.optimizer
    assert (optimizer.type, optimizer.lr, optimizer.momentum, optimizer.weight_decay) == (
        "SGD", 0.02, 0.9, 0.0001)
    assert cfg.auto_scale_lr.base_batch_size == 16
    assert cfg.train_dataloader.batch_size == 2  # x 8 GPUs = 16
    warmup, steps = cfg.param_scheduler
    assert (warmup.type, warmup.by_epoch, warmup.end) == ("LinearLR", False, 500)
    assert cfg.train_cfg.max_epochs == 12
    train_set = inner_dataset(cfg.train_dataloader.dataset)
    transforms = {t["type"]: t for t in train_set.pipeline}
    if schedule == "1x":
        assert steps.milestones == [8, 11]
        assert cfg.train_dataloader.dataset is train_set  # no RepeatDataset
        assert transforms["Resize"]["scale"] == (1333, 800)
    else:  # 3x = 12 epochs over the training set repeated 3 times, multi-scale, polygons
        assert steps.milestones == [9, 11]
        assert cfg.train_dataloader.dataset.times == 3
        assert transforms["RandomResize"]["scale"] == [(1333, 640), (1333, 800)]
        assert transforms["LoadAnnotations"]["poly2mask"] is False

    # Standard COCO layout and evaluation; mmdet's CocoDataset with the data checks.
    for dataset in (train_set, cfg.val_dataloader.dataset, cfg.test_dataloader.dataset):
        assert dataset.type == "resnext_plugin.CheckedCocoDataset"
    assert train_set.data_root == "data/coco/"
    assert train_set.ann_file == "annotations/instances_train2017.json"
    assert cfg.val_dataloader.dataset.ann_file == "annotations/instances_val2017.json"
    assert cfg.val_evaluator.type == "CocoMetric"
    assert cfg.val_evaluator.metric == ["bbox", "segm"]
    assert cfg.val_evaluator.ann_file == "data/coco/annotations/instances_val2017.json"


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_backbone_has_stock_mmdet_parameters(repo_root, name):
    """The detector's backbone is ours, with exactly mmdet's ResNeXt parameters and buffers."""
    depth, groups, width, _ = CONFIGS[name]
    cfg = load_config(repo_root, name)
    detector = build_detector(cfg)
    assert type(detector.backbone) is ResNeXt
    assert (detector.backbone.depth, detector.backbone.groups,
            detector.backbone.width_per_group) == (depth, groups, width)

    from mmdet.models.backbones import ResNeXt as MMDetResNeXt
    from mmdet.registry import MODELS

    stock = MODELS.build(dict(type="mmdet.ResNeXt", depth=depth, groups=groups, base_width=width,
                              num_stages=4, out_indices=(0, 1, 2, 3), frozen_stages=1,
                              norm_cfg=dict(type="BN", requires_grad=True), norm_eval=True,
                              style="pytorch"))
    assert type(stock) is MMDetResNeXt

    def signature(module, tensors):
        return [(n, tuple(t.shape)) for n, t in tensors(module)]

    assert signature(detector.backbone, lambda m: m.named_parameters()) == \
        signature(stock, lambda m: m.named_parameters())
    assert signature(detector.backbone, lambda m: m.named_buffers()) == \
        signature(stock, lambda m: m.named_buffers())
    # frozen_stages=1 freezes the same tensors in both.
    frozen = {n for n, p in detector.backbone.named_parameters() if not p.requires_grad}
    assert frozen == {n for n, p in stock.named_parameters() if not p.requires_grad}
    assert frozen and all(n.startswith(("conv1", "bn1", "layer1.")) for n in frozen)

    # The FPN reads exactly the channels the backbone publishes.
    published = [info["num_chs"] for info in detector.backbone.feature_info]
    assert list(cfg.model.neck.in_channels) == published == list(detector.backbone.out_channels)
    assert [conv.conv.in_channels for conv in detector.neck.lateral_convs] == published
    with torch.no_grad():
        feats = detector.backbone.eval()(torch.rand(1, 3, 64, 64))
    assert [f.shape[1] for f in feats] == published
    assert [64 // f.shape[-1] for f in feats] == list(detector.backbone.out_strides)


# ResNeXt-50 with the 1x pipeline and ResNeXt-101 with the 3x multi-scale polygon pipeline; the
# other three configs differ from these only in numbers the two tests above check (kept short
# for CI on 2 shared cores).
@pytest.mark.parametrize("name", ["mask-rcnn_resnext50-32x4d_fpn_1x_coco",
                                  "mask-rcnn_resnext101-32x4d_fpn_ms-poly-3x_coco"])
def test_forward_backward_one_batch(repo_root, tiny_coco, name):
    """One batch through the config's own dataset, transforms and data preprocessor, then
    loss and backward: every Mask R-CNN loss is finite and gradients reach the unfrozen stages
    only; norm_eval keeps the backbone's BatchNorms in eval mode."""
    cfg = load_config(repo_root, name)
    loader = copy.deepcopy(cfg.train_dataloader)
    dataset = inner_dataset(loader.dataset)
    dataset.data_root = str(tiny_coco)
    dataset.metainfo = dict(classes=("circle", "square", "triangle", "star"))
    dataset.pipeline = shrink_pipeline(dataset.pipeline)
    loader.update(batch_size=2, num_workers=0, persistent_workers=False)
    init_default_scope("mmdet")
    batch = next(iter(Runner.build_dataloader(loader, seed=0)))

    torch.manual_seed(0)
    detector = build_detector(cfg)
    detector.train()
    data = detector.data_preprocessor(batch, True)
    assert data["inputs"].shape[-2:] == TINY_SCALE
    losses = detector(**data, mode="loss")
    loss, log_vars = detector.parse_losses(losses)
    values = {k: float(torch.as_tensor(v).detach()) for k, v in log_vars.items()}
    for key in ("loss_rpn_cls", "loss_rpn_bbox", "loss_cls", "loss_bbox", "loss_mask"):
        assert math.isfinite(values[key]), (key, values)
    assert values["loss_mask"] > 0
    loss.backward()

    backbone = detector.backbone
    assert all(not m.training for m in backbone.modules()
               if isinstance(m, torch.nn.modules.batchnorm._BatchNorm))
    for name_, param in backbone.named_parameters():
        if name_.startswith(("conv1", "bn1", "layer1.")):
            assert param.grad is None, name_
    for stage in ("layer2", "layer3", "layer4"):
        grad = getattr(backbone, stage)[0].conv2.weight.grad
        assert grad is not None and grad.abs().sum() > 0, stage
    assert detector.roi_head.mask_head.conv_logits.weight.grad.abs().sum() > 0

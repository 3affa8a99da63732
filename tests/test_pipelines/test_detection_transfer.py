"""ImageNet classifier -> backbone checkpoint -> Mask R-CNN: conversion, loading, a short transfer
run with COCO evaluation through the real tools, the drawing demo, the demo data, and (slow) the
whole `make demo` pipeline."""
from __future__ import annotations

import copy
import hashlib
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import checkpoint_state_dict, coco_data_options, logged_training, randomise_bn
from mmengine.config import Config
from mmengine.registry import init_default_scope
from PIL import Image
from scipy.ndimage import binary_erosion

from resnext_plugin.demo_data.coco import CATEGORIES, DemoCocoSpec, make_demo_coco
from resnext_plugin.models import ResNeXt

ROOT = Path(__file__).resolve().parents[2]
DETECTION_DEMO = "configs/demo/mask-rcnn_resnext50-32x4d_fpn_demo.py"
DETECTION_50 = "configs/mask-rcnn_resnext50-32x4d_fpn_1x_coco.py"
CLASSIFIER_DEMO = "configs/demo/resnext50_32x4d_imagenet_demo.py"


def load_tool(name: str):
    """The command line behind ``tools/<name>.py`` (``demo_chain``: the demo pipeline's steps)."""
    return importlib.import_module(f"resnext_plugin.cli.{name}")


def run_tool(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == 0, f"{args[0]} failed:\n{result.stdout[-3000:]}\n" \
                                   f"{result.stderr[-3000:]}"
    return result


def build(cfg_model: dict, scope: str) -> torch.nn.Module:
    init_default_scope(scope)
    if scope == "mmdet":
        from mmdet.registry import MODELS
    else:
        from mmpretrain.registry import MODELS
    return MODELS.build(copy.deepcopy(cfg_model))


@pytest.fixture(scope="module")
def classifier_ckpt(tmp_path_factory):
    """An mmpretrain classifier checkpoint of the demo pretraining config, random weights."""
    cfg = Config.fromfile(str(ROOT / CLASSIFIER_DEMO))
    torch.manual_seed(1)
    classifier = build(cfg.model, "mmpretrain")
    # Random convolutions come from construction; BN gets random statistics and affine values
    # too, so equal tensors after the round trip mean the values travelled.
    randomise_bn(classifier, seed=1)
    path = tmp_path_factory.mktemp("classifier") / "classifier.pth"
    classes = [f"class_{i}" for i in range(cfg.model.head.num_classes)]
    torch.save(dict(meta=dict(dataset_meta=dict(classes=classes)),
                    state_dict=classifier.state_dict()), path)
    return path, {k[len("backbone."):]: v for k, v in classifier.state_dict().items()
                  if k.startswith("backbone.")}


@pytest.fixture(scope="module")
def backbone_ckpt(classifier_ckpt, tmp_path_factory):
    """The classifier converted by tools/convert_checkpoint.py --from plugin --to backbone."""
    src, _ = classifier_ckpt
    dst = tmp_path_factory.mktemp("backbone") / "backbone.pth"
    # The command line's main(), in this process (saves a second start of torch and mmdet).
    assert load_tool("convert_checkpoint").main(
        [str(src), str(dst), "--from", "plugin", "--to", "backbone"]) == 0
    return dst


def detector_with_pretrained(checkpoint: Path, prefix: str | None = None, **backbone):
    cfg = Config.fromfile(str(ROOT / DETECTION_50))
    init_cfg = dict(type="Pretrained", checkpoint=str(checkpoint))
    if prefix:
        init_cfg["prefix"] = prefix
    cfg.model.backbone.update(init_cfg=init_cfg, **backbone)
    return build(cfg.model, "mmdet")


def test_conversion_round_trip(classifier_ckpt, backbone_ckpt):
    """classifier -> backbone checkpoint -> detector backbone: every tensor identical."""
    _, expected = classifier_ckpt
    converted = torch.load(backbone_ckpt, map_location="cpu", weights_only=True)
    converted = converted.get("state_dict", converted)
    assert set(converted) == set(expected)  # plain keys, no head, no 'backbone.' prefix
    for ckpt, prefix in ((backbone_ckpt, None), (classifier_ckpt[0], "backbone.")):
        detector = detector_with_pretrained(ckpt, prefix)
        detector.init_weights()
        loaded = detector.backbone.state_dict()
        assert set(loaded) == set(expected)
        for key, value in expected.items():
            assert torch.equal(loaded[key], value), (prefix, key)


@pytest.mark.parametrize("wrong, named", [(dict(depth=101), "101"),
                                          (dict(depth=50, groups=64), "64")])
def test_wrong_architecture_checkpoint_fails(tmp_path, wrong, named):
    """A ResNeXt-101 (or 64x4d) backbone checkpoint in the ResNeXt-50 32x4d detector fails
    with an error that names the checkpoint and what it holds, instead of a partial load."""
    path = tmp_path / "other_backbone.pth"
    torch.save(dict(state_dict=ResNeXt(**wrong).state_dict()), path)
    detector = detector_with_pretrained(path)
    before = detector.backbone.layer1[0].conv1.weight.detach().clone()
    with pytest.raises(ValueError) as info:
        detector.init_weights()
    message = str(info.value)
    assert str(path) in message and named in message, message
    assert torch.equal(detector.backbone.layer1[0].conv1.weight, before)


@pytest.fixture(scope="module")
def tiny_demo_coco(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo_coco")
    make_demo_coco(root, DemoCocoSpec(num_train=8, num_val=4, image_size=64, seed=5))
    return root


def tiny_run_options(coco: Path, backbone: Path) -> list[str]:
    """--cfg-options that point the demo config at the tiny data and shrink it to 64 px."""
    root = f"{coco}/"
    options = [f"model.backbone.init_cfg.checkpoint={backbone}",
               "model.test_cfg.rcnn.score_thr=0.0",  # an almost untrained model still predicts
               "train_cfg.max_epochs=1", "train_cfg.val_interval=1",
               "default_hooks.logger.interval=1",
               "train_dataloader.batch_size=2", "train_dataloader.dataset.pipeline.2.scale=(64,64)"]
    options += [f"{loader}.dataset.pipeline.1.scale=(64,64)"
                for loader in ("val_dataloader", "test_dataloader")]
    return options + coco_data_options(root)


@pytest.fixture(scope="module")
def transfer_run(tiny_demo_coco, backbone_ckpt, tmp_path_factory):
    """tools/train.py on the demo detection config: 1 epoch (4 iterations) with validation."""
    work_dir = tmp_path_factory.mktemp("transfer")
    options = tiny_run_options(tiny_demo_coco, backbone_ckpt)
    run_tool("tools/train.py", DETECTION_DEMO, "--work-dir", str(work_dir),
             "--cfg-options", *options)
    return work_dir, options


def test_transfer_run_reports_coco_bbox_and_segm(transfer_run, backbone_ckpt):
    work_dir, options = transfer_run
    # Validation during training went through CocoMetric (bbox and segm).
    scalars = [json.loads(line) for line in
               next(work_dir.glob("*/vis_data/scalars.json")).read_text().splitlines()]
    val = [entry for entry in scalars if "coco/segm_mAP" in entry]
    assert len(val) == 1 and "coco/bbox_mAP" in val[0]
    assert any("loss_mask" in entry for entry in scalars)

    checkpoint = work_dir / "epoch_1.pth"
    state = checkpoint_state_dict(checkpoint)
    # The backbone started from our converted checkpoint: the frozen stem and stage 1 still
    # hold exactly its tensors after training.
    converted = torch.load(backbone_ckpt, map_location="cpu", weights_only=True)
    converted = converted.get("state_dict", converted)
    frozen = [k for k in converted if k.startswith(("conv1.", "bn1.", "layer1."))
              and not k.endswith("num_batches_tracked")]
    assert frozen
    for key in frozen:
        assert torch.equal(state[f"backbone.{key}"], converted[key]), key
    trained = [k for k in converted if k.startswith("layer4.") and k.endswith("conv2.weight")]
    assert any(not torch.equal(state[f"backbone.{k}"], converted[k]) for k in trained)

    # tools/test.py evaluates the checkpoint with pycocotools, box and mask AP.
    metrics_file = work_dir / "test_metrics.json"
    assert load_tool("test").main([DETECTION_DEMO, str(checkpoint), "--work-dir",
                                   str(work_dir / "test"), "--out", str(metrics_file),
                                   "--cfg-options", *options]) == 0
    metrics = load_tool("demo_chain").read_metrics(metrics_file)
    for key in ("coco/bbox_mAP", "coco/bbox_mAP_50", "coco/segm_mAP", "coco/segm_mAP_50"):
        assert 0.0 <= metrics[key] <= 1.0, (key, metrics)


RESUME_CONFIG = """\
_base_ = {base!r}
default_hooks = dict(checkpoint=dict(interval=1, max_keep_ckpts=-1), logger=dict(interval=1))
log_processor = dict(window_size=1)  # each logged value is that iteration's own
train_cfg = dict(val_interval=100)
randomness = dict(seed=0, deterministic=True)
"""
WITHOUT_RESEEDING = "custom_hooks = [dict(type='resnext_plugin.StopOnNonFiniteLossHook')]\n"
LOGGED = ("loss", "loss_rpn_cls", "loss_rpn_bbox", "loss_cls", "loss_bbox", "loss_mask", "acc",
          "lr", "grad_norm")


def _train_interrupted_and_full(config: Path, options: list[str], tmp_path: Path,
                                tag: str) -> tuple[Path, Path]:
    """One run of 2 epochs; one stopped after epoch 1 (a clean stop leaves what a kill right
    after the checkpoint leaves) and resumed to 2. The schedule is the config's in both."""
    full, resumed = tmp_path / f"full_{tag}", tmp_path / f"resumed_{tag}"
    run_tool("tools/train.py", str(config), "--work-dir", str(full), "--cfg-options",
             *options, "train_cfg.max_epochs=2")
    run_tool("tools/train.py", str(config), "--work-dir", str(resumed), "--cfg-options",
             *options, "train_cfg.max_epochs=1")
    assert not (resumed / "epoch_2.pth").exists()
    log = run_tool("tools/train.py", str(config), "--work-dir", str(resumed), "--resume",
                   "--cfg-options", *options, "train_cfg.max_epochs=2")
    assert "resumed epoch: 1," in log.stdout + log.stderr
    return full, resumed


def _resume_options(coco: Path, backbone: Path) -> list[str]:
    return [o for o in tiny_run_options(coco, backbone) if not o.startswith("train_cfg.")]


def test_mask_rcnn_interrupted_then_resumed_equals_uninterrupted(tiny_demo_coco, backbone_ckpt,
                                                                 tmp_path):
    """Weights and every logged loss of epoch 2 equal, with RandomFlip, RPN and RoI sampling,
    and a validation (a data loader of its own) only in the interrupted run."""
    config = tmp_path / "resume.py"
    config.write_text(RESUME_CONFIG.format(base=str(ROOT / DETECTION_DEMO)))
    full, resumed = _train_interrupted_and_full(
        config, _resume_options(tiny_demo_coco, backbone_ckpt), tmp_path, "reseeded")
    first = checkpoint_state_dict(full / "epoch_1.pth")
    last = checkpoint_state_dict(full / "epoch_2.pth")
    again = checkpoint_state_dict(resumed / "epoch_2.pth")
    assert last.keys() == again.keys()
    for name in last:
        assert torch.equal(last[name], again[name]), f"{name} differs after resume"
    assert not torch.equal(first["roi_head.mask_head.conv_logits.weight"],
                           last["roi_head.mask_head.conv_logits.weight"])  # it trained
    logged_full, logged_resumed = logged_training(full, LOGGED), logged_training(resumed, LOGGED)
    epoch2 = sorted(i for i in logged_full if i > min(logged_full) + 3)  # 4 iterations/epoch
    assert epoch2 and all(logged_full[i] == logged_resumed[i] for i in epoch2), \
        [(i, logged_full[i], logged_resumed.get(i)) for i in epoch2]


@pytest.mark.slow
def test_without_reseeding_resume_draws_other_augmentations(tiny_demo_coco, backbone_ckpt,
                                                            tmp_path):
    """The control: without ResumableRandomnessHook, mmengine reseeds at resume and epoch 2
    differs, so the test above is not equal by accident."""
    config = tmp_path / "resume_plain.py"
    config.write_text(RESUME_CONFIG.format(base=str(ROOT / DETECTION_DEMO)) + WITHOUT_RESEEDING)
    full, resumed = _train_interrupted_and_full(
        config, _resume_options(tiny_demo_coco, backbone_ckpt), tmp_path, "plain")
    last = checkpoint_state_dict(full / "epoch_2.pth")
    again = checkpoint_state_dict(resumed / "epoch_2.pth")
    assert any(not torch.equal(last[name], again[name]) for name in last)


def test_demo_draws_detections(transfer_run, tiny_demo_coco, tmp_path, capsys):
    work_dir, options = transfer_run
    image = tiny_demo_coco / "val2017" / "000000100001.jpg"
    out = tmp_path / "pred.png"
    demo = load_tool("demo")
    assert demo.main([DETECTION_DEMO, str(work_dir / "epoch_1.pth"), str(image), "--out",
                      str(out), "--score-thr", "0", "--out-size", "256",
                      "--cfg-options", *options]) == 0
    printed = capsys.readouterr().out
    assert "detections with score >= 0" in printed and str(out) in printed
    assert any(name in printed for name in CATEGORIES)
    drawn = np.asarray(Image.open(out).convert("RGB"))
    assert drawn.shape == (256, 256, 3)
    plain = np.asarray(Image.open(image).convert("RGB").resize((256, 256), Image.BILINEAR))
    assert np.abs(drawn.astype(int) - plain.astype(int)).mean() > 2  # boxes and masks drawn


def test_demo_prints_top5_for_a_classifier(classifier_ckpt, tmp_path, capsys):
    from resnext_plugin.demo_data.imagenet import DemoImageNetSpec, make_demo_imagenet

    make_demo_imagenet(tmp_path / "imagenet", DemoImageNetSpec(train_per_class=1, val_per_class=1))
    image = sorted((tmp_path / "imagenet" / "val").rglob("*.jpg"))[0]
    demo = load_tool("demo")
    assert demo.main([CLASSIFIER_DEMO, str(classifier_ckpt[0]), str(image)]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.strip()[:2] in
             {f"{i}." for i in range(1, 6)}]
    assert len(lines) == 5 and all("class_" in line for line in lines)
    probs = [float(line.split()[-1]) for line in lines]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1.0001


def test_demo_rejects_missing_files(tmp_path, capsys):
    demo = load_tool("demo")
    missing = str(tmp_path / "nope.jpg")
    assert demo.main([DETECTION_DEMO, DETECTION_DEMO, missing]) == 2
    assert f"image not found: {missing}" in capsys.readouterr().err


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_demo_coco_is_deterministic_and_exact(tmp_path):
    spec = DemoCocoSpec(num_train=6, num_val=3, image_size=64, seed=11)
    make_demo_coco(tmp_path / "a", spec)
    make_demo_coco(tmp_path / "b", spec)
    make_demo_coco(tmp_path / "c", DemoCocoSpec(num_train=6, num_val=3, image_size=64, seed=12))
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert _digest(tmp_path / "a") != _digest(tmp_path / "c")

    from pycocotools.coco import COCO

    coco = COCO(str(tmp_path / "a" / "annotations" / "instances_train2017.json"))
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == list(CATEGORIES)
    assert len(coco.getImgIds()) == 6 and len(coco.getAnnIds()) >= 6
    for ann in coco.loadAnns(coco.getAnnIds()):
        mask = coco.annToMask(ann)
        x, y, w, h = ann["bbox"]
        assert 0 <= x and 0 <= y and x + w <= 64 and y + h <= 64
        assert abs(mask.sum() - ann["area"]) <= 0.15 * ann["area"] + 10  # rasterised polygon
        image = np.asarray(Image.open(tmp_path / "a" / "train2017" /
                                      coco.loadImgs(ann["image_id"])[0]["file_name"]))
        # A shape is one flat saturated colour: small spread inside its mask. Its outermost ring
        # of pixels mixes with the background (anti-aliasing, JPEG), so look one pixel inside.
        interior = binary_erosion(mask.astype(bool))
        assert interior.sum() > 0.3 * mask.sum(), ann["id"]
        inside = image[interior].astype(float)
        assert inside.std(axis=0).max() < 15, ann["id"]


def test_demo_coco_rejects_bad_spec(tmp_path):
    with pytest.raises(ValueError, match="`image_size`"):
        make_demo_coco(tmp_path, DemoCocoSpec(image_size=8))
    with pytest.raises(ValueError, match="`num_val`"):
        make_demo_coco(tmp_path, DemoCocoSpec(num_val=0))


def test_demo_pipeline_helpers(tiny_demo_coco, tmp_path):
    pipeline = load_tool("demo_chain")
    picked = Path(pipeline.pick_demo_image(tiny_demo_coco))
    coco = json.loads((tiny_demo_coco / "annotations" / "instances_val2017.json").read_text())
    per_image: dict[int, set] = {}
    for ann in coco["annotations"]:
        per_image.setdefault(ann["image_id"], set()).add(ann["category_id"])
    picked_id = next(i["id"] for i in coco["images"] if i["file_name"] == picked.name)
    assert picked.is_file() and len(per_image[picked_id]) == max(map(len, per_image.values()))
    assert pipeline.default_threads() == len(os.sched_getaffinity(0))  # all cores
    with pytest.raises(FileNotFoundError, match="last_checkpoint"):
        pipeline.last_checkpoint(tmp_path)
    with pytest.raises(FileNotFoundError, match="metrics.json"):
        pipeline.read_metrics(tmp_path / "metrics.json")


@pytest.mark.slow
def test_make_demo_pipeline(tmp_path):
    """`make demo`: pretraining, conversion, transfer, evaluation; mask AP clearly above the
    untrained detector's."""
    result = run_tool("tools/demo_pipeline.py", "--work-root", str(tmp_path / "work"),
                      "--imagenet-root", str(tmp_path / "demo_imagenet"),
                      "--coco-root", str(tmp_path / "demo_coco"), timeout=3600)
    assert "demo summary" in result.stdout
    summary = json.loads((tmp_path / "work" / "summary.json").read_text())
    assert summary["trained"]["segm_mAP"] >= summary["untrained"]["segm_mAP"] + 0.2, summary
    assert summary["trained"]["bbox_mAP"] >= summary["untrained"]["bbox_mAP"] + 0.2, summary
    assert Path(summary["files"]["prediction_png"]).is_file()

"""``tools/test.py``: the options of mmdet's and mmpretrain's own ``tools/test.py``.

``--show-dir`` (drawn predictions), ``--tta`` (the config's ``tta_model``/``tta_pipeline``) and
``--out x.pkl`` (every prediction, loadable with ``mmengine.load``) on the demo classification and
the demo Mask R-CNN config, with tiny generated data sets and checkpoints made here (random
weights; the detector gets a class-0 bias so that it draws and dumps detections). The tool runs
in this process (its ``main()``), through the real mmengine runner; the metrics each run logged
are read from its ``<timestamp>.json``. ``--out x.json`` end to end:
tests/test_pipelines/test_pretrain.py and tests/test_pipelines/test_detection_transfer.py.
"""
from __future__ import annotations

import argparse
import importlib
from pathlib import Path

import mmcv
import mmengine
import pytest
import torch
from helpers import coco_data_options, randomise_bn, untrained_detector_checkpoint
from mmengine.config import Config
from mmengine.registry import DefaultScope

from resnext_plugin.demo_data.coco import DemoCocoSpec, make_demo_coco
from resnext_plugin.demo_data.imagenet import DemoImageNetSpec, make_demo_imagenet
from resnext_plugin.engine.testing import (
    enable_visualization,
    fresh_visualizer_name,
    resolve_out_item,
    use_tta,
)

ROOT = Path(__file__).resolve().parents[2]
CLASSIFIER_DEMO = ROOT / "configs/demo/resnext50_32x4d_imagenet_demo.py"
DETECTOR_DEMO = ROOT / "configs/demo/mask-rcnn_resnext50-32x4d_fpn_demo.py"
DETECTOR = ROOT / "configs/mask-rcnn_resnext50-32x4d_fpn_1x_coco.py"


TOOL = importlib.import_module("resnext_plugin.cli.test")


# --------------------------------------------------------------------------- option handling

@pytest.mark.parametrize("out, item, expected", [
    ("m.json", None, "metrics"), ("m.yaml", None, "metrics"), ("p.pkl", None, "pred"),
    ("p.pickle", "pred", "pred"), ("m.pkl", "metrics", "metrics"), (None, None, None)])
def test_out_item_from_suffix_or_option(out, item, expected):
    assert resolve_out_item(out, item) == expected


@pytest.mark.parametrize("out, item, message", [
    ("preds.txt", None, "--out must end with .pkl or .pickle"),
    ("preds.json", "pred", "--out-item pred writes a pickle"),
    ("m.txt", "metrics", "--out-item metrics"),
    (None, "metrics", "--out-item needs --out")])
def test_bad_out_is_named(out, item, message):
    with pytest.raises(ValueError, match=message):
        resolve_out_item(out, item)


def test_show_options_set_each_frameworks_hook(tmp_path):
    det = Config.fromfile(str(DETECTOR))
    enable_visualization(det, "drawn", show=True, wait_time=0.5)
    hook = det.default_hooks.visualization
    assert hook.type == "DetVisualizationHook" and hook.draw and hook.show
    assert hook.wait_time == 0.5 and hook.test_out_dir == str(Path("drawn").resolve())
    with pytest.raises(ValueError, match="--interval applies to mmpretrain configs"):
        enable_visualization(Config.fromfile(str(DETECTOR)), "drawn", interval=5)

    cls = Config.fromfile(str(CLASSIFIER_DEMO))
    enable_visualization(cls, str(tmp_path / "drawn"), interval=3)
    hook = cls.default_hooks.visualization
    assert hook.type == "VisualizationHook" and hook.enable and not hook.show
    assert hook.out_dir == str(tmp_path / "drawn") and hook.interval == 3

    cls = Config.fromfile(str(CLASSIFIER_DEMO))
    del cls.default_hooks["visualization"]
    with pytest.raises(ValueError, match="default_hooks.visualization"):
        enable_visualization(cls, "drawn")


def test_tta_wraps_the_model_and_replaces_the_test_pipeline():
    cfg = Config.fromfile(str(CLASSIFIER_DEMO))
    model, tta_pipeline = cfg.model.copy(), cfg.tta_pipeline
    use_tta(cfg)
    assert cfg.model.type == "AverageClsScoreTTA"
    assert cfg.model.module.backbone == model.backbone
    assert cfg.test_dataloader.dataset.pipeline == tta_pipeline
    assert tta_pipeline[-1].type == "TestTimeAug"


def test_tta_without_tta_model_is_refused(tmp_path, capsys):
    """The Mask R-CNN configs have no tta_model (mmdet 3.3's DetTTAModel refuses masks)."""
    ckpt = tmp_path / "empty.pth"
    torch.save({"state_dict": {}}, ckpt)
    assert TOOL.main([str(DETECTOR), str(ckpt), "--tta", "--work-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "`tta_model`" in err and "`tta_pipeline`" in err and str(DETECTOR) in err
    assert "refuses instance masks" in err


def test_tta_with_mmpretrain_drawing_is_refused(tmp_path, capsys):
    """mmpretrain's VisualizationHook draws network inputs and crashes on TTA batches (with
    mmpretrain's own tools/test.py too): refused before anything runs."""
    ckpt = tmp_path / "empty.pth"
    torch.save({"state_dict": {}}, ckpt)
    assert TOOL.main([str(CLASSIFIER_DEMO), str(ckpt), "--tta", "--show-dir", str(tmp_path),
                      "--work-dir", str(tmp_path)]) == 2
    assert "run --tta and --show-dir separately" in capsys.readouterr().err


def test_a_second_runner_in_the_process_gets_its_own_visualizer():
    from mmengine.visualization import Visualizer

    cfg = Config.fromfile(str(DETECTOR))
    assert cfg.visualizer.name == "visualizer"  # mmdet's configs all name it so
    name = cfg.visualizer.name = "test_test_tool_visualizer"
    fresh_visualizer_name(cfg)
    assert cfg.visualizer.name == name  # the first of its name keeps it
    Visualizer.get_instance(name)
    fresh_visualizer_name(cfg)
    assert cfg.visualizer.name.startswith(f"{name}-")
    assert not Visualizer.check_instance_created(cfg.visualizer.name)


def test_parse_keeps_mmpretrain_and_mmdet_spellings():
    args = TOOL.parse_args(["c.py", "k.pth", "--out", "r.pkl", "--out-item", "pred",
                            "--show-dir", "d", "--show", "--wait-time", "1", "--interval", "2",
                            "--tta", "--launcher", "none", "--local-rank", "0"])
    assert isinstance(args, argparse.Namespace)
    assert (args.out, args.out_item, args.show_dir, args.show, args.wait_time, args.interval,
            args.tta) == ("r.pkl", "pred", "d", True, 1.0, 2, True)


# --------------------------------------------------------------------------- classification

@pytest.fixture(scope="module")
def imagenet(tmp_path_factory):
    """4 classes x 2 validation images of 24 px (and one training image each)."""
    root = tmp_path_factory.mktemp("imagenet")
    make_demo_imagenet(root, DemoImageNetSpec(num_classes=4, train_per_class=1, val_per_class=2,
                                              image_size=24, seed=3))
    return root


@pytest.fixture(scope="module")
def classifier_ckpt(tmp_path_factory):
    from mmpretrain.registry import MODELS

    cfg = Config.fromfile(str(CLASSIFIER_DEMO))
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope("mmpretrain"):
        model = MODELS.build(cfg.model)
    randomise_bn(model)
    path = tmp_path_factory.mktemp("classifier") / "classifier.pth"
    torch.save(dict(state_dict=model.state_dict()), path)
    return path


def _classification_options(root: Path) -> list[str]:
    options = []
    for loader in ("train_dataloader", "val_dataloader", "test_dataloader"):
        options += [f"{loader}.dataset.data_root={root}", f"{loader}.num_workers=0",
                    f"{loader}.persistent_workers=False"]
    return options


def _run(config: Path, ckpt: Path, work_dir: Path, *args: str, options: list[str]) -> dict:
    """tools/test.py's main() on ``config``; returns the metrics mmengine logged for the run."""
    assert TOOL.main([str(config), str(ckpt), "--work-dir", str(work_dir), *args,
                      "--cfg-options", *options]) == 0
    (log,) = work_dir.glob("*/[0-9]*_[0-9]*.json")  # <timestamp>/<timestamp>.json
    return mmengine.load(str(log))


def _val_images(root: Path) -> list[Path]:
    return sorted(root.glob("val/*/*.jpg"))


def _predictions(path: Path, key: str) -> dict:
    """image file name -> ``key`` of its pickled prediction."""
    return {Path(r["img_path"]).name: r[key] for r in mmengine.load(str(path))}


@pytest.fixture(scope="module")
def classification_run(imagenet, classifier_ckpt, tmp_path_factory):
    """tools/test.py --show-dir DIR --out preds.pkl on the demo classification config."""
    tmp = tmp_path_factory.mktemp("classification_run")
    metrics = _run(CLASSIFIER_DEMO, classifier_ckpt, tmp / "work", "--show-dir",
                   str(tmp / "drawn"), "--out", str(tmp / "preds.pkl"),
                   options=_classification_options(imagenet))
    return tmp, metrics


def test_classification_show_dir_and_predictions(imagenet, classification_run):
    tmp, metrics = classification_run
    assert 0.0 <= metrics["accuracy/top1"] <= metrics["accuracy/top5"] <= 100.0
    images = _val_images(imagenet)
    assert len(images) == 8
    # mmpretrain's VisualizationHook names a drawing '<image file name>_0.png' (the demo's class
    # folders repeat file names, so later images of a name replace earlier ones).
    pngs = sorted(p.name for p in (tmp / "drawn").glob("*.png"))
    assert pngs == sorted({f"{p.name}_0.png" for p in images})
    for png in (tmp / "drawn").glob("*.png"):
        drawn = mmcv.imread(str(png))
        assert drawn.ndim == 3 and drawn.shape[0] >= 24
    results = mmengine.load(str(tmp / "preds.pkl"))
    assert sorted(str(Path(r["img_path"])) for r in results) == [str(p) for p in images]
    for result in results:
        assert result["pred_score"].shape == (1000,)
        assert float(result["pred_score"].sum()) == pytest.approx(1.0, abs=1e-4)
        assert int(result["pred_label"]) == int(result["pred_score"].argmax())
        assert "gt_label" in result


def test_classification_tta_averages_the_flip(imagenet, classifier_ckpt, classification_run,
                                              tmp_path):
    """--tta gives metrics, and its scores are the mean of the plain view's (the run above) and
    the flipped view's (computed here through the config's own test pipeline)."""
    from mmengine.dataset import Compose, pseudo_collate
    from mmpretrain.apis import get_model
    from mmpretrain.registry import TRANSFORMS

    metrics = _run(CLASSIFIER_DEMO, classifier_ckpt, tmp_path / "work", "--tta", "--out",
                   str(tmp_path / "tta.pkl"), options=_classification_options(imagenet))
    assert 0.0 <= metrics["accuracy/top1"] <= metrics["accuracy/top5"] <= 100.0
    # (by full path: the demo's file names repeat across class folders)
    merged = {r["img_path"]: r["pred_score"] for r in mmengine.load(str(tmp_path / "tta.pkl"))}
    plain = {r["img_path"]: r["pred_score"]
             for r in mmengine.load(str(classification_run[0] / "preds.pkl"))}
    assert set(merged) == set(plain) == {str(p) for p in _val_images(imagenet)}

    model = get_model(str(CLASSIFIER_DEMO), pretrained=str(classifier_ckpt), device="cpu")
    cfg = Config.fromfile(str(CLASSIFIER_DEMO))
    with DefaultScope.overwrite_default_scope("mmpretrain"):
        pipeline = Compose([TRANSFORMS.build(t) for t in cfg.test_dataloader.dataset.pipeline])
    for img_path, score in merged.items():
        packed = pipeline(dict(img_path=img_path))
        packed["inputs"] = packed["inputs"].flip(-1)  # the crop, flipped, as TestTimeAug does
        with torch.no_grad():
            flipped = model.test_step(pseudo_collate([packed]))[0].pred_score
        assert not torch.allclose(flipped, plain[img_path])  # the flip matters to this model
        torch.testing.assert_close(score, (plain[img_path] + flipped) / 2, rtol=1e-4, atol=1e-6)


# -------------------------------------------------------------------------------- detection

@pytest.fixture(scope="module")
def coco(tmp_path_factory):
    root = tmp_path_factory.mktemp("coco")
    make_demo_coco(root, DemoCocoSpec(num_train=2, num_val=3, image_size=64, seed=7))
    return root


@pytest.fixture(scope="module")
def detector_ckpt(tmp_path_factory):
    path = tmp_path_factory.mktemp("detector") / "detector.pth"
    untrained_detector_checkpoint(DETECTOR_DEMO, path)
    return path


def _detection_options(root: Path) -> list[str]:
    return ["test_dataloader.dataset.pipeline.1.scale=(64,64)", *coco_data_options(root)]


@pytest.fixture(scope="module")
def detection_run(coco, detector_ckpt, tmp_path_factory):
    """tools/test.py --show-dir DIR --out preds.pkl on the demo Mask R-CNN config."""
    tmp = tmp_path_factory.mktemp("detection_run")
    metrics = _run(DETECTOR_DEMO, detector_ckpt, tmp / "work", "--show-dir", str(tmp / "drawn"),
                   "--out", str(tmp / "preds.pkl"), options=_detection_options(coco))
    return tmp, metrics


def test_detection_show_dir_and_predictions(coco, detection_run):
    tmp, metrics = detection_run
    assert 0.0 <= metrics["coco/bbox_mAP"] <= 1.0 and 0.0 <= metrics["coco/segm_mAP"] <= 1.0
    images = sorted((coco / "val2017").glob("*.jpg"))
    assert len(images) == 3
    # mmdet's DetVisualizationHook: ground truth and prediction side by side, per image.
    assert sorted(p.name for p in (tmp / "drawn").iterdir()) == [p.name for p in images]
    for image in images:
        assert mmcv.imread(str(tmp / "drawn" / image.name)).shape == (64, 128, 3)
    predictions = _predictions(tmp / "preds.pkl", "pred_instances")
    assert sorted(predictions) == [p.name for p in images]
    for pred in predictions.values():
        n = len(pred["scores"])
        assert n > 0 and pred["bboxes"].shape == (n, 4) and pred["labels"].shape == (n,)
        # DumpDetResults stores masks as COCO RLE.
        assert len(pred["masks"]) == n and set(pred["masks"][0]) == {"size", "counts"}
        assert pred["masks"][0]["size"] == [64, 64]
    assert all("gt_instances" not in r for r in mmengine.load(str(tmp / "preds.pkl")))


BOX_ONLY_TTA = """\
_base_ = {base!r}
# The demo Mask R-CNN without its mask branch: mmdet 3.3's DetTTAModel merges boxes only.
model = dict(roi_head=dict(mask_roi_extractor=None, mask_head=None))
val_evaluator = dict(metric='bbox')
test_evaluator = dict(metric='bbox')
tta_model = dict(type='DetTTAModel',
                 tta_cfg=dict(nms=dict(type='nms', iou_threshold=0.5), max_per_img=100))
tta_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='TestTimeAug',
         transforms=[[dict(type='Resize', scale=(64, 64), keep_ratio=True)],
                     [dict(type='RandomFlip', prob=1.), dict(type='RandomFlip', prob=0.)],
                     [dict(type='LoadAnnotations', with_bbox=True)],
                     [dict(type='PackDetInputs',
                           meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                                      'scale_factor', 'flip', 'flip_direction'))]]),
]
"""


def test_detection_tta_with_mmdets_det_tta_model(coco, detector_ckpt, detection_run, tmp_path):
    """--tta (and --show-dir) on an mmdet config with mmdet's DetTTAModel: COCO box metrics,
    drawings, and boxes that are not the plain ones (the Mask R-CNN run above: the same
    checkpoint gives the same boxes with or without the mask branch), so the flipped view took
    part."""
    config = tmp_path / "box_only_tta.py"
    config.write_text(BOX_ONLY_TTA.format(base=str(DETECTOR_DEMO)))
    metrics = _run(config, detector_ckpt, tmp_path / "work", "--tta", "--out",
                   str(tmp_path / "tta.pkl"), "--show-dir", str(tmp_path / "drawn"),
                   options=_detection_options(coco))
    assert 0.0 <= metrics["coco/bbox_mAP"] <= 1.0 and "coco/segm_mAP" not in metrics
    # mmdet's hook draws the merged predictions onto the image files.
    assert len(list((tmp_path / "drawn").glob("*.jpg"))) == 3
    merged = _predictions(tmp_path / "tta.pkl", "pred_instances")
    plain = _predictions(detection_run[0] / "preds.pkl", "pred_instances")
    assert set(merged) == set(plain) and len(plain) == 3
    for name, pred in merged.items():
        assert "masks" not in pred and 0 < len(pred["scores"]) <= 100
        assert not (pred["bboxes"].shape == plain[name]["bboxes"].shape and
                    torch.allclose(pred["bboxes"], plain[name]["bboxes"]))

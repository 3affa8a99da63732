"""``tools/export.py`` on Mask R-CNN configs: the export wrapper against mmdet's own ``predict``,
both backends verified against the wrapper, and ``tools/test.py`` on the exported files giving
the checkpoint's bbox and segm AP.

The default run trains a tiny Mask R-CNN (the demo config with a two-stage ResNeXt-50 4x4d of
base width 16, 32-channel FPN and heads, 64 px images) for 10 epochs on 48 generated demo COCO
images (about 25 s on 2 cores), so that it detects the shapes (non-zero AP); export and test run
in this process (their ``main()``). The ``slow`` tests export the real demo config (full
ResNeXt-50 32x4d FPN, 96 px) and the full COCO config (800 x 1333 input) with random weights.
"""
from __future__ import annotations

import importlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import coco_data_options, random_detector_state, save_detector_checkpoint
from mmengine.config import Config

from resnext_plugin.demo_data.coco import DemoCocoSpec, make_demo_coco

ROOT = Path(__file__).resolve().parents[2]
DEMO_DETECTOR = ROOT / "configs" / "demo" / "mask-rcnn_resnext50-32x4d_fpn_demo.py"
FULL_DETECTOR = ROOT / "configs" / "mask-rcnn_resnext50-32x4d_fpn_1x_coco.py"
EXPORT = importlib.import_module("resnext_plugin.cli.export")
TEST = importlib.import_module("resnext_plugin.cli.test")
TRAIN = importlib.import_module("resnext_plugin.cli.train")

pytest.importorskip("onnx", reason="export backends not installed: pip install -r "
                    "requirements/export.txt")

# The demo Mask R-CNN shrunk: two ResNeXt stages of base width 16 (64 and 128 channels), a
# 32-channel FPN and heads, 64 px images, trained from scratch.
TINY_DETECTOR = """\
_base_ = [{base!r}]
data_root = {data_root!r}
image_scale = (64, 64)
model = dict(
    backbone=dict(depth=50, groups=4, width_per_group=4, base_channels=16, stem_channels=16,
                  num_stages=2, strides=(1, 2), dilations=(1, 1), out_indices=(0, 1),
                  frozen_stages=-1, norm_eval=False, fold_frozen_bn=False, init_cfg=None),
    neck=dict(in_channels=[64, 128], out_channels=32, num_outs=5),
    rpn_head=dict(in_channels=32, feat_channels=32),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=32),
        bbox_head=dict(in_channels=32, fc_out_channels=64),
        mask_roi_extractor=dict(out_channels=32),
        mask_head=dict(in_channels=32, conv_out_channels=32)))
train_pipeline = [
    dict(type='resnext_plugin.StrictLoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=image_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=image_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(batch_size=4, dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(batch_size=4, dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val2017.json')
test_evaluator = val_evaluator
optim_wrapper = dict(optimizer=dict(lr=0.02))
train_cfg = dict(max_epochs={epochs}, val_interval={epochs})
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=20),
    dict(type='MultiStepLR', begin=0, end={epochs}, by_epoch=True, milestones=[{last}],
         gamma=0.1),
]
default_hooks = dict(logger=dict(interval=20), checkpoint=dict(interval={epochs}))
randomness = dict(seed=0, deterministic=True)
"""
EPOCHS = 10


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(config, checkpoint): the tiny Mask R-CNN trained 10 epochs on 48 demo COCO images."""
    root = tmp_path_factory.mktemp("export_detector")
    data = root / "data"
    make_demo_coco(data, DemoCocoSpec(num_train=48, num_val=12, image_size=64, seed=3))
    config = root / "tiny_mask_rcnn.py"
    config.write_text(TINY_DETECTOR.format(base=str(DEMO_DETECTOR), data_root=f"{data}/",
                                           epochs=EPOCHS, last=EPOCHS - 1))
    assert TRAIN.main([str(config), "--work-dir", str(root / "work")]) in (0, None)
    return config, root / "work" / f"epoch_{EPOCHS}.pth"


def _export(config: Path, checkpoint: Path, out: Path, *options: str) -> int:
    return EXPORT.main([str(config), str(checkpoint), "--out", str(out), *options])


def _ap(config: Path, model_file: Path, tmp_path: Path) -> tuple[float, float]:
    out = tmp_path / f"{model_file.name}.metrics.json"
    assert TEST.main([str(config), str(model_file), "--work-dir", str(tmp_path / "test_work"),
                      "--out", str(out)]) == 0
    metrics = json.loads(out.read_text())
    return 100 * metrics["coco/bbox_mAP"], 100 * metrics["coco/segm_mAP"]


@pytest.fixture(scope="module")
def fp32_export(trained, tmp_path_factory) -> Path:
    config, checkpoint = trained
    out = tmp_path_factory.mktemp("det_fp32")
    assert _export(config, checkpoint, out, "--backend", "onnxruntime", "openvino",
                   "--verify-images", "6") == 0
    return out


def test_fp32_files_sidecar_and_verification(fp32_export: Path) -> None:
    out = fp32_export
    for name in ("end2end.onnx", "end2end.xml", "end2end.bin", "end2end.json"):
        assert (out / name).is_file(), name
    sidecar = json.loads((out / "end2end.json").read_text())
    assert sidecar["task"] == "detection"
    assert [o["name"] for o in sidecar["outputs"]] == ["dets", "labels", "masks"]
    assert sidecar["input"]["size"] == [64, 64] and sidecar["input"]["shape"][0] == 1
    assert sidecar["classes"] == ["circle", "square", "triangle", "star"]
    assert sidecar["test_cfg"]["rcnn"]["mask_thr_binary"] == 0.5
    for backend, file in (("onnxruntime", "end2end.onnx"), ("openvino", "end2end.xml")):
        entry = sidecar["files"][backend]["fp32"]
        assert entry["file"] == file
        checks = {c["output"]: c for c in entry["verification"]}
        assert set(checks) == {"dets.boxes", "dets.scores", "labels", "masks"}
        assert all(c["samples"] == 6 for c in checks.values())
        assert checks["dets.boxes"]["max_diff"] <= 1e-3
        assert checks["dets.scores"]["max_diff"] <= 1e-3
        assert checks["masks"]["max_diff"] <= 1e-3


def test_graph_uses_standard_onnx_operators(fp32_export: Path) -> None:
    """RoiAlign (half_pixel: mmcv's aligned=True), NonMaxSuppression, no custom domain."""
    import onnx

    graph = onnx.load(str(fp32_export / "end2end.onnx")).graph
    ops = {node.op_type for node in graph.node}
    assert {"RoiAlign", "NonMaxSuppression", "TopK", "Conv"} <= ops
    assert all(node.domain in ("", "ai.onnx") for node in graph.node)
    for node in graph.node:
        if node.op_type == "RoiAlign":
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            assert attrs["coordinate_transformation_mode"] == b"half_pixel"
            assert attrs["sampling_ratio"] == 0


def test_wrapper_matches_mmdet_predict(trained) -> None:
    """MaskRCNNOutputs gives mmdet's own predict(rescale=False): boxes, scores, labels, and the
    masks pasted as mmdet pastes them."""
    from resnext_plugin.export.detector import MaskRCNNOutputs, paste_masks
    from resnext_plugin.export.model import build_model, load_weights, pipeline_batches

    config, checkpoint = trained
    cfg = Config.fromfile(str(config))
    model = build_model(cfg)
    load_weights(model, checkpoint, config)
    wrapper = MaskRCNNOutputs(model).eval()
    detections = 0
    for inputs, samples in pipeline_batches(cfg, model, "test", 6, batch_size=1):
        with torch.no_grad():
            dets, labels, masks = wrapper(inputs)
            (expected,) = model.predict(inputs, samples, rescale=False)
        expected = expected.pred_instances
        assert dets.shape[1] == len(expected) and masks.shape[2:] == (28, 28)
        torch.testing.assert_close(dets[0, :, :4], expected.bboxes, atol=1e-4, rtol=0)
        torch.testing.assert_close(dets[0, :, 4], expected.scores, atol=1e-5, rtol=0)
        assert torch.equal(labels[0], expected.labels)
        height, width = samples[0].img_shape
        pasted = paste_masks(masks[0], dets[0, :, :4], height, width, 0.5)
        assert (pasted != expected.masks).float().mean() <= 1e-3
        detections += len(expected)
    assert detections >= 6  # the trained model finds the shapes


def test_exported_files_follow_any_input_size(trained, fp32_export: Path) -> None:
    """Dynamic height and width (another size than the export's example), and an image with
    no detection at all (empty outputs), on both backends."""
    from resnext_plugin.export import ExportedRuntime
    from resnext_plugin.export.detector import MaskRCNNOutputs, compare_detections
    from resnext_plugin.export.model import build_model, load_weights

    config, checkpoint = trained
    model = build_model(Config.fromfile(str(config)))
    load_weights(model, checkpoint, config)
    wrapper = MaskRCNNOutputs(model).eval()
    gen = torch.Generator().manual_seed(0)
    cases = [torch.randn(1, 3, 96, 160, generator=gen), torch.zeros(1, 3, 64, 64)]
    for name in ("end2end.onnx", "end2end.xml"):
        runtime = ExportedRuntime(fp32_export / name)
        for inputs in cases:
            with torch.no_grad():
                reference = [out.numpy() for out in wrapper(inputs)]
            exported = runtime(inputs.numpy())
            assert [o.shape for o in exported] == [r.shape for r in reference], name
            checks = compare_detections([reference], [exported], [tuple(inputs.shape[2:])])
            assert all(c.max_diff <= 1e-3 for c in checks), (name, checks)
    assert reference[0].shape == (1, 0, 5)  # the blank image: no detection, empty outputs


def test_test_tool_gives_pytorch_ap_for_exported_files(fp32_export: Path, trained,
                                                       tmp_path: Path) -> None:
    config, checkpoint = trained
    bbox, segm = _ap(config, checkpoint, tmp_path)
    assert bbox > 5.0 and segm > 5.0  # trained: it finds the shapes
    for name in ("end2end.onnx", "end2end.xml"):
        exported_bbox, exported_segm = _ap(config, fp32_export / name, tmp_path)
        assert abs(exported_bbox - bbox) <= 0.5, (name, exported_bbox, bbox)
        assert abs(exported_segm - segm) <= 0.5, (name, exported_segm, segm)


def test_verification_names_the_output_over_tolerance() -> None:
    from resnext_plugin.export import VerificationError
    from resnext_plugin.export.detector import compare_detections, enforce_detections

    dets = np.array([[[1, 2, 30, 40, 0.9], [5, 5, 20, 20, 0.5]]], np.float32)
    labels = np.array([[1, 2]])
    masks = np.full((1, 2, 28, 28), 0.5, np.float32)
    reference = [[dets, labels, masks]]
    swapped = [[dets[:, ::-1].copy(), labels[:, ::-1].copy(), masks]]  # order does not matter
    enforce_detections(compare_detections(reference, swapped, [(64, 64)]), "fp32", "x.onnx")
    moved = dets.copy()
    moved[0, 1, 2] += 1.0  # one pixel of 64: 0.016 relative
    checks = compare_detections(reference, [[moved, labels, masks]], [(64, 64)])
    with pytest.raises(VerificationError, match=r"x.onnx: output 'dets.boxes' differs"):
        enforce_detections(checks, "fp32", "x.onnx")
    off = masks.copy()
    off[0, 0, 3, 3] = 0.6
    checks = compare_detections(reference, [[dets, labels, off]], [(64, 64)])
    with pytest.raises(VerificationError, match=r"output 'masks' differs.*image 0"):
        enforce_detections(checks, "fp32", "x.onnx")
    with pytest.raises(VerificationError, match=r"output 'dets' of image 0: 1 detections"):
        compare_detections(reference, [[dets[:, :1], labels[:, :1], masks[:, :1]]], [(64, 64)])
    with pytest.raises(VerificationError, match=r"output 'labels' of image 0"):
        compare_detections(reference, [[dets, np.array([[1, 3]]), masks]], [(64, 64)])


def test_checkpoint_not_fitting_the_config_is_named(trained, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture) -> None:
    config, checkpoint = trained
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)["state_dict"]
    key = "roi_head.bbox_head.fc_cls.weight"
    state[key] = state[key][:3]
    bad = tmp_path / "three_classes.pth"
    torch.save({"state_dict": state}, bad)
    assert _export(config, bad, tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert "does not fit config" in err and f"'{key}'" in err
    assert "'roi_head.bbox_head.fc_cls'" in err and "(3, 64)" in err and "(5, 64)" in err
    assert not (tmp_path / "out" / "end2end.onnx").exists()


@pytest.mark.parametrize("precision", ["int8", "bf16"])
def test_reduced_precision_is_refused_naming_precision_and_task(
        trained, tmp_path: Path, capsys: pytest.CaptureFixture, precision: str) -> None:
    config, checkpoint = trained
    assert _export(config, checkpoint, tmp_path / "out", "--backend", "openvino",
                   "--precision", precision) == 2
    err = capsys.readouterr().err
    assert f"--precision {precision} is not available for detection export" in err
    assert "--precision fp32" in err
    assert not (tmp_path / "out").exists()


def test_exported_detector_in_a_config(trained, fp32_export: Path) -> None:
    """use_exported_model puts ExportedDetector with the config's preprocessor and mask
    threshold where the Mask R-CNN stood."""
    from resnext_plugin.export.evaluation import use_exported_model

    config, _ = trained
    cfg = Config.fromfile(str(config))
    use_exported_model(cfg, fp32_export / "end2end.xml")
    assert cfg.model.type == "resnext_plugin.ExportedDetector"
    assert cfg.model.data_preprocessor.type == "mmdet.DetDataPreprocessor"
    assert cfg.model.mask_thr_binary == 0.5 and cfg.load_from is None


def random_detector_checkpoint(config: Path, path: Path, gain: float = 3.0) -> None:
    """The Mask R-CNN of ``config`` with random weights (randomised BN) saved to ``path``, its
    classification layer's weights scaled by ``gain`` so that the class scores spread (some
    above ``score_thr``) instead of all sitting near 1/num_classes.

    (tests/helpers.py's ``untrained_detector_checkpoint`` biases class 0 instead: every
    detection then scores about 0.9997, within float rounding of the others, and which of such
    ties NMS keeps is arbitrary, so backends may keep different boxes.)
    """
    state, classes = random_detector_state(config)
    state["roi_head.bbox_head.fc_cls.weight"] *= gain
    save_detector_checkpoint(state, classes, path)


def _random_detector_export(config: Path, tmp_path: Path, image_size: int,
                            *options: str) -> dict:
    data = tmp_path / "data"
    make_demo_coco(data, DemoCocoSpec(num_train=4, num_val=3, image_size=image_size, seed=1))
    checkpoint = tmp_path / "random.pth"
    random_detector_checkpoint(config, checkpoint)
    out = tmp_path / "out"
    assert _export(config, checkpoint, out, "--verify-images", "3", "--cfg-options",
                   *coco_data_options(data), *options) == 0
    return json.loads((out / "end2end.json").read_text())


@pytest.mark.slow
def test_demo_config_exports_verified(tmp_path: Path) -> None:
    """configs/demo/mask-rcnn_resnext50-32x4d_fpn_demo.py (full ResNeXt-50 32x4d FPN, 96 px),
    random weights that report boxes, to both backends, verified."""
    sidecar = _random_detector_export(DEMO_DETECTOR, tmp_path, 96)
    assert sidecar["input"]["size"] == [96, 96]
    assert len(sidecar["classes"]) == 4
    for backend in ("onnxruntime", "openvino"):
        checks = {c["output"]: c for c in sidecar["files"][backend]["fp32"]["verification"]}
        assert checks["dets.boxes"]["max_diff"] <= 1e-3
        assert checks["masks"]["max_diff"] <= 1e-3


@pytest.mark.slow
def test_full_coco_config_exports_verified(tmp_path: Path) -> None:
    """configs/mask-rcnn_resnext50-32x4d_fpn_1x_coco.py at its own 1333 x 800 test scale (the
    demo images upscaled: 800 x 800 input), 80 classes, random weights that report boxes.
    mmdet's plain CocoDataset reads the demo images (the checked one refuses their classes)."""
    sidecar = _random_detector_export(
        FULL_DETECTOR, tmp_path, 96, "model.backbone.init_cfg=None",
        "test_dataloader.dataset.type=CocoDataset")
    assert sidecar["input"]["size"] == [800, 800]
    for backend in ("onnxruntime", "openvino"):
        checks = {c["output"]: c for c in sidecar["files"][backend]["fp32"]["verification"]}
        assert checks["dets.boxes"]["max_diff"] <= 1e-3
        assert checks["masks"]["max_diff"] <= 1e-3

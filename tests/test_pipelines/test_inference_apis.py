"""The official inference APIs on the project's configs.

mmpretrain's ``ImageClassificationInferencer`` and ``inference_model``, mmdet's ``DetInferencer``
and ``inference_detector``, each fed an image file and the same image as an array, on the
classification configs (the real ResNeXt-50 32x4d ImageNet config and its demo) and the Mask
R-CNN configs (the real 1x COCO config and its demo). The checkpoints are made here: the config's
model with random weights (and, for the detectors, a class-0 bias so that there are detections).
What each API feeds the test pipeline:

* ``ImageClassificationInferencer`` / ``inference_model``: it decodes the image itself (an array
  stays as it is) and feeds ``dict(img=..., img_shape=..., ori_shape=...)`` to the test pipeline
  minus any transform named ``LoadImageFromFile``, so ``StrictLoadImageFromFile`` gets an array;
* ``inference_detector``: ``dict(img_path=...)`` to the test pipeline, or, when the first input
  is an array, ``dict(img=...)`` with the first transform replaced by ``LoadImageFromNDArray``
  (in the model's own config: after an array, that model takes no more paths);
* ``DetInferencer``: replaces the transform named ``LoadImageFromFile`` by its own loader and
  refuses a pipeline without one (so the Mask R-CNN test pipelines use mmdet's loader).

The image is a 16 x 128 panorama: the full Mask R-CNN config resizes it to 1333 x 167 (its
``Resize(scale=(1333, 800), keep_ratio=True)``), a quarter of the pixels of a 4:3 image, which
keeps the full-size detector in the default run.
"""
from __future__ import annotations

from pathlib import Path

import mmcv
import numpy as np
import pytest
import torch
from helpers import randomise_bn, untrained_detector_checkpoint
from mmengine.config import Config
from mmengine.dataset import Compose, pseudo_collate
from mmengine.registry import DefaultScope, init_default_scope

ROOT = Path(__file__).resolve().parents[2]
CLASSIFIER = "configs/resnext50_32x4d_imagenet.py"
CLASSIFIER_DEMO = "configs/demo/resnext50_32x4d_imagenet_demo.py"
DETECTOR = "configs/mask-rcnn_resnext50-32x4d_fpn_1x_coco.py"
DETECTOR_DEMO = "configs/demo/mask-rcnn_resnext50-32x4d_fpn_demo.py"
MODEL_INDEX = ROOT / "configs" / "model-index.yml"
MODEL_NAMES = {CLASSIFIER: "resnext50_32x4d_imagenet",
               CLASSIFIER_DEMO: "resnext50_32x4d_imagenet_demo"}


def _image(path: Path, height: int, width: int, seed: int) -> tuple[str, np.ndarray]:
    """A JPEG with some structure (a gradient and a disc) and the array mmcv decodes from it."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:height, :width]
    img = np.stack([xx * 255 // width, yy * 255 // height,
                    np.full_like(xx, 128)], axis=-1).astype(np.uint8)
    disc = (yy - height / 2) ** 2 + (xx - width / 3) ** 2 < (min(height, width) / 4) ** 2
    img[disc] = rng.integers(0, 255, 3, dtype=np.uint8)
    mmcv.imwrite(img, str(path))
    return str(path), mmcv.imread(str(path))  # BGR, as every API decodes a file


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> tuple[str, np.ndarray]:
    return _image(tmp_path_factory.mktemp("images") / "panorama.jpg", 16, 128, seed=0)


# ------------------------------------------------------------------------- classification

def _classifier_checkpoint(config: str, path: Path) -> tuple[str, list[str]]:
    from mmpretrain.registry import MODELS

    cfg = Config.fromfile(str(ROOT / config))
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope("mmpretrain"):
        model = MODELS.build(cfg.model)
    randomise_bn(model)
    classes = [f"class_{i}" for i in range(cfg.model.head.num_classes)]
    torch.save(dict(state_dict=model.state_dict(), meta=dict(dataset_meta=dict(classes=classes))),
               path)
    return str(path), classes


@pytest.fixture(scope="module", params=[CLASSIFIER, CLASSIFIER_DEMO])
def classifier(request, tmp_path_factory):
    """(config, checkpoint, class names) for each classification config."""
    path = tmp_path_factory.mktemp("classifier") / "classifier.pth"
    return (request.param, *_classifier_checkpoint(request.param, path))


def _test_pipeline_scores(config: str, checkpoint: str, img_path: str) -> torch.Tensor:
    """The class scores of the config's own test pipeline (with StrictLoadImageFromFile reading
    the file) and model: what the APIs must reproduce."""
    from mmpretrain.apis import get_model
    from mmpretrain.registry import TRANSFORMS

    model = get_model(str(ROOT / config), pretrained=checkpoint, device="cpu")
    cfg = Config.fromfile(str(ROOT / config))
    init_default_scope("mmpretrain")
    pipeline = Compose([TRANSFORMS.build(t) for t in cfg.test_dataloader.dataset.pipeline])
    with torch.no_grad():
        sample = model.test_step(pseudo_collate([pipeline(dict(img_path=img_path))]))[0]
    return sample.pred_score


def _check_classification(result: dict, classes: list[str]) -> None:
    scores = result["pred_scores"]
    assert scores.shape == (len(classes),)
    assert abs(float(scores.sum()) - 1.0) < 1e-4  # softmax over the classes
    assert result["pred_label"] == int(scores.argmax())
    assert result["pred_score"] == pytest.approx(float(scores.max()))
    assert result["pred_class"] == classes[result["pred_label"]]


def test_image_classification_inferencer(classifier, image):
    from mmpretrain.apis import ImageClassificationInferencer

    config, checkpoint, classes = classifier
    img_path, img = image
    inferencer = ImageClassificationInferencer(str(ROOT / config), pretrained=checkpoint,
                                               device="cpu")
    from_path, from_array = inferencer([img_path, img])
    for result in (from_path, from_array):
        _check_classification(result, classes)
    np.testing.assert_array_equal(from_path["pred_scores"], from_array["pred_scores"])
    # ...and it is the prediction of the config's own test pipeline on the file.
    expected = _test_pipeline_scores(config, checkpoint, img_path)
    np.testing.assert_allclose(from_path["pred_scores"], expected.numpy(), rtol=1e-5,
                               atol=1e-7)


@pytest.fixture(scope="module")
def model_index():
    """The project's classification configs, registered by name in mmpretrain's model hub."""
    from mmpretrain.apis import ModelHub

    if not ModelHub.has(MODEL_NAMES[CLASSIFIER]):
        ModelHub.register_model_index(str(MODEL_INDEX))
    return MODEL_NAMES


def test_inference_model(classifier, image, model_index):
    from mmpretrain.apis import get_model, inference_model

    config, checkpoint, classes = classifier
    img_path, img = image
    name = model_index[config]
    from_path = inference_model(name, img_path, pretrained=checkpoint, device="cpu")
    model = get_model(name, pretrained=checkpoint, device="cpu")
    from_array = inference_model(model, img)
    for result in (from_path, from_array):
        _check_classification(result, classes)
    np.testing.assert_array_equal(from_path["pred_scores"], from_array["pred_scores"])


def test_inference_model_needs_the_model_index(classifier, image):
    """A model built from a config path carries no task: mmpretrain's ``inference_model``
    cannot pick an inferencer (its own limitation; the model index above is the way in)."""
    from mmpretrain.apis import get_model, inference_model

    config, checkpoint, _ = classifier
    model = get_model(str(ROOT / config), pretrained=checkpoint, device="cpu")
    with pytest.raises(NotImplementedError, match="No available inferencer"):
        inference_model(model, image[1])


# ------------------------------------------------------------------------------ detection

@pytest.fixture(scope="module", params=[DETECTOR, DETECTOR_DEMO])
def detector(request, tmp_path_factory):
    path = tmp_path_factory.mktemp("detector") / "detector.pth"
    return request.param, str(path), untrained_detector_checkpoint(ROOT / request.param, path)


def _check_detection(sample, height: int, width: int, num_classes: int) -> None:
    from mmdet.structures import DetDataSample

    assert isinstance(sample, DetDataSample)
    pred = sample.pred_instances
    assert {"bboxes", "scores", "labels", "masks"} <= set(pred.keys())
    n = len(pred)
    assert n > 0
    assert pred.bboxes.shape == (n, 4) and pred.scores.shape == (n,)
    assert pred.masks.shape == (n, height, width) and pred.masks.dtype == torch.bool
    assert int(pred.labels.min()) >= 0 and int(pred.labels.max()) < num_classes
    assert float(pred.scores.min()) >= 0.0 and float(pred.scores.max()) <= 1.0
    assert float(pred.bboxes[:, 2:].max()) <= width and float(pred.bboxes[:, 3:].max()) <= height


def _same_prediction(a, b) -> None:
    pa, pb = a.pred_instances, b.pred_instances
    for key in ("bboxes", "scores", "labels", "masks"):
        assert torch.equal(pa[key], pb[key]), key


def test_inference_detector(detector, image):
    from mmdet.apis import inference_detector, init_detector

    config, checkpoint, classes = detector
    img_path, img = image
    model = init_detector(str(ROOT / config), checkpoint, device="cpu")
    from_path = inference_detector(model, img_path)
    from_array = inference_detector(model, img)  # its LoadImageFromNDArray, not our loader
    for sample in (from_path, from_array):
        _check_detection(sample, *img.shape[:2], len(classes))
    _same_prediction(from_path, from_array)


def test_det_inferencer(detector, image):
    from mmdet.apis import DetInferencer

    config, checkpoint, classes = detector
    img_path, img = image
    inferencer = DetInferencer(model=str(ROOT / config), weights=checkpoint, device="cpu",
                               show_progress=False)
    results = inferencer([img_path, img], return_datasamples=True, no_save_vis=True)
    from_path, from_array = results["predictions"]
    for sample in (from_path, from_array):
        _check_detection(sample, *img.shape[:2], len(classes))
    _same_prediction(from_path, from_array)
    if config == DETECTOR_DEMO:
        # The default, json-style output: boxes, labels and scores per image.
        as_dicts = inferencer(img_path, no_save_vis=True)["predictions"][0]
        assert len(as_dicts["bboxes"]) == len(from_path.pred_instances)
        assert as_dicts["labels"] == from_path.pred_instances.labels.tolist()


# ------------------------------------------------------------------------ the loader itself

def _loader(**kwargs):
    from resnext_plugin.datasets import StrictLoadImageFromFile

    return StrictLoadImageFromFile(**kwargs)


def test_strict_loader_passes_arrays_through(image):
    """An ``img`` array without ``img_path`` comes out as it went in, with the shapes that
    mmcv's ``LoadImageFromFile`` would set; a path still goes through the strict check."""
    from mmcv.transforms import LoadImageFromFile

    img_path, img = image
    out = _loader().transform(dict(img=img.copy()))
    assert out["img"].dtype == np.uint8 and np.array_equal(out["img"], img)
    reference = LoadImageFromFile().transform(dict(img_path=img_path))
    for key in ("img_shape", "ori_shape"):
        assert out[key] == reference[key] == img.shape[:2]
    from_file = _loader().transform(dict(img_path=img_path))
    assert np.array_equal(from_file["img"], reference["img"])
    as_float = _loader(to_float32=True).transform(dict(img=img.copy(), img_path=None))
    assert as_float["img"].dtype == np.float32


def test_strict_loader_rejects_bad_input(image, tmp_path):
    from resnext_plugin.datasets import CorruptImageError

    img_path, img = image
    with pytest.raises(KeyError, match="'img_path'.*'img'"):
        _loader().transform(dict(img_id=0))
    with pytest.raises(TypeError, match="numpy array"):
        _loader().transform(dict(img=img.tolist()))
    with pytest.raises(ValueError, match=r"\(H, W, 3\).*\(16, 128\)"):
        _loader().transform(dict(img=img[..., 0]))
    gray = _loader(color_type="grayscale").transform(dict(img=img[..., 0].copy()))
    assert gray["img_shape"] == (16, 128)
    truncated = tmp_path / "truncated.jpg"
    data = Path(img_path).read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptImageError, match=f"corrupt image file '{truncated}'"):
        _loader().transform(dict(img_path=str(truncated)))

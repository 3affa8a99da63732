"""Run a trained model on one image.

A detection config (mmdet, e.g. Mask R-CNN) draws the predicted boxes, masks, classes and scores
onto the image and saves a PNG; a classification config (mmpretrain) prints the top-5 classes.

Examples:
    python tools/demo.py configs/demo/mask-rcnn_resnext50-32x4d_fpn_demo.py \
        work_dirs/demo/mask_rcnn/epoch_8.pth data/demo_coco/val2017/000000100001.jpg \
        --out work_dirs/demo/prediction.png
    python tools/demo.py configs/demo/resnext50_32x4d_imagenet_demo.py \
        work_dirs/demo/imagenet/epoch_8.pth data/demo_imagenet/val/<class>/val_00000.jpg
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.config import Config, DictAction


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", help="mmdet or mmpretrain config file")
    parser.add_argument("checkpoint", help="trained checkpoint (.pth)")
    parser.add_argument("image", help="input image file")
    parser.add_argument("--out", default=None,
                        help="PNG to write for a detector (default: <image stem>_pred.png "
                             "next to the checkpoint)")
    parser.add_argument("--score-thr", type=float, default=0.3,
                        help="draw detections with at least this score")
    parser.add_argument("--out-size", type=int, default=512,
                        help="long side of the drawn PNG in pixels (small images are enlarged)")
    parser.add_argument("--topk", type=int, default=5, help="classes printed for a classifier")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--cfg-options", nargs="+", action=DictAction, metavar="KEY=VALUE",
                        help="override config entries, as in tools/train.py")
    return parser.parse_args(argv)


def task_of(cfg: Config) -> str:
    """``'detection'`` for an mmdet config, ``'classification'`` for an mmpretrain one.

    Raises:
        ValueError: The config's ``default_scope`` is neither.
    """
    scope = cfg.get("default_scope")
    if scope == "mmdet":
        return "detection"
    if scope == "mmpretrain":
        return "classification"
    raise ValueError(f"config default_scope must be 'mmdet' or 'mmpretrain', got {scope!r}")


def _check_file(path: str, what: str) -> None:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} not found: {path}")


def _enlarge(sample, image: np.ndarray, out_size: int):
    """The image and the predictions scaled so the long side is ``out_size`` (never shrunk)."""
    scale = max(1.0, out_size / max(image.shape[:2]))
    if scale == 1.0:
        return sample, image
    import mmcv

    height, width = (round(s * scale) for s in image.shape[:2])
    image = mmcv.imresize(image, (width, height), interpolation="bilinear")
    sample = sample.clone()
    pred = sample.pred_instances
    pred.bboxes = pred.bboxes * scale
    if "masks" in pred:
        masks = pred.masks.float()[None]
        pred.masks = F.interpolate(masks, size=(height, width), mode="nearest")[0].bool()
    return sample, image


def detect(cfg: Config, args: argparse.Namespace) -> str:
    """Run a detector on ``args.image``, draw the result, return the PNG path."""
    import mmcv
    from mmdet.apis import inference_detector, init_detector
    from mmdet.registry import VISUALIZERS

    model = init_detector(cfg, args.checkpoint, device=args.device)
    sample = inference_detector(model, args.image)
    image = mmcv.imread(args.image, channel_order="rgb")
    sample, image = _enlarge(sample.cpu(), image, args.out_size)

    out = args.out or str(Path(args.checkpoint).parent / f"{Path(args.image).stem}_pred.png")
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    visualizer = VISUALIZERS.build(dict(type="DetLocalVisualizer", name="resnext_plugin_demo",
                                        line_width=2, alpha=0.5))
    visualizer.dataset_meta = model.dataset_meta
    visualizer.add_datasample("prediction", image, data_sample=sample, draw_gt=False,
                              pred_score_thr=args.score_thr, out_file=out)
    pred = sample.pred_instances
    keep = pred.scores >= args.score_thr
    classes = model.dataset_meta["classes"]
    print(f"{int(keep.sum())} detections with score >= {args.score_thr}:")
    for label, score, box in zip(pred.labels[keep], pred.scores[keep], pred.bboxes[keep]):
        print(f"  {classes[int(label)]:<12s} {float(score):.3f}  box "
              f"[{', '.join(f'{v:.0f}' for v in box.tolist())}]")
    print(f"saved {out}")
    return out


def classify(cfg: Config, args: argparse.Namespace) -> list[tuple[str, float]]:
    """Run a classifier on ``args.image``; print and return the top-k (class, probability)."""
    from mmengine.dataset import Compose, pseudo_collate
    from mmengine.registry import init_default_scope
    from mmpretrain.apis import get_model
    from mmpretrain.registry import TRANSFORMS

    model = get_model(cfg, args.checkpoint, device=args.device)
    init_default_scope("mmpretrain")
    # The config's own test pipeline, loading step included, so inference sees what
    # evaluation saw.
    pipeline = Compose([TRANSFORMS.build(t) for t in cfg.test_dataloader.dataset.pipeline])
    batch = pseudo_collate([pipeline(dict(img_path=args.image))])
    with torch.no_grad():
        scores = model.test_step(batch)[0].pred_score.cpu()
    classes = model._dataset_meta.get("classes") or [str(i) for i in range(len(scores))]
    values, indices = scores.topk(min(args.topk, len(scores)))
    top = [(classes[int(i)], float(v)) for v, i in zip(values, indices)]
    print(f"top-{len(top)} for {args.image}:")
    for rank, (name, prob) in enumerate(top, 1):
        print(f"  {rank}. {name:<24s} {prob:.4f}")
    return top


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        for path, what in ((args.config, "config"), (args.checkpoint, "checkpoint"),
                           (args.image, "image")):
            _check_file(path, what)
        cfg = Config.fromfile(args.config)
        if args.cfg_options:
            cfg.merge_from_dict(args.cfg_options)
        task = task_of(cfg)
    except (FileNotFoundError, ValueError) as err:
        print(f"demo: error: {err}", file=sys.stderr)
        return 2
    if task == "detection":
        detect(cfg, args)
    else:
        classify(cfg, args)
    return 0

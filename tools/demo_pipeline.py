"""The end-to-end demo behind `make demo`: pretrain, convert, transfer to Mask R-CNN, evaluate.

Steps, each through the project's own command-line tools:

1. generate the demo data: ``tools/make_demo_imagenet.py`` and ``tools/make_demo_coco.py``;
2. demo ImageNet pretraining: ``tools/train.py configs/demo/resnext50_32x4d_imagenet_demo.py``,
   evaluated with ``tools/test.py`` (top-1);
3. conversion of the classifier checkpoint to a backbone checkpoint:
   ``tools/convert_checkpoint.py SRC DST --from plugin --to backbone``;
4. the untrained detector (pretrained backbone, randomly initialised FPN and heads) evaluated
   with ``tools/test.py``: the baseline;
5. Mask R-CNN transfer training:
   ``tools/train.py configs/demo/mask-rcnn_resnext50-32x4d_fpn_demo.py``;
6. COCO evaluation (pycocotools bbox and segm AP) with ``tools/test.py``, and a drawn prediction
   with ``tools/demo.py``;
7. a summary (printed and written to ``<work-root>/summary.json``).

Example:
    python tools/demo_pipeline.py                      # what `make demo` runs
    python tools/demo_pipeline.py --skip-pretrain      # reuse the pretraining of an earlier run
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PRETRAIN_CONFIG = "configs/demo/resnext50_32x4d_imagenet_demo.py"
DETECTION_CONFIG = "configs/demo/mask-rcnn_resnext50-32x4d_fpn_demo.py"
#: Where the detection demo config expects the converted backbone (relative to the repo root).
BACKBONE_CHECKPOINT = "work_dirs/demo/checkpoints/resnext50_32x4d_demo_imagenet_backbone.pth"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work-root", default="work_dirs/demo",
                        help="folder for every run's logs and checkpoints")
    parser.add_argument("--imagenet-root", default="data/demo_imagenet")
    parser.add_argument("--coco-root", default="data/demo_coco")
    parser.add_argument("--skip-pretrain", action="store_true",
                        help="reuse <work-root>/imagenet's last checkpoint instead of pretraining")
    parser.add_argument("--pretrain-options", nargs="*", default=[], metavar="KEY=VALUE",
                        help="--cfg-options for the pretraining run (e.g. to shorten it)")
    parser.add_argument("--detection-options", nargs="*", default=[], metavar="KEY=VALUE",
                        help="--cfg-options for the Mask R-CNN training and tests")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads per step (OMP_NUM_THREADS); default: the cores that "
                             "are idle when the demo starts, at least 1")
    args = parser.parse_args(argv)
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    return args


def idle_cores() -> int:
    """CPU cores not busy at start: the core count minus the 1-minute load average, at least 1.

    On a shared machine this matters a lot: with more OpenMP threads than free cores, threads
    wait for each other at every parallel region (we measured Mask R-CNN iterations 8x slower
    with 2 threads than with 1 on 2 cores that other jobs kept busy).
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(cores or 1, round((cores or 1) - os.getloadavg()[0])))


def pick_demo_image(coco_root: str | os.PathLike) -> str:
    """The first val image showing the most distinct categories (for the drawn prediction)."""
    ann_file = Path(coco_root) / "annotations" / "instances_val2017.json"
    coco = json.loads(ann_file.read_text())
    categories: dict[int, set] = {}
    for ann in coco["annotations"]:
        categories.setdefault(ann["image_id"], set()).add(ann["category_id"])
    best = max(coco["images"], key=lambda img: (len(categories.get(img["id"], ())), -img["id"]))
    return str(Path(coco_root) / "val2017" / best["file_name"])


class Step:
    """Runs the tools as subprocesses of this interpreter, from the repo root, and times them."""

    def __init__(self, threads: int) -> None:
        self.timings: dict[str, float] = {}
        self.env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))

    def __call__(self, name: str, tool: str, *args: str) -> None:
        command = [sys.executable, tool, *args]
        print(f"\n=== {name}: {' '.join(command[1:])}", flush=True)
        start = time.perf_counter()
        result = subprocess.run(command, cwd=ROOT, env=self.env)
        self.timings[name] = round(time.perf_counter() - start, 1)
        if result.returncode != 0:
            raise RuntimeError(f"step '{name}' failed with exit code {result.returncode}: "
                               f"{' '.join(command)}")
        print(f"=== {name}: done in {self.timings[name]:.0f}s", flush=True)


def last_checkpoint(work_dir: str | os.PathLike) -> str:
    """The checkpoint mmengine's CheckpointHook recorded last in ``work_dir``.

    Raises:
        FileNotFoundError: ``work_dir`` has no ``last_checkpoint`` file or it names a missing file.
    """
    record = Path(work_dir) / "last_checkpoint"
    if not record.is_file():
        raise FileNotFoundError(f"no checkpoint was saved in {work_dir} ({record} is missing)")
    path = record.read_text().strip()
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{record} names {path}, which does not exist")
    return path


def read_metrics(path: str | os.PathLike) -> dict:
    """The metrics ``tools/test.py --out PATH.json`` wrote.

    Raises:
        FileNotFoundError: ``path`` does not exist.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no metrics file {path} (tools/test.py --out)")
    return json.loads(Path(path).read_text())


def save_untrained_detector(config: str, out: str | os.PathLike, seed: int = 0,
                            cfg_options: dict | None = None, threads: int | None = None) -> str:
    """Build the detector of ``config``, initialise it as training would, and save it.

    The backbone is loaded from its ``init_cfg`` checkpoint (the converted pretraining); the FPN
    and heads get their random initialisation. Evaluating this checkpoint gives the AP of the
    model before transfer training.
    """
    import torch
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    cfg = Config.fromfile(str(ROOT / config))
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    init_default_scope(cfg.get("default_scope", "mmdet"))
    from mmdet.registry import MODELS

    torch.manual_seed(seed)
    if threads is not None:
        torch.set_num_threads(threads)
    model = MODELS.build(cfg.model)
    model.init_weights()
    meta = dict(dataset_meta=dict(classes=tuple(cfg.metainfo["classes"]),
                                  palette=list(cfg.metainfo["palette"])),
                note="untrained: pretrained backbone, randomly initialised neck and heads")
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    torch.save(dict(meta=meta, state_dict=model.state_dict()), out)
    return str(out)


def _options(pairs: Sequence[str]) -> list[str]:
    return ["--cfg-options", *pairs] if pairs else []


def _parse_options(pairs: Sequence[str]) -> dict:
    from mmengine.config import DictAction

    parsed: dict = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        parsed[key] = DictAction._parse_iterable(value)
    return parsed


def _ap(metrics: dict) -> dict:
    return {key: metrics.get(f"coco/{key}")
            for key in ("bbox_mAP", "bbox_mAP_50", "segm_mAP", "segm_mAP_50")}


def run_pipeline(args: argparse.Namespace) -> dict:
    """Run every step; return the summary (metrics, paths, timings)."""
    work = Path(args.work_root)
    coco_root = args.coco_root.rstrip("/") + "/"
    threads = args.threads or idle_cores()
    print(f"using {threads} CPU thread(s) per step (--threads to change)")
    step = Step(threads)
    start = time.perf_counter()

    step("demo data (ImageNet layout)", "tools/make_demo_imagenet.py", "--out", args.imagenet_root)
    step("demo data (COCO layout)", "tools/make_demo_coco.py", "--out", args.coco_root)

    imagenet_data = [f"{loader}.dataset.data_root={args.imagenet_root}"
                     for loader in ("train_dataloader", "val_dataloader", "test_dataloader")]
    pretrain_dir = work / "imagenet"
    if not args.skip_pretrain:
        step("pretraining", "tools/train.py", PRETRAIN_CONFIG, "--work-dir", str(pretrain_dir),
             *_options([*imagenet_data, *args.pretrain_options]))
    classifier = last_checkpoint(pretrain_dir)
    step("pretraining evaluation", "tools/test.py", PRETRAIN_CONFIG, classifier,
         "--work-dir", str(work / "imagenet_test"), "--out", str(work / "imagenet_test.json"),
         *_options(imagenet_data))
    top1 = read_metrics(work / "imagenet_test.json").get("accuracy/top1")

    # With the default --work-root this is the path the demo config names.
    backbone = str(work / "checkpoints" / Path(BACKBONE_CHECKPOINT).name)
    Path(backbone).parent.mkdir(parents=True, exist_ok=True)
    step("conversion", "tools/convert_checkpoint.py", classifier, backbone,
         "--from", "plugin", "--to", "backbone")

    detection = [
        f"model.backbone.init_cfg.checkpoint={backbone}",
        *(f"{loader}.dataset.data_root={coco_root}"
          for loader in ("train_dataloader", "val_dataloader", "test_dataloader")),
        *(f"{evaluator}.ann_file={coco_root}annotations/instances_val2017.json"
          for evaluator in ("val_evaluator", "test_evaluator")),
        *args.detection_options,
    ]
    untrained = str(work / "mask_rcnn_untrained" / "untrained.pth")
    save_untrained_detector(DETECTION_CONFIG, untrained, cfg_options=_parse_options(detection),
                            threads=threads)
    step("untrained detector evaluation", "tools/test.py", DETECTION_CONFIG, untrained,
         "--work-dir", str(work / "mask_rcnn_untrained"),
         "--out", str(work / "mask_rcnn_untrained.json"), *_options(detection))
    before = read_metrics(work / "mask_rcnn_untrained.json")

    detector_dir = work / "mask_rcnn"
    step("Mask R-CNN transfer training", "tools/train.py", DETECTION_CONFIG, "--work-dir",
         str(detector_dir), "--no-validate", *_options(detection))
    detector = last_checkpoint(detector_dir)
    step("COCO evaluation", "tools/test.py", DETECTION_CONFIG, detector,
         "--work-dir", str(work / "mask_rcnn_test"), "--out", str(work / "mask_rcnn_test.json"),
         *_options(detection))
    after = read_metrics(work / "mask_rcnn_test.json")

    picture = str(work / "mask_rcnn_prediction.png")
    step("drawn prediction", "tools/demo.py", DETECTION_CONFIG, detector,
         pick_demo_image(args.coco_root), "--out", picture, *_options(detection))

    summary = dict(
        imagenet_top1=top1,
        untrained=_ap(before),
        trained=_ap(after),
        files=dict(classifier=classifier, backbone=backbone, detector=detector,
                   prediction_png=picture, work_root=str(work)),
        threads=threads,
        timings_s=step.timings,
        total_s=round(time.perf_counter() - start, 1),
    )
    work.mkdir(parents=True, exist_ok=True)
    (work / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def print_summary(summary: dict) -> None:
    def pct(value: float | None) -> str:
        return "n/a" if value is None else f"{100 * value:.1f}"

    files = summary["files"]
    print("\n================ demo summary ================")
    print(f"ImageNet demo top-1 (val)       : {summary['imagenet_top1']:.2f}%"
          if summary["imagenet_top1"] is not None else "ImageNet demo top-1 (val)       : n/a")
    print(f"Mask R-CNN untrained  box / mask AP: {pct(summary['untrained']['bbox_mAP'])} / "
          f"{pct(summary['untrained']['segm_mAP'])}")
    print(f"Mask R-CNN trained    box / mask AP: {pct(summary['trained']['bbox_mAP'])} / "
          f"{pct(summary['trained']['segm_mAP'])}  (AP50 {pct(summary['trained']['bbox_mAP_50'])}"
          f" / {pct(summary['trained']['segm_mAP_50'])})")
    print(f"classifier checkpoint : {files['classifier']}")
    print(f"backbone checkpoint   : {files['backbone']}")
    print(f"detector checkpoint   : {files['detector']}")
    print(f"drawn prediction      : {files['prediction_png']}")
    print(f"summary               : {files['work_root']}/summary.json")
    for name, seconds in summary["timings_s"].items():
        print(f"  {name:<32s} {seconds:7.1f}s")
    print(f"total: {summary['total_s'] / 60:.1f} min ({summary['threads']} thread(s) per step)")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    os.chdir(ROOT)
    try:
        summary = run_pipeline(args)
    except (RuntimeError, FileNotFoundError) as err:
        print(f"demo_pipeline: error: {err}", file=sys.stderr)
        return 1
    print_summary(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())

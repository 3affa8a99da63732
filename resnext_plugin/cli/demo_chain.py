"""The `make demo` chain: demo data, pretraining, conversion, Mask R-CNN transfer, evaluation.

:func:`run_demo` decides what runs, in which order, with which arguments, and collects the
summary. Every step is one of the project's command-line tools (``tools/<name>.py``, whose
``main`` is :mod:`resnext_plugin.cli.<name>`, with an argument list), run by a
:class:`ToolRunner`: :class:`InProcessTools` calls ``resnext_plugin.cli.<name>.main`` in this
interpreter (one start-up for the whole demo), :class:`SubprocessTools` starts one interpreter
per step. :mod:`resnext_plugin.cli.demo_pipeline` is the command line.
"""
from __future__ import annotations

import gc
import importlib
import json
import os
import subprocess
import sys
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Protocol

from resnext_plugin.engine.instances import forget_new_global_instances

#: Configs of the two trainings, relative to the repository root.
PRETRAIN_CONFIG = "configs/demo/resnext50_32x4d_imagenet_demo.py"
DETECTION_CONFIG = "configs/demo/mask-rcnn_resnext50-32x4d_fpn_demo.py"
#: Where the detection demo config expects the converted backbone (relative to the repo root).
BACKBONE_CHECKPOINT = "work_dirs/demo/checkpoints/resnext50_32x4d_demo_imagenet_backbone.pth"
#: The COCO metrics the summary reports.
AP_KEYS = ("bbox_mAP", "bbox_mAP_50", "segm_mAP", "segm_mAP_50")


class ToolRunner(Protocol):
    """Runs ``tools/<tool>.py args...`` as step ``name``, from the repository root, and records
    its wall time in ``timings``; raises ``RuntimeError`` if it fails."""

    timings: dict[str, float]

    def __call__(self, name: str, tool: str, *args: str) -> None: ...


class _TimedTools:
    """The frame every tool runner shares: announce the step, time it, raise if it failed."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}

    def _run(self, tool: str, args: Sequence[str]) -> tuple[int | str | None, str]:
        """Run ``tools/<tool>.py args``; return its exit code and the command, as reported."""
        raise NotImplementedError

    def __call__(self, name: str, tool: str, *args: str) -> None:
        print(f"\n=== {name}: tools/{tool}.py {' '.join(args)}", flush=True)
        start = time.perf_counter()
        try:
            code, command = self._run(tool, args)
        except Exception as err:
            raise RuntimeError(f"step '{name}' (tools/{tool}.py) failed: "
                               f"{type(err).__name__}: {err}") from err
        finally:
            self.timings[name] = round(time.perf_counter() - start, 1)
        if code not in (0, None):
            raise RuntimeError(f"step '{name}' failed with exit code {code}: {command}")
        print(f"=== {name}: done in {self.timings[name]:.0f}s", flush=True)


class InProcessTools(_TimedTools):
    """Runs ``resnext_plugin.cli.<tool>.main(argv)`` (what ``tools/<tool>.py`` runs) in this
    interpreter and times each step.

    One interpreter start for the whole demo instead of one per step (each start imports torch,
    mmengine, mmpretrain and mmdet again). mmengine's named global instances created by a step
    are dropped after it (:func:`forget_new_global_instances`).

    Args:
        threads: ``torch.set_num_threads`` before every step.
    """

    def __init__(self, threads: int | None = None) -> None:
        super().__init__()
        self.threads = threads

    @staticmethod
    def _module(tool: str) -> ModuleType:
        try:
            return importlib.import_module(f"resnext_plugin.cli.{tool}")
        except ModuleNotFoundError as err:
            raise RuntimeError(f"no tool {tool!r} (resnext_plugin.cli.{tool})") from err

    def _run(self, tool: str, args: Sequence[str]) -> tuple[int | str | None, str]:
        if self.threads is not None:
            import torch

            torch.set_num_threads(self.threads)
        try:
            with forget_new_global_instances():
                code = self._module(tool).main(list(args))
        except SystemExit as exit_:  # argparse errors
            code = exit_.code
        except Exception:
            traceback.print_exc()
            raise
        finally:
            gc.collect()  # the finished runner's data-loader workers exit with it
        return code, f"tools/{tool}.py {' '.join(args)}"


class SubprocessTools(_TimedTools):
    """Runs ``python tools/<tool>.py args`` in a new interpreter per step and times each.

    Args:
        tools_dir: The folder holding the tools; the steps run from its parent (the repo root).
    """

    def __init__(self, tools_dir: str | os.PathLike) -> None:
        super().__init__()
        self.tools_dir = Path(tools_dir)

    def _run(self, tool: str, args: Sequence[str]) -> tuple[int | str | None, str]:
        command = [sys.executable, str(self.tools_dir / f"{tool}.py"), *args]
        return subprocess.run(command, cwd=self.tools_dir.parent).returncode, " ".join(command)


@dataclass
class DemoOptions:
    """What the demo reads and writes, and the overrides passed to its runs.

    Attributes:
        work_root: Folder for every run's logs and checkpoints.
        imagenet_root: Demo ImageNet-layout data (generated there).
        coco_root: Demo COCO-layout data (generated there).
        skip_pretrain: Reuse ``<work_root>/imagenet``'s last checkpoint instead of pretraining.
        pretrain_options: ``KEY=VALUE`` config overrides of the pretraining run.
        detection_options: ``KEY=VALUE`` config overrides of the Mask R-CNN runs.
        threads: CPU threads every step computes with.
        repo_root: Where the configs are (paths in the configs are relative to it).
    """

    work_root: str = "work_dirs/demo"
    imagenet_root: str = "data/demo_imagenet"
    coco_root: str = "data/demo_coco"
    skip_pretrain: bool = False
    pretrain_options: Sequence[str] = field(default_factory=list)
    detection_options: Sequence[str] = field(default_factory=list)
    threads: int = 1
    repo_root: str = "."


def default_threads() -> int:
    """All CPU cores this process may run on.

    The load average is deliberately not consulted: right after another job (``make test``) it
    still counts that job's finished processes for a minute or more and would leave cores idle.
    """
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def pick_demo_image(coco_root: str | os.PathLike) -> str:
    """The first val image showing the most distinct categories (for the drawn prediction)."""
    ann_file = Path(coco_root) / "annotations" / "instances_val2017.json"
    coco = json.loads(ann_file.read_text())
    categories: dict[int, set] = {}
    for ann in coco["annotations"]:
        categories.setdefault(ann["image_id"], set()).add(ann["category_id"])
    best = max(coco["images"], key=lambda img: (len(categories.get(img["id"], ())), -img["id"]))
    return str(Path(coco_root) / "val2017" / best["file_name"])


def last_checkpoint(work_dir: str | os.PathLike) -> str:
    """The checkpoint mmengine's CheckpointHook recorded last in ``work_dir``
    (mmengine's ``find_latest_checkpoint``, with an error instead of ``None``).

    Raises:
        FileNotFoundError: ``work_dir`` records no checkpoint, or it names a missing file.
    """
    from mmengine.runner import find_latest_checkpoint

    path = find_latest_checkpoint(str(work_dir))
    if path is None:
        raise FileNotFoundError(f"no checkpoint was saved in {work_dir} "
                                f"({Path(work_dir) / 'last_checkpoint'} is missing)")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{Path(work_dir) / 'last_checkpoint'} names {path}, "
                                "which does not exist")
    return path


def read_metrics(path: str | os.PathLike) -> dict:
    """The metrics ``tools/test.py --out PATH.json`` wrote.

    Raises:
        FileNotFoundError: ``path`` does not exist.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no metrics file {path} (tools/test.py --out)")
    return json.loads(Path(path).read_text())


def parse_cfg_options(pairs: Sequence[str]) -> dict:
    """``KEY=VALUE`` strings parsed exactly as the tools' ``--cfg-options`` parses them
    (mmengine's ``DictAction``).

    Raises:
        ValueError: a pair has no ``=``.
    """
    import argparse

    from resnext_plugin.cli.runner_setup import add_cfg_options

    for pair in pairs:
        key, sep, _ = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"config override {pair!r} is not KEY=VALUE")
    parser = argparse.ArgumentParser(add_help=False)
    add_cfg_options(parser, default={})
    return parser.parse_args(["--cfg-options", *pairs] if pairs else []).cfg_options


def save_untrained_detector(config: str | os.PathLike, out: str | os.PathLike, seed: int = 0,
                            cfg_options: dict | None = None) -> str:
    """Build the detector of ``config``, initialise it as training would, and save it.

    The backbone is loaded from its ``init_cfg`` checkpoint (the converted pretraining); the FPN
    and heads get their random initialisation. Evaluating this checkpoint gives the AP of the
    model before transfer training.
    """
    import torch
    from mmengine.config import Config
    from mmengine.registry import DefaultScope

    cfg = Config.fromfile(str(config))
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    from mmdet.registry import MODELS

    with DefaultScope.overwrite_default_scope(cfg.get("default_scope", "mmdet")):
        torch.manual_seed(seed)
        model = MODELS.build(cfg.model)
        model.init_weights()
    meta = dict(dataset_meta=dict(classes=tuple(cfg.metainfo["classes"]),
                                  palette=list(cfg.metainfo["palette"])),
                note="untrained: pretrained backbone, randomly initialised neck and heads")
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    torch.save(dict(meta=meta, state_dict=model.state_dict()), out)
    return str(out)


def ap_metrics(metrics: dict) -> dict:
    """The summary's COCO APs from ``tools/test.py``'s metrics (``None`` where missing)."""
    return {key: metrics.get(f"coco/{key}") for key in AP_KEYS}


def _options(pairs: Sequence[str]) -> list[str]:
    return ["--cfg-options", *pairs] if pairs else []


def run_demo(options: DemoOptions, run_tool: ToolRunner) -> dict:
    """Run every step through ``run_tool``; return the summary (metrics and paths).

    Raises:
        RuntimeError: a step failed (raised by ``run_tool``).
        FileNotFoundError: a step did not write the checkpoint or metrics file it should have.
    """
    repo = Path(options.repo_root)
    work = Path(options.work_root)
    coco_root = options.coco_root.rstrip("/") + "/"

    run_tool("demo data (ImageNet layout)", "make_demo_imagenet", "--out", options.imagenet_root)
    run_tool("demo data (COCO layout)", "make_demo_coco", "--out", options.coco_root)

    imagenet_data = [f"{loader}.dataset.data_root={options.imagenet_root}"
                     for loader in ("train_dataloader", "val_dataloader", "test_dataloader")]
    pretrain_dir = work / "imagenet"
    if not options.skip_pretrain:
        run_tool("pretraining", "train", PRETRAIN_CONFIG, "--work-dir", str(pretrain_dir),
                 *_options([*imagenet_data, *options.pretrain_options]))
    classifier = last_checkpoint(pretrain_dir)
    run_tool("pretraining evaluation", "test", PRETRAIN_CONFIG, classifier,
             "--work-dir", str(work / "imagenet_test"), "--out", str(work / "imagenet_test.json"),
             *_options(imagenet_data))
    top1 = read_metrics(work / "imagenet_test.json").get("accuracy/top1")

    # With the default work root this is the path the demo config names.
    backbone = str(work / "checkpoints" / Path(BACKBONE_CHECKPOINT).name)
    Path(backbone).parent.mkdir(parents=True, exist_ok=True)
    run_tool("conversion", "convert_checkpoint", classifier, backbone,
             "--from", "plugin", "--to", "backbone")

    detection = [
        f"model.backbone.init_cfg.checkpoint={backbone}",
        *(f"{loader}.dataset.data_root={coco_root}"
          for loader in ("train_dataloader", "val_dataloader", "test_dataloader")),
        *(f"{evaluator}.ann_file={coco_root}annotations/instances_val2017.json"
          for evaluator in ("val_evaluator", "test_evaluator")),
        *options.detection_options,
    ]
    untrained = str(work / "mask_rcnn_untrained" / "untrained.pth")
    save_untrained_detector(repo / DETECTION_CONFIG, untrained,
                            cfg_options=parse_cfg_options(detection))
    run_tool("untrained detector evaluation", "test", DETECTION_CONFIG, untrained,
             "--work-dir", str(work / "mask_rcnn_untrained"),
             "--out", str(work / "mask_rcnn_untrained.json"), *_options(detection))
    before = read_metrics(work / "mask_rcnn_untrained.json")

    detector_dir = work / "mask_rcnn"
    run_tool("Mask R-CNN transfer training", "train", DETECTION_CONFIG, "--work-dir",
             str(detector_dir), "--no-validate", *_options(detection))
    detector = last_checkpoint(detector_dir)
    run_tool("COCO evaluation", "test", DETECTION_CONFIG, detector,
             "--work-dir", str(work / "mask_rcnn_test"), "--out", str(work / "mask_rcnn_test.json"),
             *_options(detection))
    after = read_metrics(work / "mask_rcnn_test.json")

    picture = str(work / "mask_rcnn_prediction.png")
    run_tool("drawn prediction", "demo", DETECTION_CONFIG, detector,
             pick_demo_image(options.coco_root), "--out", picture, *_options(detection))

    summary = dict(
        imagenet_top1=top1,
        untrained=ap_metrics(before),
        trained=ap_metrics(after),
        files=dict(classifier=classifier, backbone=backbone, detector=detector,
                   prediction_png=picture, work_root=str(work)),
        threads=options.threads,
        timings_s=dict(run_tool.timings),
    )
    return summary


def write_summary(summary: dict, work_root: str | os.PathLike) -> Path:
    """Write ``summary`` to ``<work_root>/summary.json``; return the path."""
    path = Path(work_root) / "summary.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary, indent=2))
    return path


def format_summary(summary: dict) -> str:
    """The summary as the lines ``make demo`` prints at the end."""
    def pct(value: float | None) -> str:
        return "n/a" if value is None else f"{100 * value:.1f}"

    files, before, after = summary["files"], summary["untrained"], summary["trained"]
    top1 = summary["imagenet_top1"]
    lines = [
        "================ demo summary ================",
        "ImageNet demo top-1 (val)       : " + ("n/a" if top1 is None else f"{top1:.2f}%"),
        f"Mask R-CNN untrained  box / mask AP: {pct(before['bbox_mAP'])} / "
        f"{pct(before['segm_mAP'])}",
        f"Mask R-CNN trained    box / mask AP: {pct(after['bbox_mAP'])} / "
        f"{pct(after['segm_mAP'])}  (AP50 {pct(after['bbox_mAP_50'])}"
        f" / {pct(after['segm_mAP_50'])})",
        f"classifier checkpoint : {files['classifier']}",
        f"backbone checkpoint   : {files['backbone']}",
        f"detector checkpoint   : {files['detector']}",
        f"drawn prediction      : {files['prediction_png']}",
        f"summary               : {files['work_root']}/summary.json",
        *(f"  {name:<32s} {seconds:7.1f}s" for name, seconds in summary["timings_s"].items()),
    ]
    if "total_s" in summary:
        lines.append(f"total: {summary['total_s'] / 60:.1f} min "
                     f"({summary['threads']} thread(s) per step)")
    return "\n".join(lines)

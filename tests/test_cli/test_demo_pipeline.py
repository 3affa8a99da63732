"""`make demo`'s chain (resnext_plugin.cli.demo_chain, .demo_pipeline): thread choice,
in-process tool steps, and the whole chain on tiny data (the full-size run is the slow
tests/test_pipelines/test_detection_transfer.py::test_make_demo_pipeline)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from resnext_plugin.cli import demo_pipeline
from resnext_plugin.cli.demo_chain import (
    DemoOptions,
    InProcessTools,
    SubprocessTools,
    default_threads,
    forget_new_global_instances,
    format_summary,
    parse_cfg_options,
    run_demo,
)

ROOT = Path(__file__).resolve().parents[2]

STEPS = ("demo data (ImageNet layout)", "demo data (COCO layout)", "pretraining",
         "pretraining evaluation", "conversion", "untrained detector evaluation",
         "Mask R-CNN transfer training", "COCO evaluation", "drawn prediction")


def test_default_threads_are_all_usable_cores_whatever_the_load_average():
    assert default_threads() == len(os.sched_getaffinity(0))
    assert demo_pipeline.parse_args([]).threads is None
    assert demo_pipeline.parse_args(["--threads", "1"]).threads == 1


def test_bad_thread_count_is_named(capsys):
    with pytest.raises(SystemExit):
        demo_pipeline.parse_args(["--threads", "0"])
    assert "--threads must be >= 1, got 0" in capsys.readouterr().err


def test_cfg_options_parse_like_the_command_line():
    assert parse_cfg_options(["a.b=1", "c=(64,64)", "d=x"]) == {"a.b": 1, "c": (64, 64), "d": "x"}
    with pytest.raises(ValueError, match="'train_cfg' is not KEY=VALUE"):
        parse_cfg_options(["train_cfg"])


def test_in_process_steps_are_timed_and_failures_named(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    tools = InProcessTools()
    tools("tiny COCO", "make_demo_coco", "--out", str(tmp_path / "coco"), "--num-train", "2",
          "--num-val", "1")
    assert (tmp_path / "coco" / "annotations" / "instances_val2017.json").is_file()
    assert list(tools.timings) == ["tiny COCO"] and tools.timings["tiny COCO"] >= 0
    with pytest.raises(RuntimeError, match="step 'bad COCO' failed with exit code 2"):
        tools("bad COCO", "make_demo_coco", "--out", str(tmp_path / "bad"), "--num-train", "0")
    with pytest.raises(RuntimeError, match=r"step 'bad flag'.*exit code 2"):
        tools("bad flag", "make_demo_coco", "--no-such-flag")


def test_isolated_steps_run_in_their_own_interpreter(tmp_path):
    tools = SubprocessTools(ROOT / "tools")
    tools("tiny COCO", "make_demo_coco", "--out", str(tmp_path / "coco"), "--num-train", "1",
          "--num-val", "1")
    assert (tmp_path / "coco" / "val2017").is_dir() and "tiny COCO" in tools.timings
    with pytest.raises(RuntimeError, match="step 'bad COCO' failed with exit code 2"):
        tools("bad COCO", "make_demo_coco", "--out", str(tmp_path / "bad"), "--num-val", "0")


def test_a_step_leaves_no_named_mmengine_instances_behind(tmp_path):
    """mmdet configs name their visualizer 'visualizer': without the cleanup the next runner in
    the process would get this one, with its save_dir."""
    from mmdet.visualization import DetLocalVisualizer
    from mmengine.logging import MMLogger

    # An in-process mmdet runner of an earlier test may have left its 'visualizer': set it
    # aside, so that this test creates the instance itself, whatever ran before.
    earlier = DetLocalVisualizer._instance_dict.pop("visualizer", None)
    try:
        kept = DetLocalVisualizer.get_instance("kept_by_the_caller")
        with forget_new_global_instances():
            DetLocalVisualizer.get_instance("visualizer", save_dir=str(tmp_path))
            logger = MMLogger.get_instance("demo_step_logger",
                                           log_file=str(tmp_path / "step.log"))
            assert DetLocalVisualizer.check_instance_created("visualizer")
        assert not DetLocalVisualizer.check_instance_created("visualizer")
        assert not MMLogger.check_instance_created("demo_step_logger") and not logger.handlers
        assert DetLocalVisualizer.get_instance("kept_by_the_caller") is kept
    finally:
        if earlier is not None:
            DetLocalVisualizer._instance_dict["visualizer"] = earlier


class TinyDataTools(InProcessTools):
    """The real in-process steps, with the data generators asked for a few images only."""

    SHRINK = {"make_demo_imagenet": ["--train-per-class", "4", "--val-per-class", "2"],
              "make_demo_coco": ["--num-train", "8", "--num-val", "4"]}

    def __call__(self, name: str, tool: str, *args: str) -> None:
        super().__call__(name, tool, *args, *self.SHRINK.get(tool, []))


def test_whole_chain_runs_in_one_process_on_tiny_data(tmp_path, monkeypatch):
    """Every step's tool, one interpreter: pretraining, conversion, both evaluations, transfer
    training and the drawing; the summary names existing files and holds every metric."""
    monkeypatch.chdir(ROOT)
    options = DemoOptions(work_root=str(tmp_path / "work"),
                          imagenet_root=str(tmp_path / "imagenet"),
                          coco_root=str(tmp_path / "coco"),
                          pretrain_options=["train_cfg.max_epochs=1"],
                          detection_options=["train_cfg.max_epochs=1",
                                             "model.test_cfg.rcnn.score_thr=0.0"],
                          threads=1, repo_root=str(ROOT))
    tools = TinyDataTools(threads=1)
    summary = run_demo(options, tools)
    assert tuple(summary["timings_s"]) == STEPS
    assert 0.0 <= summary["imagenet_top1"] <= 100.0
    for stage in ("untrained", "trained"):
        assert all(0.0 <= value <= 1.0 for value in summary[stage].values()), summary
    for name in ("classifier", "backbone", "detector", "prediction_png"):
        assert Path(summary["files"][name]).is_file(), name
    assert "demo summary" in format_summary(summary)
    json.dumps(summary)  # what write_summary stores

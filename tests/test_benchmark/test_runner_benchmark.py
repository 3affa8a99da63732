"""The runner-level benchmark's machinery (``tools/benchmark.py runner``): derived configs, log
parsing, pairing of candidates, and one real interleaved round of ``tools/train.py`` runs.
Nothing here is timed: the assertions are about what ran, not how fast."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
from mmengine.config import Config

from resnext_plugin.benchmark import runner as rb
from resnext_plugin.demo_data.coco import DemoCocoSpec, make_demo_coco
from resnext_plugin.demo_data.imagenet import DemoImageNetSpec, make_demo_imagenet


def _scenario(tmp_path: Path, task: str, iters: int = 3, skip: int = 1) -> rb.Scenario:
    if task == "cls":
        data = tmp_path / "imagenet"
        make_demo_imagenet(data, DemoImageNetSpec(num_classes=2, train_per_class=6,
                                                  val_per_class=1, image_size=24))
        overrides = rb._cls_overrides(data, iters, 4, None)
        overrides["train_dataloader"].update(num_workers=0, persistent_workers=False)
        return rb.Scenario("cls-test", rb.CLS_DEMO, "cls", overrides, iters, skip)
    data = tmp_path / "coco"
    make_demo_coco(data, DemoCocoSpec(num_train=4, num_val=1, image_size=64))
    overrides = dict(train_dataloader=dict(batch_size=2,
                                           dataset=rb._coco_dataset(data, iters, 2, None)))
    return rb.Scenario("det-test", rb.DET_DEMO, "det", overrides, iters, skip)


def test_derived_configs_swap_only_the_backbone(tmp_path: Path):
    scenario = _scenario(tmp_path, "cls")
    texts = {}
    for candidate in (rb.Candidate("stock", True), rb.Candidate("plugin", False)):
        path = tmp_path / f"{candidate.name}.py"
        path.write_text(rb.config_text(scenario, candidate, tmp_path / "w.pth"))
        texts[candidate.name] = Config.fromfile(str(path))
    stock, plugin = texts["stock"], texts["plugin"]
    assert stock.model.backbone.type == "ResNeXt" and stock.default_scope == "mmpretrain"
    assert plugin.model.backbone.type == "resnext_plugin.ResNeXt"
    assert plugin.model.backbone.init_cfg is None
    for cfg in (stock, plugin):
        assert cfg.train_cfg.max_epochs == 1 and cfg.log_processor.window_size == 1
        assert cfg.load_from == str(tmp_path / "w.pth") and cfg.randomness.seed == 0
        assert cfg.train_dataloader.dataset.indices == 12
        assert cfg.default_hooks.checkpoint.save_last is False
    assert stock.model.head == plugin.model.head
    assert stock.optim_wrapper == plugin.optim_wrapper


def test_stock_detector_backbone_is_mmdets_with_the_same_freezing(tmp_path: Path):
    text = rb.config_text(rb.Scenario("d", rb.DET_DEMO, "det", {}, 3, 1),
                          rb.Candidate("stock", True), None)
    path = tmp_path / "stock.py"
    path.write_text(text)
    cfg = Config.fromfile(str(path))
    base = Config.fromfile(str(rb.DET_DEMO))
    assert cfg.default_scope == "mmdet" and cfg.model.backbone.type == "ResNeXt"
    for key in ("depth", "groups", "frozen_stages", "norm_eval", "out_indices", "style"):
        assert cfg.model.backbone[key] == base.model.backbone[key], key
    assert cfg.model.backbone.base_width == base.model.backbone.width_per_group


def test_parse_run_skips_warm_up_iterations_and_reads_losses():
    records = [{"lr": 0.1, "data_time": 0.01 * i, "loss": 5.0 - i, "time": 1.0 + i,
                "iter": i, "step": i} for i in range(1, 5)]
    records.append({"coco/bbox_mAP": 0.1, "step": 1})
    run = rb.parse_run(records, skip=1, wall=9.0)
    assert run.seconds == [3.0, 4.0, 5.0] and run.losses == [4.0, 3.0, 2.0, 1.0]
    assert run.median == 4.0
    with pytest.raises(ValueError, match="skip=4"):
        rb.parse_run(records, skip=4, wall=1.0)


def test_candidates_pair_with_stock_of_the_same_framework_knobs():
    candidates = rb.default_candidates("det", compile=True, amp=True)
    names = [c.name for c in candidates]
    assert names[:5] == ["stock", "plugin", "plugin-fold", "plugin-cl", "plugin-cl-fold"]
    by_name = {c.name: c for c in candidates}
    assert rb.reference_for(by_name["plugin-cl-fold-compile"], candidates).name == \
        "stock-compile"
    assert rb.reference_for(by_name["plugin-cl-fold"], candidates).name == "stock"
    assert rb.reference_for(by_name["plugin-cl-fold-amp"], candidates) is None  # no stock AMP
    assert dict(by_name["plugin"].backbone) == {"fold_frozen_bn": False}


def test_unknown_scenario_is_named_before_anything_runs(tmp_path: Path):
    with pytest.raises(ValueError, match="unknown.*'nope'"):
        rb.run_benchmark(["nope"], tmp_path / "never", rounds=1)
    assert not (tmp_path / "never").exists()


def test_a_failing_run_reports_the_log_tail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    fake = tmp_path / "train.py"
    fake.write_text("import sys\nprint('KeyError: NoSuchModel is not in the registry')\n"
                    "sys.exit(3)\n")
    monkeypatch.setattr(rb, "TRAIN_TOOL", fake)
    with pytest.raises(RuntimeError, match=r"failed \(3\)[\s\S]*NoSuchModel"):
        rb.run_train(tmp_path / "cfg.py", tmp_path / "work", ["--compile"], skip=0)


@pytest.mark.slow
def test_one_interleaved_round_of_real_training_runs(tmp_path: Path):
    """Stock and plugin classification runs through tools/train.py: both start from the same
    weights and seed, so their first logged losses are equal; the report pairs them."""
    scenario = _scenario(tmp_path, "cls")
    candidates = [rb.Candidate("stock", True), rb.Candidate("plugin-cl", False,
                                                            ("--channels-last",))]
    results = rb.run_scenario(scenario, candidates, rounds=1, out_dir=tmp_path / "out",
                              log=lambda _: None)
    stock, plugin = results
    assert len(stock.seconds) == len(plugin.seconds) == 2  # 3 iterations, the first skipped
    assert all(s > 0 for s in stock.seconds + plugin.seconds)
    assert math.isclose(stock.first_loss, plugin.first_loss, rel_tol=1e-5)
    report = rb.format_results(scenario, results)
    assert "| stock * |" in report and "| plugin-cl | --channels-last |" in report


@pytest.mark.slow
def test_detection_round_through_tools_train(tmp_path: Path):
    """The demo Mask R-CNN config, stock mmdet backbone against ours (fold and channels_last):
    the same first loss, so the same function is being timed."""
    scenario = _scenario(tmp_path, "det")
    candidates = [rb.Candidate("stock", True),
                  rb.Candidate("plugin-cl-fold", False, ("--channels-last",),
                               (("fold_frozen_bn", True),))]
    stock, plugin = rb.run_scenario(scenario, candidates, rounds=1, out_dir=tmp_path / "out",
                                    log=lambda _: None)
    assert math.isclose(stock.first_loss, plugin.first_loss, rel_tol=1e-4)


# ------------------------------------------------------------------------------ make gpu-check
@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks the no-GPU path")
def test_gpu_check_fails_clearly_without_a_gpu(tmp_path: Path, capsys):
    from resnext_plugin.benchmark import gpu_check

    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n")
    assert gpu_check.run(doc, tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert "needs a CUDA GPU" in err and "Nothing was run" in err
    assert doc.read_text() == "# Benchmarks\n"  # nothing written


def test_gpu_check_plan_fits_ten_minutes_and_replaces_its_own_section(tmp_path: Path):
    from resnext_plugin.benchmark import gpu_check

    steps = gpu_check.steps(python="python", out_dir=tmp_path)
    assert sum(step.limit for step in steps) <= 9 * 60  # leaves start-up time
    commands = [" ".join(step.command) for step in steps]
    assert "-m cuda" in commands[0]
    assert "--device cuda" in commands[1]
    assert " runner " in commands[2] and "--amp" in commands[2]
    # The benchmark steps are command lines tools/benchmark.py accepts, in the modes meant.
    from resnext_plugin.cli.benchmark import parse_args

    backbone, runner = (parse_args(step.command[2:]) for step in steps[1:])
    assert backbone.mode == "backbone" and backbone.device == "cuda"
    assert runner.mode == "runner" and runner.amp
    assert runner.scenarios == gpu_check.smoke_scenarios() and "det-demo" in runner.scenarios
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# B\n\nbefore\n")
    gpu_check.write_section(f"{gpu_check.BEGIN}\none\n{gpu_check.END}", doc)
    gpu_check.write_section(f"{gpu_check.BEGIN}\ntwo\n{gpu_check.END}", doc)
    text = doc.read_text()
    assert "before" in text and "two" in text and "one" not in text
    assert text.count(gpu_check.BEGIN) == 1


def test_keep_candidates_brings_the_matching_stock_runs():
    candidates = rb.default_candidates("det", compile=True, amp=True, cuda=True)
    kept = [c.name for c in rb.keep_candidates(candidates, ["plugin-cl-fold-amp",
                                                            "plugin-cl-fold-compile"])]
    assert kept == ["stock", "stock-compile", "plugin-cl-fold-compile", "stock-amp",
                    "plugin-cl-fold-amp"]
    with pytest.raises(ValueError, match="unknown.*'nope'"):
        rb.keep_candidates(candidates, ["nope"])


def _result(candidate: rb.Candidate, seconds: list[float]) -> rb.CandidateResult:
    return rb.CandidateResult(candidate, [rb.RunResult([s], [0.0], [1.0], 1.0) for s in seconds])


def test_verdicts_state_targets_met_and_missed():
    stock, fold = rb.Candidate("stock", True), rb.Candidate("plugin-cl-fold", False,
                                                             ("--channels-last",))
    amp = rb.Candidate("plugin-cl-fold-amp", False, ("--channels-last", "--amp"))
    det = rb.Scenario("det", rb.DET_DEMO, "det", {}, 3, 1)
    results = [_result(stock, [2.0, 2.2]), _result(fold, [1.6, 1.7]), _result(amp, [1.0, 1.1])]
    lines = rb.verdict_lines(det, results, amp_native=False)
    assert any("1.27x" in line and "MISSED" in line for line in lines)  # median(1.25, 1.29)
    assert any("not applicable" in line for line in lines)
    lines = rb.verdict_lines(det, results[:2] + [_result(amp, [2.0, 2.0])], amp_native=True)
    assert any("bf16 never slower" in line and "MISSED" in line for line in lines)
    cls = rb.Scenario("cls", rb.CLS_DEMO, "cls", {}, 3, 1, flops_per_iter=10e9)
    lines = rb.verdict_lines(cls, [_result(stock, [1.0]), _result(fold, [0.5])], 100.0)
    assert lines == ["target: fp32 classification step >= 75% of the dense fp32 3x3 "
                     "convolution's rate: best plugin-cl-fold 120%: met"]
    # A faster bf16 run is not held against the fp32 yardstick.
    lines = rb.verdict_lines(cls, [_result(stock, [1.0]), _result(fold, [1.0]),
                                   _result(amp, [0.4])], 100.0)
    assert lines[0] == ("target: fp32 classification step >= 75% of the dense fp32 3x3 "
                        "convolution's rate: best plugin-cl-fold 60%: MISSED")

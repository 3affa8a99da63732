"""The benchmark's scenarios are declared once (``benchmark/scenarios.py``) and every mode that
names one reads that table: the runner-level benchmark, the profiler, ``make gpu-check`` and the
command line. Nothing here is timed."""
from __future__ import annotations

import importlib
import re
import shlex
from pathlib import Path

import pytest
from mmengine.config import Config

from resnext_plugin.benchmark import profiling
from resnext_plugin.benchmark import runner as rb
from resnext_plugin.benchmark.scenarios import (
    SCENARIOS,
    ScenarioSpec,
    get_scenarios,
    register,
    smoke_scenarios,
)
from resnext_plugin.cli.benchmark import MODES, build_parser, parse_args


def test_every_scenario_names_a_config_of_the_repository_and_a_known_task():
    assert {"cls-demo", "cls-224", "det-demo", "det-800x1333"} <= set(SCENARIOS)
    for spec in SCENARIOS.values():
        assert spec.config_path.is_file(), spec
        assert spec.task in rb.SPEC_OVERRIDES and spec.task in profiling.STEPS
        assert spec.task in rb.STOCK_BACKBONES and spec.task in rb.EAGER_CANDIDATES
    assert {"cls-demo", "det-demo"} <= set(smoke_scenarios())


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_each_scenario_derives_a_runner_config_with_its_input(name: str, tmp_path: Path):
    spec = SCENARIOS[name]
    data = {"imagenet": tmp_path / "imagenet", "coco": tmp_path / "coco"}
    scenario = rb.make_scenario(spec, data, quick=True)
    assert (scenario.task, scenario.base, scenario.iters, scenario.skip) == (
        spec.task, spec.config_path, 3, 1)
    path = tmp_path / "plugin.py"
    path.write_text(rb.config_text(scenario, rb.Candidate("plugin", False), None))
    cfg = Config.fromfile(str(path))
    loader = cfg.train_dataloader
    assert loader.batch_size == spec.batch and loader.dataset.indices == 3 * spec.batch
    pipeline = loader.dataset.pipeline
    if spec.task == "cls":
        crop = next(step.scale for step in pipeline if step.type == "RandomResizedCrop")
        assert (crop, crop) == spec.image_hw
    else:
        resize = next(step.scale for step in pipeline if step.type == "Resize")
        assert tuple(resize)[::-1] == spec.image_hw  # mmdet scales are (w, h)
    for key, value in spec.loader.items():
        assert loader[key] == value


def test_unknown_scenarios_are_named_with_the_known_ones():
    with pytest.raises(ValueError, match=r"--scenarios: unknown \['nope'\]; known: cls-demo"):
        get_scenarios(["cls-demo", "nope"])
    with pytest.raises(ValueError, match="already registered"):
        register(SCENARIOS["cls-demo"])
    with pytest.raises(ValueError, match="task must be one of"):
        ScenarioSpec("x", "seg", "configs/x.py", (8, 8), batch=1, iters=2, skip=1)


def test_the_command_line_offers_the_registered_scenarios():
    profile = parse_args(["profile", "det-800x1333", "--backbone", "fold_frozen_bn=True"])
    assert profile.scenario == "det-800x1333" and profile.backbone == {"fold_frozen_bn": True}
    assert parse_args(["runner"]).scenarios == list(SCENARIOS)
    with pytest.raises(SystemExit):
        parse_args(["profile", "nope"])


@pytest.mark.parametrize("legacy, current", [
    ([], ["backbone"]),
    (["--quick"], ["backbone", "--quick"]),
    (["--variants", "torchvision,plugin", "--batch", "32", "--no-train"],
     ["backbone", "--variants", "torchvision,plugin", "--batch", "32", "--no-train"]),
    (["--detector", "--repeats", "9", "--json", "det.json"],
     ["detector", "--repeats", "9", "--json", "det.json"]),
    (["--runner", "--scenarios", "det-800x1333", "--rounds", "2", "--amp"],
     ["runner", "--scenarios", "det-800x1333", "--rounds", "2", "--amp"]),
    (["--profile", "det-demo", "--profile-backbone", "fold_frozen_bn=False"],
     ["profile", "det-demo", "--backbone", "fold_frozen_bn=False"]),
    (["--threads", "1", "--profile=cls-224"], ["profile", "cls-224", "--threads", "1"]),
])
def test_the_single_command_form_still_selects_its_mode(legacy: list[str], current: list[str]):
    assert vars(parse_args(legacy)) == vars(parse_args(current))
    assert parse_args(legacy).mode == current[0]


def test_mode_defaults_and_checks():
    quick = parse_args(["backbone", "--quick"])
    assert (quick.batch, quick.size, quick.repeats, quick.warmup) == ([1, 4], 64, 2, 1)
    full = parse_args(["detector"])
    assert (full.det_size, full.repeats) == ("512", 7)
    for bad in (["backbone", "--size", "16"], ["detector", "--det-size", "8x8"],
                ["runner", "--rounds", "0"], ["backbone", "--no-train", "--no-infer"],
                ["export-detector", "--image", "800"],
                ["export-detector", "--candidates", "no such row"]):
        with pytest.raises(SystemExit):
            parse_args(bad)
    assert set(MODES) == {"backbone", "detector", "runner", "profile", "export",
                          "export-detector"}
    assert parse_args(["export", "--quick"]).batch == [1, 4]
    det = parse_args(["export-detector"])
    assert (det.depth, det.image, det.candidates) == (101, [800, 1344], None)
    quick = parse_args(["export-detector", "--quick"])
    assert (quick.depth, quick.image, quick.repeats) == (50, [320, 320], 1)
    assert "{backbone,detector,runner,profile,export,export-detector}" in \
        build_parser().format_usage()


def _documented_commands() -> list[str]:
    root = Path(__file__).resolve().parents[2]
    texts = [(root / name).read_text(encoding="utf-8")
             for name in ("README.md", "docs/benchmarks.md")]
    texts.append(importlib.import_module("resnext_plugin.cli.benchmark").__doc__)
    found = set()
    for text in texts:
        found.update(match.strip() for match in re.findall(
            r"python tools/benchmark\.py([^`\n#(]*)", text))
    return sorted(found)


@pytest.mark.parametrize("command", _documented_commands())
def test_every_documented_command_line_parses(command: str):
    if "..." in command:
        pytest.skip("a pattern, not a command")
    parse_args(shlex.split(command))

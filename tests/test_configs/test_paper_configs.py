"""The paper's experiments: configs/paper/, resnext_plugin.experiments,
tools/paper_experiments.py, CheckedCIFAR10/100 and the modern recipes.

Every paper config is built here; the models' parameters are counted exactly and their FLOPs at
a small input (32 px ImageNet, 8 px CIFAR): the convolutions' FLOPs scale exactly with the area,
every feature map of a 224 px input being 7 times as wide as at 32 px, so each Table 3/4 group's
FLOP ratios are those at 224 px but for the classifier's share. The counts at the paper's 224 px
are the ``slow`` test. Training runs use mmengine's real ``Runner`` on generated
data, with the real configs shrunk only in data size, batch and (for ResNeXt-29) width.
"""
from __future__ import annotations

import copy
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook

from resnext_plugin.complexity import Complexity, count_flops, count_parameters
from resnext_plugin.datasets import DataNotFoundError
from resnext_plugin.demo_data.cifar import DemoCifarSpec, make_demo_cifar
from resnext_plugin.demo_data.imagenet import DemoImageNetSpec, make_demo_imagenet
from resnext_plugin.engine.hooks import parameter_digests
from resnext_plugin.engine.runner import build_runner
from resnext_plugin.experiments import (
    CIFAR10,
    COMPLEXITY_GROUPS,
    EXPERIMENTS,
    IMAGENET,
    build_model,
    get_experiment,
    measure_complexity,
    read_run,
    select_experiments,
)

ROOT = Path(__file__).resolve().parents[2]
PAPER_DIR = ROOT / "configs" / "paper"
RECIPES = ["resnext50_32x4d_modern-recipe_imagenet.py",
           "resnext101_32x8d_modern-recipe_imagenet.py"]
NAME = re.compile(r"resne(?:xt|t)(?P<depth>\d+)_(?P<groups>\d+)x(?P<width>\d+)d_")
SMALL = {IMAGENET: 32}  # CIFAR: 8


# ------------------------------------------------------------------ configs and complexity

def test_every_config_is_listed_and_states_the_papers_numbers():
    assert {p.stem for p in PAPER_DIR.glob("*.py")} == {e.name for e in EXPERIMENTS}
    for e in EXPERIMENTS:
        text = (ROOT / e.config).read_text()
        assert f"{e.top1_error}%" in text, e.name
        if e.top5_error is not None:
            assert f"{e.top5_error}%" in text, e.name
        assert e.train_command() in text, e.name


@pytest.fixture(scope="module")
def built() -> dict[str, dict]:
    """Each paper config's model, built once: what it is, and its complexity at a small input."""
    facts = {}
    for e in EXPERIMENTS:
        model = build_model(e)
        size = SMALL.get(e.dataset, 8)
        backbone = model.backbone
        facts[e.name] = dict(
            depth=backbone.depth, groups=backbone.groups, width=backbone.width_per_group,
            stage_widths=[backbone.stage_width(i) for i in range(backbone.num_stages)],
            stage_outputs=[f["num_chs"] for f in backbone.feature_info],
            stem_type=backbone.stem_type, residual=backbone.residual,
            zero_init_residual=backbone.zero_init_residual,
            classes=model.head.fc.out_features, head_in=model.head.fc.in_features,
            complexity=Complexity(count_parameters(model), count_flops(model, (3, size, size))))
        del model
    return facts


@pytest.mark.parametrize("experiment", EXPERIMENTS, ids=lambda e: e.name)
def test_config_builds_the_named_architecture(built, experiment):
    facts = built[experiment.name]
    match = NAME.match(experiment.name)
    depth, groups, width = (int(match[k]) for k in ("depth", "groups", "width"))
    assert (facts["depth"], facts["groups"], facts["width"]) == (depth, groups, width)
    assert not facts["zero_init_residual"]  # the paper's code starts every BN at gamma = 1
    assert facts["residual"] == ("noresidual" not in experiment.name)
    if experiment.dataset == IMAGENET:
        assert facts["stem_type"] == "imagenet" and facts["classes"] == 1000
        assert facts["stage_widths"] == [groups * width * 2**i for i in range(4)]
        assert facts["stage_outputs"] == [256, 512, 1024, 2048]
    else:  # the paper's CIFAR ResNeXt-29: 3x3 stem, three stages of 256/512/1024 channels
        assert facts["stem_type"] == "cifar"
        assert facts["stage_widths"] == [groups * 64, groups * 128, groups * 256]
        assert facts["stage_outputs"] == [256, 512, 1024] and facts["head_in"] == 1024
        assert facts["classes"] == (10 if experiment.dataset == CIFAR10 else 100)


def test_table1_parameter_counts(built):
    import torchvision

    assert built["resnext50_32x4d_imagenet"]["complexity"].params == 25_028_904  # 25.0M
    resnet50 = count_parameters(torchvision.models.resnet50())
    assert built["resnet50_1x64d_imagenet"]["complexity"].params == resnet50  # 25.5M


@pytest.mark.parametrize("group", COMPLEXITY_GROUPS,
                         ids=lambda g: f"{g.reference}_x{g.flops_factor:g}")
def test_same_complexity_groups(built, group):
    measured = {name: facts["complexity"] for name, facts in built.items()}
    for name, deviations in group.deviations(measured).items():
        for what, deviation in deviations.items():
            assert abs(deviation) <= group.tolerance, (name, what, deviation)


def test_cifar_parameters_match_table7(built):
    for e in EXPERIMENTS:
        if e.dataset != IMAGENET:
            params = built[e.name]["complexity"].params
            assert abs(params / 1e6 - e.paper_params_m) / e.paper_params_m < 0.01, (e.name, params)


def test_no_shortcuts_only_removes_the_projections(built):
    # Same convolutions as with shortcuts, less the four projection shortcuts and their norms.
    for name in ("resnet50_1x64d", "resnext50_32x4d"):
        with_res = built[f"{name}_imagenet"]["complexity"].params
        without = built[f"{name}_noresidual_imagenet"]["complexity"].params
        projections = sum(cin * cout + 2 * cout for cin, cout in
                          ((64, 256), (256, 512), (512, 1024), (1024, 2048)))
        assert with_res - without == projections


@pytest.mark.slow
def test_complexity_at_224_matches_the_papers_claims():
    measured = {e.name: measure_complexity(e) for e in EXPERIMENTS if e.dataset == IMAGENET}
    for e in EXPERIMENTS:
        if e.name not in measured:
            continue
        if e.paper_gflops is not None:  # "4.1", "~7.8": one decimal, so within 5%
            assert abs(measured[e.name].gflops / e.paper_gflops - 1) < 0.05, e.name
        if e.paper_params_m is not None:
            assert abs(measured[e.name].params / 1e6 / e.paper_params_m - 1) < 0.02, e.name
    for group in COMPLEXITY_GROUPS:
        for name, deviations in group.deviations(measured).items():
            assert all(abs(d) <= group.tolerance for d in deviations.values()), (name, deviations)


# ------------------------------------------------------------------ the tool

def _tool():
    from resnext_plugin.cli import paper_experiments

    return paper_experiments


def test_tool_lists_every_experiment_with_its_command(capsys):
    assert _tool().main(["--no-complexity"]) == 0
    out = capsys.readouterr().out
    for e in EXPERIMENTS:
        row = next(line for line in out.splitlines() if f"`{e.name}`" in line)
        assert f"| {e.top1_error:.2f}" in row and f"`{e.train_command()}`" in row


def test_tool_rejects_bad_arguments(capsys, tmp_path):
    tool = _tool()
    assert tool.main(["--only", "resnext999_*", "--no-complexity"]) == 2
    assert "no experiment matches 'resnext999_*'" in capsys.readouterr().err
    assert tool.main(["--no-complexity", "--work-dirs", str(tmp_path / "missing")]) == 2
    assert "not a directory" in capsys.readouterr().err
    assert tool.main(["--no-complexity", "--work-dirs", str(tmp_path)]) == 1
    assert "no validation metrics" in capsys.readouterr().err
    with pytest.raises(KeyError, match="unknown experiment 'resnext50'"):
        get_experiment("resnext50")
    assert [e.name for e in select_experiments(["resnext29_*_cifar100"])] == [
        "resnext29_8x64d_cifar100", "resnext29_16x64d_cifar100"]
    assert [e.name for e in select_experiments(["configs/paper/resnet200_1x64d_imagenet.py"])] \
        == ["resnet200_1x64d_imagenet"]


def test_read_run_prefers_json_and_falls_back_to_the_log(tmp_path):
    first, second = tmp_path / "20240101_000000", tmp_path / "20240102_000000"
    (first / "vis_data").mkdir(parents=True)
    (first / "vis_data" / "scalars.json").write_text(
        json.dumps({"loss": 2.0, "step": 5, "iter": 5}) + "\n"
        + json.dumps({"accuracy/top1": 60.0, "accuracy/top5": 90.0, "step": 1}) + "\n"
        + json.dumps({"accuracy/top1": 70.0, "accuracy/top5": 92.0, "step": 2}) + "\n")
    second.mkdir()  # a resumed run without the JSON backend: read from its log
    (second / "20240102_000000.log").write_text(
        "... - mmengine - INFO - Epoch(val) [3][10/10]    accuracy/top1: 65.5000  "
        "accuracy/top5: 91.0000  data_time: 0.01  time: 0.02\n")
    run = read_run(tmp_path)
    assert (run.epoch, run.top1_error, run.top5_error, run.best_top1_error) == (3, 34.5, 9.0, 30.0)
    (first / "vis_data" / "scalars.json").write_text("{not json\n")
    with pytest.raises(ValueError, match="scalars.json:1: not a JSON line"):
        read_run(tmp_path)


# ------------------------------------------------------------------ CIFAR data

def test_checked_cifar_names_missing_and_altered_files(tmp_path):
    from resnext_plugin.datasets import CheckedCIFAR10, CheckedCIFAR100, CifarFileError

    make_demo_cifar(tmp_path / "c10", DemoCifarSpec(train_per_class=2, test_per_class=1))
    make_demo_cifar(tmp_path / "c100", DemoCifarSpec(dataset="cifar100", train_per_class=1,
                                                      test_per_class=1))
    train = CheckedCIFAR10(data_root=str(tmp_path / "c10"), split="train", download=False,
                           verify_checksums=False)
    test = CheckedCIFAR100(data_root=str(tmp_path / "c100"), split="test", download=False,
                           verify_checksums=False)
    assert len(train) == 20 and train[0]["img"].shape == (32, 32, 3)
    assert sorted(train.get_gt_labels()) == sorted(list(range(10)) * 2)
    assert sorted(test.get_gt_labels()) == list(range(100))

    with pytest.raises(CifarFileError, match=r"data_batch_1, .* differ from the official"):
        CheckedCIFAR10(data_root=str(tmp_path / "c10"), download=False)  # checksums on
    with pytest.raises(DataNotFoundError, match=r"missing data_batch_1, .*test_batch"):
        CheckedCIFAR10(data_root=str(tmp_path / "none"), download=False, verify_checksums=False)
    with pytest.raises(TypeError, match="`verify_checksums` must be True or False"):
        CheckedCIFAR10(data_root=str(tmp_path / "c10"), verify_checksums="no")

    batch = tmp_path / "c10" / "cifar-10-batches-py" / "data_batch_1"
    import pickle

    entry = pickle.loads(batch.read_bytes())
    entry["labels"][3] = 10
    batch.write_bytes(pickle.dumps(entry))
    with pytest.raises(CifarFileError, match=r"data_batch_1.*first bad: index 3 = 10"):
        CheckedCIFAR10(data_root=str(tmp_path / "c10"), download=False, verify_checksums=False)
    # A pickle that would run code is refused before mmpretrain unpickles it.
    batch.write_bytes(pickle.dumps({"data": np.zeros((1, 3072), np.uint8), "labels": [0],
                                    "hook": Path("x")}))
    with pytest.raises(CifarFileError, match=r"refers to 'pathlib.*'; a CIFAR file holds"):
        CheckedCIFAR10(data_root=str(tmp_path / "c10"), download=False, verify_checksums=False)


# ------------------------------------------------------------------ training through the runner

class _ParameterSnapshots(Hook):
    """Parameter digests after initialisation and after training."""

    def before_train(self, runner) -> None:
        self.before = parameter_digests(runner.model)

    def after_train(self, runner) -> None:
        self.after = parameter_digests(runner.model)


def _train(cfg: Config) -> tuple:
    runner = build_runner(cfg)
    snapshots = _ParameterSnapshots()
    runner.register_hook(snapshots)
    runner.train()
    logged = [json.loads(line) for path in Path(cfg.work_dir).glob("*/vis_data/scalars.json")
              for line in path.read_text().splitlines()]
    return runner, snapshots, logged


def _small_loaders(cfg: Config, data_root: Path, batch: int, **dataset) -> None:
    for name in ("train_dataloader", "val_dataloader", "test_dataloader"):
        loader = cfg[name]
        loader.update(batch_size=batch, num_workers=0, persistent_workers=False)
        loader.dataset.update(data_root=str(data_root), **dataset)


def _quiet(cfg: Config, work_dir: Path) -> None:
    cfg.work_dir = str(work_dir)
    cfg.default_hooks.checkpoint = None
    cfg.default_hooks.logger.interval = 1
    cfg.randomness = dict(seed=0)


def test_cifar_config_trains_and_the_tool_reports_it(tmp_path, capsys):
    """ResNeXt-29 (8x64d, CIFAR-10) config on generated CIFAR files, narrowed to 8 x 4d with
    16-channel base: one epoch through the runner, validation on the test split, then
    tools/paper_experiments.py reads the work dir and plots it against the paper."""
    make_demo_cifar(tmp_path / "cifar10", DemoCifarSpec(train_per_class=4, test_per_class=2))
    experiment = get_experiment("resnext29_8x64d_cifar10")
    cfg = Config.fromfile(str(ROOT / experiment.config))
    cfg.model.backbone.update(width_per_group=4, base_channels=16, stem_channels=16)
    cfg.model.head.in_channels = 256
    _small_loaders(cfg, tmp_path / "cifar10", 8, download=False, verify_checksums=False)
    _quiet(cfg, tmp_path / "work_dirs" / experiment.name)
    cfg.train_cfg.max_epochs = 1

    runner, snapshots, logged = _train(cfg)
    losses = [entry["loss"] for entry in logged if "loss" in entry]
    assert len(losses) == 5 and all(math.isfinite(x) for x in losses)  # 40 images / 8
    assert [entry["lr"] for entry in logged if "lr" in entry] == [0.1] * 5
    val = [entry for entry in logged if "accuracy/top1" in entry]
    assert len(val) == 1 and val[0]["step"] == 1
    assert runner.model.backbone.stem_type == "cifar"
    views = _compose(cfg.tta_pipeline)(dict(img=np.zeros((32, 32, 3), np.uint8), gt_label=0))
    assert len(views["inputs"]) == 2  # tools/test.py --tta: the image and its flip
    changed = [k for k in snapshots.before if snapshots.before[k] != snapshots.after[k]]
    assert len(changed) == len(snapshots.before)

    tool = _tool()
    png = tmp_path / "plot.png"
    assert tool.main(["--only", experiment.name, "--no-complexity", "--work-dirs",
                      str(tmp_path / "work_dirs"), "--plot", str(png)]) == 0
    out = capsys.readouterr().out
    ours = 100.0 - val[0]["accuracy/top1"]
    assert f"{ours:.2f} (epoch 1; {ours:.2f})" in out and "| 3.65 |" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def tiny_imagenet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("demo_imagenet")
    make_demo_imagenet(root, DemoImageNetSpec(num_classes=4, train_per_class=2, val_per_class=1,
                                              image_size=40, seed=2))
    return root


def _compose(pipeline: list):
    """The pipeline as mmpretrain builds it (in its registry scope)."""
    from mmengine.dataset import Compose
    from mmengine.registry import DefaultScope

    with DefaultScope.overwrite_default_scope("mmpretrain"):
        return Compose(copy.deepcopy(pipeline))


def _set_transform(pipeline: list, type_: str, **kwargs) -> None:
    matches = [t for t in pipeline if t["type"] == type_]
    assert len(matches) == 1, (type_, pipeline)
    matches[0].update(kwargs)


def test_no_residual_model_trains(tmp_path, tiny_imagenet):
    """ResNeXt-50 (32x4d) without shortcuts, full size at 32 px: the loss stays finite and every
    parameter moves (weight decay off, so only gradients move them: with zero-initialised last
    norms and no shortcut, nothing but the classifier would)."""
    cfg = Config.fromfile(str(PAPER_DIR / "resnext50_32x4d_noresidual_imagenet.py"))
    _small_loaders(cfg, tiny_imagenet, 4)
    _set_transform(cfg.train_dataloader.dataset.pipeline, "RandomResizedCrop", scale=32)
    cfg.optim_wrapper.optimizer.weight_decay = 0.0
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.train_cfg = dict(by_epoch=True, max_epochs=1)
    _quiet(cfg, tmp_path / "work")

    runner, snapshots, logged = _train(cfg)
    losses = [entry["loss"] for entry in logged if "loss" in entry]
    assert len(losses) == 2 and all(math.isfinite(x) for x in losses)
    assert not any(getattr(m, "residual", False) for m in runner.model.backbone.modules())
    unchanged = [k for k in snapshots.before if snapshots.before[k] == snapshots.after[k]]
    assert unchanged == []


@pytest.mark.parametrize("recipe", RECIPES)
def test_modern_recipe_builds_and_runs_an_iteration(tmp_path, tiny_imagenet, recipe):
    """The full-size model with the whole recipe (TrivialAugmentWide, random erasing, mixup /
    cutmix, label smoothing, EMA, repeated augmentation, warm-up) for one iteration at 32 px."""
    cfg = Config.fromfile(str(ROOT / "configs" / recipe))
    base = Config.fromfile(str(ROOT / "configs" / "_base_" / "resnext_imagenet.py"))
    hooks = [h["type"] for h in cfg.custom_hooks]
    assert {h["type"] for h in base.custom_hooks} <= set(hooks) and "EMAHook" in hooks
    _small_loaders(cfg, tiny_imagenet, 8)
    pipeline = cfg.train_dataloader.dataset.pipeline
    _set_transform(pipeline, "RandomResizedCrop", scale=32)
    _set_transform(pipeline, "RandomErasing", erase_prob=1.0)  # exercised, not left to chance
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.train_cfg.max_epochs = 1
    ema = next(h for h in cfg.custom_hooks if h["type"] == "EMAHook")
    ema.update(begin_epoch=0, interval=1)  # average from the first step of this one-step run
    _quiet(cfg, tmp_path / "work")

    runner, snapshots, logged = _train(cfg)
    ema_hook = next(h for h in runner.hooks if type(h).__name__ == "EMAHook")
    assert int(ema_hook.ema_model.steps) == 1
    train = [entry for entry in logged if "loss" in entry]
    assert len(train) == 1 and math.isfinite(train[0]["loss"])  # 8 images, batch 8
    assert train[0]["lr"] == pytest.approx(0.5 * 0.01)  # first warm-up step
    augments = runner.model.data_preprocessor.batch_augments.augments
    assert [type(a).__name__ for a in augments] == ["Mixup", "CutMix"]
    assert type(runner.model.head.loss_module).__name__ == "LabelSmoothLoss"
    decay = {id(p): g["weight_decay"] for g in runner.optim_wrapper.optimizer.param_groups
             for p in g["params"]}
    bn = runner.model.backbone.layer1[0].norm1
    assert decay[id(bn.weight)] == 0.0 and decay[id(runner.model.head.fc.weight)] == 2e-5
    assert type(runner.train_dataloader.sampler).__name__ == "RepeatAugSampler"
    sample = runner.train_dataloader.dataset[0]
    assert tuple(sample["inputs"].shape) == (3, 32, 32)


def test_modern_recipe_evaluates_at_232_then_224(tiny_imagenet):
    cfg = Config.fromfile(str(ROOT / "configs" / RECIPES[0]))
    image = tiny_imagenet / "val" / "n00_red_horizontal" / "val_00000.jpg"
    out = _compose(cfg.test_pipeline)(dict(img_path=str(image)))
    assert tuple(out["inputs"].shape) == (3, 224, 224)
    assert torch.is_tensor(out["inputs"])

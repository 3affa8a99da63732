"""Issue 3, in process: demo data generator, data checks, hooks, distributed set-up, configs."""
from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from mmengine.config import Config
from PIL import Image

import resnext_plugin.engine  # noqa: F401  (registers the data checks and hooks)
from resnext_plugin.demo_data.imagenet import CLASSES, DemoImageNetSpec, make_demo_imagenet
from resnext_plugin.engine.data import (
    CorruptImageError,
    DataNotFoundError,
    check_imagenet_layout,
    find_image_corruption,
)
from resnext_plugin.engine.dist import (
    cpu_model_wrapper_cfg,
    has_accelerator,
    init_distributed,
    setup_distributed,
)
from resnext_plugin.engine.hooks import TrainingCurvesHook

ROOT = Path(__file__).resolve().parents[1]
SMALL = DemoImageNetSpec(num_classes=4, train_per_class=3, val_per_class=2, image_size=24)


# ------------------------------------------------------------------------------- demo data
def test_demo_imagenet_layout_labels_and_jpegs(tmp_path: Path) -> None:
    summary = make_demo_imagenet(tmp_path, SMALL)
    assert summary["classes"] == CLASSES[:4]
    for split, per_class in (("train", 3), ("val", 2)):
        lines = (tmp_path / "meta" / f"{split}.txt").read_text().splitlines()
        assert len(lines) == 4 * per_class == summary[split]["images"]
        for line in lines:
            rel, label = line.rsplit(" ", 1)
            assert rel.split("/")[0] == CLASSES[int(label)]
            with Image.open(tmp_path / split / rel) as image:
                assert image.format == "JPEG" and image.size == (24, 24)
                assert image.mode == "RGB"
    assert (tmp_path / "meta" / "classes.txt").read_text().split() == list(CLASSES[:4])


def test_demo_imagenet_is_deterministic_per_seed(tmp_path: Path) -> None:
    def files(root: Path) -> dict[str, bytes]:
        return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.*"))}

    make_demo_imagenet(tmp_path / "a", SMALL)
    make_demo_imagenet(tmp_path / "b", SMALL)
    make_demo_imagenet(tmp_path / "c", DemoImageNetSpec(**{**SMALL.__dict__, "seed": 7}))
    a, b, c = files(tmp_path / "a"), files(tmp_path / "b"), files(tmp_path / "c")
    assert a == b
    assert a.keys() == c.keys() and a != c


def test_demo_imagenet_classes_differ_in_colour_and_orientation(tmp_path: Path) -> None:
    make_demo_imagenet(tmp_path, DemoImageNetSpec(num_classes=10, train_per_class=6,
                                                  val_per_class=1, image_size=32))

    def stats(label: int) -> tuple[np.ndarray, float]:
        images = [np.asarray(Image.open(p), dtype=np.float64)
                  for p in sorted((tmp_path / "train" / CLASSES[label]).glob("*.jpg"))]
        # Mean colour of the brightest quarter of pixels (the stripes), and how much more the
        # image varies along y than along x (horizontal stripes: > 1).
        colour = np.mean([im.reshape(-1, 3)[im.sum(-1).reshape(-1).argsort()[-256:]].mean(0)
                          for im in images], axis=0)
        ratio = np.mean([np.abs(np.diff(im.sum(-1), axis=0)).mean()
                         / np.abs(np.diff(im.sum(-1), axis=1)).mean() for im in images])
        return colour, ratio

    red_h, red_v, blue_h = stats(0), stats(1), stats(6)
    assert red_h[1] > 1.5 and red_v[1] < 1 / 1.5
    assert red_h[0][0] > red_h[0][2] + 60 and blue_h[0][2] > blue_h[0][0] + 60


@pytest.mark.parametrize("field, value", [("num_classes", 1), ("num_classes", 11),
                                          ("train_per_class", 0), ("image_size", 8),
                                          ("noise", -1.0), ("jpeg_quality", 0)])
def test_demo_imagenet_rejects_bad_spec(tmp_path: Path, field: str, value) -> None:
    with pytest.raises(ValueError, match=f"`{field}`"):
        make_demo_imagenet(tmp_path, DemoImageNetSpec(**{field: value}))


def test_make_demo_imagenet_cli(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    spec = importlib.util.spec_from_file_location("make_demo_imagenet",
                                                  ROOT / "tools" / "make_demo_imagenet.py")
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    out = tmp_path / "demo"
    assert cli.main(["--out", str(out), "--num-classes", "2", "--train-per-class", "2",
                     "--val-per-class", "1", "--image-size", "16"]) == 0
    printed = capsys.readouterr().out
    assert "train: 4 images" in printed and "val: 2 images" in printed
    assert len(list((out / "train").rglob("*.jpg"))) == 4
    assert cli.main(["--out", str(out), "--image-size", "4"]) == 2
    assert "`image_size`" in capsys.readouterr().err


# ------------------------------------------------------------------------------- data checks
def test_check_imagenet_layout_names_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError) as err:
        check_imagenet_layout(str(tmp_path / "imagenet"), "train")
    message = str(err.value)
    assert str(tmp_path / "imagenet") in message and "meta/" in message
    assert "tools/make_demo_imagenet.py" in message and "make demo" in message
    (tmp_path / "imagenet").mkdir()
    with pytest.raises(FileNotFoundError, match="image folder of split 'val'"):
        check_imagenet_layout(str(tmp_path / "imagenet"), "val")
    (tmp_path / "imagenet" / "val").mkdir()
    check_imagenet_layout(str(tmp_path / "imagenet"), "val")
    with pytest.raises(FileNotFoundError, match="annotation file"):
        check_imagenet_layout(str(tmp_path / "imagenet"), "val", ann_file="meta/val.txt")


def _jpeg_bytes(size: int = 24) -> bytes:
    import io

    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (size, size, 3), dtype=np.uint8)
                    ).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def test_find_image_corruption() -> None:
    good = _jpeg_bytes()
    scan = good.rfind(b"\xff\xda")
    assert find_image_corruption(good) is None
    assert "truncated JPEG" in find_image_corruption(good[: (scan + len(good)) // 2])
    assert "no start-of-scan" in find_image_corruption(good[:scan])
    assert find_image_corruption(b"") == "the file is empty"


def _build_transform(type_name: str):
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import TRANSFORMS

    init_default_scope("mmpretrain")
    return TRANSFORMS.build(dict(type=type_name))


def test_strict_loader_names_a_corrupt_file_and_why(tmp_path: Path) -> None:
    good = _jpeg_bytes()
    path = tmp_path / "cut.jpg"
    path.write_bytes(good[: (good.rfind(b"\xff\xda") + len(good)) // 2])
    strict = _build_transform("resnext_plugin.StrictLoadImageFromFile")
    with pytest.raises(CorruptImageError, match=f"corrupt image file '{path}': truncated JPEG"):
        strict(dict(img_path=str(path)))
    # A download whose second half was never written (zeros): also a truncated JPEG.
    path.write_bytes(good[: len(good) // 2] + bytes(len(good) - len(good) // 2))
    with pytest.raises(CorruptImageError, match="truncated JPEG"):
        strict(dict(img_path=str(path)))
    # Complete markers around garbage: the decoder gives up, and the error still names the file.
    path.write_bytes(b"\xff\xd8\xff\xda" + bytes(range(64)) + b"\xff\xd9")
    with pytest.raises(CorruptImageError, match=f"corrupt image file '{path}': the cv2 decoder"):
        strict(dict(img_path=str(path)))
    path.write_bytes(good)
    assert strict(dict(img_path=str(path)))["img"].shape == (24, 24, 3)
    with pytest.raises(FileNotFoundError, match="missing.jpg"):
        strict(dict(img_path=str(tmp_path / "missing.jpg")))
    # ignore_empty keeps mmcv's meaning: skip the sample.
    lenient = _build_transform("resnext_plugin.StrictLoadImageFromFile")
    lenient.ignore_empty = True
    path.write_bytes(b"")
    assert lenient(dict(img_path=str(path))) is None


# ------------------------------------------------------------------------------- hooks
def test_training_curves_hook_draws_a_png(tmp_path: Path) -> None:
    hook = TrainingCurvesHook(filename="curves.png", smooth=3)
    assert hook.draw(str(tmp_path / "empty.png")) is None
    hook.losses["loss"] = [[i, 2.0 / i] for i in range(1, 30)]
    hook.metrics["accuracy/top1"] = [[10, 40.0], [20, 75.0]]
    path = hook.draw(str(tmp_path / "curves.png"))
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size == (1100, 420)
        assert np.asarray(image.convert("L")).std() > 10  # something was drawn
    with pytest.raises(ValueError, match="filename"):
        TrainingCurvesHook(filename="curves.jpg")


# ------------------------------------------------------------------------------- distributed
def test_cpu_model_wrapper_has_no_device_ids() -> None:
    cfg = Config(dict(find_unused_parameters=True))
    wrapper = cpu_model_wrapper_cfg(cfg)
    assert wrapper == dict(type="MMDistributedDataParallel", broadcast_buffers=False,
                           find_unused_parameters=True, device_ids=None)
    custom = Config(dict(model_wrapper_cfg=dict(type="MMDistributedDataParallel",
                                                broadcast_buffers=True)))
    assert cpu_model_wrapper_cfg(custom)["broadcast_buffers"] is True
    assert "device_ids" not in custom.model_wrapper_cfg  # the caller's config is untouched


def test_setup_distributed_without_launcher_copies_the_config() -> None:
    cfg = Config(dict(env_cfg=dict(dist_cfg=dict(backend="nccl"))))
    out = setup_distributed(cfg, "none")
    assert out.launcher == "none" and "launcher" not in cfg and "model_wrapper_cfg" not in out
    with pytest.raises(ValueError, match="launcher"):
        setup_distributed(cfg, "kubernetes")
    with pytest.raises(ValueError, match="launcher"):
        init_distributed("ssh")


_SLURM_WORKER = """\
import os, sys, torch, torch.distributed as dist
from resnext_plugin.engine.dist import init_distributed
init_distributed('slurm', backend='nccl', timeout=60)
x = torch.tensor([float(dist.get_rank() + 1)])
dist.all_reduce(x)
print(dist.get_backend(), dist.get_rank(), dist.get_world_size(), os.environ['LOCAL_RANK'],
      x.item())
"""


@pytest.mark.skipif(has_accelerator(), reason="checks the CPU (gloo) path")
def test_slurm_launcher_on_cpu_uses_gloo(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    procs = []
    for rank in range(2):
        env = dict(os.environ, SLURM_PROCID=str(rank), SLURM_NTASKS="2", SLURM_LOCALID=str(rank),
                   SLURM_NODELIST="localhost", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
                   PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
        procs.append(subprocess.Popen([sys.executable, "-c", _SLURM_WORKER], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outputs = [p.communicate(timeout=180) for p in procs]
    for proc, (_, err) in zip(procs, outputs):
        assert proc.returncode == 0, err[-3000:]
    lines = sorted(out.strip().splitlines()[-1] for out, _ in outputs)
    assert lines == ["gloo 0 2 0 3.0", "gloo 1 2 1 3.0"]


# ------------------------------------------------------------------------------- configs
@pytest.mark.parametrize("name, depth, groups, width", [
    ("resnext50_32x4d_imagenet.py", 50, 32, 4),
    ("resnext101_32x4d_imagenet.py", 101, 32, 4),
    ("resnext101_64x4d_imagenet.py", 101, 64, 4),
    ("resnext152_32x4d_imagenet.py", 152, 32, 4),
])
def test_configs_follow_the_paper_recipe(name: str, depth: int, groups: int, width: int) -> None:
    cfg = Config.fromfile(str(ROOT / "configs" / name))
    assert cfg.default_scope == "mmpretrain"
    assert "resnext_plugin" in cfg.custom_imports["imports"]
    backbone = cfg.model.backbone
    assert (backbone.type, backbone.depth, backbone.groups, backbone.width_per_group) == (
        "resnext_plugin.ResNeXt", depth, groups, width)
    assert cfg.model.type == "ImageClassifier" and cfg.model.neck.type == "GlobalAveragePooling"
    assert cfg.model.head.num_classes == 1000 and cfg.model.head.in_channels == 2048
    assert cfg.optim_wrapper.optimizer == dict(type="SGD", lr=0.1, momentum=0.9,
                                               weight_decay=1e-4)
    assert cfg.param_scheduler.milestones == [30, 60, 90] and cfg.param_scheduler.gamma == 0.1
    assert cfg.train_cfg.max_epochs == 100 and cfg.auto_scale_lr.base_batch_size == 256
    assert cfg.train_dataloader.batch_size == 32
    assert cfg.train_dataloader.dataset.data_root == "data/imagenet"
    train, test = cfg.train_dataloader.dataset.pipeline, cfg.test_dataloader.dataset.pipeline
    assert [t.type for t in train] == ["resnext_plugin.StrictLoadImageFromFile",
                                       "RandomResizedCrop", "RandomFlip", "PackInputs"]
    assert train[1].scale == 224 and train[2].direction == "horizontal"
    assert (test[1].type, test[1].scale, test[1].edge) == ("ResizeEdge", 256, "short")
    assert (test[2].type, test[2].crop_size) == ("CenterCrop", 224)
    assert cfg.val_evaluator == dict(type="Accuracy", topk=(1, 5))


def test_demo_config_changes_only_data_size_batch_and_schedule() -> None:
    real = Config.fromfile(str(ROOT / "configs" / "resnext50_32x4d_imagenet.py")).to_dict()
    demo = Config.fromfile(str(ROOT / "configs" / "demo" / "resnext50_32x4d_imagenet_demo.py"))
    demo = demo.to_dict()
    allowed = {"train_dataloader", "val_dataloader", "test_dataloader", "train_pipeline",
               "test_pipeline", "data_root", "image_size", "batch_size", "train_cfg",
               "param_scheduler", "auto_scale_lr", "default_hooks", "tta_pipeline"}
    changed = {k for k in set(real) | set(demo) if real.get(k) != demo.get(k)}
    assert changed <= allowed, changed - allowed
    # tools/test.py --tta: the demo's own test pipeline, with the flip views before packing.
    assert demo["tta_pipeline"][:-1] == demo["test_pipeline"][:-1]
    assert demo["tta_pipeline"][-1] == real["tta_pipeline"][-1]
    for key in ("model", "optim_wrapper", "val_evaluator", "data_preprocessor", "randomness"):
        assert demo[key] == real[key]
    assert demo["train_dataloader"]["dataset"]["data_root"] == "data/demo_imagenet"
    # The augmentations are the real ones, at the demo's image size.
    assert [t["type"] for t in demo["train_pipeline"]] == [t["type"] for t in
                                                            real["train_pipeline"]]
    assert demo["auto_scale_lr"] == dict(base_batch_size=256, enable=True)
    # Only how often to log and how many checkpoints to keep differ among the hooks.
    for name, hook in real["default_hooks"].items():
        if name not in ("logger", "checkpoint"):
            assert demo["default_hooks"][name] == hook


# ------------------------------------------------------------------------------- tools (CLI)
def _tool(name: str):
    spec = importlib.util.spec_from_file_location(f"tool_{name}", ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


DEMO = str(ROOT / "configs" / "demo" / "resnext50_32x4d_imagenet_demo.py")


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """parse_args exports LOCAL_RANK (as mmpretrain's tools do); undo it after the test."""
    monkeypatch.setenv("LOCAL_RANK", "0")


def test_train_cli_maps_flags_onto_the_config(tmp_path: Path, cli_env: None) -> None:
    train = _tool("train")
    cfg = train.build_config(train.parse_args([DEMO]))
    assert cfg.work_dir == "./work_dirs/resnext50_32x4d_imagenet_demo"
    assert cfg.launcher == "none" and not cfg.resume and cfg.load_from is None
    cfg = train.build_config(train.parse_args(
        [DEMO, "--work-dir", str(tmp_path), "--resume", "--no-validate", "--cfg-options",
         "train_cfg.max_epochs=2", "model.backbone.out_indices=(3,)"]))
    assert cfg.work_dir == str(tmp_path) and cfg.resume and cfg.load_from is None
    assert cfg.val_dataloader is None and cfg.val_cfg is None and cfg.val_evaluator is None
    assert cfg.train_cfg.max_epochs == 2 and cfg.model.backbone.out_indices == (3, )
    ckpt = tmp_path / "epoch_1.pth"
    ckpt.write_bytes(b"")
    cfg = train.build_config(train.parse_args([DEMO, "--resume", str(ckpt)]))
    assert cfg.resume and cfg.load_from == str(ckpt)
    real = str(ROOT / "configs" / "resnext50_32x4d_imagenet.py")
    cfg = train.build_config(train.parse_args([real, "--auto-scale-lr"]))
    assert cfg.auto_scale_lr == dict(base_batch_size=256, enable=True)
    with pytest.raises(FileNotFoundError, match="nowhere.pth"):
        train.build_config(train.parse_args([DEMO, "--resume", str(tmp_path / "nowhere.pth")]))
    with pytest.raises(FileNotFoundError, match="config file not found"):
        train.build_config(train.parse_args([str(tmp_path / "nope.py")]))
    # --amp works without a GPU too (fp32 on CPUs without native bf16): tests/test_amp.py
    cfg = train.build_config(train.parse_args([DEMO, "--amp"]))
    assert cfg.optim_wrapper.type == "resnext_plugin.AmpOptimWrapper"


def test_test_cli_loads_the_checkpoint_and_adds_a_dump(tmp_path: Path, cli_env: None) -> None:
    test = _tool("test")
    ckpt = tmp_path / "model.pth"
    ckpt.write_bytes(b"")
    cfg = test.build_config(test.parse_args([DEMO, str(ckpt), "--out", str(tmp_path / "p.pkl")]))
    assert cfg.load_from == str(ckpt) and cfg.resume is False
    assert [e["type"] for e in cfg.test_evaluator] == ["Accuracy", "DumpResults"]
    with pytest.raises(ValueError, match="--out"):
        test.build_config(test.parse_args([DEMO, str(ckpt), "--out", str(tmp_path / "x.txt")]))
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        test.build_config(test.parse_args([DEMO, str(tmp_path / "missing.pth")]))

"""``tools/export.py`` on the demo classifier config: both backends, every precision,
verified against PyTorch, and the exported files evaluated by ``tools/test.py`` with the config's
own evaluator.

The default run uses the demo config shrunk as in tests/test_pipelines/test_pretrain.py (16 px,
a two-stage ResNeXt-50 32x4d, 4 generated classes), trained here for a few epochs with
``tools/train.py`` so that the scores mean something. Export and test run in this process
(their ``main()``); the missing-package test runs the tool in a subprocess whose
``sitecustomize`` hides the package. The full-size export (224 px ResNeXt-50) is ``slow``.
"""
from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import tiny_classifier_config
from mmengine.config import Config

from resnext_plugin.demo_data.imagenet import DemoImageNetSpec, make_demo_imagenet

ROOT = Path(__file__).resolve().parents[2]
PY = sys.executable
FULL_CONFIG = ROOT / "configs" / "resnext50_32x4d_imagenet.py"
EXPORT = importlib.import_module("resnext_plugin.cli.export")
TEST = importlib.import_module("resnext_plugin.cli.test")
TRAIN = importlib.import_module("resnext_plugin.cli.train")

pytest.importorskip("onnx", reason="export backends not installed: pip install -r "
                    "requirements/export.txt")

# On top of test_pretrain's shrunk demo config (16 px, two stages): 4 named classes, top-1 only,
# trained long enough for the scores to mean something.
EXPORT_EXTRA = """\
_base_ = [{tiny!r}]
classes = {data_root!r} + '/meta/classes.txt'
train_dataloader = dict(batch_size=8, dataset=dict(classes=classes))
val_dataloader = dict(dataset=dict(classes=classes))
test_dataloader = val_dataloader
val_evaluator = dict(topk=(1, ))
test_evaluator = val_evaluator
data_preprocessor = dict(num_classes=4)
model = dict(head=dict(num_classes=4, topk=(1, )))
optim_wrapper = dict(optimizer=dict(lr=0.05))
auto_scale_lr = dict(enable=False)
train_cfg = dict(max_epochs={epochs}, val_interval={epochs})
param_scheduler = dict(milestones=[{epochs}])
default_hooks = dict(logger=dict(interval=5))
custom_hooks = []
"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(config, checkpoint): the shrunk demo classifier, 4 classes, trained 6 epochs on 4 x 12
    images; 4 x 10 validation images (one image is 2.5 points of top-1)."""
    root = tmp_path_factory.mktemp("export_classifier")
    data = root / "data"
    make_demo_imagenet(data, DemoImageNetSpec(num_classes=4, train_per_class=12,
                                              val_per_class=10, image_size=24, seed=3))
    config = root / "export.py"
    tiny = tiny_classifier_config(root, data)
    config.write_text(EXPORT_EXTRA.format(tiny=str(tiny), data_root=str(data), epochs=6))
    assert TRAIN.main([str(config), "--work-dir", str(root / "work")]) in (0, None)
    return config, root / "work" / "epoch_6.pth"


def _export(config: Path, checkpoint: Path, out: Path, *options: str) -> int:
    return EXPORT.main([str(config), str(checkpoint), "--out", str(out), *options])


def _top1(config: Path, model_file: Path, tmp_path: Path) -> float:
    out = tmp_path / f"{model_file.name}.metrics.json"
    assert TEST.main([str(config), str(model_file), "--work-dir", str(tmp_path / "test_work"),
                      "--out", str(out)]) == 0
    return json.loads(out.read_text())["accuracy/top1"]


@pytest.fixture(scope="module")
def fp32_export(trained, tmp_path_factory) -> Path:
    config, checkpoint = trained
    out = tmp_path_factory.mktemp("fp32")
    assert _export(config, checkpoint, out, "--backend", "onnxruntime", "openvino") == 0
    return out


def test_fp32_files_sidecar_and_verification(fp32_export: Path, trained) -> None:
    out = fp32_export
    for name in ("end2end.onnx", "end2end.xml", "end2end.bin", "end2end.json"):
        assert (out / name).is_file(), name
    sidecar = json.loads((out / "end2end.json").read_text())
    assert sidecar["preprocess"]["mean"] == pytest.approx([123.675, 116.28, 103.53])
    assert sidecar["preprocess"]["std"] == pytest.approx([58.395, 57.12, 57.375])
    assert sidecar["preprocess"]["to_rgb"] is True
    assert sidecar["input"]["size"] == [16, 16]
    assert sidecar["classes"][0].startswith("n00_red")
    assert sidecar["opset"] == 17 and "onnxruntime" in sidecar["versions"]
    for backend, files in (("onnxruntime", "end2end.onnx"), ("openvino", "end2end.xml")):
        entry = sidecar["files"][backend]["fp32"]
        assert entry["file"] == files
        (check,) = entry["verification"]
        assert check["output"] == "scores" and check["samples"] == 32
        assert check["max_diff"] <= 1e-4 and check["agreement"] == 1.0


def test_fp32_dynamic_batch_and_size_match_pytorch(fp32_export: Path, trained) -> None:
    """Another batch size and image size than the export's example, against PyTorch."""
    from resnext_plugin.export import ExportedRuntime
    from resnext_plugin.export.classifier import ClassifierScores
    from resnext_plugin.export.model import build_model, load_weights

    config, checkpoint = trained
    model = build_model(Config.fromfile(str(config)))
    load_weights(model, checkpoint, config)
    inputs = torch.randn(3, 3, 40, 28, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = ClassifierScores(model).eval()(inputs).numpy()
    for name in ("end2end.onnx", "end2end.xml"):
        (scores,) = ExportedRuntime(fp32_export / name)(inputs.numpy())
        assert scores.shape == (3, 4)
        assert np.abs(scores - expected).max() <= 1e-4, name


_SIGCHLD_AFTER_OPENVINO = """\
import signal, subprocess, sys
from resnext_plugin.export import ExportedRuntime
import numpy as np
runtime = ExportedRuntime(sys.argv[1])
runtime(np.zeros((1, 3, 16, 16), np.float32))
del runtime
# torch's DataLoader installs a SIGCHLD handler for its workers; CPython runs it on the
# thread's alternate signal stack, which OpenVINO's compile may have left dangling.
signal.signal(signal.SIGCHLD, lambda *_: None)
for _ in range(3):
    subprocess.run([sys.executable, "-c", "pass"], check=True)
print("survived")
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="sigaltstack is Linux's")
def test_openvino_leaves_the_signal_stack_as_it_was(fp32_export: Path) -> None:
    """A process that ran an OpenVINO model still survives a child's exit (SIGCHLD)."""
    from resnext_plugin.export import ExportedRuntime
    from resnext_plugin.export.signal_stack import current_signal_stack

    before = current_signal_stack()
    runtime = ExportedRuntime(fp32_export / "end2end.xml")  # compiled and alive
    runtime(np.zeros((1, 3, 16, 16), np.float32))
    assert current_signal_stack() == before
    proc = subprocess.run([PY, "-c", _SIGCHLD_AFTER_OPENVINO, str(fp32_export / "end2end.xml")],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0 and "survived" in proc.stdout, (proc.returncode,
                                                                proc.stderr[-2000:])


def test_test_tool_gives_pytorch_top1_for_exported_files(fp32_export: Path, trained,
                                                         tmp_path: Path) -> None:
    config, checkpoint = trained
    reference = _top1(config, checkpoint, tmp_path)
    assert reference >= 50.0  # trained: far above chance (25 %)
    assert _top1(config, fp32_export / "end2end.onnx", tmp_path) == reference
    assert _top1(config, fp32_export / "end2end.xml", tmp_path) == reference


def test_int8_and_bf16_verified_and_within_four_images(trained, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture) -> None:
    """int8 and bf16 pass their verification, and ``tools/test.py`` gives them fp32's top-1
    within 4 of the 40 validation images (10 points); a broken quantisation falls to chance
    (25 %) from fp32's >= 50 %. The issue's 1-point target is measured on the demo
    classifier (closing note), not here: this tiny model, 6 epochs on 48 images, has many
    near-tied samples, and which of them int8 flips depends on the exact weights, which differ
    with the CPU and with what ran earlier in the process (65 -> 60 seen in a full run, equal
    when the file ran alone)."""
    config, checkpoint = trained
    out = tmp_path / "quantized"
    assert _export(config, checkpoint, out, "--backend", "onnxruntime", "openvino",
                   "--precision", "bf16", "int8", "--calib-images", "48") == 0
    log = capsys.readouterr().out
    assert "skipped onnxruntime bf16" in log
    assert "verified openvino bf16 end2end_bf16.xml" in log
    assert "verified onnxruntime int8 end2end_int8.onnx" in log
    sidecar = json.loads((out / "end2end.json").read_text())
    assert sidecar["int8_calibration_images"] == 48
    assert set(sidecar["files"]["openvino"]) == {"bf16", "int8"}
    reference = _top1(config, checkpoint, tmp_path)
    for name in ("end2end_int8.onnx", "end2end_int8.xml", "end2end_bf16.xml"):
        assert abs(_top1(config, out / name, tmp_path) - reference) <= 10.0, name


def test_int8_graph_is_quantized(trained, tmp_path: Path) -> None:
    """The int8 ONNX file really holds quantised convolutions (QDQ nodes NNCF inserted)."""
    import onnx

    config, checkpoint = trained
    out = tmp_path / "int8"
    assert _export(config, checkpoint, out, "--backend", "onnxruntime", "--precision", "int8",
                   "--calib-images", "4", "--verify-images", "8") == 0
    ops = {node.op_type for node in onnx.load(str(out / "end2end_int8.onnx")).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= ops


def test_checkpoint_not_fitting_the_config_is_named(trained, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture) -> None:
    config, checkpoint = trained
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)["state_dict"]
    state["head.fc.weight"] = state["head.fc.weight"][:3]
    bad = tmp_path / "three_classes.pth"
    torch.save({"state_dict": state}, bad)
    assert _export(config, bad, tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert "does not fit config" in err and "'head.fc.weight'" in err and "'head.fc'" in err
    assert "(3, 512)" in err and "(4, 512)" in err
    assert not (tmp_path / "out" / "end2end.onnx").exists()


def test_refused_precision_names_backend_and_alternative(trained, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture) -> None:
    config, checkpoint = trained
    assert _export(config, checkpoint, tmp_path / "out", "--backend", "onnxruntime",
                   "--precision", "bf16") == 2
    err = capsys.readouterr().err
    assert "backend 'onnxruntime' refuses --precision bf16" in err
    assert "--backend openvino" in err


def test_missing_backend_package_names_what_to_install(trained, tmp_path: Path) -> None:
    config, checkpoint = trained
    hide = tmp_path / "hide"
    hide.mkdir()
    # The interpreter starts as if openvino were not installed (import openvino fails).
    (hide / "sitecustomize.py").write_text("import sys\nsys.modules['openvino'] = None\n")
    env = dict(os.environ, PYTHONPATH=f"{hide}{os.pathsep}{ROOT}", OMP_NUM_THREADS="2")
    proc = subprocess.run([PY, "tools/export.py", str(config), str(checkpoint), "--out",
                           str(tmp_path / "out"), "--backend", "openvino"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "backend 'openvino' needs the Python package 'openvino'" in proc.stderr
    assert "pip install openvino" in proc.stderr
    assert "requirements/export.txt" in proc.stderr


def test_mask_rcnn_export_with_missing_checkpoint_names_it(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture) -> None:
    """Mask R-CNN configs export too (tests/test_export/test_export_detector.py); a checkpoint
    that is not there is named before anything is written."""
    config = ROOT / "configs" / "demo" / "mask-rcnn_resnext50-32x4d_fpn_demo.py"
    assert _export(config, tmp_path / "unused.pth", tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert "unused.pth" in err
    assert not (tmp_path / "out").exists()


def test_verification_names_the_first_output_over_tolerance() -> None:
    from resnext_plugin.export import VerificationError
    from resnext_plugin.export.verify import compare, enforce

    reference = np.array([[0.9, 0.1], [0.2, 0.8]], dtype=np.float32)
    close = reference + 5e-5
    checks = compare(["scores"], [reference], [close], top1_outputs=["scores"])
    enforce(checks, "fp32", "x.onnx")
    off = reference.copy()
    off[1] = [0.6, 0.4]  # sample 1 flips
    checks = compare(["scores"], [reference], [off], top1_outputs=["scores"])
    assert checks[0].worst_sample == 1 and checks[0].agreement == 0.5
    with pytest.raises(VerificationError, match=r"x.onnx: output 'scores' differs.*sample 1"):
        enforce(checks, "fp32", "x.onnx")
    with pytest.raises(VerificationError, match="output 'dets' has shape"):
        compare(["dets"], [reference], [reference[:1]])


def test_int8_is_judged_by_agreement_and_mean_difference() -> None:
    """One near-tie sample swapping its top two classes passes int8 (not fp32); scores moved on
    every sample, or too many swaps, fail it, naming the bound."""
    from resnext_plugin.export import VerificationError
    from resnext_plugin.export.verify import compare, enforce

    rng = np.random.default_rng(0)
    reference = rng.dirichlet(np.full(4, 0.3), size=40).astype(np.float32)
    reference[7] = [0.48, 0.47, 0.03, 0.02]
    swapped = reference.copy()
    swapped[7] = [0.30, 0.65, 0.03, 0.02]  # one sample flips, by 0.18
    checks = compare(["scores"], [reference], [swapped], top1_outputs=["scores"])
    enforce(checks, "int8", "q.onnx")
    with pytest.raises(VerificationError, match="sample 7"):
        enforce(checks, "fp32", "q.onnx")
    shifted = np.abs(reference + rng.normal(0, 0.08, reference.shape)).astype(np.float32)
    checks = compare(["scores"], [reference], [shifted], top1_outputs=["scores"])
    with pytest.raises(VerificationError, match="mean per-sample max abs diff"):
        enforce(checks, "int8", "q.onnx")
    flipped = reference[:, ::-1].copy()
    checks = compare(["scores"], [reference], [flipped], top1_outputs=["scores"])
    with pytest.raises(VerificationError, match="top-1 agreement|mean per-sample"):
        enforce(checks, "int8", "q.onnx")


@pytest.mark.slow
def test_full_size_resnext50_exports_verified(tmp_path: Path) -> None:
    """The real ResNeXt-50 32x4d ImageNet config at 224 px (random weights, 1000 classes) to
    both backends in fp32, verified on the config's own test pipeline. (int8 of random weights
    is not meaningful: near-equal scores make its top-1 agreement a coin toss.)"""
    from mmengine.registry import DefaultScope

    from resnext_plugin.export.model import build_model

    data = tmp_path / "data"
    make_demo_imagenet(data, DemoImageNetSpec(num_classes=4, train_per_class=4,
                                              val_per_class=2, image_size=64, seed=0))
    with DefaultScope.overwrite_default_scope("mmpretrain"):
        model = build_model(Config.fromfile(str(FULL_CONFIG)))
    checkpoint = tmp_path / "random.pth"
    torch.save({"state_dict": model.state_dict()}, checkpoint)
    out = tmp_path / "full"
    options = [f"{split}_dataloader.dataset.data_root={data}" for split in ("train", "test")]
    options += ["train_dataloader.num_workers=0", "test_dataloader.num_workers=0"]
    assert _export(FULL_CONFIG, checkpoint, out, "--verify-images", "8", "--cfg-options",
                   *options) == 0
    sidecar = json.loads((out / "end2end.json").read_text())
    assert sidecar["input"]["size"] == [224, 224]
    for backend in ("onnxruntime", "openvino"):
        (check,) = sidecar["files"][backend]["fp32"]["verification"]
        assert check["max_diff"] <= 1e-4 and check["agreement"] == 1.0

"""Checkpoint conversion: every layout verified numerically against the real source model.

Source models are randomly initialised (no downloads) with randomised BatchNorm statistics, so
eval-mode BN is not the identity and a mis-assigned tensor shows up in the outputs. Inputs are
1x3x64x64 to keep the run short; 101-layer torchvision variants are @slow (timm's 101 runs by
default).
"""
from __future__ import annotations

import argparse
import os
import pathlib
import pickle
import re
import subprocess
import sys
from collections import OrderedDict

import numpy as np
import pytest
import timm
import torch
import torchvision
from mmengine.logging import MessageHub
from mmengine.runner import load_checkpoint
from torch import nn

from resnext_plugin import upstream_fixes  # noqa: F401  (the allow-list for mmengine's loader)
from resnext_plugin.checkpoint import load_checkpoint_file, save_atomic
from resnext_plugin.cli.convert_checkpoint import main as cli_main
from resnext_plugin.convert import (
    ConversionError,
    classifier_checkpoint,
    convert_checkpoint,
    convert_state_dict,
    torchvision_state_dict,
)
from resnext_plugin.models import ResNeXt

TOL = 1e-4
X = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))


# --- helpers ---------------------------------------------------------------------------------
def randomise_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial eval-mode BN: random affine and running statistics."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                n = module.num_features
                module.weight.copy_(torch.rand(n, generator=gen) + 0.5)
                module.bias.copy_(torch.randn(n, generator=gen) * 0.1)
                module.running_mean.copy_(torch.randn(n, generator=gen) * 0.1)
                module.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
                module.num_batches_tracked.fill_(int(torch.randint(1, 1000, (1,), generator=gen)))
    model.eval()  # mmdet's ResNet.train() returns None
    return model


def assert_close(actual: torch.Tensor, expected: torch.Tensor) -> None:
    assert actual.shape == expected.shape
    scale = max(1.0, expected.abs().max().item())
    diff = (actual - expected).abs().max().item()
    assert diff <= TOL * scale, f"max abs diff {diff} > {TOL} x output scale {scale}"


def resnet_forward(model: nn.Module, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Stage outputs and logits of a torchvision / timm ResNet (conv1, bn1, relu, maxpool, ...)."""
    act = model.relu if hasattr(model, "relu") else model.act1
    with torch.no_grad():
        x = model.maxpool(act(model.bn1(model.conv1(x))))
        feats = []
        for name in ("layer1", "layer2", "layer3", "layer4"):
            x = getattr(model, name)(x)
            feats.append(x)
        logits = model.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))
    return feats, logits


def plugin_features(state_dict, arch: dict, style: str = "pytorch") -> tuple[torch.Tensor, ...]:
    model = ResNeXt(**arch, style=style, out_indices=tuple(range(arch["num_stages"])),
                    init_cfg=None)
    model.load_state_dict(state_dict, strict=True)
    with torch.no_grad():
        return model.eval()(X)


def plugin_classifier_outputs(conversion, path: str | None = None):
    """Stage outputs and logits of an mmpretrain ImageClassifier with the plugin backbone.

    Built as a config would build it, loaded from the ``--to classifier`` file ``path`` through
    mmengine's ``load_checkpoint``, or from :func:`classifier_checkpoint` in memory.
    """
    import mmpretrain.models  # noqa: F401
    from mmpretrain.registry import MODELS

    model = MODELS.build(dict(
        type="mmpretrain.ImageClassifier",
        backbone=dict(type="resnext_plugin.ResNeXt", out_indices=(0, 1, 2, 3),
                      **conversion.backbone_kwargs),
        neck=dict(type="GlobalAveragePooling", dim=2),
        head=dict(type="LinearClsHead", num_classes=conversion.num_classes,
                  in_channels=conversion.feat_dim),
    )).eval()
    if path is None:
        model.load_state_dict(classifier_checkpoint(conversion)["state_dict"], strict=True)
    else:
        load_checkpoint(model, path, map_location="cpu", strict=True, logger="silent")
    with torch.no_grad():
        feats = model.extract_feat(X, stage="backbone")
        return feats, model.head(model.neck(feats[-1:]))


def save(obj, path: pathlib.Path) -> str:
    torch.save(obj, path)
    return str(path)


# --- torchvision and timm ------------------------------------------------------------------------
def check_classification_source(model: nn.Module, layout: str, expected_arch: tuple,
                                path: str | None = None):
    """Convert (from ``path`` if given, else in memory) and compare features and logits."""
    model = randomise_bn(model)
    feats, logits = resnet_forward(model, X)
    if path is None:
        conversion = convert_state_dict(model.state_dict(), layout)
    else:
        src = save(model.state_dict(), pathlib.Path(path).with_name("src.pth"))
        conversion = convert_checkpoint(src, path, layout, "classifier")
    arch = conversion.arch
    assert (arch["depth"], arch["groups"], arch["width_per_group"]) == expected_arch
    ours_feats, ours_logits = plugin_classifier_outputs(conversion, path)
    for ours, theirs in zip(ours_feats, feats, strict=True):
        assert_close(ours, theirs)
    assert_close(ours_logits, logits)
    return conversion


def assert_exact_round_trip(conversion, original: dict) -> None:
    exported = torchvision_state_dict(conversion)
    assert list(exported) == list(original)
    for key, tensor in original.items():
        assert exported[key].dtype == tensor.dtype and torch.equal(exported[key], tensor), key


def test_torchvision_resnext50_32x4d(tmp_path):
    model = torchvision.models.resnext50_32x4d(weights=None)
    conversion = check_classification_source(model, "torchvision", (50, 32, 4),
                                             path=str(tmp_path / "cls.pth"))
    assert_exact_round_trip(conversion, model.state_dict())
    reloaded = torchvision.models.resnext50_32x4d(weights=None)
    out = tmp_path / "tv.pth"
    convert_checkpoint(tmp_path / "cls.pth", out, "mmpretrain", "torchvision")
    reloaded.load_state_dict(load_checkpoint_file(out), strict=True)
    assert_close(resnet_forward(reloaded.eval(), X)[1], resnet_forward(model, X)[1])


@pytest.mark.slow
@pytest.mark.parametrize("name, arch", [("resnext101_32x8d", (101, 32, 8)),
                                        ("resnext101_64x4d", (101, 64, 4))])
def test_torchvision_resnext101(tmp_path, name, arch):
    model = getattr(torchvision.models, name)(weights=None)
    conversion = check_classification_source(model, "torchvision", arch)
    assert_exact_round_trip(conversion, model.state_dict())


@pytest.mark.parametrize("name, arch", [("resnext50_32x4d", (50, 32, 4)),
                                        ("resnext101_32x4d", (101, 32, 4))])
def test_timm(name, arch):
    model = timm.create_model(name, pretrained=False)
    conversion = check_classification_source(model, "timm", arch)
    assert_exact_round_trip(conversion, model.state_dict())


def test_timm_deep_stem_avg_down():
    """``resnext50d_32x4d``: conv1.{0..6} stem and avg-pool shortcuts (downsample.1/2)."""
    model = timm.create_model("resnext50d_32x4d", pretrained=False)
    conversion = check_classification_source(model, "timm", (50, 32, 4))
    assert conversion.arch["deep_stem"] and conversion.arch["avg_down"]
    assert "stem.2.bn.running_var" in conversion.state_dict
    assert "layer1.0.downsample.0.weight" in conversion.state_dict  # timm: downsample.1
    with pytest.raises(ConversionError, match="torchvision's ResNet cannot express"):
        torchvision_state_dict(conversion)


@pytest.mark.parametrize("file_format", ["safetensors", "train_checkpoint"])
def test_timm_files(tmp_path, file_format):
    """timm's hub weights (.safetensors) and train.py checkpoints (with an argparse Namespace)."""
    from safetensors.torch import save_file

    # A narrow resnext50d (base width 16, stem width 8) keeps the files small.
    model = randomise_bn(timm.create_model("resnext50d_32x4d", pretrained=False, num_classes=7,
                                           channels=(16, 32, 64, 128), stem_width=8))
    feats, logits = resnet_forward(model, X)
    if file_format == "safetensors":
        src = tmp_path / "model.safetensors"
        save_file(model.state_dict(), str(src))
    else:
        args = argparse.Namespace(model="resnext50d_32x4d", lr=0.1, epochs=2)
        src = tmp_path / "last.pth.tar"
        torch.save(dict(epoch=1, arch="resnext50d_32x4d", state_dict=model.state_dict(),
                        optimizer={}, version=2, args=args, metric=0.5), src)
    dst = str(tmp_path / "cls.pth")
    conversion = convert_checkpoint(src, dst, "timm", "classifier")
    assert conversion.backbone_kwargs == dict(depth=50, groups=32, width_per_group=1,
                                              stem_channels=16, base_channels=16,
                                              deep_stem=True, avg_down=True)
    ours_feats, ours_logits = plugin_classifier_outputs(conversion, dst)
    for ours, theirs in zip(ours_feats, feats, strict=True):
        assert_close(ours, theirs)
    assert_close(ours_logits, logits)


# --- mmpretrain, mmdet, plugin ----------------------------------------------------------------
def test_mmpretrain_classifier():
    import mmpretrain.models  # noqa: F401
    from mmpretrain.registry import MODELS

    model = MODELS.build(dict(
        type="mmpretrain.ImageClassifier",
        backbone=dict(type="ResNeXt", depth=50, groups=32, width_per_group=4,
                      out_indices=(0, 1, 2, 3)),
        neck=dict(type="GlobalAveragePooling"),
        head=dict(type="LinearClsHead", num_classes=10, in_channels=2048)))
    randomise_bn(model)
    with torch.no_grad():
        feats = model.extract_feat(X, stage="backbone")
        logits = model(X, mode="tensor")
    conversion = convert_state_dict(model.state_dict(), "mmpretrain")
    assert conversion.num_classes == 10
    ours_feats, ours_logits = plugin_classifier_outputs(conversion)
    for ours, theirs in zip(ours_feats, feats, strict=True):
        assert_close(ours, theirs)
    assert_close(ours_logits, logits)


@pytest.mark.parametrize("kwargs", [dict(), dict(deep_stem=True, avg_down=True)])
def test_mmdet_detector_backbone(kwargs):
    """mmdet ResNeXt under ``backbone.`` next to a real FPN neck, which is left out."""
    from mmdet.models.backbones import ResNeXt as MMDetResNeXt
    from mmdet.models.necks import FPN

    backbone = randomise_bn(MMDetResNeXt(depth=50, groups=32, base_width=4,
                                         out_indices=(0, 1, 2, 3), **kwargs))
    neck = FPN(in_channels=[256, 512, 1024, 2048], out_channels=16, num_outs=5)
    with torch.no_grad():
        feats = backbone(X)
    state = OrderedDict(("backbone." + k, v) for k, v in backbone.state_dict().items())
    state.update(("neck." + k, v) for k, v in neck.state_dict().items())
    conversion = convert_state_dict(state, "mmdet")
    assert conversion.arch["deep_stem"] == bool(kwargs)
    assert any("left out" in note and "neck.*" in note for note in conversion.notes)
    for ours, theirs in zip(plugin_features(conversion.state_dict, conversion.arch), feats):
        assert_close(ours, theirs)


def test_mmdet_open_mmlab_file():
    """``open-mmlab://resnext101_32x4d``: torchvision's names, no prefix, ImageNet ``fc`` kept."""
    from mmdet.models.backbones import ResNeXt as MMDetResNeXt

    backbone = randomise_bn(MMDetResNeXt(depth=50, groups=32, base_width=4,
                                         out_indices=(0, 1, 2, 3)))
    with torch.no_grad():
        feats = backbone(X)
    state = OrderedDict(backbone.state_dict())
    state["fc.weight"], state["fc.bias"] = torch.randn(1000, 2048), torch.randn(1000)
    conversion = convert_state_dict(state, "mmdet")
    assert conversion.num_classes == 1000
    for ours, theirs in zip(plugin_features(conversion.state_dict, conversion.arch), feats):
        assert_close(ours, theirs)


def train_checkpoint(model: nn.Module) -> dict:
    """What tools/train.py (mmengine Runner.save_checkpoint) writes."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    hub = MessageHub.get_instance("test_convert")
    hub.update_scalar("train/loss", 1.5)
    return dict(meta=dict(epoch=1, iter=10, seed=0, dataset_meta=dict(classes=("a", "b"))),
                state_dict=model.state_dict(), optimizer=optimizer.state_dict(),
                message_hub=hub.state_dict(),
                param_schedulers=[dict(base_lrs=[0.1], last_epoch=1)])


@pytest.mark.parametrize("block_form", ["c", "b", "a"])
def test_plugin_training_checkpoint(tmp_path, block_form):
    """--from plugin: backbone file for init_cfg (no prefix), classifier file for load_from."""
    import mmpretrain.models  # noqa: F401
    from mmpretrain.registry import MODELS

    # Narrow (stem and base widths 16) to keep the files small; inferred from the shapes too.
    arch = dict(depth=50, groups=4, width_per_group=2, stem_channels=16, base_channels=16)
    model = MODELS.build(dict(
        type="mmpretrain.ImageClassifier",
        backbone=dict(type="resnext_plugin.ResNeXt", block_form=block_form,
                      out_indices=(0, 1, 2, 3), **arch),
        neck=dict(type="GlobalAveragePooling"),
        head=dict(type="LinearClsHead", num_classes=2, in_channels=512)))
    randomise_bn(model)
    with torch.no_grad():  # one forward: forms (a)/(b) run C small paths a block, slowly
        feats = model.extract_feat(X, stage="backbone")
        logits = model.head(model.neck(feats[-1:]))
    src = save(train_checkpoint(model), tmp_path / "epoch_1.pth")

    backbone_file = str(tmp_path / "backbone.pth")
    conversion = convert_checkpoint(src, backbone_file, "plugin", "backbone")
    written = load_checkpoint_file(backbone_file)
    assert set(written) == {"state_dict", "meta"}
    assert all(not k.startswith(("backbone.", "head.")) for k in written["state_dict"])
    meta = written["meta"]
    assert (meta["depth"], meta["groups"], meta["width_per_group"]) == (50, 4, 2)
    assert meta["backbone_kwargs"] == arch
    assert meta["source"]["layout"] == "plugin"
    # A config's init_cfg loads it; the backbone then reproduces the trained features.
    pretrained = ResNeXt(**arch, out_indices=(0, 1, 2, 3),
                         init_cfg=dict(type="Pretrained", checkpoint=backbone_file))
    pretrained.init_weights()
    with torch.no_grad():
        for ours, theirs in zip(pretrained.eval()(X), feats):
            assert_close(ours, theirs)

    classifier_file = str(tmp_path / "classifier.pth")
    convert_checkpoint(src, classifier_file, "plugin", "classifier")
    assert_close(plugin_classifier_outputs(conversion, classifier_file)[1], logits)
    prefixed = ResNeXt(**arch, init_cfg=dict(type="Pretrained", checkpoint=classifier_file,
                                             prefix="backbone."))
    prefixed.init_weights()
    for key, value in prefixed.state_dict().items():
        assert torch.equal(value, conversion.state_dict[key]), key


# --- detectron2 (synthetic, from the documented names) ----------------------------------------
def detectron2_names(state_dict) -> dict:
    """detectron2's ResNet names: stem.conv1[.norm], res{2..5}.{j}.conv{1,2,3}[.norm], shortcut.

    FrozenBN holds weight, bias, running_mean, running_var (no num_batches_tracked).
    """
    out = {}
    for key, value in state_dict.items():
        if key.endswith("num_batches_tracked"):
            continue
        key = re.sub(r"^conv1\.", "stem.conv1.", key)
        key = re.sub(r"^bn1\.", "stem.conv1.norm.", key)
        match = re.match(r"^layer(\d)\.(\d+)\.(.*)$", key)
        if match:
            rest = re.sub(r"^bn(\d)\.", r"conv\1.norm.", match[3])
            rest = rest.replace("downsample.0.", "shortcut.").replace("downsample.1.",
                                                                      "shortcut.norm.")
            key = f"res{int(match[1]) + 1}.{match[2]}.{rest}"
        out[key] = value.numpy().copy()
    return out


def caffe2_names(state_dict) -> dict:
    """Caffe2 Detectron blobs: conv1_w, res_conv1_bn_{s,b}, res2_0_branch2a_w, ..., pred_w."""
    out = {}
    for key, value in detectron2_names(state_dict).items():
        if "running" in key:
            continue  # AffineChannel: scale and bias only
        key = {"stem.conv1.weight": "conv1_w", "stem.conv1.norm.weight": "res_conv1_bn_s",
               "stem.conv1.norm.bias": "res_conv1_bn_b"}.get(key, key)
        match = re.match(r"^res(\d)\.(\d+)\.(conv1|conv2|conv3|shortcut)\.(norm\.)?(\w+)$", key)
        if match:
            branch = {"conv1": "2a", "conv2": "2b", "conv3": "2c", "shortcut": "1"}[match[3]]
            suffix = ({"weight": "bn_s", "bias": "bn_b"}[match[5]] if match[4] else "w")
            key = f"res{match[1]}_{match[2]}_branch{branch}_{suffix}"
        out[key] = value
        out[key + "_momentum"] = np.zeros_like(value)  # optimizer state in c2 pickles
    return out


@pytest.fixture(scope="module")
def caffe_style_model() -> ResNeXt:
    """Narrow (8x2d, base width 16) to keep the pickles small; names do not depend on widths."""
    torch.manual_seed(0)
    return randomise_bn(ResNeXt(50, groups=8, width_per_group=2, stem_channels=16,
                                base_channels=16, style="caffe", out_indices=(0, 1, 2, 3),
                                init_cfg=None), seed=1)


def write_pickle(obj, path: pathlib.Path) -> str:
    with open(path, "wb") as file:
        pickle.dump(obj, file, protocol=2)
    return str(path)


@pytest.mark.parametrize("prefix", ["", "backbone.bottom_up."])
def test_detectron2_round_trip(tmp_path, caffe_style_model, prefix):
    original = caffe_style_model.state_dict()
    names = {prefix + k: v for k, v in detectron2_names(original).items()}
    if prefix:  # a whole FPN detector: its other parts are left out
        names["backbone.fpn_lateral2.weight"] = np.zeros((256, 256, 1, 1), np.float32)
        names["roi_heads.box_predictor.cls_score.weight"] = np.zeros((81, 1024), np.float32)
    src = write_pickle({"model": names, "__author__": "synthetic"}, tmp_path / "d2.pkl")
    dst = tmp_path / "bb.pth"
    with pytest.raises(ConversionError, match="STRIDE_IN_1X1"):
        convert_checkpoint(src, dst, "detectron2")
    assert not dst.exists()
    conversion = convert_checkpoint(src, dst, "detectron2", stride_in_1x1=True)
    written = load_checkpoint_file(dst)
    assert written["meta"]["style"] == "caffe" and written["meta"]["arch"]["style"] == "caffe"
    assert any("style='caffe'" in note for note in conversion.notes)
    state = written["state_dict"]
    assert list(state) == list(original)
    for key, tensor in original.items():
        if not key.endswith("num_batches_tracked"):
            assert torch.equal(state[key], tensor), key
    for ours, theirs in zip(plugin_features(state, conversion.arch, "caffe"),
                            caffe_style_model(X)):
        assert torch.equal(ours, theirs)
    tensors = {k: torch.from_numpy(v) for k, v in names.items()}
    pytorch_style = convert_state_dict(tensors, "detectron2", stride_in_1x1=False)
    assert pytorch_style.style == "pytorch"
    assert (pytorch_style.arch["groups"], pytorch_style.arch["width_per_group"]) == (8, 2)


def test_detectron2_c4_res5_in_roi_heads(caffe_style_model):
    names = {}
    for key, value in detectron2_names(caffe_style_model.state_dict()).items():
        prefix = "roi_heads." if key.startswith("res5.") else "backbone."
        names[prefix + key] = torch.from_numpy(value)
    conversion = convert_state_dict(names, "detectron2", stride_in_1x1=True)
    assert conversion.arch["num_stages"] == 4
    assert torch.equal(conversion.state_dict["layer4.2.conv3.weight"],
                       caffe_style_model.state_dict()["layer4.2.conv3.weight"])


def test_caffe2_blobs(tmp_path, caffe_style_model):
    original = caffe_style_model.state_dict()
    blobs = caffe2_names(original)
    blobs["pred_w"], blobs["pred_b"] = np.ones((5, 512), np.float32), np.zeros(5, np.float32)
    src = write_pickle({"blobs": blobs}, tmp_path / "R-X.pkl")
    conversion = convert_checkpoint(src, tmp_path / "cls.pth", "detectron2", "classifier",
                                    stride_in_1x1=True)
    assert conversion.num_classes == 5
    state = conversion.state_dict
    for key, tensor in original.items():
        if key.endswith("conv1.weight") or ".conv" in key or "downsample.0" in key:
            assert torch.equal(state[key], tensor), key
    # Each BN is Caffe2's AffineChannel: y = scale * x + bias.
    bn = nn.BatchNorm2d(16).eval()
    bn.load_state_dict({k[len("bn1."):]: v for k, v in state.items() if k.startswith("bn1.")})
    x = torch.randn(2, 16, 3, 3)
    expected = x * original["bn1.weight"].view(1, -1, 1, 1) + original["bn1.bias"].view(1, -1, 1, 1)
    with torch.no_grad():
        assert_close(bn(x), expected)


# --- errors ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tv50_state() -> OrderedDict:
    return OrderedDict(torchvision.models.resnext50_32x4d(weights=None).state_dict())


def test_shape_mismatch_names_the_key(tv50_state):
    state = OrderedDict(tv50_state)
    state["layer2.1.conv2.weight"] = torch.zeros(256, 4, 1, 1)
    with pytest.raises(ConversionError, match=r"'layer2\.1\.conv2\.weight' has shape"):
        convert_state_dict(state, "torchvision")


def test_missing_and_unexpected_keys(tv50_state):
    state = OrderedDict(tv50_state)
    del state["layer3.2.bn2.running_var"]
    with pytest.raises(ConversionError, match=r"missing key 'layer3\.2\.bn2\.running_var'"):
        convert_state_dict(state, "torchvision")
    state = OrderedDict(tv50_state)
    state["layer1.0.se.fc1.weight"] = torch.zeros(4, 4)
    with pytest.raises(ConversionError, match=r"'layer1\.0\.se\.fc1\.weight'"):
        convert_state_dict(state, "torchvision")


def test_other_architectures_are_refused():
    basic_block = torchvision.models.resnet18(weights=None).state_dict()
    with pytest.raises(ConversionError,
                       match=r"missing key 'layer1\.0\.conv3\.weight'.*BasicBlock"):
        convert_state_dict(basic_block, "torchvision")
    squeezenet = torchvision.models.squeezenet1_1(weights=None).state_dict()
    with pytest.raises(ConversionError, match=r"key 'features\.0\.weight' is not a ResNeXt"):
        convert_state_dict(squeezenet, "torchvision")


def test_wrong_layout_suggests_the_right_one(caffe_style_model):
    names = {k: torch.from_numpy(v) for k, v in detectron2_names(
        caffe_style_model.state_dict()).items()}
    with pytest.raises(ConversionError, match="try --from detectron2"):
        convert_state_dict(names, "torchvision")
    with pytest.raises(ConversionError, match="unknown source layout 'keras'"):
        convert_state_dict(names, "keras")


def test_truncated_file_and_no_partial_write(tmp_path, tv50_state):
    src = tmp_path / "truncated.pth"
    torch.save(tv50_state, src)
    src.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
    dst = tmp_path / "out.pth"
    dst.write_bytes(b"previous conversion")
    with pytest.raises(ValueError, match=f"cannot load checkpoint {re.escape(str(src))}"):
        convert_checkpoint(src, dst, "torchvision")
    assert dst.read_bytes() == b"previous conversion"
    # A failure while writing (here: an object torch.save cannot pickle) leaves DST and no
    # temporary file behind.
    with pytest.raises(Exception, match="pickle"):
        save_atomic({"state_dict": tv50_state, "meta": {"bad": lambda: None}}, dst)
    assert dst.read_bytes() == b"previous conversion"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.pth", "truncated.pth"]


class PlantedCode:
    """Unpickling this calls ``Path.touch(marker)``: code execution if the loader allows it."""

    def __init__(self, marker: pathlib.Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


def test_planted_code_does_not_run(tmp_path, tv50_state):
    probe = tmp_path / "probe"
    pickle.loads(pickle.dumps(PlantedCode(probe)))  # an unrestricted unpickler runs it
    assert probe.exists()

    marker = tmp_path / "pwned"
    torch_file = save({"state_dict": tv50_state, "x": PlantedCode(marker)}, tmp_path / "evil.pth")
    with pytest.raises(ValueError, match=f"(?s)cannot load checkpoint {re.escape(torch_file)}"
                                         ".*Unsupported global.*pathlib"):
        convert_checkpoint(torch_file, tmp_path / "a.pth", "torchvision")
    pkl_file = write_pickle({"model": {"stem.conv1.weight": np.zeros(1)}, "x": PlantedCode(marker)},
                            tmp_path / "evil.pkl")
    with pytest.raises(ValueError, match=r"global '[\w.]+' is forbidden"):
        convert_checkpoint(pkl_file, tmp_path / "b.pth", "detectron2", stride_in_1x1=False)
    assert not marker.exists()
    assert not (tmp_path / "a.pth").exists() and not (tmp_path / "b.pth").exists()


def test_classifier_needs_a_head(tv50_state):
    backbone_only = OrderedDict((k, v) for k, v in tv50_state.items() if not k.startswith("fc."))
    conversion = convert_state_dict(backbone_only, "torchvision")
    assert conversion.head is None
    with pytest.raises(ConversionError, match="no classifier"):
        classifier_checkpoint(conversion)
    with pytest.raises(ConversionError, match="stride_in_1x1"):
        convert_state_dict(tv50_state, "torchvision", stride_in_1x1=True)


# --- command line ----------------------------------------------------------------------------
def test_cli(tmp_path, repo_root, tv50_state, capsys):
    src = save(tv50_state, tmp_path / "resnext50_32x4d.pth")
    dst = tmp_path / "x50.pth"
    script = repo_root / "tools" / "convert_checkpoint.py"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, str(script), src, str(dst), "--from", "torchvision"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "depth=50" in done.stdout and "groups C=32" in done.stdout
    assert "width_per_group d=4" in done.stdout and "init_cfg=dict(type='Pretrained'" in done.stdout
    state = load_checkpoint_file(dst)["state_dict"]
    assert all(torch.equal(state[k], v) for k, v in tv50_state.items() if not k.startswith("fc."))

    # Failures: the script's main(), in this process (saves a second interpreter start).
    assert cli_main([src, str(tmp_path / "no.pth"), "--from", "detectron2",
                     "--no-stride-in-1x1"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "try --from torchvision" in err
    assert cli_main([src, str(tmp_path / "no.pth"), "--from", "detectron2"]) == 1
    assert "--stride-in-1x1" in capsys.readouterr().err
    assert not (tmp_path / "no.pth").exists()

"""The behaviour mmdet's and mmpretrain's own ResNet/ResNeXt backbone tests check, restated.

The peers' test files cannot live in this repository (see
``tests/test_models/test_peer_suites.py``), so each behaviour they check on the backbone is written
again here, in our words, on small models: stem widths per scope, deep-stem layouts and keys, norm
names, freezing, norm_eval, checkpointing, zero-init, output selection,
strides/dilations/style/avg_down, DCN, plugins, invalid arguments, expansion and drop-path.
``ResNet`` below means our class with ``groups=1``, as the peers' ``ResNet`` is; "mmdet scope"
means built while mmengine's DefaultScope is 'mmdet'.
"""
import contextlib

import pytest
import torch
from mmcv.cnn import ConvModule
from mmcv.cnn.bricks import ContextBlock, GeneralizedAttention, NonLocal2d
from mmcv.ops import DeformConv2dPack, ModulatedDeformConv2dPack
from mmengine.registry import DefaultScope
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from resnext_plugin import ResNeXt

SMALL = 32  # input side; the stages see 8, 4, 2, 1


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """These models are tiny: one thread avoids OpenMP overhead (and stalls on a busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def scoped(scope):
    """Build inside mmengine's DefaultScope ``scope`` (None: no scope)."""
    if scope is None:
        return contextlib.nullcontext()
    return DefaultScope.overwrite_default_scope(scope)


def build(scope="mmdet", **kwargs):
    kwargs.setdefault("depth", 50)
    with scoped(scope):
        return ResNeXt(**kwargs)


def resnet(scope="mmdet", **kwargs):
    return build(scope, groups=1, **kwargs)


def blocks(model):
    return [block for name in model.res_layers for block in getattr(model, name)]


def stage_blocks(model, stage):
    return list(getattr(model, f"layer{stage + 1}"))


def norm_layers(model):
    return [m for m in model.modules() if isinstance(m, (_BatchNorm, nn.GroupNorm))]


def run(model, side=SMALL):
    """Forward a batch of two (BatchNorm in training mode needs more than one value)."""
    return model(torch.randn(2, 3, side, side))


def shapes(outs):
    """Output shapes without the batch dimension."""
    return [tuple(o.shape[1:]) for o in outs]


def all_zero(norm):
    return not norm.weight.detach().any() and not norm.bias.detach().any()


# ----------------------------------------------------------------------- defaults by scope

def test_mmdet_scope_gives_detection_defaults():
    model = resnet("mmdet", base_channels=16)
    assert model.out_indices == (0, 1, 2, 3)
    assert model.norm_eval is True
    assert model.stem_channels == 16


def test_mmpretrain_scope_gives_classification_defaults():
    model = resnet("mmpretrain", base_channels=16)
    assert model.out_indices == (3,)
    assert model.norm_eval is False
    assert model.stem_channels == 64


def test_defaults_argument_selects_a_peer_without_a_scope():
    as_mmdet = resnet(None, base_channels=16, defaults="mmdet")
    assert (as_mmdet.out_indices, as_mmdet.norm_eval, as_mmdet.stem_channels) == (
        (0, 1, 2, 3), True, 16)
    as_mmpretrain = resnet(None, base_channels=16, defaults="mmpretrain")
    assert (as_mmpretrain.out_indices, as_mmpretrain.norm_eval,
            as_mmpretrain.stem_channels) == ((3,), False, 64)


def test_explicit_values_win_over_scope_defaults():
    model = resnet("mmdet", base_channels=16, out_indices=(3,), norm_eval=False, stem_channels=32)
    assert (model.out_indices, model.norm_eval, model.stem_channels) == ((3,), False, 32)


# ------------------------------------------------------------------------------------- stem

@pytest.mark.parametrize("base", [64, 3])
def test_mmdet_stem_width_follows_base_channels(base):
    model = resnet("mmdet", base_channels=base)
    assert model.stem_channels == base
    assert model.conv1.out_channels == base
    assert model.norm1.num_features == base
    assert model.layer1[0].conv1.in_channels == base


@pytest.mark.parametrize("scope", ["mmdet", "mmpretrain"])
def test_explicit_stem_channels_win_over_base_channels(scope):
    model = resnet(scope, stem_channels=3, base_channels=2)
    assert model.stem_channels == 3
    assert model.conv1.out_channels == 3
    assert model.norm1.num_features == 3
    assert model.layer1[0].conv1.in_channels == 3


def test_mmpretrain_half_width_keeps_a_64_channel_stem():
    model = resnet("mmpretrain", base_channels=32, out_indices=(0, 1, 2, 3))
    assert model.conv1.out_channels == 64
    assert shapes(run(model)) == [(128, 8, 8), (256, 4, 4), (512, 2, 2),
                                  (1024, 1, 1)]


def test_mmdet_deep_stem_is_one_flat_sequential():
    model = resnet("mmdet", deep_stem=True, avg_down=True, stem_channels=6, base_channels=4)
    stem = model.stem
    assert len(stem) == 9
    assert [type(m) for m in stem[2::3]] == [nn.ReLU] * 3
    assert [stem[i].out_channels for i in (0, 3, 6)] == [3, 3, 6]
    assert [stem[i].num_features for i in (1, 4, 7)] == [3, 3, 6]
    assert stem[0].stride == (2, 2) and stem[3].stride == stem[6].stride == (1, 1)
    assert model.layer1[0].conv1.in_channels == 6
    keys = set(model.state_dict())
    assert {"stem.0.weight", "stem.1.weight", "stem.1.running_var", "stem.3.weight",
            "stem.4.bias", "stem.6.weight", "stem.7.weight"} <= keys
    assert not any(key.startswith("stem.0.conv") for key in keys)


def test_mmpretrain_deep_stem_is_three_conv_modules():
    model = resnet("mmpretrain", deep_stem=True, base_channels=8)
    assert len(model.stem) == 3
    assert all(isinstance(m, ConvModule) for m in model.stem)
    assert [m.conv.out_channels for m in model.stem] == [32, 32, 64]
    assert {"stem.0.conv.weight", "stem.0.bn.weight", "stem.2.conv.weight",
            "stem.2.bn.running_mean"} <= set(model.state_dict())
    assert tuple(model.stem(torch.randn(2, 3, 64, 64)).shape) == (2, 64, 32, 32)


@pytest.mark.parametrize("scope", ["mmdet", "mmpretrain"])
def test_deep_stem_with_avg_down_forward(scope):
    model = resnet(scope, deep_stem=True, avg_down=True, base_channels=2,
                   out_indices=(0, 1, 2, 3))
    assert shapes(run(model)) == [(8, 8, 8), (16, 4, 4), (32, 2, 2), (64, 1, 1)]


# ------------------------------------------------------------------------------ norm names

def test_norm_properties_name_the_batch_norms():
    model = resnet(base_channels=4)
    assert model.norm1_name == "bn1" and model.norm1 is model.bn1
    for block in blocks(model):
        for i in (1, 2, 3):
            assert getattr(block, f"norm{i}_name") == f"bn{i}"
            assert getattr(block, f"norm{i}") is getattr(block, f"bn{i}")
            assert isinstance(getattr(block, f"norm{i}"), _BatchNorm)
    assert all(isinstance(m, _BatchNorm) for m in norm_layers(model))


def test_group_norm_layers_are_named_gn():
    model = resnet(base_channels=4, norm_cfg=dict(type="GN", num_groups=2, requires_grad=True))
    assert model.norm1_name == "gn1" and not hasattr(model, "bn1")
    assert isinstance(model.norm1, nn.GroupNorm)
    block = model.layer1[0]
    assert [block.norm1_name, block.norm2_name, block.norm3_name] == ["gn1", "gn2", "gn3"]
    keys = set(model.state_dict())
    assert {"gn1.weight", "layer1.0.gn1.weight", "layer1.0.gn3.bias", "layer4.2.gn2.weight"} <= keys
    assert not any(".bn" in key or key.startswith("bn") for key in keys)
    assert all(isinstance(m, nn.GroupNorm) for m in norm_layers(model))
    assert shapes(run(model.train())) == [(16, 8, 8), (32, 4, 4), (64, 2, 2),
                                          (128, 1, 1)]


# ------------------------------------------------------------------ freezing and norm_eval

@pytest.mark.parametrize("scope", ["mmdet", "mmpretrain"])
def test_frozen_stages_freeze_stem_and_first_stages(scope):
    model = resnet(scope, frozen_stages=1, base_channels=1, norm_eval=False).train()
    assert model.norm1.training is False
    assert not any(p.requires_grad for m in (model.conv1, model.norm1) for p in m.parameters())
    for m in model.layer1.modules():
        assert not (isinstance(m, _BatchNorm) and m.training)
    assert not any(p.requires_grad for p in model.layer1.parameters())
    assert all(p.requires_grad for p in model.layer2.parameters())
    assert all(m.training for m in model.layer2.modules() if isinstance(m, _BatchNorm))


@pytest.mark.parametrize("scope", ["mmdet", "mmpretrain"])
def test_frozen_stages_freeze_the_deep_stem(scope):
    model = resnet(scope, deep_stem=True, avg_down=True, frozen_stages=1, base_channels=2,
                   norm_eval=False).train()
    assert not any(p.requires_grad for p in model.stem.parameters())
    assert not any(m.training for m in model.stem.modules() if isinstance(m, _BatchNorm))
    assert not any(p.requires_grad for p in model.layer1.parameters())
    assert all(p.requires_grad for p in model.layer2.parameters())


def test_norm_eval_keeps_every_batch_norm_in_eval_mode():
    model = resnet(norm_eval=True, base_channels=1).train()
    assert model.training
    assert not any(m.training for m in norm_layers(model))
    assert all(p.requires_grad for p in model.parameters())


def test_norm_eval_holds_after_loading_pretrained_weights(tmp_path):
    source = resnet(base_channels=2)
    path = tmp_path / "resnet.pth"
    torch.save(source.state_dict(), path)
    model = resnet(base_channels=2, norm_eval=True,
                   init_cfg=dict(type="Pretrained", checkpoint=str(path)))
    model.init_weights()
    model.train()
    assert not any(m.training for m in norm_layers(model))
    assert torch.equal(model.layer3[1].conv2.weight, source.layer3[1].conv2.weight)


# ------------------------------------------------------------- checkpointing, initialisation

def test_with_cp_marks_every_block_and_trains():
    model = resnet(with_cp=True, base_channels=1).train()
    assert all(block.with_cp for block in blocks(model))
    x = torch.randn(2, 3, SMALL, SMALL, requires_grad=True)
    outs = model(x)
    assert shapes(outs) == [(4, 8, 8), (8, 4, 4), (16, 2, 2), (32, 1, 1)]
    sum(o.sum() for o in outs).backward()
    assert x.grad is not None and model.layer1[0].conv2.weight.grad is not None


@pytest.mark.parametrize("zero_init", [True, False])
def test_zero_init_residual_zeroes_each_last_norm(zero_init):
    model = resnet(zero_init_residual=zero_init, base_channels=1)
    model.init_weights()
    assert [all_zero(block.norm3) for block in blocks(model)] == [zero_init] * 16
    assert not all_zero(model.layer1[0].norm2)


# ------------------------------------------------------------------ outputs and geometry

def test_full_width_resnet50_and_resnext50_outputs():
    expected = [(256, 8, 8), (512, 4, 4), (1024, 2, 2), (2048, 1, 1)]
    r50 = resnet("mmpretrain", out_indices=(0, 1, 2, 3)).train()
    assert [b.conv2.out_channels for b in r50.layer1] == [64] * 3
    assert shapes(run(r50)) == expected
    x50 = build("mmdet", groups=32, base_width=4).train()
    assert all(block.conv2.groups == 32 for block in blocks(x50))
    assert shapes(run(x50)) == expected


@pytest.mark.parametrize("out_indices, expected", [
    ((0, 1, 2), [(4, 8, 8), (8, 4, 4), (16, 2, 2)]),
    ((3,), [(32, 1, 1)]),
    ((-1,), [(32, 1, 1)]),
    ((0, -1), [(4, 8, 8), (32, 1, 1)]),
])
def test_out_indices_select_the_stages(out_indices, expected):
    assert shapes(run(resnet(out_indices=out_indices, base_channels=1))) == expected


def test_resnext_groups_and_width_at_every_stage():
    model = build("mmpretrain", groups=4, width_per_group=2, base_channels=4,
                  out_indices=(0, 1, 2, 3))
    for stage in range(4):
        for block in stage_blocks(model, stage):
            assert block.conv2.groups == 4
            assert block.conv2.out_channels == 4 * 2 * 2**stage
    assert shapes(run(model)) == [(16, 8, 8), (32, 4, 4), (64, 2, 2), (128, 1, 1)]


def test_strides_and_dilations_per_stage():
    model = resnet(strides=(1, 2, 2, 1), dilations=(1, 1, 1, 2), base_channels=1)
    conv2 = model.layer4[0].conv2
    assert conv2.stride == (1, 1) and conv2.dilation == (2, 2) and conv2.padding == (2, 2)
    assert shapes(run(model, 64)) == [(4, 16, 16), (8, 8, 8), (16, 4, 4),
                                      (32, 4, 4)]


@pytest.mark.parametrize("style, conv1_stride, conv2_stride", [
    ("pytorch", (1, 1), (2, 2)), ("caffe", (2, 2), (1, 1))])
def test_style_places_the_stride(style, conv1_stride, conv2_stride):
    first = resnet(style=style, base_channels=1).layer2[0]
    assert (first.conv1.stride, first.conv2.stride) == (conv1_stride, conv2_stride)


@pytest.mark.parametrize("scope", ["mmdet", "mmpretrain"])
def test_avg_down_pools_before_a_stride_one_projection(scope):
    model = resnet(scope, avg_down=True, base_channels=2)
    down = model.layer2[0].downsample
    assert isinstance(down[0], nn.AvgPool2d) and down[0].stride == 2
    assert down[1].stride == (1, 1) and down[1].out_channels == 16


def test_avg_down_at_stride_one_keeps_each_peers_layout():
    """mmdet's ResLayer puts a (1x1, stride 1) pool before every projection, mmpretrain's only
    where the stride is 2; the layouts differ in their keys (downsample.1 vs downsample.0)."""
    mmdet_down = resnet("mmdet", avg_down=True, base_channels=2).layer1[0].downsample
    assert [type(m) for m in mmdet_down][:2] == [nn.AvgPool2d, nn.Conv2d]
    assert mmdet_down[0].stride == 1 and mmdet_down[1].out_channels == 8
    mmpretrain_down = resnet("mmpretrain", avg_down=True, base_channels=2).layer1[0].downsample
    assert isinstance(mmpretrain_down[0], nn.Conv2d) and mmpretrain_down[0].out_channels == 8


def test_drop_path_rate_drops_in_training_only():
    model = resnet("mmpretrain", drop_path_rate=0.5, base_channels=1, out_indices=(0, 1, 2, 3))
    x = torch.randn(2, 3, SMALL, SMALL)
    model.train()
    first = model(x)
    assert shapes(first) == [(4, 8, 8), (8, 4, 4), (16, 2, 2), (32, 1, 1)]
    assert not torch.equal(first[-1], model(x)[-1])  # the dropped paths differ per call
    model.eval()
    assert torch.equal(model(x)[-1], model(x)[-1])


def test_expansion_sets_the_output_width():
    model = resnet("mmpretrain", expansion=2, base_channels=8, out_indices=(0, 1, 2, 3))
    assert model.layer1[0].conv1.out_channels == 8
    assert model.layer1[0].conv3.out_channels == 16
    assert shapes(run(model)) == [(16, 8, 8), (32, 4, 4), (64, 2, 2), (128, 1, 1)]


# ------------------------------------------------------------------------------------- DCN

@pytest.mark.parametrize("dcn_type, conv_class", [
    ("DCN", DeformConv2dPack), ("DCNv2", ModulatedDeformConv2dPack)])
def test_dcn_replaces_conv2_in_the_chosen_stages(dcn_type, conv_class):
    dcn = dict(type=dcn_type, deform_groups=1, fallback_on_stride=False)
    # mmcv's DCN needs inputs of at least 3x3: 48 pixels and a stride-1 last stage give 3x3.
    model = build("mmdet", groups=4, base_width=2, base_channels=4, dcn=dcn,
                  stage_with_dcn=(False, True, True, True), strides=(1, 2, 2, 1))
    assert dcn == dict(type=dcn_type, deform_groups=1, fallback_on_stride=False)
    assert all(type(b.conv2) is nn.Conv2d for b in model.layer1)
    for stage in (1, 2, 3):
        for block in stage_blocks(model, stage):
            assert isinstance(block.conv2, conv_class)
            assert block.conv2.groups == 4
            assert block.conv2.out_channels == 4 * 2 * 2**stage
    outs = run(model.train(), 48)
    assert shapes(outs) == [(16, 12, 12), (32, 6, 6), (64, 3, 3), (128, 3, 3)]
    sum(o.sum() for o in outs).backward()
    assert model.layer2[0].conv2.conv_offset.weight.grad is not None


def test_dcn_refuses_a_conv_cfg():
    with pytest.raises(ValueError, match="conv_cfg"):
        resnet(base_channels=1, dcn=dict(type="DCN", deform_groups=1),
               stage_with_dcn=(False, True, True, True), conv_cfg=dict(type="Conv"))


def test_stage_with_dcn_needs_one_flag_per_stage():
    with pytest.raises(ValueError, match="stage_with_dcn"):
        resnet(base_channels=1, dcn=dict(type="DCN", deform_groups=1), stage_with_dcn=(True,))


# --------------------------------------------------------------------------------- plugins

def test_plugins_sit_in_their_stages_at_their_widths():
    plugins = [
        dict(cfg=dict(type="GeneralizedAttention", spatial_range=-1, num_heads=8,
                      attention_type="0010", kv_stride=2),
             stages=(False, True, True, True), position="after_conv2"),
        dict(cfg=dict(type="NonLocal2d"), position="after_conv2"),
        dict(cfg=dict(type="ContextBlock", ratio=1.0 / 16),
             stages=(False, True, True, False), position="after_conv3"),
    ]
    model = resnet(plugins=plugins, base_channels=8)
    for stage in range(4):
        for block in stage_blocks(model, stage):
            assert isinstance(block.nonlocal_block, NonLocal2d)
            assert block.nonlocal_block.in_channels == 8 * 2**stage
            if stage == 0:
                assert not hasattr(block, "gen_attention_block")
            else:
                assert isinstance(block.gen_attention_block, GeneralizedAttention)
                assert block.gen_attention_block.in_channels == 8 * 2**stage
            if stage in (1, 2):
                assert isinstance(block.context_block, ContextBlock)
                assert block.context_block.in_channels == 32 * 2**stage
            else:
                assert not hasattr(block, "context_block")
    assert shapes(run(model.train())) == [(32, 8, 8), (64, 4, 4), (128, 2, 2),
                                          (256, 1, 1)]


def test_plugin_postfix_names_each_instance():
    plugins = [dict(cfg=dict(type="ContextBlock", ratio=1.0 / 16, postfix=i),
                    stages=(False, True, True, False), position="after_conv3") for i in (1, 2)]
    model = resnet(plugins=plugins, base_channels=8)
    for stage in range(4):
        for block in stage_blocks(model, stage):
            assert not hasattr(block, "context_block")
            if stage in (1, 2):
                assert block.context_block1.in_channels == 32 * 2**stage
                assert block.context_block2.in_channels == 32 * 2**stage
            else:
                assert not hasattr(block, "context_block1")
    assert shapes(run(model.train())) == [(32, 8, 8), (64, 4, 4), (128, 2, 2),
                                          (256, 1, 1)]


def test_plugins_after_conv1_and_conv2_take_the_grouped_width():
    plugins = [dict(cfg=dict(type="ContextBlock", ratio=1.0 / 4, postfix=n), position=pos)
               for n, pos in ((1, "after_conv1"), (2, "after_conv2"), (3, "after_conv3"))]
    model = build("mmdet", groups=4, base_width=4, base_channels=8, plugins=plugins)
    for stage in range(4):
        block = stage_blocks(model, stage)[0]
        assert block.context_block1.in_channels == 4 * 4 * 2**stage
        assert block.context_block2.in_channels == 4 * 4 * 2**stage
        assert block.context_block3.in_channels == 32 * 2**stage
    assert shapes(run(model.train())) == [(32, 8, 8), (64, 4, 4), (128, 2, 2),
                                          (256, 1, 1)]


def test_plugins_run_after_their_convolution():
    plugins = [dict(cfg=dict(type="ContextBlock", ratio=1.0 / 4, postfix=n), position=pos)
               for n, pos in ((1, "after_conv1"), (2, "after_conv2"), (3, "after_conv3"))]
    model = build("mmdet", groups=2, base_width=4, base_channels=8, num_stages=1,
                  out_indices=(0,), plugins=plugins)
    block = model.layer1[1]
    order = []
    names = ["conv1", "norm1", "context_block1", "conv2", "norm2", "context_block2", "conv3",
             "norm3", "context_block3"]
    for name in names:
        getattr(block, name).register_forward_hook(lambda *_, name=name: order.append(name))
    run(model.eval())
    assert order == names


def test_plugin_position_must_be_after_conv1_2_or_3():
    plugins = [dict(cfg=dict(type="ContextBlock", ratio=1.0 / 16), position="after_conv4")]
    with pytest.raises(ValueError, match="position"):
        resnet(plugins=plugins, base_channels=8)


def test_two_plugins_of_one_type_need_a_postfix():
    plugins = [dict(cfg=dict(type="ContextBlock", ratio=1.0 / 16), position="after_conv3")] * 2
    with pytest.raises(ValueError, match="postfix"):
        resnet(plugins=plugins, base_channels=8)


def test_plugin_stages_need_one_flag_per_stage():
    plugins = [dict(cfg=dict(type="ContextBlock", ratio=1.0 / 16), stages=(False, True, True),
                    position="after_conv3")]
    with pytest.raises(ValueError, match="stages"):
        resnet(plugins=plugins, base_channels=8)


def test_unknown_plugin_type_is_named():
    plugins = [dict(cfg=dict(type="WrongPlugin"), position="after_conv3")]
    with pytest.raises((KeyError, ValueError), match="WrongPlugin"):
        resnet(plugins=plugins, base_channels=8)


# ---------------------------------------------------------------------- invalid arguments

@pytest.mark.parametrize("kwargs, name", [
    (dict(depth=20, groups=1), "depth"),
    (dict(depth=18, groups=32), "depth"),
    (dict(depth=34, groups=1), "depth"),
    (dict(num_stages=0), "num_stages"),
    (dict(num_stages=5), "num_stages"),
    (dict(strides=(1,), dilations=(1, 1), num_stages=3), "strides"),
    (dict(dilations=(1, 1), num_stages=3), "dilations"),
    (dict(style="tensorflow"), "style"),
])
def test_invalid_arguments_are_named(kwargs, name):
    kwargs.setdefault("depth", 50)
    with pytest.raises(ValueError, match=name):
        build("mmdet", **kwargs)


def test_pretrained_string_becomes_init_cfg_with_a_warning():
    with pytest.warns(Warning, match="pretrained"):
        model = resnet(base_channels=1, pretrained="torchvision://resnet50")
    assert model.init_cfg == dict(type="Pretrained", checkpoint="torchvision://resnet50")
    model.train()
    assert not any(m.training for m in norm_layers(model))  # mmdet scope: norm_eval


def test_pretrained_must_be_a_string():
    with pytest.raises(TypeError, match="pretrained"):
        resnet(base_channels=1, pretrained=0)


def test_pretrained_and_init_cfg_together_are_refused():
    with pytest.raises(ValueError, match="pretrained"):
        resnet(base_channels=1, pretrained="x.pth",
               init_cfg=dict(type="Pretrained", checkpoint="y.pth"))


def test_init_weights_takes_no_pretrained_argument():
    with pytest.raises(TypeError):
        resnet(base_channels=1).init_weights(pretrained=0)

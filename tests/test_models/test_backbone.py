"""The backbone: arguments, invalid input, block forms, freezing, checkpointing."""
import copy

import pytest
import torch
from helpers import randomise_bn, tiny
from mmcv.cnn.bricks import DropPath
from torch import nn

from resnext_plugin.models import Bottleneck, ResNeXt, convert_block_form

# ---------------------------------------------------------------- widths, shapes, published info

def test_widths_are_derived_from_groups_and_width():
    model = ResNeXt(50, groups=32, width_per_group=4, out_indices=(0, 1, 2, 3))
    for i in range(4):
        conv2 = getattr(model, f"layer{i + 1}")[0].conv2
        assert conv2.out_channels == 32 * 4 * 2**i == model.stage_width(i)
        assert conv2.groups == 32
    assert model.out_channels == (256, 512, 1024, 2048)
    assert model.out_strides == (4, 8, 16, 32)
    assert [f["module"] for f in model.feature_info] == ["layer1", "layer2", "layer3", "layer4"]


@pytest.mark.parametrize("depth", [50, 101, 152])
def test_depth_sets_blocks(depth):
    model = ResNeXt(depth, groups=2, width_per_group=4, base_channels=8, stem_channels=8)
    blocks = tuple(len(getattr(model, f"layer{i}")) for i in range(1, 5))
    assert blocks == model.stage_blocks == {50: (3, 4, 6, 3), 101: (3, 4, 23, 3),
                                             152: (3, 8, 36, 3)}[depth]


def test_outputs_match_published_channels_and_strides():
    model = tiny(num_stages=4, out_indices=(0, 1, 2, 3)).eval()
    outs = model(torch.rand(2, 3, 64, 64))
    assert len(outs) == 4
    for out, channels, stride in zip(outs, model.out_channels, model.out_strides):
        assert out.shape == (2, channels, 64 // stride, 64 // stride)


def test_base_width_alias_and_in_channels():
    model = ResNeXt(50, groups=8, base_width=14, in_channels=1, num_stages=1, out_indices=(0,))
    assert model.width_per_group == 14
    assert model.layer1[0].conv2.out_channels == 112
    assert model.conv1.in_channels == 1
    assert model(torch.rand(1, 1, 32, 32))[0].shape == (1, 256, 8, 8)


def test_stem_and_base_channels():
    model = tiny(stem_channels=24, base_channels=8)
    assert model.conv1.out_channels == 24
    assert model.layer1[0].conv1.in_channels == 24
    assert model.out_channels == (32, 64)


def test_negative_out_indices_and_single_stage():
    model = tiny(num_stages=3, out_indices=(-1,))
    assert model.out_indices == (2,)
    assert len(model(torch.rand(1, 3, 32, 32))) == 1


def test_strides_and_dilations():
    model = tiny(strides=(1, 1), dilations=(1, 2)).eval()
    assert model.layer2[0].conv2.dilation == (2, 2)
    assert model.layer2[0].conv2.padding == (2, 2)
    outs = model(torch.rand(1, 3, 64, 64))
    assert outs[1].shape[-1] == 16  # no stride in stage 2
    assert model.out_strides == (4, 4)


@pytest.mark.parametrize("style,stride1,stride2", [("pytorch", 1, 2), ("caffe", 2, 1)])
def test_style_places_the_stride(style, stride1, stride2):
    block = tiny(style=style).layer2[0]
    assert block.conv1.stride == (stride1, stride1)
    assert block.conv2.stride == (stride2, stride2)


def test_deep_stem_and_avg_down_keys():
    model = tiny(deep_stem=True, avg_down=True, stem_channels=32)
    keys = model.state_dict().keys()
    assert "stem.0.conv.weight" in keys and "stem.2.bn.weight" in keys
    assert "conv1.weight" not in keys
    assert isinstance(model.layer2[0].downsample[0], nn.AvgPool2d)
    assert "layer2.0.downsample.1.weight" in keys
    assert model.eval()(torch.rand(1, 3, 32, 32))[1].shape == (1, 128, 4, 4)


def test_conv_and_norm_cfg_are_used_and_not_mutated():
    norm_cfg = dict(type="BN", momentum=0.01, requires_grad=False)
    conv_cfg = dict(type="Conv2d")
    saved = (copy.deepcopy(norm_cfg), copy.deepcopy(conv_cfg))
    model = tiny(norm_cfg=norm_cfg, conv_cfg=conv_cfg)
    assert (norm_cfg, conv_cfg) == saved
    assert model.bn1.momentum == 0.01 and model.norm1 is model.bn1
    assert not model.layer1[0].bn2.weight.requires_grad
    gn = tiny(norm_cfg=dict(type="GN", num_groups=4))
    # norm layers are named by type, as mmdet and mmpretrain name them
    assert isinstance(gn.layer1[0].gn1, nn.GroupNorm) and gn.layer1[0].norm1 is gn.layer1[0].gn1
    assert "gn1.weight" in gn.state_dict() and "layer1.0.gn3.bias" in gn.state_dict()


def test_zero_init_residual_and_init_cfg():
    model = tiny()
    model.init_weights()
    assert all(torch.all(m.norm3.weight == 0) for m in model.modules() if hasattr(m, "norm3"))
    model = tiny(zero_init_residual=False, init_cfg=dict(type="Constant", val=0.5, layer="Conv2d"))
    model.init_weights()
    assert torch.all(model.layer1[0].bn3.weight == 1)
    assert torch.all(model.conv1.weight == 0.5)


def test_drop_path_rate_rises_linearly():
    model = ResNeXt(50, groups=2, width_per_group=4, base_channels=8, stem_channels=8,
                    drop_path_rate=0.2)
    rates = [m.drop_prob for m in model.modules() if isinstance(m, DropPath)]
    assert len(rates) == 15  # the first block of 16 has rate 0
    assert rates[-1] == pytest.approx(0.2)
    assert rates == sorted(rates)


def test_state_dict_keys_are_the_standard_ones():
    keys = set(ResNeXt(50).state_dict())
    for key in ["conv1.weight", "bn1.running_var", "layer1.0.conv1.weight", "layer1.0.bn3.bias",
                "layer1.0.downsample.0.weight", "layer1.0.downsample.1.running_mean",
                "layer4.2.conv3.weight"]:
        assert key in keys


def test_wrong_input_channels_fail_at_forward():
    with pytest.raises(ValueError, match=r"in_channels=3.*\(1, 4, 32, 32\)"):
        tiny()(torch.rand(1, 4, 32, 32))


# ---------------------------------------------------------------- invalid arguments

@pytest.mark.parametrize("kwargs,pattern", [
    (dict(depth=34), r"`depth` must be one of \[29, 50, 101, 152, 200\]"),
    (dict(groups=0), r"`groups` must be an integer >= 1"),
    (dict(width_per_group=0), r"`width_per_group` must be an integer >= 1"),
    (dict(width_per_group=4, base_width=4), r"`width_per_group` or its mmdet alias `base_width`"),
    (dict(out_indices=(2,)), r"`out_indices` must be stage indices in \[-2, 1\]"),
    (dict(out_indices=(0, 0)), r"`out_indices` has duplicates"),
    (dict(frozen_stages=3), r"`frozen_stages` must be an integer in \[-1, num_stages=2\]"),
    (dict(strides=(1, 2, 2)), r"`strides` must have one entry per stage \(num_stages=2\)"),
    (dict(dilations=(1,)), r"`dilations` must have one entry per stage"),
    (dict(num_stages=5, out_indices=(0,)), r"`num_stages` must be an integer in \[1, 4\]"),
    (dict(depth=29, num_stages=4, out_indices=(0,)), r"`num_stages` .* \[1, 3\] for depth 29"),
    (dict(stem_type="tiny"), r"`stem_type` must be one of \('imagenet', 'cifar'\)"),
    (dict(stem_type="cifar", deep_stem=True), r"`deep_stem=True` is an ImageNet stem"),
    (dict(defaults="mmseg"), r"`defaults` must be one of \('mmdet', 'mmpretrain'\)"),
    (dict(plugins=[dict(cfg=dict(type="ContextBlock", ratio=0.25), position="after_conv3",
                        stages=(True,))]), r"`plugins\[0\].stages` must have one bool per stage"),
    (dict(plugins=[dict(cfg=dict(type="ContextBlock", ratio=0.25), position="after_conv4")]),
     r"`plugins\[0\]` position must be one of"),
    (dict(dcn=dict(type="DCN"), stage_with_dcn=(True,)), r"`stage_with_dcn` must have one bool"),
    (dict(dcn=dict(type="DCN"), stage_with_dcn=(True, True), conv_cfg=dict(type="ConvWS")),
     r"`conv_cfg` must be None when `dcn` is given"),
    (dict(dcn=dict(type="DCN"), stage_with_dcn=(True, True), block_form="a"),
     r"`dcn` needs block_form='c'"),
    (dict(init_cfg=dict(type="Kaiming"), pretrained="x.pth"), r"`init_cfg` or the deprecated"),
    (dict(block_form="d"), r"`block_form` must be one of \('a', 'b', 'c'\)"),
    (dict(style="tf"), r"`style` must be one of \('pytorch', 'caffe'\)"),
    (dict(drop_path_rate=1.5), r"`drop_path_rate` must be in \[0, 1\)"),
])
def test_invalid_arguments_name_the_argument(kwargs, pattern):
    if kwargs.get("dcn") is not None:
        pytest.importorskip("mmcv.ops", reason="DCN needs the compiled mmcv (here: mmcv-lite)")
    with pytest.raises(ValueError, match=pattern):
        tiny(**kwargs)


# ---------------------------------------------------------------- the paper's three templates

@pytest.mark.parametrize("form", ["a", "b"])
@pytest.mark.parametrize("train", [False, True])
def test_block_forms_compute_the_same_function(form, train):
    torch.manual_seed(0)
    model_c = tiny(groups=4, width_per_group=3)
    randomise_bn(model_c)
    model_x = tiny(groups=4, width_per_group=3, block_form=form)
    model_x.load_state_dict(convert_block_form(model_c.state_dict(), 4, "c", form))
    assert any(".paths.3." in k for k in model_x.state_dict())
    back = convert_block_form(model_x.state_dict(), 4, form, "c")  # and back, exactly
    for key, value in model_c.state_dict().items():
        assert torch.equal(back[key], value), key
    model_c.train(train)
    model_x.train(train)
    x = torch.rand(2, 3, 32, 32)
    # Train mode normalises with the statistics of this 2-image batch: the fp32 rounding of the
    # forms' different summation orders is divided by a small batch std (CI once saw 1.6e-5).
    atol = 1e-4 if train else 1e-5
    for out_c, out_x in zip(model_c(x), model_x(x)):
        torch.testing.assert_close(out_x, out_c, rtol=1e-4, atol=atol)


def test_block_form_conversion_rejects_wrong_groups():
    model_a = tiny(groups=2, block_form="a")
    with pytest.raises(ValueError, match="has no path 2"):
        convert_block_form(model_a.state_dict(), 4, "a", "c")
    with pytest.raises(ValueError, match="`dst_form` must be one of"):
        convert_block_form(model_a.state_dict(), 2, "a", "x")


# ---------------------------------------------------------------- freezing and norm_eval

def test_frozen_stages_and_norm_eval_hold_after_a_training_step():
    torch.manual_seed(0)
    model = tiny(frozen_stages=1, norm_eval=True)
    randomise_bn(model)
    model.train()
    frozen = {n: p.detach().clone() for n, p in model.named_parameters()
              if n.startswith(("conv1", "bn1", "layer1."))}
    stats = {n: b.clone() for n, b in model.named_buffers() if "running" in n}
    assert frozen and all(not p.requires_grad for n, p in model.named_parameters() if n in frozen)
    assert all(not m.training for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    assert model.layer1.training is False and model.layer2[0].conv1.training is True
    trainable = [p for p in model.parameters() if p.requires_grad]
    before = [p.detach().clone() for p in trainable]
    opt = torch.optim.SGD(trainable, lr=0.1)
    loss = sum(o.square().mean() for o in model(torch.rand(2, 3, 32, 32)))
    loss.backward()
    opt.step()
    params = dict(model.named_parameters())
    assert all(torch.equal(params[n], v) for n, v in frozen.items())
    assert all(params[n].grad is None for n in frozen)
    buffers = dict(model.named_buffers())
    assert all(torch.equal(buffers[n], v) for n, v in stats.items())
    assert any(not torch.equal(b, p) for b, p in zip(before, trainable))


def test_without_norm_eval_unfrozen_statistics_move():
    model = tiny(frozen_stages=0).train()
    mean = model.layer1[0].bn1.running_mean.clone()
    stem_mean = model.bn1.running_mean.clone()
    model(torch.rand(2, 3, 32, 32))
    assert not torch.equal(model.layer1[0].bn1.running_mean, mean)
    assert torch.equal(model.bn1.running_mean, stem_mean)
    assert not model.conv1.weight.requires_grad


def test_with_cp_gives_the_same_gradients():
    torch.manual_seed(0)
    plain = tiny()
    checkpointed = tiny(with_cp=True)
    checkpointed.load_state_dict(plain.state_dict())
    x = torch.rand(2, 3, 32, 32)
    grads = []
    for model in (plain, checkpointed):
        model.train()
        sum(o.sum() for o in model(x.clone().requires_grad_())).backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
    for name, grad in grads[0].items():
        torch.testing.assert_close(grads[1][name], grad, rtol=1e-5, atol=1e-6)


def test_channels_last_gives_the_same_outputs():
    torch.manual_seed(0)
    ref = tiny().eval()
    fast = tiny(channels_last=True).eval()
    fast.load_state_dict(ref.state_dict())
    x = torch.rand(2, 3, 32, 32)
    for a, b in zip(ref(x), fast(x)):
        assert b.is_contiguous(memory_format=torch.channels_last)
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)


def test_docstring_examples_run():
    import doctest

    from resnext_plugin.models import block_forms, blocks, resnext

    for module in (resnext, blocks, block_forms):
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert result.attempted > 0 and result.failed == 0, module.__name__


# ---------------------------------------------------------------- the paper's other networks

def test_no_residual_model_has_no_shortcuts_and_trains():
    with pytest.raises(ValueError, match="`zero_init_residual=True` needs the shortcuts"):
        tiny(residual=False, zero_init_residual=True)
    model = tiny(residual=False)
    assert not model.zero_init_residual  # a zero last norm would block every block's signal
    assert not any("downsample" in key for key in model.state_dict())
    assert all(not block.residual for block in model.modules() if isinstance(block, Bottleneck))
    with_shortcuts = tiny()
    x = torch.rand(2, 3, 32, 32)
    with_shortcuts.load_state_dict(model.state_dict(), strict=False)
    assert not torch.allclose(model.eval()(x)[-1], with_shortcuts.eval()(x)[-1])
    model.train()
    loss = sum(out.square().mean() for out in model(x))
    loss.backward()
    assert model.layer1[0].conv1.weight.grad.abs().sum() > 0


def test_cifar_resnext29_has_the_papers_layout():
    model = ResNeXt(29, groups=8, width_per_group=64, num_stages=3, out_indices=(2,),
                    stem_type="cifar", init_cfg=None)
    assert model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1)
    assert isinstance(model.maxpool, nn.Identity)
    assert [f["num_chs"] for f in model.feature_info] == [256, 512, 1024]
    assert [f["reduction"] for f in model.feature_info] == [1, 2, 4]
    assert [model.stage_width(i) for i in range(3)] == [512, 1024, 2048]
    assert model.eval()(torch.rand(1, 3, 32, 32))[0].shape == (1, 1024, 8, 8)


def test_depth_200_has_the_resnet200_block_counts():
    model = ResNeXt(200, groups=1, num_stages=4, base_channels=8, stem_channels=8, init_cfg=None)
    assert model.stage_blocks == (3, 24, 36, 3)
    assert model.layer1[0].conv2.out_channels == 8  # groups=1 without a width: a ResNet


def test_deprecated_pretrained_becomes_init_cfg():
    with pytest.warns(DeprecationWarning, match="`pretrained` is deprecated"):
        model = tiny(pretrained="x.pth")
    assert model.init_cfg == dict(type="Pretrained", checkpoint="x.pth")
    with pytest.raises(TypeError, match="`pretrained` must be a checkpoint path"):
        tiny(pretrained=0)


def test_deformable_convolutions_run_in_a_channels_last_model():
    pytest.importorskip("mmcv.ops", reason="DCN needs the compiled mmcv (this stack: mmcv-lite)")

    kwargs = dict(dcn=dict(type="DCNv2"), stage_with_dcn=(False, True), init_cfg=None)
    reference = tiny(**kwargs).eval()
    model = tiny(**kwargs, channels_last=True).eval()
    model.load_state_dict(reference.state_dict())
    x = torch.rand(1, 3, 64, 64)
    for ours, theirs in zip(model(x), reference(x)):
        assert torch.allclose(ours, theirs, atol=1e-5)

"""Performance features, tested for correctness only (nothing here is timed).

* ``fuse_conv_bn`` folds every BatchNorm and leaves the outputs unchanged;
* ``channels_last=True`` runs end to end in that memory format without activation copies;
* ``torch.compile`` traces the backbone without graph breaks, and mmengine's runner
  ``compile`` option trains a model holding it;
* the benchmark's peers load the same weights and compute the same function.
"""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from torch.profiler import ProfilerActivity, profile

import resnext_plugin  # noqa: F401  (registers resnext_plugin.ResNeXt)
from resnext_plugin import perf
from resnext_plugin.benchmark import backbone as bench
from resnext_plugin.benchmark.detector import detector_configs
from resnext_plugin.models import ResNeXt
from resnext_plugin.models.fuse import fuse_conv_bn

ROOT = Path(__file__).resolve().parents[2]
CL = torch.channels_last
#: Small but complete: two stages, projection shortcuts, grouped convolutions.
TINY = dict(depth=50, groups=4, width_per_group=4, num_stages=2, out_indices=(0, 1),
            init_cfg=None)


def _load_benchmark_tool():
    """The command line (argument checks); the library is resnext_plugin.benchmark."""
    from resnext_plugin.cli import benchmark

    return benchmark


@torch.no_grad()
def _randomise(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial weights and BatchNorm statistics, so that folding has something to fold."""
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            fan_out = module.out_channels * module.kernel_size[0] * module.kernel_size[1]
            module.weight.copy_(torch.randn(module.weight.shape, generator=generator)
                                * (2.0 / fan_out) ** 0.5)
        elif isinstance(module, nn.modules.batchnorm._BatchNorm):
            n = module.num_features
            module.weight.copy_(0.5 + torch.rand(n, generator=generator))
            module.bias.copy_(0.2 * torch.randn(n, generator=generator))
            module.running_mean.copy_(0.2 * torch.randn(n, generator=generator))
            module.running_var.copy_(0.5 + torch.rand(n, generator=generator))
    return model


def _tiny(**kwargs) -> ResNeXt:
    return _randomise(ResNeXt(**{**TINY, **kwargs}))


def _assert_same_outputs(outs, refs, rtol=1e-4):
    assert len(outs) == len(refs)
    for out, ref in zip(outs, refs):
        assert out.shape == ref.shape
        scale = ref.abs().max().item()
        assert scale > 0
        assert (out - ref).abs().max().item() <= rtol * scale


# ------------------------------------------------------------------------------------------
# fuse_conv_bn
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs", [
    dict(),
    dict(avg_down=True),
    dict(deep_stem=True),
    dict(style="caffe"),
    dict(channels_last=True),
    dict(block_form="b"),
    dict(block_form="a"),
], ids=["c", "avg_down", "deep_stem", "caffe", "channels_last", "form_b", "form_a"])
def test_fuse_conv_bn_keeps_outputs_and_removes_every_batchnorm(kwargs):
    model = _tiny(**kwargs).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        reference = model(x)
        fused = fuse_conv_bn(model)
        outs = fused(x)
    assert fused is model
    assert not [name for name, m in model.named_modules()
                if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    _assert_same_outputs(outs, reference)


def test_fuse_conv_bn_sets_conv_biases_and_is_idempotent():
    model = _tiny().eval()
    x = torch.randn(1, 3, 64, 64)
    fuse_conv_bn(model)
    assert model.conv1.bias is not None and model.layer1[0].conv2.bias is not None
    assert model.layer1[0].downsample[0].bias is not None
    assert isinstance(model.layer1[0].downsample[1], nn.Identity)
    with torch.no_grad():
        once = model(x)
        twice = fuse_conv_bn(model)(x)
    for a, b in zip(once, twice):
        assert torch.equal(a, b)


def test_fuse_conv_bn_keeps_channels_last_weights():
    model = _tiny(channels_last=True).eval()
    fuse_conv_bn(model)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert convs and all(c.weight.is_contiguous(memory_format=CL) for c in convs)


def test_fuse_conv_bn_inside_a_classifier():
    from mmpretrain.registry import MODELS as MMPRETRAIN_MODELS

    classifier = MMPRETRAIN_MODELS.build(dict(
        type="ImageClassifier",
        backbone=dict(type="resnext_plugin.ResNeXt", **{**TINY, "out_indices": (1,)}),
        neck=dict(type="GlobalAveragePooling"),
        head=dict(type="LinearClsHead", num_classes=3, in_channels=512),
    ))
    _randomise(classifier).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        reference = classifier(x, mode="tensor")
        fuse_conv_bn(classifier)
        out = classifier(x, mode="tensor")
    _assert_same_outputs([out], [reference])
    assert not any(isinstance(m, nn.BatchNorm2d) for m in classifier.backbone.modules())


def test_fuse_conv_bn_leaves_group_norm_alone():
    model = _tiny(norm_cfg=dict(type="GN", num_groups=4)).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        reference = model(x)
        outs = fuse_conv_bn(model)(x)
    assert sum(isinstance(m, nn.GroupNorm) for m in model.modules()) > 0
    assert model.conv1.bias is None
    for out, ref in zip(outs, reference):
        assert torch.equal(out, ref)


def test_fuse_conv_bn_refuses_training_mode():
    model = _tiny().train()
    with pytest.raises(ValueError, match=r"bn1.*training mode.*eval"):
        fuse_conv_bn(model)
    assert isinstance(model.bn1, nn.BatchNorm2d)  # nothing was half-fused


def test_fuse_conv_bn_refuses_models_without_the_backbone():
    with pytest.raises(ValueError, match="no resnext_plugin ResNeXt"):
        fuse_conv_bn(nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)).eval())
    with pytest.raises(TypeError, match="nn.Module"):
        fuse_conv_bn("resnext")


# ------------------------------------------------------------------------------------------
# channels_last end to end
# ------------------------------------------------------------------------------------------
def _copy_ops(prof) -> list:
    return [e for e in prof.events() if e.name in ("aten::copy_", "aten::_to_copy", "aten::clone")]


@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
def test_channels_last_every_module_output_is_channels_last(training):
    model = _tiny(channels_last=True, out_indices=(0, 1)).train(training)
    assert all(p.is_contiguous(memory_format=CL) for p in model.parameters() if p.dim() == 4)
    wrong = []

    def hook(module, _inputs, output):
        if isinstance(output, torch.Tensor) and output.dim() == 4 and \
                not output.is_contiguous(memory_format=CL):
            wrong.append(type(module).__name__)

    handles = [m.register_forward_hook(hook) for m in model.modules() if m is not model]
    try:
        outs = model(torch.randn(2, 3, 64, 64))  # NCHW input: converted once, at the entry
    finally:
        for handle in handles:
            handle.remove()
    assert wrong == []
    assert all(out.is_contiguous(memory_format=CL) for out in outs)


def test_channels_last_forward_makes_no_copies():
    model = _tiny(channels_last=True).eval()
    x = torch.randn(2, 3, 64, 64)
    x_cl = x.contiguous(memory_format=CL)
    with torch.no_grad(), profile(activities=[ProfilerActivity.CPU]) as prof:
        model(x_cl)
    assert _copy_ops(prof) == []
    with torch.no_grad(), profile(activities=[ProfilerActivity.CPU]) as prof:
        model(x)
    # an NCHW input is converted once, by the backbone's entry
    assert [e.name for e in _copy_ops(prof) if e.name == "aten::copy_"] == ["aten::copy_"]


def test_channels_last_backward_copies_no_activations():
    model = _tiny(channels_last=True).train()
    x = torch.randn(2, 3, 64, 64).contiguous(memory_format=CL)
    param_shapes = {tuple(p.shape) for p in model.parameters()}
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        outs = model(x)
        torch.autograd.backward(outs, [torch.ones_like(out) for out in outs])
    copied = {tuple(e.input_shapes[0]) for e in _copy_ops(prof) if e.input_shapes}
    # oneDNN converts weight gradients to the weights' format; no activation is ever copied
    assert copied - param_shapes - {()} == set()
    grads = [p.grad for p in model.parameters() if p.dim() == 4]
    assert grads and all(g.is_contiguous(memory_format=CL) for g in grads)


# ------------------------------------------------------------------------------------------
# torch.compile
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels_last"])
@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
def test_backbone_traces_without_graph_breaks(training, channels_last):
    torch._dynamo.reset()
    model = _tiny(num_stages=1, out_indices=(0,), channels_last=channels_last).train(training)
    x = torch.randn(2, 3, 32, 32)
    explanation = torch._dynamo.explain(model)(x)
    assert explanation.graph_break_count == 0, explanation.break_reasons
    assert explanation.graph_count == 1


def test_compiled_backbone_fullgraph_matches_eager_in_training():
    torch._dynamo.reset()
    eager = _tiny(num_stages=1, out_indices=(0,), channels_last=True).train()
    compiled_model = copy.deepcopy(eager)
    compiled = torch.compile(compiled_model, backend="aot_eager", fullgraph=True)
    x = torch.randn(2, 3, 32, 32)
    out_eager, out_compiled = eager(x)[0], compiled(x)[0]
    _assert_same_outputs([out_compiled], [out_eager])
    out_eager.square().mean().backward()
    out_compiled.square().mean().backward()
    for (name, p), q in zip(eager.named_parameters(), compiled_model.parameters()):
        assert q.grad is not None, name
        assert torch.allclose(p.grad, q.grad, rtol=1e-3, atol=1e-6), name


def _write_image_folder(root: Path, per_class: int = 2) -> None:
    rng = np.random.default_rng(0)
    for label in ("a", "b"):
        folder = root / label
        folder.mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 255, size=(32, 32, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / f"{i}.png")


def _train_with_runner(tmp_path: Path, compile_cfg) -> "object":
    from mmengine.config import Config
    from mmengine.runner import Runner

    data_root = tmp_path / "data"
    _write_image_folder(data_root)
    cfg = Config(dict(
        default_scope="mmpretrain",
        model=dict(
            type="ImageClassifier",
            data_preprocessor=dict(type="ClsDataPreprocessor", num_classes=2,
                                   mean=[127.5] * 3, std=[127.5] * 3, to_rgb=True),
            backbone=dict(type="resnext_plugin.ResNeXt", depth=50, groups=4, width_per_group=4,
                          num_stages=1, out_indices=(0,), channels_last=True),
            neck=dict(type="GlobalAveragePooling"),
            head=dict(type="LinearClsHead", num_classes=2, in_channels=256,
                      loss=dict(type="CrossEntropyLoss")),
        ),
        train_dataloader=dict(
            batch_size=2, num_workers=0,
            dataset=dict(type="CustomDataset", data_root=str(data_root),
                         pipeline=[dict(type="LoadImageFromFile"), dict(type="PackInputs")]),
            sampler=dict(type="DefaultSampler", shuffle=False),
        ),
        train_cfg=dict(by_epoch=True, max_epochs=1),
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.01, momentum=0.9)),
        default_hooks=dict(logger=dict(type="LoggerHook", interval=1), checkpoint=None),
        compile=compile_cfg,
        work_dir=str(tmp_path / "work"),
        env_cfg=dict(cudnn_benchmark=False, dist_cfg=dict(backend="gloo")),
        log_level="WARNING",
    ))
    runner = Runner.from_cfg(cfg)
    before = runner.model.backbone.conv1.weight.detach().clone()
    runner.train()
    return runner, before


def _assert_trained_compiled(runner, before, unique_graphs_before: int) -> None:
    from torch._dynamo.utils import counters

    assert runner.iter == 2
    assert counters["stats"]["unique_graphs"] > unique_graphs_before  # dynamo compiled frames
    loss = runner.message_hub.get_scalar("train/loss").current()
    assert np.isfinite(loss)
    assert not torch.equal(runner.model.backbone.conv1.weight, before)
    assert runner.model.backbone.conv1.weight.is_contiguous(memory_format=CL)


def test_runner_compile_trains_with_the_backbone(tmp_path):
    """mmengine's ``compile`` option (``Runner._maybe_compile``), backend ``aot_eager``."""
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    graphs = counters["stats"]["unique_graphs"]
    runner, before = _train_with_runner(tmp_path, dict(backend="aot_eager"))
    _assert_trained_compiled(runner, before, graphs)


@pytest.mark.slow
def test_runner_compile_true_inductor(tmp_path):
    """``compile=True``: the default inductor backend, generating and compiling C++."""
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    graphs = counters["stats"]["unique_graphs"]
    runner, before = _train_with_runner(tmp_path, True)
    _assert_trained_compiled(runner, before, graphs)


# ------------------------------------------------------------------------------------------
# The benchmark's building blocks (not its timings)
# ------------------------------------------------------------------------------------------
def test_benchmark_candidates_share_weights_and_function():
    arch = bench.Arch(depth=50, groups=2, width=4)
    weights = bench.reference_weights(arch)
    x = torch.randn(1, 3, 32, 32)
    known = bench.all_variants()
    names = ["plugin", "mmpretrain", "mmdet", "torchvision", "torchvision-cl", "plugin-fused-cl"]
    outs = {}
    for name in names:
        model = bench.build_variant(known[name], arch, weights, torch.device("cpu"), False)
        outs[name] = bench.inference_step(known[name], model, x, torch.device("cpu"))()[-1]
    for name in ("mmpretrain", "mmdet", "torchvision"):
        assert torch.equal(outs[name], outs["plugin"]), name
    for name in names[4:]:
        _assert_same_outputs([outs[name]], [outs["plugin"]])


def test_benchmark_training_step_updates_weights():
    arch = bench.Arch(depth=50, groups=2, width=4)
    variant = bench.all_variants()["plugin-cl"]
    model = bench.build_variant(variant, arch, bench.reference_weights(arch),
                                torch.device("cpu"), True)
    before = model.conv1.weight.detach().clone()
    loss = bench.training_step(variant, model, torch.randn(2, 3, 32, 32), torch.device("cpu"))()
    assert torch.isfinite(loss)
    assert not torch.equal(model.conv1.weight, before)


def test_benchmark_detector_configs_swap_only_the_backbone():
    configs = detector_configs(bench.Arch(50, 32, 4))
    stock, ours = configs["mmdet-stock"], configs["plugin"]
    assert stock["backbone"]["type"] == "ResNeXt"
    assert ours["backbone"]["type"] == "resnext_plugin.ResNeXt"
    assert ours["backbone"]["width_per_group"] == stock["backbone"]["base_width"] == 4
    assert configs["plugin-cl"]["backbone"]["channels_last"] is True
    assert "channels_last" not in ours["backbone"]
    assert configs["plugin-cl-fold"]["backbone"]["fold_frozen_bn"] is True
    assert {k: v for k, v in ours.items() if k != "backbone"} == \
        {k: v for k, v in stock.items() if k != "backbone"}


def test_benchmark_rejects_bad_arguments(capsys):
    tool = _load_benchmark_tool()
    with pytest.raises(SystemExit):
        tool.parse_args(["--size", "16"])
    assert "--size must be >= 32" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        tool.parse_args(["--batch", "0,2"])
    with pytest.raises(SystemExit, match="unknown.*nope"):
        tool.main(["--variants", "plugin,nope", "--quick"])
    with pytest.raises(SystemExit):
        tool.parse_args(["--runner", "--rounds", "0"])
    assert tool.main(["--runner", "--scenarios", "nope", "--out", "/nonexistent/x"]) == 2


def test_interleaved_timings_round_robin_order():
    calls = []
    timings = perf.interleaved_timings(
        {name: (lambda n=name: calls.append(n)) for name in "ABC"}, repeats=3, warmup=1)
    assert calls == list("ABC") + list("ABC") + list("BCA") + list("CAB")
    assert {name: len(t.seconds) for name, t in timings.items()} == {"A": 3, "B": 3, "C": 3}
    with pytest.raises(ValueError, match="repeats"):
        perf.interleaved_timings({"A": lambda: None}, repeats=0, warmup=0)


def test_peak_memory_sees_torch_cpu_allocations():
    def allocate():
        a = torch.ones(1 << 20)  # 4 MiB
        b = torch.ones(1 << 20)
        return float((a + b).sum())

    peak = perf.peak_memory_bytes(allocate, torch.device("cpu"))
    assert 12 * 2**20 <= peak < 13 * 2**20  # a, b and a + b alive together


# ------------------------------------------------------------------------------------------
# fold_frozen_bn: the same function and the same gradients, without BatchNorm passes
# ------------------------------------------------------------------------------------------
#: The detection backbone's settings (configs/_base_/mask-rcnn_resnext_fpn.py), smaller.
DETECTION = dict(depth=50, groups=4, width_per_group=4, base_channels=16, stem_channels=16,
                 num_stages=4, out_indices=(0, 1, 2, 3), frozen_stages=1, norm_eval=True,
                 init_cfg=None)


def _forward_backward(model: nn.Module, x: torch.Tensor, upstream: list) -> tuple[list, dict]:
    model.zero_grad(set_to_none=True)
    outs = model(x)
    pairs = [(out, up) for out, up in zip(outs, upstream) if out.requires_grad]  # not layer1
    torch.autograd.backward([p[0] for p in pairs], [p[1] for p in pairs])
    grads = {name: p.grad for name, p in model.named_parameters() if p.grad is not None}
    return [out.detach() for out in outs], grads


def _rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    """Largest deviation relative to the largest magnitude of ``b``."""
    return ((a.double() - b.double()).abs().max() / b.double().abs().max()).item()


@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels_last"])
def test_fold_frozen_bn_keeps_outputs_and_gradients_within_fp32_rounding(channels_last):
    """Folded and unfolded models in training mode (norm_eval=True, stem and layer1 frozen): the
    difference between them is within a few times the fp32 rounding error of the unfolded
    model itself (measured against a float64 run of it), for outputs and every gradient.

    Seeded: a rounding difference can flip a ReLU whose input is within rounding of zero, which
    no tolerance on rounding covers, so the input must not depend on what ran before."""
    torch.manual_seed(0)
    reference = _randomise(ResNeXt(**DETECTION, channels_last=channels_last)).train()
    folded = copy.deepcopy(reference)
    folded.fold_frozen_bn = True
    exact = copy.deepcopy(reference).double()
    x = torch.randn(2, 3, 64, 64)
    torch.manual_seed(1)
    upstream = [torch.randn_like(out) for out in reference(x)]

    out_ref, grad_ref = _forward_backward(reference, x, upstream)
    out_fold, grad_fold = _forward_backward(folded, x, upstream)
    out_exact, grad_exact = _forward_backward(exact, x.double(), [u.double() for u in upstream])

    assert grad_fold.keys() == grad_ref.keys() == grad_exact.keys()
    frozen = {n for n, p in reference.named_parameters() if not p.requires_grad}
    assert frozen and not frozen & grad_ref.keys()  # the stem and layer1 get no gradient
    assert any(".bn" in n or n.startswith("bn") for n in grad_fold)  # BN affine parameters do
    for out_f, out_r, out_e in zip(out_fold, out_ref, out_exact):
        rounding = _rel_err(out_r, out_e)
        assert _rel_err(out_f, out_e) <= max(4 * rounding, 1e-6), (rounding,)
        assert _rel_err(out_f, out_r) <= 1e-4
    for name, grad in grad_ref.items():
        rounding = _rel_err(grad, grad_exact[name])
        assert _rel_err(grad_fold[name], grad_exact[name]) <= max(4 * rounding, 1e-6), name
        assert _rel_err(grad_fold[name], grad) <= 1e-4, name


def test_fold_frozen_bn_runs_no_batchnorm_and_steps_like_the_unfolded_model():
    reference = _randomise(ResNeXt(**DETECTION)).train()
    folded = copy.deepcopy(reference)
    folded.fold_frozen_bn = True
    x = torch.randn(2, 3, 64, 64)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        outs = folded(x)
        sum(out.mean() for out in outs).backward()
    names = {e.name for e in prof.events()}
    assert not {n for n in names if "batch_norm" in n}
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        reference(x)
    assert any("batch_norm" in e.name for e in prof.events())
    # one SGD step each: the weights stay equal within fp32 rounding, running stats untouched
    stats = {n: b.clone() for n, b in folded.named_buffers()}
    for model in (reference, folded):
        optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
        model.zero_grad()
        sum(out.square().mean() for out in model(x)).backward()
        optimizer.step()
    for (name, p), q in zip(reference.named_parameters(), folded.parameters()):
        assert _rel_err(q.detach(), p.detach()) <= 1e-5, name
    for name, buffer in folded.named_buffers():
        assert torch.equal(buffer, stats[name]), name


def test_fold_frozen_bn_leaves_training_mode_batchnorm_alone():
    """norm_eval=False: BatchNorms use batch statistics, nothing may be folded."""
    model = _randomise(ResNeXt(**{**DETECTION, "norm_eval": False, "frozen_stages": -1},
                               fold_frozen_bn=True)).train()
    plain = copy.deepcopy(model)
    plain.fold_frozen_bn = False
    before = model.bn1.running_mean.clone()
    x = torch.randn(2, 3, 64, 64)
    for a, b in zip(model(x), plain(x)):
        assert torch.equal(a, b)
    assert torch.equal(model.bn1.running_mean, plain.bn1.running_mean)
    assert not torch.equal(model.bn1.running_mean, before)  # batch statistics were used


def test_fold_frozen_bn_in_the_detection_config_gives_mask_rcnn_the_same_gradients():
    """The Mask R-CNN of our detection config (fold on, as the config has it) against the same
    model with it off, through backbone, FPN and the RPN's losses: losses and every gradient
    agree within a few times the fp32 rounding error (measured against float64). The RoI
    losses are left out: they depend on which proposals survive NMS, where fp32 rounding of any
    change can flip near-ties (and mmcv's NMS takes no float64)."""
    from mmdet.registry import MODELS
    from mmdet.testing import demo_mm_inputs
    from mmdet.utils import register_all_modules
    from mmengine.config import Config

    register_all_modules(init_default_scope=True)
    cfg = Config.fromfile(str(ROOT / "configs/demo/mask-rcnn_resnext50-32x4d_fpn_demo.py"))
    assert cfg.model.backbone.fold_frozen_bn is True
    cfg.model.backbone.update(init_cfg=None, groups=4, width_per_group=4)
    torch.manual_seed(0)
    folded = MODELS.build(cfg.model)
    folded.init_weights()
    _randomise(folded.backbone)
    plain = copy.deepcopy(folded)
    plain.backbone.fold_frozen_bn = False
    exact = copy.deepcopy(plain).double()
    data = demo_mm_inputs(batch_size=2, image_shapes=[(3, 64, 64)] * 2, num_items=[3, 2],
                          num_classes=4, with_mask=True)

    def rpn_step(model: nn.Module, dtype: torch.dtype) -> tuple[torch.Tensor, dict]:
        model.train()
        model.zero_grad()
        processed = model.data_preprocessor(copy.copy(data), True)
        samples = copy.deepcopy(processed["data_samples"])
        for sample in samples:  # what TwoStageDetector.loss does for the RPN
            sample.gt_instances.labels = torch.zeros_like(sample.gt_instances.labels)
        torch.manual_seed(0)  # the same anchor samples
        feats = model.extract_feat(processed["inputs"].to(dtype))
        loss, _ = model.parse_losses(model.rpn_head.loss(feats, samples))
        loss.backward()
        return loss.detach(), {n: p.grad for n, p in model.named_parameters()
                               if p.grad is not None}

    loss_plain, grads_plain = rpn_step(plain, torch.float32)
    loss_fold, grads_fold = rpn_step(folded, torch.float32)
    loss_exact, grads_exact = rpn_step(exact, torch.float64)
    rounding = abs(loss_plain.double() - loss_exact) / abs(loss_exact)
    assert abs(loss_fold.double() - loss_exact) / abs(loss_exact) <= max(4 * rounding, 1e-6)
    assert grads_fold.keys() == grads_plain.keys() == grads_exact.keys()
    assert any(n.startswith("backbone.layer4") for n in grads_fold)
    assert not any(n.startswith("backbone.layer1") for n in grads_fold)  # frozen
    for name, grad in grads_plain.items():
        rounding = _rel_err(grad, grads_exact[name])
        assert _rel_err(grads_fold[name], grads_exact[name]) <= max(4 * rounding, 1e-6), name


# ------------------------------------------------------------------------------------------
# channels_last through a detector: mmcv's RoIAlign needs NCHW
# ------------------------------------------------------------------------------------------
def test_roi_align_guard_gives_channels_last_features_the_nchw_result():
    from mmcv.ops import RoIAlign
    from mmcv.ops.roi_align import RoIAlignFunction

    from resnext_plugin.upstream_fixes import contiguous_roi_align

    x = torch.randn(2, 8, 16, 16)
    rois = torch.tensor([[0, 1.0, 1.0, 8.0, 8.0], [1, 2.0, 3.0, 12.0, 9.0]])
    op = RoIAlign((7, 7), 1.0, 0)
    unguarded = getattr(RoIAlignFunction.forward, "__wrapped__", RoIAlignFunction.forward)

    class Unguarded(torch.autograd.Function):
        forward = staticmethod(unguarded)
        backward = RoIAlignFunction.backward

    x_cl = x.contiguous(memory_format=CL)
    raw = Unguarded.apply(x_cl, rois, (7, 7), 1.0, 0, "avg", True)
    assert not torch.allclose(raw, op(x, rois))  # what mmcv does with NHWC input, unguarded
    contiguous_roi_align()
    assert contiguous_roi_align() is False  # idempotent
    a = x.clone().requires_grad_(True)
    b = x_cl.clone().requires_grad_(True)
    out_a, out_b = op(a, rois), op(b, rois)
    assert torch.equal(out_a, out_b)
    (out_a * torch.arange(out_a.numel()).reshape(out_a.shape)).sum().backward()
    (out_b * torch.arange(out_b.numel()).reshape(out_b.shape)).sum().backward()
    assert torch.equal(a.grad, b.grad)


def test_channels_last_detector_roi_features_match_nchw():
    """Our detection config with channels_last=True: the FPN's outputs are NHWC, and the RoI
    features mmdet's extractor takes from them equal the NCHW model's."""
    from mmdet.registry import MODELS
    from mmdet.structures.bbox import bbox2roi
    from mmdet.utils import register_all_modules
    from mmengine.config import Config

    from resnext_plugin.engine.channels_last import to_channels_last
    from resnext_plugin.upstream_fixes import contiguous_roi_align

    contiguous_roi_align()
    register_all_modules(init_default_scope=True)
    cfg = Config.fromfile(str(ROOT / "configs/demo/mask-rcnn_resnext50-32x4d_fpn_demo.py"))
    cfg.model.backbone.update(init_cfg=None, groups=4, width_per_group=4)
    torch.manual_seed(0)
    nchw = MODELS.build(cfg.model).eval()
    nchw.init_weights()
    whole = to_channels_last(copy.deepcopy(nchw))
    backbone_only = copy.deepcopy(nchw)
    backbone_only.backbone.channels_last = True
    x = torch.randn(2, 3, 64, 64)
    rois = bbox2roi([torch.tensor([[4.0, 4.0, 40.0, 30.0], [10.0, 12.0, 60.0, 60.0]]),
                     torch.tensor([[0.0, 0.0, 63.0, 63.0]])])
    with torch.no_grad():
        reference = nchw.extract_feat(x)
        ref_rois = nchw.roi_head.bbox_roi_extractor(reference, rois)
        for model in (whole, backbone_only):
            feats = model.extract_feat(x)
            assert all(f.is_contiguous(memory_format=CL) for f in feats)
            _assert_same_outputs(feats, reference)
            _assert_same_outputs([model.roi_head.bbox_roi_extractor(feats, rois)], [ref_rois])
    assert all(p.is_contiguous(memory_format=CL) for p in whole.parameters() if p.dim() == 4)

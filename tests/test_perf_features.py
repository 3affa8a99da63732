"""Performance features, tested for correctness only (nothing here is timed).

* ``fuse_conv_bn`` folds every BatchNorm and leaves the outputs unchanged;
* ``channels_last=True`` runs end to end in that memory format without activation copies;
* ``torch.compile`` traces the backbone without graph breaks, and mmengine's runner
  ``compile`` option trains a model holding it;
* the benchmark's peers load the same weights and compute the same function.
"""
from __future__ import annotations

import copy
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from torch.profiler import ProfilerActivity, profile

import resnext_plugin  # noqa: F401  (registers resnext_plugin.ResNeXt)
from resnext_plugin import perf
from resnext_plugin.models import ResNeXt
from resnext_plugin.models.fuse import fuse_conv_bn

ROOT = Path(__file__).resolve().parents[1]
CL = torch.channels_last
#: Small but complete: two stages, projection shortcuts, grouped convolutions.
TINY = dict(depth=50, groups=4, width_per_group=4, num_stages=2, out_indices=(0, 1),
            init_cfg=None)


def _load_benchmark():
    spec = importlib.util.spec_from_file_location("resnext_benchmark", ROOT / "tools/benchmark.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


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
    bench = _load_benchmark()
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
    bench = _load_benchmark()
    arch = bench.Arch(depth=50, groups=2, width=4)
    variant = bench.all_variants()["plugin-cl"]
    model = bench.build_variant(variant, arch, bench.reference_weights(arch),
                                torch.device("cpu"), True)
    before = model.conv1.weight.detach().clone()
    loss = bench.training_step(variant, model, torch.randn(2, 3, 32, 32), torch.device("cpu"))()
    assert torch.isfinite(loss)
    assert not torch.equal(model.conv1.weight, before)


def test_benchmark_detector_configs_swap_only_the_backbone():
    bench = _load_benchmark()
    configs = bench.detector_configs(bench.Arch(50, 32, 4))
    stock, ours = configs["mmdet-stock"], configs["plugin"]
    assert stock["backbone"]["type"] == "ResNeXt"
    assert ours["backbone"]["type"] == "resnext_plugin.ResNeXt"
    assert ours["backbone"]["width_per_group"] == stock["backbone"]["base_width"] == 4
    assert configs["plugin-cl"]["backbone"]["channels_last"] is True
    assert "channels_last" not in ours["backbone"]
    assert {k: v for k, v in ours.items() if k != "backbone"} == \
        {k: v for k, v in stock.items() if k != "backbone"}


def test_benchmark_rejects_bad_arguments(capsys):
    bench = _load_benchmark()
    with pytest.raises(SystemExit):
        bench.parse_args(["--size", "16"])
    assert "--size must be >= 32" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench.parse_args(["--batch", "0,2"])
    with pytest.raises(SystemExit, match="unknown.*nope"):
        bench.main(["--variants", "plugin,nope", "--quick"])


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

"""``resnext_plugin.AmpOptimWrapper`` and ``tools/train.py --amp``: mixed precision on any device.

The decision is tested against this machine's real CPU features (its /proc/cpuinfo flags); the
bf16 code path is exercised on any CPU by handing the wrapper a "native bf16" capability (slow
where bf16 is emulated, so only on tiny inputs). Nothing here is timed.
"""
from __future__ import annotations

import copy
import math
import platform
from pathlib import Path

import pytest
import torch
from helpers import logged_training
from mmengine.config import Config
from mmengine.registry import OPTIM_WRAPPERS, init_default_scope
from torch import nn

import resnext_plugin.engine.amp as amp
from resnext_plugin import perf
from resnext_plugin.demo_data.imagenet import DemoImageNetSpec, make_demo_imagenet
from resnext_plugin.engine.amp import AmpOptimWrapper, autocast_scopes, decide_amp

ROOT = Path(__file__).resolve().parents[2]
CLS_DEMO = ROOT / "configs" / "demo" / "resnext50_32x4d_imagenet_demo.py"
DET_DEMO = ROOT / "configs" / "demo" / "mask-rcnn_resnext50-32x4d_fpn_demo.py"


def _cpuinfo_flags() -> set[str]:
    with open("/proc/cpuinfo", encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    return set()


def _forced_native(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let the wrapper take its native-bf16 path on this CPU (bf16 may be emulated here)."""
    monkeypatch.setattr(amp, "cpu_bf16_support", lambda: (True, "forced by the test"))


def test_the_wrapper_is_registered_in_the_plugins_scope_as_the_hooks_are():
    from resnext_plugin import registry

    assert amp.OPTIM_WRAPPERS is registry.OPTIM_WRAPPERS
    assert registry.OPTIM_WRAPPERS.get("AmpOptimWrapper") is AmpOptimWrapper
    assert OPTIM_WRAPPERS.get("resnext_plugin.AmpOptimWrapper") is AmpOptimWrapper


def _wrapper(model: nn.Module, **kwargs) -> AmpOptimWrapper:
    init_default_scope("mmengine")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    return OPTIM_WRAPPERS.build(dict(type="resnext_plugin.AmpOptimWrapper", **kwargs),
                                default_args=dict(optimizer=optimizer))


# ------------------------------------------------------------------------------ the decision
@pytest.mark.skipif(platform.machine() != "x86_64" or not Path("/proc/cpuinfo").exists(),
                    reason="reads x86 flags from /proc/cpuinfo")
def test_cpu_bf16_support_matches_the_cpu_flags():
    flags = _cpuinfo_flags()
    native, what = perf.cpu_bf16_support()
    # oneDNN also needs AVX-512 core for its bf16 kernels; every AVX512_BF16/AMX CPU has it
    assert native == bool(flags & {"avx512_bf16", "amx_bf16", "amx_tile"})
    assert what
    assert perf.cpu_supports_bf16() == native


def test_decision_on_this_cpu_uses_the_real_capability_query():
    native, what = perf.cpu_bf16_support()
    decision = decide_amp("cpu")
    assert decision.device_type == "cpu" and not decision.loss_scaling
    if native:
        assert decision.dtype == torch.bfloat16 and decision.enabled
        assert "bf16 autocast" in decision.reason
    else:
        assert decision.dtype is None and not decision.enabled
        assert decision.precision == "fp32"
        assert "training in fp32, because" in decision.reason and what in decision.reason


@pytest.mark.parametrize("requested", [None, "auto", "bfloat16", "float16", torch.bfloat16])
def test_never_bf16_on_a_cpu_without_it_and_never_fp16_on_a_cpu(requested):
    without = decide_amp("cpu", requested, cpu_bf16=(False, "no BF16 here"))
    assert without.dtype is None and "no BF16 here" in without.reason
    with_bf16 = decide_amp("cpu", requested, cpu_bf16=(True, "AMX"))
    assert with_bf16.dtype == torch.bfloat16
    if requested == "float16":
        assert "instead of the requested float16" in with_bf16.reason


@pytest.mark.parametrize("bad", ["fp16", "float32", torch.float32, 16])
def test_bad_dtype_is_named(bad):
    with pytest.raises(ValueError, match="dtype"):
        decide_amp("cpu", bad)


def test_unknown_device_is_named():
    with pytest.raises(ValueError, match="'mps'"):
        decide_amp("mps")


# ------------------------------------------------------------------------------ the wrapper
def test_wrapper_is_registered_in_the_plugin_scope_for_every_default_scope():
    model = nn.Linear(3, 2)
    for scope in ("mmengine", "mmpretrain", "mmdet"):
        init_default_scope(scope)
        wrapper = OPTIM_WRAPPERS.build(
            dict(type="resnext_plugin.AmpOptimWrapper"),
            default_args=dict(optimizer=torch.optim.SGD(model.parameters(), lr=0.1)))
        assert type(wrapper) is AmpOptimWrapper


def test_wrapper_on_this_cpu_follows_the_decision_and_steps():
    model = nn.Linear(8, 4)
    wrapper = _wrapper(model)
    assert wrapper.decision == decide_amp("cpu")
    before = model.weight.detach().clone()
    with wrapper.optim_context(model):
        out = model(torch.randn(2, 8))
        assert torch.is_autocast_enabled("cpu") == wrapper.decision.enabled
    assert out.dtype == (torch.bfloat16 if wrapper.decision.enabled else torch.float32)
    wrapper.update_params(out.float().square().mean())
    assert not torch.equal(model.weight, before)
    assert not torch.is_autocast_enabled("cpu")


def test_native_bf16_path_autocasts_without_loss_scaling(monkeypatch):
    _forced_native(monkeypatch)
    model = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))
    wrapper = _wrapper(model, dtype="bfloat16", clip_grad=dict(max_norm=1.0))
    assert wrapper.decision.dtype == torch.bfloat16 and not wrapper.loss_scaler.is_enabled()
    before = [p.detach().clone() for p in model.parameters()]
    with wrapper.optim_context(model):
        out = model(torch.randn(4, 8))
    assert out.dtype == torch.bfloat16
    loss = out.float().mean()
    wrapper.update_params(loss)
    assert all(not torch.equal(p, b) for p, b in zip(model.parameters(), before))
    assert all(p.dtype == torch.float32 for p in model.parameters())  # master weights stay fp32


def test_state_dict_round_trip_and_a_cuda_scaler_state_loads_on_cpu():
    model = nn.Linear(4, 4)
    wrapper = _wrapper(model)
    state = wrapper.state_dict()
    assert "loss_scaler" in state
    other = _wrapper(nn.Linear(4, 4))
    # what mmengine's wrapper saves on a GPU: a GradScaler state. A CPU run resumes from it.
    state = copy.deepcopy(state)
    state["loss_scaler"] = {"scale": 65536.0, "growth_factor": 2.0, "backoff_factor": 0.5,
                            "growth_interval": 2000, "_growth_tracker": 0}
    other.load_state_dict(state)


# ------------------------------------------------------------------------ scoped autocast
def _tiny_detector():
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules

    register_all_modules(init_default_scope=True)
    cfg = Config.fromfile(str(DET_DEMO))
    cfg.model.backbone.update(init_cfg=None, depth=50, groups=2, width_per_group=4)
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model.train()


def test_detector_scopes_on_cpu_skip_nms_and_roi_align():
    model = _tiny_detector()
    scopes = autocast_scopes(model, "auto", "cpu")
    assert scopes == [model.backbone, model.neck, model.rpn_head, model.roi_head.bbox_head,
                      model.roi_head.mask_head]
    assert autocast_scopes(model, "auto", "cuda") is None
    assert autocast_scopes(model, "model", "cpu") is None
    assert autocast_scopes(nn.Linear(2, 2), "auto", "cpu") is None
    with pytest.raises(ValueError, match="'roi_head.nope'"):
        autocast_scopes(model, ["backbone", "roi_head.nope"], "cpu")
    with pytest.raises(ValueError, match="autocast_modules"):
        autocast_scopes(model, "everything", "cpu")


def test_detector_trains_a_step_on_the_bf16_path(monkeypatch):
    """mmcv's CPU NMS/RoIAlign reject bf16: the detector's convolutions run in bf16, the
    proposal and RoI steps in fp32, and the step completes with finite losses."""
    from mmdet.testing import demo_mm_inputs

    _forced_native(monkeypatch)
    model = _tiny_detector()
    wrapper = _wrapper(model)
    dtypes = {}

    def record(module, _args, output):
        dtypes.setdefault(type(module).__name__, set()).add(output.dtype)

    handles = [m.register_forward_hook(record) for m in model.modules()
               if isinstance(m, nn.Conv2d)]
    data = demo_mm_inputs(batch_size=1, image_shapes=[(3, 64, 64)], num_items=[2],
                          num_classes=4, with_mask=True)
    torch.manual_seed(0)
    log = model.train_step(data, wrapper)
    for handle in handles:
        handle.remove()
    assert dtypes == {"Conv2d": {torch.bfloat16}}
    assert all(torch.isfinite(v).all() for v in log.values())
    assert not torch.is_autocast_enabled("cpu")


# ------------------------------------------------------------------ tools/train.py --amp
def _train_tool():
    from resnext_plugin.cli import train

    return train


def test_train_tool_amp_trains_and_logs_the_decision(tmp_path: Path):
    """A real two-iteration training of the demo classification config with ``--amp``: fp32
    with the reason logged on CPUs without native bf16, bf16 autocast where it is native."""
    data = tmp_path / "data"
    make_demo_imagenet(data, DemoImageNetSpec(num_classes=2, train_per_class=4,
                                              val_per_class=1, image_size=24))
    train = _train_tool()
    work = tmp_path / "work"
    argv = [str(CLS_DEMO), "--amp", "--work-dir", str(work), "--no-validate", "--cfg-options",
            f"train_dataloader.dataset.data_root={data}", "train_dataloader.batch_size=4",
            "train_dataloader.num_workers=0", "train_dataloader.persistent_workers=False",
            "train_cfg.max_epochs=1", "default_hooks.checkpoint.save_last=False",
            "default_hooks.checkpoint.interval=5", "default_hooks.logger.interval=1",
            "model.backbone.groups=2", "log_level=INFO"]
    assert train.main(argv) == 0
    log = next(work.glob("*/*.log")).read_text()
    decision = decide_amp("cpu")
    assert decision.reason in log
    assert ("training in fp32, because" in log) == (not perf.cpu_supports_bf16())
    losses = [entry["loss"] for entry in logged_training(work, ["loss"]).values()]
    assert len(losses) == 2 and all(math.isfinite(loss) for loss in losses)


def test_train_tool_refuses_knobs_it_cannot_apply(tmp_path: Path):
    train = _train_tool()
    with pytest.raises(ValueError, match="--amp-dtype needs --amp"):
        train.build_config(train.parse_args([str(CLS_DEMO), "--amp-dtype", "bfloat16"]))
    stock = tmp_path / "stock.py"
    stock.write_text(f"_base_ = [{str(CLS_DEMO)!r}]\n"
                     "model = dict(backbone=dict(_delete_=True, type='ResNeXt', depth=50))\n")
    with pytest.raises(ValueError, match="--channels-last: the backbone is 'ResNeXt'"):
        train.build_config(train.parse_args([str(stock), "--channels-last"]))
    custom = tmp_path / "custom.py"
    custom.write_text(f"_base_ = [{str(CLS_DEMO)!r}]\n"
                      "optim_wrapper = dict(type='MyWrapper')\n")
    with pytest.raises(ValueError, match="optim_wrapper type is 'MyWrapper'"):
        train.build_config(train.parse_args([str(custom), "--amp"]))


def test_train_tool_maps_the_knobs_onto_the_config():
    train = _train_tool()
    cfg = train.build_config(train.parse_args(
        [str(CLS_DEMO), "--amp", "--amp-dtype", "bfloat16", "--channels-last", "--compile"]))
    assert cfg.optim_wrapper.type == "resnext_plugin.AmpOptimWrapper"
    assert cfg.optim_wrapper.dtype == "bfloat16"
    assert cfg.model.backbone.channels_last is True
    assert cfg.compile is True
    cfg = train.build_config(train.parse_args([str(DET_DEMO), "--compile", "aot_eager"]))
    assert cfg.compile == dict(backend="aot_eager")
    assert "compile" not in train.build_config(train.parse_args([str(DET_DEMO)]))


# ------------------------------------------------------------------------------------ CUDA
@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("dtype", [None, "bfloat16"])
def test_cuda_wrapper_autocasts_and_scales(dtype):
    model = nn.Linear(8, 4).cuda()
    wrapper = _wrapper(model, dtype=dtype)
    expected = torch.float16 if dtype is None or not torch.cuda.is_bf16_supported() \
        else torch.bfloat16
    assert wrapper.decision.dtype == expected and wrapper.loss_scaler.is_enabled()
    with wrapper.optim_context(model):
        out = model(torch.randn(2, 8, device="cuda"))
    assert out.dtype == expected
    before = model.weight.detach().clone()
    wrapper.update_params(out.float().mean())
    assert not torch.equal(model.weight, before)


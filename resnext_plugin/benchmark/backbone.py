"""The backbone benchmark: the plugin's ResNeXt against mmpretrain's, mmdet's and torchvision's,
in one process, interleaved (``tools/benchmark.py`` without ``--detector``/``--runner``).

Every candidate is built with the same depth, C and d and loads the same weights; cases are
inference at a batch size and one training step (forward, backward, SGD step).
"""
from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Optional

import torch
from torch import nn

from resnext_plugin import perf
from resnext_plugin.models import ARCH_SETTINGS, ResNeXt
from resnext_plugin.models.fuse import fuse_conv_bn

PEERS = ("mmpretrain", "mmdet", "torchvision")
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


@dataclass(frozen=True)
class TimingOptions:
    """How the candidates of a case are timed.

    Attributes:
        repeats: Timed interleaved rounds (four times as many for batches <= 4).
        warmup: Untimed calls per candidate after the first one.
        clock: A key of :data:`CLOCKS`: ``'wall'`` or ``'cpu'`` (this process's CPU time).
        verbose: Log every call.
    """

    repeats: int = 7
    warmup: int = 2
    clock: str = "wall"
    verbose: bool = False

    def __post_init__(self) -> None:
        if self.repeats < 1 or self.warmup < 0 or self.clock not in CLOCKS:
            raise ValueError(f"TimingOptions: need repeats >= 1, warmup >= 0 and clock in "
                             f"{sorted(CLOCKS)}; got {self}")


# --------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Arch:
    """Depth, cardinality C and bottleneck width d shared by every candidate."""

    depth: int
    groups: int
    width: int

    @property
    def label(self) -> str:
        return f"ResNeXt-{self.depth} ({self.groups}x{self.width}d)"


class TorchvisionFeatures(nn.Module):
    """torchvision's ResNeXt without pooling and classifier: the same output as the backbones.

    The submodules keep torchvision's names (``conv1``, ``bn1``, ``layer1`` ...), which are the
    plugin's state-dict keys.
    """

    def __init__(self, arch: Arch) -> None:
        super().__init__()
        from torchvision.models.resnet import Bottleneck, ResNet

        net = ResNet(Bottleneck, list(ARCH_SETTINGS[arch.depth]), groups=arch.groups,
                     width_per_group=arch.width)
        for name in ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"):
            self.add_module(name, getattr(net, name))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return (self.layer4(self.layer3(self.layer2(self.layer1(x)))),)


def build_plugin(arch: Arch, channels_last: bool = False) -> nn.Module:
    return ResNeXt(arch.depth, groups=arch.groups, width_per_group=arch.width, out_indices=(3,),
                   channels_last=channels_last, init_cfg=None)


def build_peer(name: str, arch: Arch) -> nn.Module:
    """One of :data:`PEERS`, built with ``arch``."""
    if name == "mmpretrain":
        from mmpretrain.models.backbones import ResNeXt as MMPretrainResNeXt

        return MMPretrainResNeXt(arch.depth, groups=arch.groups, width_per_group=arch.width,
                                 out_indices=(3,))
    if name == "mmdet":
        from mmdet.models.backbones import ResNeXt as MMDetResNeXt

        return MMDetResNeXt(depth=arch.depth, groups=arch.groups, base_width=arch.width,
                            out_indices=(3,))
    if name == "torchvision":
        return TorchvisionFeatures(arch)
    raise ValueError(f"unknown peer {name!r}; choose from {PEERS}")


@torch.no_grad()
def reference_weights(arch: Arch, seed: int = 0) -> dict[str, torch.Tensor]:
    """Weights every candidate loads: Kaiming convolutions and BatchNorms with non-trivial
    affine parameters and running statistics (so that folding them is really exercised)."""
    generator = torch.Generator().manual_seed(seed)
    model = build_plugin(arch)
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            fan_out = module.out_channels * module.kernel_size[0] * module.kernel_size[1]
            module.weight.normal_(0, (2.0 / fan_out) ** 0.5, generator=generator)
        elif isinstance(module, nn.BatchNorm2d):
            size = module.num_features
            module.weight.copy_(0.5 + 0.5 * torch.rand(size, generator=generator))
            module.bias.copy_(0.1 * torch.randn(size, generator=generator))
            module.running_mean.copy_(0.1 * torch.randn(size, generator=generator))
            module.running_var.copy_(0.5 + torch.rand(size, generator=generator))
    return model.state_dict()


# --------------------------------------------------------------------------------------------
# Variants: how a candidate is built and run
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Variant:
    """One candidate: an implementation and the optimisations applied to it."""

    name: str
    group: str  # 'peer' (counts for the best peer), 'reference' or 'plugin'
    impl: str  # 'plugin' or one of PEERS
    channels_last: bool = False
    fuse: bool = False
    compile: bool = False
    freeze: bool = False  # inductor freezing: constant-folded, prepacked weights (inference)
    amp: Optional[torch.dtype] = None
    train: bool = True  # also has a training step (fused/frozen models are inference only)
    description: str = ""

    @property
    def precision(self) -> str:
        return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.amp]


def all_variants() -> dict[str, Variant]:
    """Every variant the tool knows, by name."""
    variants = [
        Variant("mmpretrain", "peer", "mmpretrain", description="mmpretrain ResNeXt, eager"),
        Variant("mmdet", "peer", "mmdet", description="mmdet ResNeXt, eager"),
        Variant("torchvision", "peer", "torchvision", description="torchvision ResNeXt, eager"),
        Variant("torchvision-cl", "reference", "torchvision", channels_last=True,
                description="torchvision converted to channels_last by the caller"),
        Variant("plugin", "plugin", "plugin", description="plugin, eager, default settings"),
        Variant("plugin-cl", "plugin", "plugin", channels_last=True,
                description="channels_last=True"),
        Variant("plugin-fused", "plugin", "plugin", fuse=True, train=False,
                description="BatchNorm folded (fuse)"),
        Variant("plugin-fused-cl", "plugin", "plugin", channels_last=True, fuse=True,
                train=False, description="channels_last + fuse"),
        Variant("plugin-compile", "plugin", "plugin", compile=True,
                description="torch.compile (inductor)"),
        Variant("plugin-cl-compile", "plugin", "plugin", channels_last=True, compile=True,
                description="channels_last + torch.compile"),
        Variant("plugin-compile-freeze", "plugin", "plugin", compile=True, freeze=True,
                train=False, description="torch.compile with inductor freezing"),
        Variant("plugin-cl-compile-freeze", "plugin", "plugin", channels_last=True,
                compile=True, freeze=True, train=False,
                description="channels_last + torch.compile with inductor freezing"),
        Variant("plugin-bf16-cl", "plugin", "plugin", channels_last=True, amp=torch.bfloat16,
                description="channels_last + bf16 autocast"),
        Variant("plugin-bf16-cl-compile", "plugin", "plugin", channels_last=True, compile=True,
                amp=torch.bfloat16, description="channels_last + bf16 autocast + compile"),
        Variant("plugin-fp16-cl", "plugin", "plugin", channels_last=True, amp=torch.float16,
                description="channels_last + fp16 autocast (CUDA)"),
    ]
    return {variant.name: variant for variant in variants}


def default_variants(device: torch.device, quick: bool) -> list[str]:
    names = ["mmpretrain", "mmdet", "torchvision", "torchvision-cl", "plugin", "plugin-cl",
             "plugin-fused", "plugin-fused-cl"]
    if not quick:
        names += ["plugin-cl-compile", "plugin-cl-compile-freeze"]
    if device.type == "cuda":
        names += ["plugin-bf16-cl", "plugin-fp16-cl"]
    elif perf.cpu_supports_bf16():
        names += ["plugin-bf16-cl"]
    if not quick and (device.type == "cuda" or perf.cpu_supports_bf16()):
        names += ["plugin-bf16-cl-compile"]
    return names


def build_variant(variant: Variant, arch: Arch, weights: dict, device: torch.device,
                  training: bool) -> nn.Module:
    """The candidate's model, with ``weights`` loaded, on ``device``, in train/eval mode."""
    if variant.impl == "plugin":
        model = build_plugin(arch, channels_last=variant.channels_last)
    else:
        model = build_peer(variant.impl, arch)
    model.load_state_dict(weights, strict=True)
    model.to(device)
    if variant.channels_last and variant.impl != "plugin":
        model.to(memory_format=torch.channels_last)
    model.train(training)
    if variant.fuse:
        fuse_conv_bn(model)
    if variant.compile:
        options = {"freezing": True} if variant.freeze else None
        model = torch.compile(model, dynamic=False, options=options)
    return model


def _autocast(variant: Variant, device: torch.device) -> contextlib.AbstractContextManager:
    if variant.amp is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=variant.amp)


def _prepare_input(variant: Variant, x: torch.Tensor) -> torch.Tensor:
    # a peer converted to channels_last needs its input converted by the caller; the plugin
    # converts the input itself (channels_last=True), inside the timed call for both
    if variant.channels_last and variant.impl != "plugin":
        return x.contiguous(memory_format=torch.channels_last)
    return x


def inference_step(variant: Variant, model: nn.Module, x: torch.Tensor,
                   device: torch.device) -> Callable[[], Any]:
    def step() -> Any:
        with torch.no_grad(), _autocast(variant, device):
            return model(_prepare_input(variant, x))

    return step


def training_step(variant: Variant, model: nn.Module, x: torch.Tensor,
                  device: torch.device) -> Callable[[], Any]:
    """Forward, backward and an SGD step; fp16 uses a gradient scaler."""
    # the same optimiser for every candidate; foreach keeps its Python overhead out of the way
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-4,
                                momentum=0.9, weight_decay=1e-4, foreach=True)
    scaler = torch.amp.GradScaler(device.type) if variant.amp == torch.float16 else None

    def step() -> Any:
        optimizer.zero_grad(set_to_none=True)
        with _autocast(variant, device):
            outs = model(_prepare_input(variant, x))
            loss = sum(out.float().mean() for out in outs)
        if scaler is None:
            loss.backward()
            optimizer.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        return loss

    return step


# --------------------------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------------------------
@dataclass
class Row:
    """One candidate's result in one case."""

    case: str
    variant: str
    group: str
    precision: str
    seconds: float  # median
    fastest: float  # minimum: the least disturbed call, for comparison under load
    spread: float
    images_per_s: float
    peak_mb: float
    gflops: float
    max_rel_diff: Optional[float] = None
    ratio: float = float("nan")  # best peer's median / this median
    ratio_min: float = float("nan")  # best peer's minimum / this minimum
    mm_fraction: float = float("nan")  # achieved / torch.mm rate, same precision
    conv_fraction: float = float("nan")  # achieved / dense 3x3 convolution rate


@dataclass
class Case:
    name: str
    batch: int
    training: bool
    rows: list[Row] = field(default_factory=list)


def _set_ratios(rows: list[Row]) -> None:
    """Ratios against the fastest peer (by median, and by minimum)."""
    peers = [row for row in rows if row.group == "peer"]
    best = min((row.seconds for row in peers), default=float("nan"))
    best_min = min((row.fastest for row in peers), default=float("nan"))
    for row in rows:
        row.ratio = best / row.seconds
        row.ratio_min = best_min / row.fastest


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _max_rel_diff(out: Any, reference: torch.Tensor) -> float:
    value = out[-1].float()
    return float((value - reference).abs().max() / reference.abs().max().clamp_min(1e-12))


def run_case(case: Case, variants: list[Variant], arch: Arch, weights: dict,
             device: torch.device, *, size: int, timing: TimingOptions, flops_per_image: int,
             rates: dict[str, dict[str, float]]) -> None:
    """Build the case's candidates, time them interleaved on ``size`` x ``size`` inputs, fill
    ``case.rows``."""
    torch.manual_seed(0)
    x = torch.randn(case.batch, 3, size, size, device=device)
    chosen = [v for v in variants if v.train or not case.training]
    reference = None
    if not case.training:
        plugin = build_variant(all_variants()["plugin"], arch, weights, device, False)
        with torch.no_grad():
            reference = plugin(x)[-1].float()
        del plugin
    steps: dict[str, Callable[[], Any]] = {}
    diffs: dict[str, float] = {}
    for variant in chosen:
        _log(f"[{case.name}] building {variant.name}")
        model = build_variant(variant, arch, weights, device, case.training)
        make = training_step if case.training else inference_step
        steps[variant.name] = make(variant, model, x, device)
        _log(f"[{case.name}] first call of {variant.name}"
             f"{' (compiling)' if variant.compile else ''}")
        out = steps[variant.name]()  # untimed, like the warm-up calls
        if reference is not None:
            diffs[variant.name] = _max_rel_diff(out, reference)

    def progress(phase: str, name: str) -> None:
        if timing.verbose:
            _log(f"[{case.name}] {phase} {name}")

    rounds = timing.repeats * (4 if case.batch <= 4 else 1)  # short calls: more rounds
    _log(f"[{case.name}] warm-up and {rounds} interleaved rounds of {len(steps)} "
         f"candidates ({perf.load_average()})")
    timings = perf.interleaved_timings(steps, rounds, timing.warmup, device, progress,
                                       clock=CLOCKS[timing.clock])
    work = flops_per_image * case.batch * (3 if case.training else 1)
    for variant in chosen:
        timing = timings[variant.name]
        seconds = timing.median
        case.rows.append(Row(
            case=case.name, variant=variant.name, group=variant.group,
            precision=variant.precision, seconds=seconds,
            fastest=min(timing.seconds), spread=timing.spread,
            images_per_s=case.batch / seconds,
            peak_mb=perf.peak_memory_bytes(steps[variant.name], device) / 2**20,
            gflops=2 * work / seconds / 1e9, max_rel_diff=diffs.get(variant.name),
        ))
    _set_ratios(case.rows)
    for row in case.rows:
        if row.precision in rates["mm"]:
            row.mm_fraction = row.gflops / rates["mm"][row.precision]
            row.conv_fraction = row.gflops / rates["conv"][row.precision]


def measure_rates(device: torch.device, variants: list[Variant],
                  clock: Callable[[], float]) -> dict[str, dict[str, float]]:
    """Yardsticks per precision, GFLOP/s: ``torch.mm`` on square matrices and a dense 3x3
    convolution (oneDNN/cuDNN), each measured here, now."""
    _log("measuring the GEMM and convolution rates")
    size = 8192 if device.type == "cuda" else 2048
    conv_batch = 64 if device.type == "cuda" else 8
    # fp32 convolutions on CUDA run in TF32 when cuDNN allows it: measure the GEMM alike
    conv_tf32 = device.type == "cuda" and torch.backends.cudnn.allow_tf32
    matmul_tf32 = torch.backends.cuda.matmul.allow_tf32
    dtypes = {"fp32": torch.float32}
    if any(v.amp == torch.bfloat16 for v in variants):
        dtypes["bf16"] = torch.bfloat16
    if any(v.amp == torch.float16 for v in variants):
        dtypes["fp16"] = torch.float16
    rates: dict[str, dict[str, float]] = {"mm": {}, "conv": {}}
    if conv_tf32:
        torch.backends.cuda.matmul.allow_tf32 = True
    try:
        for name, dtype in dtypes.items():
            rates["mm"][name] = perf.gemm_gflops(device, size, dtype, clock=clock)
            rates["conv"][name] = perf.conv_gflops(device, conv_batch, dtype=dtype, clock=clock)
    finally:
        if conv_tf32:
            torch.backends.cuda.matmul.allow_tf32 = matmul_tf32
    tf32 = " (fp32 as TF32)" if conv_tf32 else ""
    print(f"torch.mm {size}x{size}{tf32}: "
          + ", ".join(f"{k} {v:.0f}" for k, v in rates["mm"].items()) + " GFLOP/s")
    print(f"3x3 conv {conv_batch}x256x56x56{tf32}: "
          + ", ".join(f"{k} {v:.0f}" for k, v in rates["conv"].items()) + " GFLOP/s")
    return rates


# --------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------
def format_table(rows: list[Row]) -> str:
    header = (f"{'case':<15} {'variant':<24} {'prec':<4} {'ms/iter':>9} {'iqr':>5} "
              f"{'min ms':>9} {'img/s':>7} {'vs best':>7} {'(min)':>6} {'peak MB':>7} "
              f"{'GFLOP/s':>7} {'%mm':>4} {'%conv':>5} {'rel diff':>8}")
    lines = [header, "-" * len(header)]
    for row in rows:
        diff = "" if row.max_rel_diff is None else f"{row.max_rel_diff:.1e}"
        mm, conv = ("" if f != f else f"{100 * f:.0f}" for f in (row.mm_fraction,
                                                                 row.conv_fraction))
        gflops = "" if row.gflops != row.gflops else f"{row.gflops:.1f}"
        lines.append(
            f"{row.case:<15} {row.variant + (' *' if row.group == 'peer' else ''):<24} "
            f"{row.precision:<4} {1000 * row.seconds:>9.1f} {100 * row.spread:>4.0f}% "
            f"{1000 * row.fastest:>9.1f} {row.images_per_s:>7.2f} {row.ratio:>6.2f}x "
            f"{row.ratio_min:>5.2f}x {row.peak_mb:>7.0f} {gflops:>7} {mm:>4} {conv:>5} {diff:>8}"
        )
    return "\n".join(lines)


def best_lines(cases: list[Case], targets: dict[str, float]) -> list[str]:
    """The fastest plugin configuration per case, fp32 and any precision, against targets."""
    lines = []
    for case in cases:
        plugin = [row for row in case.rows if row.group == "plugin"]
        for label, rows in (("fp32", [r for r in plugin if r.precision == "fp32"]),
                            ("any precision", plugin)):
            if not rows:
                continue
            best = max(rows, key=lambda r: r.ratio)
            target = targets.get(case.name.split()[0] if case.training else case.name)
            verdict = "" if target is None else (
                f" (target >= {target:.1f}: {'met' if best.ratio >= target else 'NOT met'})")
            lines.append(f"best plugin, {label:<13} {case.name:<12} {best.variant:<24} "
                         f"{best.ratio:.2f}x (by minimum {best.ratio_min:.2f}x){verdict}")
    return lines

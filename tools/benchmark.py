"""Side-by-side speed of the plugin's ResNeXt and its peers, in one process, interleaved.

Peers: mmpretrain's and mmdet's built-in ``ResNeXt`` and torchvision's ``ResNet`` with ResNeXt
blocks (``resnext50_32x4d`` for the defaults), all built with the same depth, C and d and loaded
with the same weights (the plugin's state dict; the keys are the same in all four). Cases:
inference at each ``--batch`` and one training step (forward, backward, SGD step) at
``--train-batch``. Every candidate of a case runs once per round (A B C ..., the start rotating),
so load from other processes hits all candidates alike; after one first call (where
``torch.compile`` compiles) and ``--warmup`` untimed calls, ``--repeats`` rounds are timed (four
times as many for batch <= 4) and the median and minimum are reported. Ratios are against the
best peer (the fastest of the three eager peers in the same case): above 1 is faster than every
peer. Outputs are checked against the plugin's eager output before timing.

``--detector`` times a Mask R-CNN training iteration instead: mmdet's stock ResNeXt Mask R-CNN
config against the same config with the backbone swapped to ``resnext_plugin.ResNeXt``.

Examples::

    python tools/benchmark.py --quick                  # smoke run, small input, a few minutes
    python tools/benchmark.py                          # the full CPU table (about 40 minutes)
    python tools/benchmark.py --threads 1 --clock cpu  # load-robust cross-check
    python tools/benchmark.py --variants torchvision,plugin,plugin-cl --batch 32 --no-train
    python tools/benchmark.py --device cuda            # adds AMP bf16/fp16 variants
    python tools/benchmark.py --detector --det-size 512
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

os.environ.setdefault("KINETO_LOG_LEVEL", "5")  # the profiler's "no GPU" error line is noise

import torch  # noqa: E402
from torch import nn  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from resnext_plugin import perf  # noqa: E402
from resnext_plugin.complexity import count_flops  # noqa: E402
from resnext_plugin.models import ARCH_SETTINGS, ResNeXt  # noqa: E402
from resnext_plugin.models.fuse import fuse_conv_bn  # noqa: E402

PEERS = ("mmpretrain", "mmdet", "torchvision")
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
#: mmdet's ResNeXt Mask R-CNN config (inside the installed package's ``.mim/configs``).
STOCK_DETECTOR = "mask_rcnn/mask-rcnn_x101-32x4d_fpn_1x_coco.py"


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
             args: argparse.Namespace, device: torch.device, flops_per_image: int,
             rates: dict[str, dict[str, float]]) -> None:
    """Build the case's candidates, time them interleaved, fill ``case.rows``."""
    torch.manual_seed(0)
    x = torch.randn(case.batch, 3, args.size, args.size, device=device)
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
        if args.verbose:
            _log(f"[{case.name}] {phase} {name}")

    rounds = args.repeats * (4 if case.batch <= 4 else 1)  # short calls: more rounds
    _log(f"[{case.name}] warm-up and {rounds} interleaved rounds of {len(steps)} "
         f"candidates ({perf.load_average()})")
    timings = perf.interleaved_timings(steps, rounds, args.warmup, device, progress,
                                       clock=CLOCKS[args.clock])
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


# --------------------------------------------------------------------------------------------
# Mask R-CNN
# --------------------------------------------------------------------------------------------
def detector_configs(arch: Arch) -> dict[str, dict]:
    """mmdet's stock ResNeXt Mask R-CNN model config, and the same with the plugin backbone."""
    import mmdet
    from mmengine.config import Config

    path = Path(mmdet.__file__).parent / ".mim/configs" / STOCK_DETECTOR
    stock = copy.deepcopy(Config.fromfile(str(path)).model.to_dict())
    stock["backbone"].update(depth=arch.depth, groups=arch.groups, base_width=arch.width,
                             init_cfg=None)
    ours = copy.deepcopy(stock)
    backbone = dict(ours["backbone"])
    backbone["type"] = "resnext_plugin.ResNeXt"
    backbone["width_per_group"] = backbone.pop("base_width")
    ours["backbone"] = backbone
    ours_cl = copy.deepcopy(ours)
    ours_cl["backbone"]["channels_last"] = True
    return {"mmdet-stock": stock, "plugin": ours, "plugin-cl": ours_cl}


def run_detector(args: argparse.Namespace, arch: Arch, device: torch.device) -> list[Row]:
    """Time one Mask R-CNN training iteration (``train_step``) per candidate, interleaved."""
    from mmdet.registry import MODELS
    from mmdet.testing import demo_mm_inputs
    from mmdet.utils import register_all_modules
    from mmengine.config import ConfigDict
    from mmengine.logging import MMLogger
    from mmengine.optim import OptimWrapper

    register_all_modules(init_default_scope=True)
    # init_weights logs every parameter at INFO: keep the table readable
    MMLogger.get_instance("resnext_benchmark", log_level="WARNING")
    configs = detector_configs(arch)
    names = [n for n in configs if args.variants is None or n in args.variants]
    models: dict[str, nn.Module] = {}
    for name in names:
        _log(f"[detector] building {name}")
        models[name] = MODELS.build(ConfigDict(configs[name])).to(device)
    first = models[names[0]]
    first.init_weights()
    for name in names[1:]:
        models[name].load_state_dict(first.state_dict(), strict=True)
    data = demo_mm_inputs(batch_size=1, image_shapes=[(3, args.det_size, args.det_size)],
                          num_items=[8], num_classes=80, with_mask=True, device=device.type)
    steps = {}
    for name, model in models.items():
        model.train()
        optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad],
                                    lr=1e-4, momentum=0.9, weight_decay=1e-4)
        wrapper = OptimWrapper(optimizer)

        def step(model: nn.Module = model, wrapper: OptimWrapper = wrapper) -> Any:
            torch.manual_seed(0)  # the same proposals are sampled for every candidate
            return model.train_step(copy.copy(data), wrapper)

        steps[name] = step
    _log(f"[detector] warm-up and {args.repeats} interleaved rounds ({perf.load_average()})")
    timings = perf.interleaved_timings(steps, args.repeats, args.warmup, device,
                                       clock=CLOCKS[args.clock])
    rows = []
    for name in names:
        seconds = timings[name].median
        rows.append(Row(case=f"mask-rcnn {args.det_size}px", variant=name,
                        group="peer" if name == "mmdet-stock" else "plugin", precision="fp32",
                        seconds=seconds, fastest=min(timings[name].seconds),
                        spread=timings[name].spread, images_per_s=1 / seconds,
                        peak_mb=perf.peak_memory_bytes(steps[name], device) / 2**20,
                        gflops=float("nan")))
    _set_ratios(rows)
    return rows


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


def environment_lines(device: torch.device, threads: int) -> list[str]:
    lines = [
        f"torch {torch.__version__}, {threads} threads, device {device}",
        f"CPU: {perf.cpu_model_name()}, {os.cpu_count()} cores, flags: "
        f"{' '.join(perf.cpu_flags()) or 'none of avx2/avx512'}, "
        f"oneDNN bf16: {perf.cpu_supports_bf16()}",
    ]
    if device.type == "cuda":
        lines.append(f"GPU: {torch.cuda.get_device_name(device)}")
    return lines


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------
def _int_list(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--depth", type=int, default=50, choices=sorted(ARCH_SETTINGS))
    parser.add_argument("--groups", type=int, default=32, help="cardinality C")
    parser.add_argument("--width", type=int, default=4, help="bottleneck width d")
    parser.add_argument("--batch", type=_int_list, default=None,
                        help="inference batch sizes, comma-separated (default 1,32)")
    parser.add_argument("--train-batch", type=int, default=None,
                        help="training-step batch size (default 16)")
    parser.add_argument("--no-train", action="store_true", help="skip the training step")
    parser.add_argument("--no-infer", action="store_true", help="skip the inference cases")
    parser.add_argument("--size", type=int, default=None, help="input side (default 224)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads (default: all cores)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed rounds per case (default 7)")
    parser.add_argument("--warmup", type=int, default=None,
                        help="untimed calls per candidate first (default 2)")
    parser.add_argument("--device", default=None, help="cpu (default) or cuda[:i]")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                        help="wall (default): elapsed time; cpu: this process's CPU time, "
                             "robust to other load with --threads 1 (CPU only)")
    parser.add_argument("--variants", default=None,
                        help="comma-separated names; 'list' prints them. Peers are always kept "
                             "for the ratios.")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 64 px input, batches 1,4, train batch 2, 2 rounds, "
                             "no torch.compile unless named in --variants")
    parser.add_argument("--detector", action="store_true",
                        help="time a Mask R-CNN training iteration instead of the backbone")
    parser.add_argument("--det-size", type=int, default=None,
                        help="detector input side (default 512; --quick 256)")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    parser.add_argument("--verbose", action="store_true", help="log every call")
    args = parser.parse_args(argv)
    quick = args.quick
    defaults = dict(batch=[1, 4] if quick else [1, 32], train_batch=2 if quick else 16,
                    size=64 if quick else 224, repeats=2 if quick else 7,
                    warmup=1 if quick else 2, det_size=256 if quick else 512)
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    for key in ("train_batch", "size", "repeats", "det_size", "groups", "width"):
        if getattr(args, key) < 1:
            parser.error(f"--{key.replace('_', '-')} must be >= 1, got {getattr(args, key)}")
    if args.clock == "cpu" and args.device is not None and args.device.startswith("cuda"):
        parser.error("--clock cpu measures CPU work; use the wall clock on CUDA")
    if args.warmup < 0:
        parser.error(f"--warmup must be >= 0, got {args.warmup}")
    if args.no_train and args.no_infer and not args.detector:
        parser.error("--no-train and --no-infer leave nothing to measure")
    if args.size < 32:
        parser.error(f"--size must be >= 32 (the backbone reduces 32x), got {args.size}")
    if args.variants is not None:
        args.variants = [name for name in args.variants.split(",") if name]
    return args


def select_variants(args: argparse.Namespace, device: torch.device) -> list[Variant]:
    known = all_variants()
    names = args.variants or default_variants(device, args.quick)
    unknown = [name for name in names if name not in known]
    if unknown:
        raise SystemExit(f"--variants: unknown {unknown}; known: {', '.join(known)}")
    names = [p for p in PEERS if p not in names] + names
    return [known[name] for name in names]


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    if args.variants == ["list"]:
        for variant in all_variants().values():
            print(f"{variant.name:<26} {variant.group:<9} {variant.description}")
        return 0
    device = torch.device(args.device or "cpu")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is available")
    if args.threads is not None:
        if args.threads < 1:
            raise SystemExit(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    arch = Arch(args.depth, args.groups, args.width)
    env = environment_lines(device, torch.get_num_threads())
    for line in env:
        print(line)
    print(f"{perf.load_average()} (before)")

    if args.detector:
        if args.variants is not None:
            args.variants = set(args.variants) | {"mmdet-stock"}
        rows = run_detector(args, arch, device)
        print(f"\nMask R-CNN training iteration, {arch.label} backbone, one "
              f"{args.det_size}x{args.det_size} image, ratio against mmdet's stock config")
        print(format_table(rows))
        print(f"{perf.load_average()} (after)")
        _write_json(args, env, rows, {})
        return 0

    variants = select_variants(args, device)
    if device.type == "cpu" and not perf.cpu_supports_bf16():
        skipped = [v.name for v in variants if v.amp is not None]
        variants = [v for v in variants if v.amp is None]
        if skipped:
            print(f"skipped (no native bf16 on this CPU): {', '.join(skipped)}")
    if device.type == "cpu":
        variants = [v for v in variants if v.amp != torch.float16]
    weights = reference_weights(arch)
    flops = count_flops(build_plugin(arch), (3, args.size, args.size))
    rates = measure_rates(device, variants, CLOCKS[args.clock])
    print(f"{arch.label}: {flops / 1e9:.2f} G multiply-adds per {args.size}x{args.size} image")

    cases = [] if args.no_infer else [
        Case(f"infer b{b}", b, False) for b in args.batch]
    if not args.no_train:
        cases.append(Case(f"train b{args.train_batch}", args.train_batch, True))
    for case in cases:
        run_case(case, variants, arch, weights, args, device, flops, rates)
        print()
        print(format_table(case.rows))
        print(f"{perf.load_average()} (after {case.name})", flush=True)

    rows = [row for case in cases for row in case.rows]
    print(f"\nSummary, {arch.label}, {args.size}x{args.size}, median of {args.repeats} "
          f"interleaved rounds; * = peer; ratio = best peer's time / this time")
    print(format_table(rows))
    targets = {"train": 1.5, "infer b32": 2.0, "infer b1": 1.0}
    for line in best_lines(cases, targets):
        print(line)
    print(f"{perf.load_average()} (after)")
    _write_json(args, env, rows, rates)
    return 0


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


def _write_json(args: argparse.Namespace, env: list[str], rows: list[Row],
                rates: dict[str, dict[str, float]]) -> None:
    if args.json is None:
        return
    payload = dict(command=" ".join(sys.argv), environment=env, rates_gflops=rates,
                   load=perf.load_average(), rows=[row.__dict__ for row in rows])
    args.json.write_text(json.dumps(payload, indent=2, default=str))


if __name__ == "__main__":
    sys.exit(main())

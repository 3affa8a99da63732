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

``detector`` times a Mask R-CNN training iteration instead: mmdet's stock ResNeXt Mask R-CNN
config against the same config with the backbone swapped to ``resnext_plugin.ResNeXt``.

``export`` times the exported classifier (ONNX Runtime, OpenVINO fp32/bf16/int8) against
PyTorch eager (:mod:`resnext_plugin.benchmark.export_inference`).

``export-detector`` times Mask R-CNN inference at batch 1 (mmdet's ``predict`` of the stock
ResNeXt model, ours eager and its knobs, the export under ONNX Runtime and OpenVINO)
(:mod:`resnext_plugin.benchmark.export_detection`).

``runner`` times real ``tools/train.py`` runs (data loading, hooks, logging included) of the
scenarios (:mod:`resnext_plugin.benchmark.scenarios`: the demo classification config and the demo
and 800x1333 Mask R-CNN configs), ours with its knobs against the same configs with the
framework's own ResNeXt and the knobs the framework offers
(:mod:`resnext_plugin.benchmark.runner`). ``profile SCENARIO`` shows where one training
iteration's time goes (:mod:`resnext_plugin.benchmark.profiling`).

Without a mode, ``backbone`` runs; the flags of the single-command form (``--runner``,
``--detector``, ``--profile SCENARIO``) still select a mode.

Examples::

    python tools/benchmark.py backbone --quick          # smoke run, small input, a few minutes
    python tools/benchmark.py                          # the full CPU table (about 40 minutes)
    python tools/benchmark.py backbone --threads 1 --clock cpu  # load-robust cross-check
    python tools/benchmark.py backbone --variants torchvision,plugin,plugin-cl --batch 32 --no-train
    python tools/benchmark.py backbone --device cuda   # adds AMP bf16/fp16 variants
    python tools/benchmark.py detector --det-size 512
    python tools/benchmark.py runner --scenarios cls-demo,det-demo,det-800x1333 --compile
    python tools/benchmark.py profile det-demo --backbone fold_frozen_bn=True
    python tools/benchmark.py export --threads 2        # exported classifier: ORT, OpenVINO
    python tools/benchmark.py export-detector           # Mask R-CNN X-101 at 800x1333, batch 1
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Optional

os.environ.setdefault("KINETO_LOG_LEVEL", "5")  # the profiler's "no GPU" error line is noise

import torch
from mmengine.config import DictAction

from resnext_plugin import perf
from resnext_plugin.benchmark import export_detection, export_inference, profiling
from resnext_plugin.benchmark.backbone import (
    CLOCKS,
    PEERS,
    Arch,
    Case,
    Row,
    TimingOptions,
    Variant,
    all_variants,
    best_lines,
    build_plugin,
    default_variants,
    format_table,
    measure_rates,
    reference_weights,
    run_case,
)
from resnext_plugin.benchmark.detector import DetectorOptions, parse_size, run_detector
from resnext_plugin.benchmark.runner import run_benchmark
from resnext_plugin.benchmark.scenarios import SCENARIOS
from resnext_plugin.complexity import count_flops
from resnext_plugin.models import ARCH_SETTINGS

PROG = "tools/benchmark.py"
#: Flags of the single-command form and the mode each selects.
LEGACY_MODES = {"--runner": "runner", "--detector": "detector", "--profile": "profile"}
#: ``--quick`` defaults (else the full ones) of the backbone and detector modes.
QUICK = dict(batch=[1, 4], train_batch=2, size=64, repeats=2, warmup=1, det_size="256")
FULL = dict(batch=[1, 32], train_batch=16, size=224, repeats=7, warmup=2, det_size="512")


# --------------------------------------------------------------------------------------------
# Command line
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


def _names(text: str) -> list[str]:
    return [name for name in text.split(",") if name]


def _common_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads (default: all cores)")
    common.add_argument("--verbose", action="store_true", help="log every call")
    return common


def _timed_options() -> argparse.ArgumentParser:
    """Architecture, device and timing: what the backbone and detector modes share."""
    timed = argparse.ArgumentParser(add_help=False)
    timed.add_argument("--depth", type=int, default=50, choices=sorted(ARCH_SETTINGS))
    timed.add_argument("--groups", type=int, default=32, help="cardinality C")
    timed.add_argument("--width", type=int, default=4, help="bottleneck width d")
    timed.add_argument("--device", default=None, help="cpu (default) or cuda[:i]")
    timed.add_argument("--repeats", type=int, default=None,
                       help="timed rounds per case (default 7; --quick 2)")
    timed.add_argument("--warmup", type=int, default=None,
                       help="untimed calls per candidate first (default 2; --quick 1)")
    timed.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                       help="wall (default): elapsed time; cpu: this process's CPU time, "
                            "robust to other load with --threads 1 (CPU only)")
    timed.add_argument("--quick", action="store_true",
                       help="smoke run: small input, fewer rounds (no torch.compile unless "
                            "named in --variants)")
    timed.add_argument("--json", type=Path, default=None, help="also write the rows here")
    return timed


def build_parser() -> argparse.ArgumentParser:
    """The parser: one subcommand per mode."""
    return _parsers()[0]


def _parsers() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The parser and each mode's subparser (which reports that mode's errors)."""
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    modes = parser.add_subparsers(dest="mode", required=True)
    common, timed = _common_options(), _timed_options()
    scenario_names = ", ".join(SCENARIOS)

    backbone = modes.add_parser("backbone", parents=[common, timed],
                                help="the backbone against its peers (the default mode)")
    backbone.add_argument("--batch", type=_int_list, default=None,
                          help="inference batch sizes, comma-separated (default 1,32)")
    backbone.add_argument("--train-batch", type=int, default=None,
                          help="training-step batch size (default 16)")
    backbone.add_argument("--no-train", action="store_true", help="skip the training step")
    backbone.add_argument("--no-infer", action="store_true", help="skip the inference cases")
    backbone.add_argument("--size", type=int, default=None, help="input side (default 224)")
    backbone.add_argument("--variants", type=_names, default=None,
                          help="comma-separated names; 'list' prints them. Peers are always "
                               "kept for the ratios.")

    detector = modes.add_parser("detector", parents=[common, timed],
                                help="a Mask R-CNN training iteration, stock against plugin")
    detector.add_argument("--det-size", default=None,
                          help="input, N or HxW, e.g. 800x1333 (default 512; --quick 256)")
    detector.add_argument("--det-batch", type=int, default=1, help="images per iteration")
    detector.add_argument("--variants", type=_names, default=None,
                          help="comma-separated candidates (mmdet-stock is always run)")

    runner = modes.add_parser("runner", parents=[common],
                              help="real tools/train.py runs, ours against stock")
    runner.add_argument("--scenarios", type=_names, default=list(SCENARIOS),
                        help=f"comma-separated, of: {scenario_names} (default: all)")
    runner.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    runner.add_argument("--compile", action="store_true",
                        help="add --compile runs (stock and plugin)")
    runner.add_argument("--amp", action="store_true",
                        help="add --amp runs (fp32 on CPUs without native bf16)")
    runner.add_argument("--candidates", type=_names, default=None,
                        help="comma-separated plugin candidates to keep (stock is always run)")
    runner.add_argument("--quick", action="store_true", help="a few iterations per run")
    runner.add_argument("--out", type=Path, default=Path("work_dirs/runner_benchmark"),
                        help="work folder: demo data, derived configs, logs")
    runner.add_argument("--markdown", type=Path, default=None,
                        help="also write the report here")

    profile = modes.add_parser("profile", parents=[common],
                               help="where one training iteration's time goes")
    profile.add_argument("scenario", choices=list(SCENARIOS), metavar="SCENARIO",
                         help=f"one of: {scenario_names}")
    profile.add_argument("--backbone", "--profile-backbone", dest="backbone", nargs="+",
                         action=DictAction, default=None, metavar="KEY=VALUE",
                         help="backbone settings, e.g. channels_last=True fold_frozen_bn=True")

    export = modes.add_parser("export", parents=[common],
                              help="the exported classifier (ONNX Runtime, OpenVINO) against "
                                   "PyTorch eager")
    export.add_argument("--batch", type=_int_list, default=[1, 32],
                        help="batch sizes, comma-separated (default 1,32)")
    export.add_argument("--size", type=int, default=224, help="input side (default 224)")
    export.add_argument("--repeats", type=int, default=5, help="timed rounds (default 5)")
    export.add_argument("--warmup", type=int, default=2, help="untimed calls first (default 2)")
    export.add_argument("--candidates", type=_names, default=None,
                        help="comma-separated, of: " + ", ".join(export_inference.CANDIDATES)
                             + " (the torchvision peer is always kept)")
    export.add_argument("--quick", action="store_true",
                        help="smoke run: 64 px, batch 1 and 4, 2 rounds, no torch.compile "
                             "unless named in --candidates")

    det = modes.add_parser("export-detector", parents=[common],
                           help="Mask R-CNN inference at batch 1: mmdet's predict, ours eager, "
                                "the export under ONNX Runtime and OpenVINO")
    det.add_argument("--depth", type=int, default=101, choices=(50, 101),
                     help="ResNeXt depth (default 101: X-101 32x4d)")
    det.add_argument("--image", type=_int_list, default=[800, 1344],
                     help="padded input height,width (default 800,1344: 800x1333 padded to "
                          "a multiple of 32)")
    det.add_argument("--repeats", type=int, default=3, help="timed rounds (default 3)")
    det.add_argument("--warmup", type=int, default=1, help="untimed calls first (default 1)")
    det.add_argument("--candidates", type=_names, default=None,
                     help="comma-separated, of: " + ", ".join(export_detection.CANDIDATES)
                          + f" ('{export_detection.REFERENCE}' is always kept)")
    det.add_argument("--quick", action="store_true",
                     help="smoke run: X-50, 320x320, 1 round, " + ", ".join(export_detection.QUICK))
    return parser, modes.choices


def with_mode(argv: Sequence[str]) -> list[str]:
    """``argv`` with its mode first: the single-command form's ``--runner``, ``--detector`` and
    ``--profile[=]SCENARIO`` name one; without any, the mode is ``backbone``."""
    argv = list(argv)
    modes = set(MODES)
    if argv and (argv[0] in modes or argv[0] in ("-h", "--help")):
        return argv
    for flag, mode in LEGACY_MODES.items():
        for index, arg in enumerate(argv):
            if arg == flag or arg.startswith(flag + "="):
                value = arg.split("=", 1)[1:]  # --profile=det-demo
                return [mode, *value, *argv[:index], *argv[index + 1:]]
    return ["backbone", *argv]


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Parse ``argv`` (default ``sys.argv[1:]``), fill the mode's defaults and check them."""
    parser, mode_parsers = _parsers()
    args = parser.parse_args(with_mode(sys.argv[1:] if argv is None else argv))
    parser = mode_parsers[args.mode]
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    if args.mode == "runner" and args.rounds < 1:
        parser.error(f"--rounds must be >= 1, got {args.rounds}")
    if args.mode in ("backbone", "detector"):
        _check_timed(parser, args)
    if args.mode == "export":
        _check_export(parser, args)
    if args.mode == "export-detector":
        _check_export_detector(parser, args)
    return args


def _check_candidates(parser: argparse.ArgumentParser, names: Optional[Sequence[str]],
                      known: dict) -> None:
    unknown = sorted(set(names or ()) - set(known))
    if unknown:
        parser.error(f"--candidates: unknown {unknown}; choose from {list(known)}")


def _check_export_detector(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.quick:
        args.depth, args.image, args.repeats, args.warmup = 50, [320, 320], 1, 0
        args.candidates = args.candidates or list(export_detection.QUICK)
    _check_candidates(parser, args.candidates, export_detection.CANDIDATES)
    if len(args.image) != 2 or min(args.image) < 64 or args.repeats < 1:
        parser.error("--image must be height,width (each >= 64) and --repeats >= 1")


def _check_export(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.quick:
        args.size, args.batch, args.repeats, args.warmup = 64, [1, 4], 2, 1
        args.candidates = args.candidates or export_inference.quick_names()
    _check_candidates(parser, args.candidates, export_inference.CANDIDATES)
    if args.repeats < 1 or args.size < 32 or min(args.batch) < 1:
        parser.error("--repeats and --batch must be >= 1 and --size >= 32")


def _check_timed(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    for key, value in (QUICK if args.quick else FULL).items():
        if getattr(args, key, 0) is None:
            setattr(args, key, value)
    checked = ["repeats", "groups", "width"]
    checked += ["det_batch"] if args.mode == "detector" else ["train_batch", "size"]
    for key in checked:
        if getattr(args, key) < 1:
            parser.error(f"--{key.replace('_', '-')} must be >= 1, got {getattr(args, key)}")
    if args.warmup < 0:
        parser.error(f"--warmup must be >= 0, got {args.warmup}")
    if args.clock == "cpu" and args.device is not None and args.device.startswith("cuda"):
        parser.error("--clock cpu measures CPU work; use the wall clock on CUDA")
    if args.mode == "detector":
        try:
            parse_size(str(args.det_size))
        except ValueError as err:
            parser.error(str(err))
        return
    if args.no_train and args.no_infer:
        parser.error("--no-train and --no-infer leave nothing to measure")
    if args.size < 32:
        parser.error(f"--size must be >= 32 (the backbone reduces 32x), got {args.size}")


def timing_options(args: argparse.Namespace) -> TimingOptions:
    """The timing settings of a parsed backbone or detector command line."""
    return TimingOptions(args.repeats, args.warmup, args.clock, args.verbose)


def detector_options(args: argparse.Namespace) -> DetectorOptions:
    """The settings of a parsed ``detector`` command line (``mmdet-stock`` always kept)."""
    variants = None if args.variants is None else frozenset(args.variants) | {"mmdet-stock"}
    return DetectorOptions(parse_size(str(args.det_size)), args.det_batch, variants,
                           timing_options(args))


# --------------------------------------------------------------------------------------------
# Modes
# --------------------------------------------------------------------------------------------
def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    return MODES[args.mode](args)


def _device(args: argparse.Namespace) -> torch.device:
    device = torch.device(args.device or "cpu")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise SystemExit(f"{args.mode} --device cuda: no CUDA device is available")
        torch.backends.cudnn.benchmark = True
    return device


def _environment(device: torch.device) -> list[str]:
    env = perf.environment_lines(device, torch.get_num_threads())
    for line in env:
        print(line)
    print(f"{perf.load_average()} (before)")
    return env


def select_variants(args: argparse.Namespace, device: torch.device) -> list[Variant]:
    known = all_variants()
    names = args.variants or default_variants(device, args.quick)
    unknown = [name for name in names if name not in known]
    if unknown:
        raise SystemExit(f"--variants: unknown {unknown}; known: {', '.join(known)}")
    names = [p for p in PEERS if p not in names] + names
    return [known[name] for name in names]


def run_backbone(args: argparse.Namespace) -> int:
    """``backbone``: the plugin's variants against the peers, per case, printed."""
    if args.variants == ["list"]:
        for variant in all_variants().values():
            print(f"{variant.name:<26} {variant.group:<9} {variant.description}")
        return 0
    device = _device(args)
    arch = Arch(args.depth, args.groups, args.width)
    env = _environment(device)
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
    timing = timing_options(args)
    for case in cases:
        run_case(case, variants, arch, weights, device, size=args.size, timing=timing,
                 flops_per_image=flops, rates=rates)
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
    _write_json(args.json, env, rows, rates)
    return 0


def run_detector_mode(args: argparse.Namespace) -> int:
    """``detector``: a Mask R-CNN training iteration, stock against the plugin's candidates."""
    device = _device(args)
    arch = Arch(args.depth, args.groups, args.width)
    env = _environment(device)
    rows = run_detector(detector_options(args), arch, device)
    print(f"\nMask R-CNN training iteration, {arch.label} backbone, {args.det_batch} image(s) "
          f"of {args.det_size}, ratio against mmdet's stock config; rel diff = first "
          "iteration's loss against stock's")
    print(format_table(rows))
    print(f"{perf.load_average()} (after)")
    _write_json(args.json, env, rows, {})
    return 0


def run_runner(args: argparse.Namespace) -> int:
    """``runner``: the runner-level benchmark's report, printed (and written)."""
    try:
        report = run_benchmark(args.scenarios, args.out, args.rounds, quick=args.quick,
                               compile=args.compile, amp=args.amp, only=args.candidates)
    except (ValueError, RuntimeError) as err:
        print(f"{PROG} runner: error: {err}", file=sys.stderr)
        return 2
    print(report)
    if args.markdown is not None:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(report, encoding="utf-8")
    return 0


def run_profile(args: argparse.Namespace) -> int:
    """``profile``: where one training iteration of a scenario spends its time."""
    try:
        print(profiling.report(args.scenario, args.backbone))
    except ValueError as err:
        print(f"{PROG} profile: error: {err}", file=sys.stderr)
        return 2
    return 0


def run_export(args: argparse.Namespace) -> int:
    """``export``: the exported classifier against PyTorch eager, interleaved."""
    threads = args.threads or torch.get_num_threads()
    results = export_inference.run(args.batch, args.size, args.repeats, args.warmup, threads,
                                   args.candidates)
    print(export_inference.format_table(results))
    return 0


def run_export_detector(args: argparse.Namespace) -> int:
    """``export-detector``: Mask R-CNN inference, batch 1, interleaved."""
    threads = args.threads or torch.get_num_threads()
    _environment(torch.device("cpu"))
    results = export_detection.run(Arch(args.depth, 32, 4), tuple(args.image), args.repeats,
                                   args.warmup, threads, args.candidates)
    print(export_detection.format_table(results))
    print(f"{perf.load_average()} (after)")
    return 0


#: What each mode runs.
MODES: dict[str, Callable[[argparse.Namespace], int]] = {
    "backbone": run_backbone, "detector": run_detector_mode, "runner": run_runner,
    "profile": run_profile, "export": run_export, "export-detector": run_export_detector}


def _write_json(path: Optional[Path], env: list[str], rows: list[Row],
                rates: dict[str, dict[str, float]]) -> None:
    if path is None:
        return
    payload = dict(command=" ".join(sys.argv), environment=env, rates_gflops=rates,
                   load=perf.load_average(), rows=[row.__dict__ for row in rows])
    path.write_text(json.dumps(payload, indent=2, default=str))

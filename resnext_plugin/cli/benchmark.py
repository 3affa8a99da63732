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

``--runner`` times real ``tools/train.py`` runs (data loading, hooks, logging included) of the
demo classification config and the demo and 800x1333 Mask R-CNN configs, ours with its knobs
against the same configs with the framework's own ResNeXt and the knobs the framework offers
(:mod:`resnext_plugin.benchmark.runner`).

Examples::

    python tools/benchmark.py --quick                  # smoke run, small input, a few minutes
    python tools/benchmark.py                          # the full CPU table (about 40 minutes)
    python tools/benchmark.py --threads 1 --clock cpu  # load-robust cross-check
    python tools/benchmark.py --variants torchvision,plugin,plugin-cl --batch 32 --no-train
    python tools/benchmark.py --device cuda            # adds AMP bf16/fp16 variants
    python tools/benchmark.py --detector --det-size 512
    python tools/benchmark.py --runner --scenarios cls-demo,det-demo,det-800x1333 --compile
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Optional

os.environ.setdefault("KINETO_LOG_LEVEL", "5")  # the profiler's "no GPU" error line is noise

import torch
from mmengine.config import DictAction

from resnext_plugin import perf
from resnext_plugin.benchmark import profiling
from resnext_plugin.benchmark.backbone import (
    CLOCKS,
    PEERS,
    Arch,
    Case,
    Row,
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
from resnext_plugin.benchmark.detector import parse_size, run_detector
from resnext_plugin.benchmark.runner import run_benchmark
from resnext_plugin.complexity import count_flops
from resnext_plugin.models import ARCH_SETTINGS


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
    parser.add_argument("--det-size", default=None,
                        help="detector input, N or HxW, e.g. 800x1333 (default 512; --quick 256)")
    parser.add_argument("--det-batch", type=int, default=1, help="detector images per iteration")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    prof = parser.add_argument_group("--profile: where one training iteration's time goes")
    prof.add_argument("--profile", default=None, metavar="SCENARIO",
                      help="profile one iteration: det-demo, det-800x1333, cls-demo, cls-224")
    prof.add_argument("--profile-backbone", nargs="+", action=DictAction, default=None,
                      metavar="KEY=VALUE",
                      help="backbone settings for --profile, e.g. channels_last=True "
                           "fold_frozen_bn=True")
    runner = parser.add_argument_group("--runner: real tools/train.py runs")
    runner.add_argument("--runner", action="store_true",
                        help="time real tools/train.py runs instead (see --scenarios)")
    runner.add_argument("--scenarios", default="cls-demo,cls-224,det-demo,det-800x1333",
                        help="comma-separated: cls-demo, cls-224, det-demo, det-800x1333")
    runner.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    runner.add_argument("--compile", action="store_true",
                        help="add --compile runs (stock and plugin)")
    runner.add_argument("--amp", action="store_true",
                        help="add --amp runs (fp32 on CPUs without native bf16)")
    runner.add_argument("--candidates", default=None,
                        help="comma-separated plugin candidates to keep (stock is always run)")
    runner.add_argument("--out", type=Path, default=Path("work_dirs/runner_benchmark"),
                        help="work folder: demo data, derived configs, logs")
    runner.add_argument("--markdown", type=Path, default=None,
                        help="also write the report here")
    parser.add_argument("--verbose", action="store_true", help="log every call")
    args = parser.parse_args(argv)
    quick = args.quick
    defaults = dict(batch=[1, 4] if quick else [1, 32], train_batch=2 if quick else 16,
                    size=64 if quick else 224, repeats=2 if quick else 7,
                    warmup=1 if quick else 2, det_size=256 if quick else 512)
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    try:
        parse_size(str(args.det_size))
    except ValueError as err:
        parser.error(str(err))
    for key in ("train_batch", "size", "repeats", "det_batch", "groups", "width"):
        if getattr(args, key) < 1:
            parser.error(f"--{key.replace('_', '-')} must be >= 1, got {getattr(args, key)}")
    if args.clock == "cpu" and args.device is not None and args.device.startswith("cuda"):
        parser.error("--clock cpu measures CPU work; use the wall clock on CUDA")
    if args.warmup < 0:
        parser.error(f"--warmup must be >= 0, got {args.warmup}")
    if args.rounds < 1:
        parser.error(f"--rounds must be >= 1, got {args.rounds}")
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
    if args.runner:
        return run_runner(args)
    if args.profile is not None:
        try:
            print(profiling.report(args.profile, args.profile_backbone))
        except ValueError as err:
            print(f"benchmark.py --profile: error: {err}", file=sys.stderr)
            return 2
        return 0
    arch = Arch(args.depth, args.groups, args.width)
    env = perf.environment_lines(device, torch.get_num_threads())
    for line in env:
        print(line)
    print(f"{perf.load_average()} (before)")

    if args.detector:
        if args.variants is not None:
            args.variants = set(args.variants) | {"mmdet-stock"}
        rows = run_detector(args, arch, device)
        print(f"\nMask R-CNN training iteration, {arch.label} backbone, {args.det_batch} image(s) "
              f"of {args.det_size}, ratio against mmdet's stock config; rel diff = first "
              "iteration's loss against stock's")
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



def run_runner(args: argparse.Namespace) -> int:
    """``--runner``: the runner-level benchmark's report, printed (and written)."""
    names = [name for name in args.scenarios.split(",") if name]
    only = None if args.candidates is None else [c for c in args.candidates.split(",") if c]
    try:
        report = run_benchmark(names, args.out, args.rounds, quick=args.quick,
                               compile=args.compile, amp=args.amp, only=only)
    except (ValueError, RuntimeError) as err:
        print(f"benchmark.py --runner: error: {err}", file=sys.stderr)
        return 2
    print(report)
    if args.markdown is not None:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(report, encoding="utf-8")
    return 0


def _write_json(args: argparse.Namespace, env: list[str], rows: list[Row],
                rates: dict[str, dict[str, float]]) -> None:
    if args.json is None:
        return
    payload = dict(command=" ".join(sys.argv), environment=env, rates_gflops=rates,
                   load=perf.load_average(), rows=[row.__dict__ for row in rows])
    args.json.write_text(json.dumps(payload, indent=2, default=str))

"""List the paper's experiments (configs/paper/): the paper's error, our measured complexity
beside the paper's claim, the train command; with --work-dirs, our results and a plot.

Examples:
    python tools/paper_experiments.py                        # all, with params and FLOPs
    python tools/paper_experiments.py --only 'resnext50_*' --no-complexity
    python tools/paper_experiments.py --work-dirs work_dirs  # + ours, work_dirs/paper_vs_ours.png
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from resnext_plugin.experiments import (
    PAPER_GPUS,
    format_groups,
    format_table,
    measure_complexity,
    plot_results,
    read_runs,
    select_experiments,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", metavar="PATTERN",
                        help="experiments whose names match these shell patterns")
    parser.add_argument("--no-complexity", action="store_true",
                        help="skip building the models and counting params and FLOPs")
    parser.add_argument("--work-dirs", type=Path, metavar="DIR",
                        help="read our metrics from DIR/<experiment>/<timestamp>/ "
                        "(tools/train.py's default layout under work_dirs)")
    parser.add_argument("--plot", type=Path, metavar="PNG",
                        help="plot ours against the paper here "
                        "(default with --work-dirs: DIR/paper_vs_ours.png)")
    parser.add_argument("--gpus", type=int, default=PAPER_GPUS,
                        help="GPUs in the printed train commands (the paper used 8)")
    args = parser.parse_args(argv)
    if args.plot is not None and args.work_dirs is None:
        parser.error("--plot needs --work-dirs (the results to plot)")
    if args.gpus < 1:
        parser.error(f"--gpus must be >= 1, got {args.gpus}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        experiments = select_experiments(args.only)
    except ValueError as err:
        print(f"paper_experiments.py: error: {err}", file=sys.stderr)
        return 2
    measured = None
    if not args.no_complexity:
        measured = {}
        for experiment in experiments:
            print(f"measuring {experiment.name} ...", file=sys.stderr, flush=True)
            measured[experiment.name] = measure_complexity(experiment)
    results = None
    if args.work_dirs is not None:
        if not args.work_dirs.is_dir():
            print(f"paper_experiments.py: error: --work-dirs: not a directory: "
                  f"'{args.work_dirs}'", file=sys.stderr)
            return 2
        try:
            results = read_runs(args.work_dirs, experiments)
        except ValueError as err:
            print(f"paper_experiments.py: error: {err}", file=sys.stderr)
            return 2

    print(format_table(experiments, measured, results, gpus=args.gpus))
    if measured:
        groups = format_groups(measured)
        if groups:
            print("\nSame complexity (params and FLOPs relative to the ResNet counterpart):")
            print(groups)
    if results is not None:
        if not results:
            print(f"paper_experiments.py: error: no validation metrics under '{args.work_dirs}' "
                  "(looked for <experiment>/<timestamp>/vis_data/scalars.json and "
                  "<timestamp>.log)", file=sys.stderr)
            return 1
        png = plot_results(experiments, results,
                           args.plot or args.work_dirs / "paper_vs_ours.png")
        print(f"\nplot: {png}")
    return 0

"""Print the paper's Table 1 and Table 2 beside the counts measured on our built models.

    python tools/complexity.py [--size 224] [--num-classes 1000]
"""
from __future__ import annotations

import argparse

from resnext_plugin.complexity import block_parameters, classifier_complexity, solve_width

#: (name, groups, width, paper params in M, paper GFLOPs): Xie et al., Table 1.
PAPER_TABLE1 = [("ResNet-50 (1x64d)", 1, 64, 25.5, 4.1), ("ResNeXt-50 (32x4d)", 32, 4, 25.0, 4.2)]
#: (C, d) pairs of Table 2 (conv2 template; ~70k parameters each).
PAPER_TABLE2 = [(1, 64), (2, 40), (4, 24), (8, 14), (32, 4)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=224, help="input height and width")
    parser.add_argument("--num-classes", type=int, default=1000)
    args = parser.parse_args(argv)

    print(f"Table 1: 50-layer models at {args.size}x{args.size}, {args.num_classes}-class head")
    print(f"{'model':<20} {'params (ours)':>14} {'paper':>7} {'GFLOPs (ours)':>14} {'paper':>6}")
    for name, groups, width, paper_params, paper_gflops in PAPER_TABLE1:
        ours = classifier_complexity(50, groups, width, args.num_classes, args.size)
        print(f"{name:<20} {ours.params:>14,} {paper_params:>6.1f}M {ours.gflops:>14.3f} "
              f"{paper_gflops:>6.1f}")

    print("\nTable 2: width d that keeps the conv2-stage block at ResNet-50's complexity")
    print(f"{'C':>3} {'d (paper)':>9} {'d (solved)':>10} {'group-conv width':>16} {'params':>8}")
    for groups, paper_width in PAPER_TABLE2:
        width = solve_width(groups)
        print(f"{groups:>3} {paper_width:>9} {width:>10} {groups * width:>16} "
              f"{block_parameters(groups, width):>8,}")

"""Check every installed mmdet/mmpretrain config with a ResNeXt backbone against ours.

    python tools/check_stock_configs.py [--fast] [--all-files] [--filter REGEX]
                                        [--packages mmdet mmpretrain] [--threads N]

Prints each distinct backbone (scope, arguments, result) with the configs that use it and what
differs, then the counts; exits 1 when any backbone differs. See docs/compatibility.md.
"""
from __future__ import annotations

import argparse

from resnext_plugin.compat import format_report, run_sweep
from resnext_plugin.compat.discovery import STOCK_PACKAGES
from resnext_plugin.compat.stock_configs import SWEEP_THREADS, format_result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packages", nargs="+", default=list(STOCK_PACKAGES),
                        choices=STOCK_PACKAGES, help="whose .mim/configs to sweep")
    parser.add_argument("--fast", action="store_true",
                        help="only the cheapest backbones covering every scope, layer type and "
                             "switch the stock backbones use (the default test run's subset)")
    parser.add_argument("--all-files", action="store_true",
                        help="load every config file, not only those naming ResNeXt in their "
                             "inheritance chain (same result, about 6 minutes more)")
    parser.add_argument("--filter", default=None, metavar="REGEX",
                        help="only config paths (relative to the config root) matching REGEX")
    parser.add_argument("--size", type=int, default=64, help="input height and width")
    parser.add_argument("--threads", type=int, default=SWEEP_THREADS,
                        help="torch threads for the comparisons (small inputs: 1 is fastest)")
    parser.add_argument("--quiet", action="store_true", help="no per-backbone progress lines")
    args = parser.parse_args(argv)

    def progress(result):
        if not args.quiet:
            lines = format_result(result).splitlines()
            print("\n".join([lines[0]] + [ln for ln in lines if ln.lstrip().startswith("->")]),
                  flush=True)

    report = run_sweep(args.packages, fast=args.fast, prefilter=not args.all_files,
                       name_filter=args.filter,
                       input_shape=(2, 3, args.size, args.size), num_threads=args.threads,
                       progress=progress)
    print()
    print(format_report(report))
    return 0 if report.ok else 1

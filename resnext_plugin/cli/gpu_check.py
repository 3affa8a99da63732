"""`make gpu-check`: CUDA tests, the CUDA benchmark table and a short AMP training of both demo
configs, in under ten minutes; writes the figures to docs/benchmarks.md. Fails at once, saying
why, where no CUDA GPU is visible. See resnext_plugin.benchmark.gpu_check.

    python tools/gpu_check.py [--doc docs/benchmarks.md] [--out-dir work_dirs/gpu_check]
"""
from __future__ import annotations

import argparse
from pathlib import Path

from resnext_plugin.benchmark import gpu_check


def main(argv: list[str] | None = None) -> int:
    """Run ``make gpu-check``; 0 when every step passed, 1 when one failed, 2 without CUDA."""
    parser = argparse.ArgumentParser(
        prog="tools/gpu_check.py", description=__doc__.split("\n\n")[0].replace("\n", " "))
    parser.add_argument("--doc", type=Path, default=gpu_check.DOC,
                        help="markdown file whose gpu-check section is replaced "
                             "(default: %(default)s)")
    parser.add_argument("--out-dir", type=Path, default=gpu_check.OUT_DIR,
                        help="where the steps write their JSON and logs (default: %(default)s)")
    args = parser.parse_args(argv)
    return gpu_check.run(doc=args.doc, out_dir=args.out_dir)

"""`make gpu-check`: CUDA tests, the CUDA benchmark table and short AMP trainings of both demos.

The command line is :mod:`resnext_plugin.cli.gpu_check` (``--help`` for its options).
"""
import sys

from resnext_plugin.cli.gpu_check import main

if __name__ == "__main__":
    sys.exit(main())

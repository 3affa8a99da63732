"""Run a trained model on one image.

The command line is :mod:`resnext_plugin.cli.demo` (``--help`` for its options).
"""
import sys

from resnext_plugin.cli.demo import main

if __name__ == "__main__":
    sys.exit(main())

"""`make demo`: the whole pipeline on generated demo data.

The command line is :mod:`resnext_plugin.cli.demo_pipeline` (``--help`` for its options).
"""
import sys

from resnext_plugin.cli.demo_pipeline import main

if __name__ == "__main__":
    sys.exit(main())

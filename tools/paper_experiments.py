"""List the paper's experiments (configs/paper/) beside our measured complexity and results.

The command line is :mod:`resnext_plugin.cli.paper_experiments` (``--help`` for its options).
"""
import sys

from resnext_plugin.cli.paper_experiments import main

if __name__ == "__main__":
    sys.exit(main())

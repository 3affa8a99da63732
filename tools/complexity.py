"""Print the paper's Table 1 and Table 2 beside the counts measured on our built models.

The command line is :mod:`resnext_plugin.cli.complexity` (``--help`` for its options).
"""
import sys

from resnext_plugin.cli.complexity import main

if __name__ == "__main__":
    sys.exit(main())

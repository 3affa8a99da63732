"""Side-by-side speed of the plugin's ResNeXt and its peers, in one process, interleaved.

The command line is :mod:`resnext_plugin.cli.benchmark` (``--help`` for its options).
"""
import sys

from resnext_plugin.cli.benchmark import main

if __name__ == "__main__":
    sys.exit(main())

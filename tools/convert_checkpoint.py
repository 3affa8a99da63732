"""Convert a published ResNeXt checkpoint into the plugin's layout, verified key by key.

The command line is :mod:`resnext_plugin.cli.convert_checkpoint` (``--help`` for its options).
"""
import sys

from resnext_plugin.cli.convert_checkpoint import main

if __name__ == "__main__":
    sys.exit(main())

"""Check every installed mmdet/mmpretrain config with a ResNeXt backbone against ours.

The command line is :mod:`resnext_plugin.cli.check_stock_configs` (``--help`` for its options).
"""
import sys

from resnext_plugin.cli.check_stock_configs import main

if __name__ == "__main__":
    sys.exit(main())

"""Evaluate a checkpoint with an OpenMMLab 2.0 config (mmpretrain, mmdet or plain mmengine).

The command line is :mod:`resnext_plugin.cli.test` (``--help`` for its options).
"""
import sys

from resnext_plugin.cli.test import main

if __name__ == "__main__":
    sys.exit(main())

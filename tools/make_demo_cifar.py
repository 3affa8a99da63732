"""Write a small CIFAR-10 or CIFAR-100 stand-in in the official format.

The command line is :mod:`resnext_plugin.cli.make_demo_cifar` (``--help`` for its options).
"""
import sys

from resnext_plugin.cli.make_demo_cifar import main

if __name__ == "__main__":
    sys.exit(main())

"""Write the demo ImageNet-layout data set (see resnext_plugin.demo_data.imagenet).

The command line is :mod:`resnext_plugin.cli.make_demo_imagenet` (``--help`` for its options).
"""
import sys

from resnext_plugin.cli.make_demo_imagenet import main

if __name__ == "__main__":
    sys.exit(main())

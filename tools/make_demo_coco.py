"""Write the demo COCO instance-segmentation data set (see resnext_plugin.demo_data.coco).

The command line is :mod:`resnext_plugin.cli.make_demo_coco` (``--help`` for its options).
"""
import sys

from resnext_plugin.cli.make_demo_coco import main

if __name__ == "__main__":
    sys.exit(main())

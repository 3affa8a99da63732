"""Export a config and checkpoint to verified ONNX Runtime / OpenVINO files (fp32, bf16, int8).

The command line is :mod:`resnext_plugin.cli.export` (``--help`` for its options).
"""
import sys

from resnext_plugin.cli.export import main

if __name__ == "__main__":
    sys.exit(main())

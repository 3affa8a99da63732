"""The precisions an export can be made in: one entry per precision in :data:`PRECISIONS`.

Each says how its files are named (``end2end<suffix>.onnx|.xml``) and how close the exported
model must stay to PyTorch's fp32 class scores in the verification that ends every export.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Precision:
    """One numeric precision of an exported model.

    Attributes:
        name: ``'fp32'``, ``'bf16'`` or ``'int8'`` (the ``--precision`` value).
        suffix: Appended to ``end2end`` in the file names (``''`` for fp32).
        max_diff: Largest absolute difference of any output value allowed in verification.
        min_agreement: Fraction of samples whose top-1 class must equal PyTorch's.
        description: One line for ``--help`` and the sidecar.
    """

    name: str
    suffix: str
    max_diff: float
    min_agreement: float
    description: str


PRECISIONS: dict[str, Precision] = {
    "fp32": Precision("fp32", "", 1e-4, 1.0,
                      "float32 weights and arithmetic (OpenVINO forced to f32 inference)"),
    "bf16": Precision("bf16", "_bf16", 5e-2, 0.9,
                      "float32 weights, bfloat16 arithmetic (OpenVINO inference precision hint)"),
    "int8": Precision("int8", "_int8", 0.2, 0.9,
                      "int8 post-training quantisation by NNCF, calibrated on training images"),
}


def file_stem(precision: str) -> str:
    """``end2end`` plus the precision's suffix: the name mmdeploy users look for."""
    return "end2end" + PRECISIONS[precision].suffix

"""The precisions an export can be made in: one entry per precision in :data:`PRECISIONS`.

Each says how its files are named (``end2end<suffix>.onnx|.xml``) and how close the exported
model must stay to PyTorch's fp32 class scores in the verification that ends every export.

fp32 and bf16 bound every output value. int8 does not: quantisation moves every score a little,
and near a tie between a sample's two best classes its scores move far, or swap (0.29 seen on
one of 40 demo images whose top-2 margin was 0.011, while the mean over the 40 of each sample's
largest difference was 0.011). So int8 is judged by what a user sees: top-1 agreement, and the
mean over samples of each sample's largest difference.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class Precision:
    """One numeric precision of an exported model.

    Attributes:
        name: ``'fp32'``, ``'bf16'`` or ``'int8'`` (the ``--precision`` value).
        suffix: Appended to ``end2end`` in the file names (``''`` for fp32).
        max_diff: Largest absolute difference of any output value allowed in verification
            (``None``: not bounded value by value).
        mean_diff: Largest mean, over samples, of each sample's largest absolute difference
            (``None``: not bounded).
        min_agreement: Fraction of samples whose top-1 class must equal PyTorch's.
        description: One line for ``--help`` and the sidecar.
    """

    name: str
    suffix: str
    max_diff: Optional[float]
    mean_diff: Optional[float]
    min_agreement: float
    description: str

    def tolerance(self) -> dict:
        """The bounds, as the sidecar records them."""
        return {"max_diff": self.max_diff, "mean_sample_max_diff": self.mean_diff,
                "min_top1_agreement": self.min_agreement}


PRECISIONS: dict[str, Precision] = {
    "fp32": Precision("fp32", "", 1e-4, None, 1.0,
                      "float32 weights and arithmetic (OpenVINO forced to f32 inference)"),
    "bf16": Precision("bf16", "_bf16", 5e-2, None, 0.9,
                      "float32 weights, bfloat16 arithmetic (OpenVINO inference precision hint)"),
    "int8": Precision("int8", "_int8", None, 0.05, 0.9,
                      "int8 post-training quantisation by NNCF, calibrated on training images"),
}


def file_stem(precision: str) -> str:
    """``end2end`` plus the precision's suffix: the name mmdeploy users look for."""
    return "end2end" + PRECISIONS[precision].suffix

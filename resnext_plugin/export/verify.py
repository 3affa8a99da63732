"""The check that ends every export: the exported model beside PyTorch on pipeline inputs."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Optional

import numpy as np

from .errors import VerificationError
from .precisions import PRECISIONS


@dataclass
class OutputCheck:
    """How one output of the exported model compares with PyTorch's.

    Attributes:
        output: The output's name.
        max_diff: Largest absolute difference over all values.
        worst_sample: Index of the sample holding it.
        agreement: Fraction of samples with the same top-1 class (``None`` for outputs without
            classes).
        samples: Number of samples compared.
        mean_sample_diff: Mean over samples of each sample's largest absolute difference.
    """

    output: str
    max_diff: float
    worst_sample: int
    agreement: Optional[float]
    samples: int
    mean_sample_diff: Optional[float] = None

    def as_dict(self) -> dict:
        return asdict(self)


def compare(names: Sequence[str], reference: Sequence[np.ndarray],
            exported: Sequence[np.ndarray], top1_outputs: Sequence[str] = ()
            ) -> list[OutputCheck]:
    """Compare outputs pairwise (same order as ``names``).

    Raises:
        VerificationError: An output is missing or has another shape than PyTorch's.
    """
    if len(exported) != len(reference):
        raise VerificationError(f"the exported model gives {len(exported)} outputs, PyTorch "
                                f"{len(reference)} ({', '.join(names)})")
    checks = []
    for name, ref, out in zip(names, reference, exported):
        if ref.shape != out.shape:
            raise VerificationError(f"output '{name}' has shape {out.shape} in the exported "
                                    f"model and {ref.shape} in PyTorch")
        diff = np.abs(ref.astype(np.float64) - out.astype(np.float64))
        per_sample = diff.reshape(len(diff), -1).max(axis=1) if diff.size else np.zeros(1)
        agreement = None
        if name in top1_outputs:
            agreement = float((ref.argmax(axis=1) == out.argmax(axis=1)).mean())
        checks.append(OutputCheck(name, float(per_sample.max()), int(per_sample.argmax()),
                                  agreement, len(ref), float(per_sample.mean())))
    return checks


def enforce(checks: Sequence[OutputCheck], precision: str, what: str) -> None:
    """Raise :class:`VerificationError` naming the first output outside ``precision``'s
    tolerance (largest difference, mean per-sample difference, top-1 agreement)."""
    bound = PRECISIONS[precision]
    for check in checks:
        if bound.max_diff is not None and check.max_diff > bound.max_diff:
            raise VerificationError(
                f"{what}: output '{check.output}' differs from PyTorch's: max abs diff "
                f"{check.max_diff:.3g} (sample {check.worst_sample}) > {bound.max_diff:g}, "
                f"the {precision} tolerance")
        if (bound.mean_diff is not None and check.mean_sample_diff is not None
                and check.mean_sample_diff > bound.mean_diff):
            raise VerificationError(
                f"{what}: output '{check.output}' differs from PyTorch's: mean per-sample max "
                f"abs diff {check.mean_sample_diff:.3g} > {bound.mean_diff:g}, the {precision} "
                "tolerance")
        if check.agreement is not None and check.agreement < bound.min_agreement:
            raise VerificationError(
                f"{what}: output '{check.output}' differs from PyTorch's: top-1 agreement "
                f"{check.agreement:.1%} < {bound.min_agreement:.0%}, the {precision} tolerance")


def describe(checks: Sequence[OutputCheck]) -> str:
    """One line: per output, the largest difference and the top-1 agreement."""
    parts = []
    for check in checks:
        text = f"{check.output}: max abs diff {check.max_diff:.3g}"
        if check.mean_sample_diff is not None:
            text += f" (mean per sample {check.mean_sample_diff:.3g})"
        if check.agreement is not None:
            text += f", top-1 agreement {check.agreement:.1%}"
        parts.append(text + f" ({check.samples} samples)")
    return "; ".join(parts)

"""The Mask R-CNN inference benchmark's candidates compute the same detections: mmdet's own
``predict``, the export wrapper around mmdet's stock model, and ours with its knobs (small
ResNeXt-50 model, small image; the exported candidates are timed by the benchmark only, their
equality with PyTorch is what tests/test_export/test_export_detector.py checks)."""
from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
import torch

pytest.importorskip("mmdet")

from resnext_plugin.benchmark.backbone import Arch  # noqa: E402
from resnext_plugin.benchmark.export_detection import (  # noqa: E402
    CANDIDATES,
    REFERENCE,
    build_models,
    make_step,
)

EAGER = ["mmdet stock eager", "ours eager", "ours eager channels_last + folded BN"]


def test_eager_candidates_give_mmdets_detections() -> None:
    names = [REFERENCE, *EAGER]
    models = build_models(Arch(50, 32, 4), names)
    inputs = torch.randn(1, 3, 96, 128, generator=torch.Generator().manual_seed(0))
    cache: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        results = {}
        for name in names:
            step, count = make_step(CANDIDATES[name], models, inputs, 1, Path(tmp), cache)
            results[name] = (step(), count)
    predicted, count = results[REFERENCE]
    assert count(predicted) == 100  # max_per_img: the raised class biases make boxes score
    reference = predicted[0].pred_instances
    for name in EAGER:
        (dets, labels, masks), count = results[name]
        assert count((dets, labels, masks)) == 100, name
        torch.testing.assert_close(dets[0, :, :4], reference.bboxes, atol=1e-3, rtol=1e-4,
                                   msg=name)
        torch.testing.assert_close(dets[0, :, 4], reference.scores, atol=1e-4, rtol=1e-4,
                                   msg=name)
        assert torch.equal(labels[0], reference.labels), name
        assert masks.shape[-2:] == (28, 28), name

"""The export inference benchmark's candidate machinery, at a tiny size: every knob candidate
computes the peer's scores (a knob must not change results). Nothing compiles or quantizes in
the default run; the compile row is marked slow."""
from __future__ import annotations

import math

import pytest

from resnext_plugin import perf
from resnext_plugin.benchmark import export_inference as ei

#: Largest difference of a knob candidate's softmax scores from the peer's, relative to the
#: peer's largest score: fp32 knobs reorder float arithmetic only; bf16 autocast rounds every
#: convolution's inputs to 8 significant bits.
FP32_TOLERANCE = 1e-4
BF16_TOLERANCE = 2e-2

EAGER = ["timm eager fp32", "mmpretrain stock eager fp32", "ours eager fp32",
         "torchvision channels_last", "ours channels_last", "ours BN folded",
         "torchvision bf16 autocast", "ours bf16 autocast"]


def _check(results: list[ei.Result], names: list[str]) -> None:
    rows = {r.candidate: r for r in results}
    assert set(rows) == {ei.PEER, *names}
    assert rows[ei.PEER].ratio == 1.0 and rows[ei.PEER].max_diff == 0.0
    for name in names:
        row, candidate = rows[name], ei.CANDIDATES[name]
        if row.skipped:  # bf16 without native bf16: skipped, and says why
            assert candidate.precision == "bf16" and not perf.cpu_supports_bf16(), row
            assert row.note.startswith("skipped: no native bf16"), row
            continue
        tolerance = BF16_TOLERANCE if candidate.precision == "bf16" else FP32_TOLERANCE
        assert row.rel_diff <= tolerance, (name, row.rel_diff, tolerance)
        assert row.median_s > 0 and math.isfinite(row.ratio)


def test_eager_and_knob_candidates_match_the_peer():
    lines: list[str] = []
    results = ei.run(batches=(2,), size=32, repeats=1, warmup=0, threads=1, names=EAGER,
                     log=lines.append)
    _check(results, EAGER)
    assert any("flags:" in line for line in lines[:3])  # the CPU's flags come first
    table = ei.format_table(results)
    assert all(f"| {name} |" in table for name in EAGER)


def test_candidates_table_is_consistent():
    assert ei.PEER in ei.CANDIDATES
    assert all(name == c.name for name, c in ei.CANDIDATES.items())
    # every knob ours has, the peer has beside it where the peer offers the knob
    for candidate in ei.CANDIDATES.values():
        if candidate.graph == "ours" and candidate.backend == "eager":
            for knob in candidate.knobs:
                if "torchvision" in ei.KNOBS[knob]:
                    assert any(c.graph == "torchvision" and c.knobs == candidate.knobs
                               for c in ei.CANDIDATES.values()), candidate
    assert not any(ei.CANDIDATES[name].slow for name in ei.quick_names())
    with pytest.raises(ValueError, match="no knob"):
        ei.Candidate("bad", "torchvision", "eager", "fp32", ("fold_bn",))
    with pytest.raises(ValueError, match="only eager"):
        ei.Candidate("bad", "ours", "openvino", "fp32", ("channels_last",))


def test_bf16_is_skipped_with_its_reason_without_native_bf16(monkeypatch):
    monkeypatch.setattr(perf, "cpu_bf16_support", lambda: (False, "test: no bf16"))
    results = ei.run(batches=(2,), size=32, repeats=1, warmup=0, threads=1,
                     names=["ours bf16 autocast"], log=lambda line: None)
    row = {r.candidate: r for r in results}["ours bf16 autocast"]
    assert row.skipped and row.note == "skipped: no native bf16: test: no bf16"
    assert "skipped: no native bf16" in ei.format_table(results)


@pytest.mark.slow
def test_compile_candidates_match_the_peer():
    names = ["torchvision compile", "ours compile"]
    results = ei.run(batches=(2,), size=32, repeats=1, warmup=0, threads=1, names=names,
                     log=lambda line: None)
    _check(results, names)
    assert all(r.note.startswith("compile ") for r in results if r.candidate in names)

"""CPU inference of the exported classifier against PyTorch eager, interleaved.

Candidates (one entry each in :data:`CANDIDATES`): torchvision's ``resnext50_32x4d`` eager fp32
(the peer, and the 1.00x of every ratio), ours eager fp32 (the ImageClassifier that
``configs/resnext50_32x4d_imagenet.py`` builds), and our export run by ONNX Runtime (fp32,
int8) and OpenVINO (fp32, bf16, int8), plus OpenVINO int8 of torchvision's own graph (what the
backend gives the peer: the export must not lose it). Weights are random (speed does not
depend on them): torchvision's model's weights are loaded into ours, both take the same input.
int8 is calibrated by NNCF on random normal inputs (speed only; ``tools/export.py`` calibrates
on training images). OpenVINO runs with the input shape fixed per batch size, as a deployment
compiles it.

Each batch size is one interleaved run (:func:`resnext_plugin.perf.interleaved_timings`), so a
busy neighbour slows all candidates alike; batch 1 reports latency, larger batches throughput.

Run: ``python tools/benchmark.py export [--quick] [--threads N]``.
"""
from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from resnext_plugin import perf
from resnext_plugin.export import BACKENDS, ExportedRuntime
from resnext_plugin.export.api import export_onnx
from resnext_plugin.export.backends import WriteRequest
from resnext_plugin.paths import CONFIGS

CONFIG = CONFIGS / "resnext50_32x4d_imagenet.py"
PEER = "torchvision eager fp32"


@dataclass(frozen=True)
class Candidate:
    """One way to run the classifier.

    Attributes:
        name: Its row in the table.
        graph: ``'ours'`` or ``'torchvision'``: which model it runs.
        backend: ``'eager'`` or a key of :data:`resnext_plugin.export.BACKENDS`.
        precision: ``'fp32'``, ``'bf16'`` or ``'int8'``.
    """

    name: str
    graph: str
    backend: str
    precision: str


CANDIDATES: dict[str, Candidate] = {c.name: c for c in (
    Candidate(PEER, "torchvision", "eager", "fp32"),
    Candidate("ours eager fp32", "ours", "eager", "fp32"),
    Candidate("ONNX Runtime fp32", "ours", "onnxruntime", "fp32"),
    Candidate("ONNX Runtime int8", "ours", "onnxruntime", "int8"),
    Candidate("OpenVINO fp32", "ours", "openvino", "fp32"),
    Candidate("OpenVINO bf16", "ours", "openvino", "bf16"),
    Candidate("OpenVINO int8", "ours", "openvino", "int8"),
    Candidate("OpenVINO int8 (torchvision graph)", "torchvision", "openvino", "int8"),
)}


class _TorchvisionScores(torch.nn.Module):
    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.model(x), dim=1)


def build_models() -> dict[str, torch.nn.Module]:
    """``{'torchvision': ..., 'ours': ...}``: both return softmax scores, same weights."""
    import torchvision
    from mmengine.config import Config

    from resnext_plugin.export.classifier import ClassifierScores
    from resnext_plugin.export.model import build_model

    torch.manual_seed(0)
    peer = torchvision.models.resnext50_32x4d().eval()
    ours = build_model(Config.fromfile(str(CONFIG)))
    state = {f"backbone.{k}": v for k, v in peer.state_dict().items() if not k.startswith("fc.")}
    state.update({"head.fc.weight": peer.fc.weight, "head.fc.bias": peer.fc.bias})
    ours.load_state_dict(state, strict=True)
    return {"torchvision": _TorchvisionScores(peer).eval(),
            "ours": ClassifierScores(ours).eval()}


def _exported_file(candidate: Candidate, models: dict, work: Path, size: int,
                   calib: Sequence[np.ndarray], cache: dict) -> Path:
    onnx_key = ("onnx", candidate.graph)
    if onnx_key not in cache:
        folder = work / candidate.graph
        folder.mkdir(exist_ok=True)
        cache[onnx_key] = folder / "end2end.onnx"
        export_onnx(models[candidate.graph], torch.zeros(1, 3, size, size), cache[onnx_key])
    key = (candidate.graph, candidate.backend, candidate.precision)
    if key not in cache:
        onnx_path = cache[onnx_key]
        cache[key] = BACKENDS[candidate.backend].write(
            WriteRequest(onnx_path, onnx_path.parent, candidate.precision, calib))
    return cache[key]


def make_step(candidate: Candidate, models: dict, inputs: torch.Tensor, threads: int,
              work: Path, calib: Sequence[np.ndarray], cache: dict) -> Callable[[], object]:
    """A zero-argument call running ``candidate`` once on ``inputs``."""
    if candidate.backend == "eager":
        model = models[candidate.graph]

        def eager() -> object:
            with torch.no_grad():
                return model(inputs)
        return eager
    path = _exported_file(candidate, models, work, inputs.shape[-1], calib, cache)
    shape = tuple(inputs.shape) if candidate.backend == "openvino" else None
    runtime = ExportedRuntime(path, threads=threads, static_shape=shape)
    array = inputs.numpy()
    return lambda: runtime(array)


@dataclass
class Result:
    """One table row."""

    candidate: str
    batch: int
    median_s: float
    spread: float
    ratio: float
    max_diff: float

    @property
    def images_per_s(self) -> float:
        return self.batch / self.median_s


def run(batches: Sequence[int] = (1, 32), size: int = 224, repeats: int = 5, warmup: int = 2,
        threads: Optional[int] = None, names: Optional[Sequence[str]] = None,
        calib_images: int = 32, log: Callable[[str], None] = print) -> list[Result]:
    """Time the candidates at each batch size; ratios to torchvision eager fp32."""
    threads = threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    names = list(names or CANDIDATES)
    if PEER not in names:
        names.insert(0, PEER)
    models = build_models()
    gen = torch.Generator().manual_seed(0)
    calib = [torch.randn(1, 3, size, size, generator=gen).numpy() for _ in range(calib_images)]
    results: list[Result] = []
    cache: dict = {}
    with tempfile.TemporaryDirectory(prefix="export_bench_") as tmp:
        for batch in batches:
            inputs = torch.randn(batch, 3, size, size, generator=gen)
            steps = {name: make_step(CANDIDATES[name], models, inputs, threads, Path(tmp),
                                     calib, cache) for name in names}
            reference = np.asarray(steps[PEER]())
            diffs = {}
            for name, step in steps.items():
                out = step()
                out = out[0] if isinstance(out, list) else out
                diffs[name] = float(np.abs(np.asarray(out) - reference).max())
            log(f"batch {batch}: {len(steps)} candidates, {warmup} warm-up + {repeats} "
                "interleaved rounds")
            timings = perf.interleaved_timings(steps, repeats, warmup)
            base = timings[PEER].median
            results += [Result(name, batch, t.median, t.spread, base / t.median, diffs[name])
                        for name, t in timings.items()]
    return results


def format_table(results: Sequence[Result]) -> str:
    """Markdown table: per batch size, median time, images/s and ratio to the peer."""
    lines = ["| batch | candidate | median ms | img/s | vs torchvision eager fp32 | "
             "IQR | max score diff vs peer |", "|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r.batch} | {r.candidate} | {r.median_s * 1e3:.1f} | "
                     f"{r.images_per_s:.1f} | {r.ratio:.2f}x | {r.spread:.0%} | "
                     f"{r.max_diff:.1e} |")
    return "\n".join(lines)

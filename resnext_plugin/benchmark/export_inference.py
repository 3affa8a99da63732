"""CPU inference of the exported classifier against PyTorch eager, interleaved.

Candidates (one entry each in :data:`CANDIDATES`): torchvision's ``resnext50_32x4d`` eager fp32
(the peer, and the 1.00x of every ratio); the other eager models: timm's ``resnext50_32x4d``,
mmpretrain's stock ``ResNeXt`` classifier (our config with the backbone type swapped to
``'mmpretrain.ResNeXt'``) and ours (the ImageClassifier that
``configs/resnext50_32x4d_imagenet.py`` builds); PyTorch knobs on ours and, where the peer has the
same knob, on torchvision too (:data:`KNOBS`: ``channels_last``, BN folded, ``torch.compile``;
precision ``'bf16'`` on an eager candidate is bf16 autocast); and our export run by ONNX Runtime
(fp32, int8) and OpenVINO (fp32, bf16, int8), plus OpenVINO int8 of torchvision's own graph (what
the backend gives the peer: the export must not lose it). Weights are random (speed does not
depend on them) and the same in every model: torchvision's, loaded into the others; every
candidate takes the same input, and its scores are compared with the peer's before timing.
int8 is calibrated by NNCF on random normal inputs (speed only; ``tools/export.py`` calibrates
on training images). OpenVINO runs with the input shape fixed per batch size, as a deployment
compiles it.

A knob is applied the way its owner offers it: ours takes ``channels_last`` and
``fold_frozen_bn`` from the backbone config (it converts its input itself, inside the timed
call); torchvision is converted with ``model.to(memory_format=torch.channels_last)`` and its input
inside the timed call. bf16 autocast runs only where :func:`resnext_plugin.perf.cpu_bf16_support`
says the CPU has native bf16, and ``torch.compile`` (inductor, ``dynamic=False``) is skipped with
its error line if it fails; skipped candidates stay in the table with the reason.

Each batch size is one interleaved run (:func:`resnext_plugin.perf.interleaved_timings`), so a
busy neighbour slows all candidates alike; batch 1 reports latency, larger batches throughput.

Run: ``python tools/benchmark.py export [--quick] [--threads N]``.
"""
from __future__ import annotations

import contextlib
import copy
import math
import tempfile
import time
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

#: The models a candidate can run.
GRAPHS = ("torchvision", "timm", "mmpretrain", "ours")
#: PyTorch knobs of an eager candidate, and the graphs that offer each.
KNOBS: dict[str, tuple[str, ...]] = {
    "channels_last": ("torchvision", "timm", "ours"),
    "fold_bn": ("ours",),  # the backbone's fold_frozen_bn
    "compile": GRAPHS,
}


class Skip(Exception):
    """A candidate that cannot run here; the message says why."""


@dataclass(frozen=True)
class Candidate:
    """One way to run the classifier.

    Attributes:
        name: Its row in the table.
        graph: Which model it runs, one of :data:`GRAPHS`.
        backend: ``'eager'`` or a key of :data:`resnext_plugin.export.BACKENDS`.
        precision: ``'fp32'``, ``'bf16'`` (bf16 autocast when eager) or ``'int8'``.
        knobs: Eager only: keys of :data:`KNOBS`, applied together.
    """

    name: str
    graph: str
    backend: str
    precision: str
    knobs: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.graph not in GRAPHS:
            raise ValueError(f"{self.name}: graph {self.graph!r} is not one of {GRAPHS}")
        if self.backend != "eager" and (self.knobs or self.graph not in ("ours", "torchvision")):
            raise ValueError(f"{self.name}: only eager candidates take knobs and other graphs")
        if self.backend == "eager" and self.precision not in ("fp32", "bf16"):
            raise ValueError(f"{self.name}: eager runs fp32 or bf16 autocast")
        for knob in self.knobs:
            if self.graph not in KNOBS.get(knob, ()):
                raise ValueError(f"{self.name}: {self.graph} has no knob {knob!r}")

    @property
    def slow(self) -> bool:
        """Compiles (``torch.compile``): left out of ``--quick`` unless named."""
        return "compile" in self.knobs


CANDIDATES: dict[str, Candidate] = {c.name: c for c in (
    Candidate(PEER, "torchvision", "eager", "fp32"),
    Candidate("torchvision channels_last", "torchvision", "eager", "fp32", ("channels_last",)),
    Candidate("torchvision bf16 autocast", "torchvision", "eager", "bf16"),
    Candidate("torchvision compile", "torchvision", "eager", "fp32", ("compile",)),
    Candidate("timm eager fp32", "timm", "eager", "fp32"),
    Candidate("mmpretrain stock eager fp32", "mmpretrain", "eager", "fp32"),
    Candidate("ours eager fp32", "ours", "eager", "fp32"),
    Candidate("ours channels_last", "ours", "eager", "fp32", ("channels_last",)),
    Candidate("ours BN folded", "ours", "eager", "fp32", ("fold_bn",)),
    Candidate("ours bf16 autocast", "ours", "eager", "bf16"),
    Candidate("ours compile", "ours", "eager", "fp32", ("compile",)),
    Candidate("ONNX Runtime fp32", "ours", "onnxruntime", "fp32"),
    Candidate("ONNX Runtime int8", "ours", "onnxruntime", "int8"),
    Candidate("OpenVINO fp32", "ours", "openvino", "fp32"),
    Candidate("OpenVINO bf16", "ours", "openvino", "bf16"),
    Candidate("OpenVINO int8", "ours", "openvino", "int8"),
    Candidate("OpenVINO int8 (torchvision graph)", "torchvision", "openvino", "int8"),
)}


def quick_names() -> list[str]:
    """The candidates of ``--quick``: all but the compiling ones."""
    return [name for name, candidate in CANDIDATES.items() if not candidate.slow]


class _PeerScores(torch.nn.Module):
    """A torchvision or timm classifier's softmax scores; with ``channels_last``, the input is
    converted inside the call (the model itself is converted by the caller)."""

    def __init__(self, model: torch.nn.Module, channels_last: bool = False) -> None:
        super().__init__()
        self.model = model
        self.channels_last = channels_last

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return torch.softmax(self.model(x), dim=1)


def _mm_state(peer_state: dict) -> dict:
    """torchvision's state dict under an mmpretrain ImageClassifier's keys."""
    state = {f"backbone.{k}": v for k, v in peer_state.items() if not k.startswith("fc.")}
    state.update({"head.fc.weight": peer_state["fc.weight"],
                  "head.fc.bias": peer_state["fc.bias"]})
    return state


def build_graph(graph: str, peer_state: dict, knobs: Sequence[str] = ()) -> torch.nn.Module:
    """``graph``'s classifier returning softmax scores, ``peer_state`` loaded strictly, in eval
    mode, with the knobs applied except ``compile``.

    Args:
        graph: One of :data:`GRAPHS`.
        peer_state: torchvision ``resnext50_32x4d``'s state dict (timm's keys are the same).
        knobs: Keys of :data:`KNOBS`.
    """
    channels_last = "channels_last" in knobs
    if graph in ("torchvision", "timm"):
        if graph == "torchvision":
            import torchvision
            model = torchvision.models.resnext50_32x4d()
        else:
            import timm
            model = timm.create_model("resnext50_32x4d", pretrained=False)
        model.load_state_dict(peer_state, strict=True)
        if channels_last:
            model.to(memory_format=torch.channels_last)
        return _PeerScores(model, channels_last).eval()
    from mmengine.config import Config

    from resnext_plugin.export.classifier import ClassifierScores
    from resnext_plugin.export.model import build_model

    cfg = Config.fromfile(str(CONFIG))
    if graph == "mmpretrain":
        cfg.model.backbone.type = "mmpretrain.ResNeXt"
    else:  # ours: the knobs as a user sets them, in the backbone config
        cfg.model.backbone.update(channels_last=channels_last,
                                  fold_frozen_bn="fold_bn" in knobs)
    model = build_model(cfg)
    model.load_state_dict(_mm_state(peer_state), strict=True)
    return ClassifierScores(model).eval()


def build_models() -> dict[str, torch.nn.Module]:
    """``{'torchvision': ..., 'ours': ...}``: both return softmax scores, same weights."""
    import torchvision

    torch.manual_seed(0)
    state = torchvision.models.resnext50_32x4d().state_dict()
    return {graph: build_graph(graph, state) for graph in ("torchvision", "ours")}


def _peer_state(models: dict) -> dict:
    return models["torchvision"].model.state_dict()


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


def _eager_model(candidate: Candidate, models: dict, cache: dict) -> torch.nn.Module:
    """The candidate's model, built once per run (compiled models too: a new batch size
    recompiles at its first call)."""
    key = ("eager", candidate.graph, tuple(sorted(candidate.knobs)))
    if key not in cache:
        plain = tuple(k for k in candidate.knobs if k != "compile")
        if not plain and candidate.graph in models:
            model = models[candidate.graph]
        else:
            model = build_graph(candidate.graph, _peer_state(models), plain)
        if "compile" in candidate.knobs:
            model = torch.compile(copy.deepcopy(model), dynamic=False)
        cache[key] = model
    return cache[key]


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"


def make_step(candidate: Candidate, models: dict, inputs: torch.Tensor, threads: int,
              work: Path, calib: Sequence[np.ndarray], cache: dict,
              log: Callable[[str], None] = print) -> Callable[[], object]:
    """A zero-argument call running ``candidate`` once on ``inputs``.

    A compiling candidate is called once here (its compile time is logged and kept in
    ``cache[('compile_s', name, batch)]``).

    Raises:
        Skip: bf16 autocast on a CPU without native bf16, or ``torch.compile`` failed.
    """
    if candidate.backend == "eager":
        if candidate.precision == "bf16":
            native, why = perf.cpu_bf16_support()
            if not native:
                raise Skip(f"no native bf16: {why}")
        model = _eager_model(candidate, models, cache)
        bf16 = candidate.precision == "bf16"

        def eager() -> object:
            autocast = (torch.autocast("cpu", dtype=torch.bfloat16) if bf16
                        else contextlib.nullcontext())
            with torch.no_grad(), autocast:
                return model(inputs)
        if "compile" in candidate.knobs:
            begin = time.perf_counter()
            try:
                eager()
            except Exception as err:  # noqa: BLE001 - any compile failure skips the row
                raise Skip(f"torch.compile failed: {_first_line(err)}") from err
            seconds = time.perf_counter() - begin
            cache[("compile_s", candidate.name, len(inputs))] = seconds
            log(f"{candidate.name}: compiled for batch {len(inputs)} in {seconds:.0f} s")
        return eager
    path = _exported_file(candidate, models, work, inputs.shape[-1], calib, cache)
    shape = tuple(inputs.shape) if candidate.backend == "openvino" else None
    runtime = ExportedRuntime(path, threads=threads, static_shape=shape)
    array = inputs.numpy()
    return lambda: runtime(array)


def _scores(out: object) -> np.ndarray:
    out = out[0] if isinstance(out, list) else out
    if isinstance(out, torch.Tensor):
        return out.float().numpy()
    return np.asarray(out, dtype=np.float32)


@dataclass
class Result:
    """One table row (a skipped candidate: times NaN, ``note`` says why)."""

    candidate: str
    batch: int
    median_s: float
    spread: float
    ratio: float
    max_diff: float
    rel_diff: float = math.nan
    note: str = ""

    @property
    def images_per_s(self) -> float:
        return self.batch / self.median_s

    @property
    def skipped(self) -> bool:
        return math.isnan(self.median_s)


def run(batches: Sequence[int] = (1, 32), size: int = 224, repeats: int = 5, warmup: int = 2,
        threads: Optional[int] = None, names: Optional[Sequence[str]] = None,
        calib_images: int = 32, log: Callable[[str], None] = print) -> list[Result]:
    """Time the candidates at each batch size; ratios to torchvision eager fp32.

    Logs the environment first (torch, threads, the CPU's AVX2/AVX-512/AMX flags, native bf16,
    load average). ``max_diff`` is the largest absolute difference of a candidate's scores from
    the peer's on the same input, ``rel_diff`` that over the peer's largest score.

    Returns:
        list[Result]: Per batch size, one row per candidate (skipped ones included).
    """
    threads = threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    for line in perf.environment_lines(torch.device("cpu"), threads):
        log(line)
    log(f"{perf.load_average()} (before)")
    names = list(names or CANDIDATES)
    if PEER not in names:
        names.insert(0, PEER)
    models = build_models()
    gen = torch.Generator().manual_seed(0)
    calib = [torch.randn(1, 3, size, size, generator=gen).numpy() for _ in range(calib_images)]
    results: list[Result] = []
    cache: dict = {}
    skipped: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="export_bench_") as tmp:
        for batch in batches:
            inputs = torch.randn(batch, 3, size, size, generator=gen)
            steps = {}
            for name in names:
                if name in skipped:
                    continue
                try:
                    steps[name] = make_step(CANDIDATES[name], models, inputs, threads,
                                            Path(tmp), calib, cache, log)
                except Skip as err:
                    skipped[name] = str(err)
                    log(f"skipped {name}: {err}")
            reference = _scores(steps[PEER]())
            scale = float(np.abs(reference).max()) or 1.0
            diffs = {name: float(np.abs(_scores(step()) - reference).max())
                     for name, step in steps.items()}
            log(f"batch {batch}: {len(steps)} candidates, {warmup} warm-up + {repeats} "
                "interleaved rounds")
            timings = perf.interleaved_timings(steps, repeats, warmup)
            base = timings[PEER].median
            for name in names:
                if name in skipped:
                    results.append(Result(name, batch, math.nan, math.nan, math.nan, math.nan,
                                          note=f"skipped: {skipped[name]}"))
                    continue
                t = timings[name]
                compiled = cache.get(("compile_s", name, batch))
                note = f"compile {compiled:.0f} s" if compiled is not None else ""
                results.append(Result(name, batch, t.median, t.spread, base / t.median,
                                      diffs[name], diffs[name] / scale, note))
    log(f"{perf.load_average()} (after)")
    return results


def format_table(results: Sequence[Result]) -> str:
    """Markdown table: per batch size, median time, images/s and ratio to the peer."""
    lines = ["| batch | candidate | median ms | img/s | vs torchvision eager fp32 | "
             "IQR | max score diff vs peer (relative) | note |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results:
        if r.skipped:
            lines.append(f"| {r.batch} | {r.candidate} | - | - | - | - | - | {r.note} |")
            continue
        lines.append(f"| {r.batch} | {r.candidate} | {r.median_s * 1e3:.1f} | "
                     f"{r.images_per_s:.1f} | {r.ratio:.2f}x | {r.spread:.0%} | "
                     f"{r.max_diff:.1e} ({r.rel_diff:.1e}) | {r.note} |")
    return "\n".join(lines)

"""``make gpu-check``: what a CUDA machine must show, in under ten minutes.

1. the CUDA-marked tests (``pytest -m cuda``);
2. the backbone benchmark on CUDA: AMP (bf16, fp16), channels_last and ``torch.compile``
   against the peers, with the fraction of the GPU's measured GEMM and convolution peak;
3. a short AMP training of both demo configs through ``tools/train.py`` (the runner-level
   benchmark: stock and plugin, same framework knobs);

and writes what it measured into ``docs/benchmarks.md`` between the ``gpu-check`` markers. Each
step has its own time limit; a failed step is reported and the others still run.
"""
from __future__ import annotations

import datetime
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from resnext_plugin.paths import DOCS, REPO_ROOT, TOOLS

from .scenarios import smoke_scenarios

DOC = DOCS / "benchmarks.md"
BEGIN = "<!-- gpu-check:begin -->"
END = "<!-- gpu-check:end -->"
#: Seconds per step; together under ten minutes with start-up.
LIMITS = {"tests": 140, "benchmark": 200, "training": 180}
OUT_DIR = REPO_ROOT / "work_dirs" / "gpu_check"


class NoGpuError(RuntimeError):
    """No CUDA device is visible to PyTorch."""


def require_cuda() -> str:
    """The GPU's name; raises :class:`NoGpuError` saying why there is none."""
    import torch

    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    if torch.version.cuda is None:
        why = f"this PyTorch ({torch.__version__}) is a CPU-only build"
    else:
        why = (f"PyTorch {torch.__version__} (CUDA {torch.version.cuda}) sees no CUDA device "
               f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')!r}; "
               "is the driver loaded? try nvidia-smi)")
    raise NoGpuError(f"make gpu-check needs a CUDA GPU: {why}. Nothing was run.")


@dataclass
class Step:
    """One step's command and outcome."""

    name: str
    command: list[str]
    limit: float
    returncode: Optional[int] = None
    seconds: float = 0.0
    output: str = ""

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def run(self) -> "Step":
        begin = time.perf_counter()
        try:
            result = subprocess.run(self.command, cwd=REPO_ROOT, capture_output=True, text=True,
                                    timeout=self.limit, check=False)
            self.returncode, self.output = result.returncode, result.stdout + result.stderr
        except subprocess.TimeoutExpired as err:
            self.returncode = 124
            out = err.stdout.decode() if isinstance(err.stdout, bytes) else (err.stdout or "")
            self.output = out + f"\n[timed out after {self.limit:.0f} s]"
        self.seconds = time.perf_counter() - begin
        return self

    def summary(self) -> str:
        state = "ok" if self.ok else f"FAILED (exit {self.returncode})"
        return f"{self.name}: {state} in {self.seconds:.0f} s ({' '.join(self.command[1:])})"


def steps(python: str = sys.executable, out_dir: Path = OUT_DIR) -> list[Step]:
    """The three steps, as commands."""
    benchmark = str(TOOLS / "benchmark.py")
    return [
        Step("CUDA tests", [python, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider",
                            str(REPO_ROOT / "tests")], LIMITS["tests"]),
        Step("backbone benchmark (CUDA)", [
            python, benchmark, "backbone", "--device", "cuda", "--repeats", "5",
            "--batch", "64", "--train-batch", "64", "--json", str(out_dir / "backbone.json"),
            "--variants", "plugin,plugin-cl,plugin-fused-cl,plugin-cl-compile,plugin-bf16-cl,"
            "plugin-fp16-cl"], LIMITS["benchmark"]),
        Step("AMP training, demo configs (tools/train.py)", [
            python, benchmark, "runner", "--scenarios", ",".join(smoke_scenarios()),
            "--rounds", "1", "--amp", "--quick", "--out", str(out_dir / "runner"),
            "--candidates", "plugin-cl-amp,plugin-cl-fold-amp",
            "--markdown", str(out_dir / "runner.md")], LIMITS["training"]),
    ]


def _section(gpu: str, results: Sequence[Step], out_dir: Path) -> str:
    import torch

    now = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    lines = [BEGIN, "", f"### `make gpu-check`, {now}", "",
             f"GPU: {gpu}; torch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN "
             f"{torch.backends.cudnn.version()}.", ""]
    lines += [f"* {step.summary()}" for step in results]
    for step in results:
        lines += ["", f"#### {step.name}", "", "```",
                  *step.output.strip().splitlines()[-60:], "```"]
    runner_md = out_dir / "runner.md"
    if runner_md.exists():
        lines += ["", runner_md.read_text(encoding="utf-8").strip()]
    return "\n".join(lines + ["", END])


def write_section(text: str, doc: Path = DOC) -> None:
    """Replace the ``gpu-check`` section of ``doc`` (append it if there is none)."""
    current = doc.read_text(encoding="utf-8") if doc.exists() else ""
    if BEGIN in current and END in current:
        head, rest = current.split(BEGIN, 1)
        tail = rest.split(END, 1)[1]
        doc.write_text(head + text + tail, encoding="utf-8")
    else:
        doc.write_text(current.rstrip() + "\n\n" + text + "\n", encoding="utf-8")


def run(doc: Path = DOC, out_dir: Path = OUT_DIR) -> int:
    """Run the steps and write their figures into ``doc``.

    Returns:
        0 when every step passed, 1 when one failed, 2 (nothing run) where no CUDA GPU is visible.
    """
    try:
        gpu = require_cuda()
    except NoGpuError as err:
        print(f"gpu-check: error: {err}", file=sys.stderr)
        return 2
    out_dir.mkdir(parents=True, exist_ok=True)
    print(f"gpu-check on {gpu}", flush=True)
    results = []
    for step in steps(out_dir=out_dir):
        print(f"== {step.name} (limit {step.limit:.0f} s)", flush=True)
        results.append(step.run())
        print(step.output.strip()[-4000:])
        print(step.summary(), flush=True)
    write_section(_section(gpu, results, out_dir), doc)
    print(f"figures written to {doc}")
    return 0 if all(step.ok for step in results) else 1

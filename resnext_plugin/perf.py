"""Measurement helpers for ``tools/benchmark.py``: interleaved timing, peak memory, GEMM rate.

Timings taken in one process, interleaved (A B C A B C ...), compare implementations under the
same load: a busy neighbour slows every candidate of a round alike, so ratios stay meaningful
where absolute numbers do not. Nothing here is used by the models themselves.
"""
from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Optional

import torch


def synchronize(device: torch.device) -> None:
    """Wait for queued kernels on ``device`` (a no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class Timing:
    """Seconds per call of one candidate, one entry per round."""

    seconds: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def spread(self) -> float:
        """Interquartile range relative to the median (0.05 = 5 %)."""
        if len(self.seconds) < 4:
            return (max(self.seconds) - min(self.seconds)) / self.median
        q1, _, q3 = statistics.quantiles(self.seconds, n=4)
        return (q3 - q1) / self.median


def interleaved_timings(
    candidates: Mapping[str, Callable[[], object]],
    repeats: int,
    warmup: int,
    device: torch.device = torch.device("cpu"),
    on_call: Optional[Callable[[str, str], None]] = None,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, Timing]:
    """Time each candidate ``repeats`` times, round-robin, after ``warmup`` untimed calls each.

    Round ``r`` starts at candidate ``r mod n`` (A B C, B C A, ...) so that no candidate always
    runs right after the same neighbour. (``torch.utils.benchmark`` times one candidate at a
    time, so a change of load between candidates would show up as a speed ratio.)

    Args:
        candidates: Name -> zero-argument callable doing one unit of work.
        repeats: Timed calls per candidate (>= 1); the median is reported.
        warmup: Untimed calls per candidate first (compilation, allocator and cache warm-up).
        device: Device to synchronise before reading the clock.
        on_call: Called as ``on_call(phase, name)`` before every call (``phase`` is
            ``'warmup'`` or ``'timed'``), e.g. for progress output.
        clock: Seconds counter read around each call. ``time.perf_counter`` (wall clock, the
            default) or ``time.process_time`` (this process's CPU time: with one thread, it is
            what the call cost, whatever else the machine runs).

    Returns:
        dict[str, Timing]: Per candidate, in the order given.
    """
    if repeats < 1:
        raise ValueError(f"interleaved_timings: `repeats` must be >= 1, got {repeats}")
    if warmup < 0:
        raise ValueError(f"interleaved_timings: `warmup` must be >= 0, got {warmup}")
    names = list(candidates)
    for name in names:
        for _ in range(warmup):
            if on_call is not None:
                on_call("warmup", name)
            candidates[name]()
        synchronize(device)
    timings = {name: Timing() for name in names}
    for round_index in range(repeats):
        start = round_index % len(names) if names else 0
        for name in names[start:] + names[:start]:
            if on_call is not None:
                on_call("timed", name)
            synchronize(device)
            begin = clock()
            candidates[name]()
            synchronize(device)
            timings[name].seconds.append(clock() - begin)
    return timings


def peak_memory_bytes(fn: Callable[[], object], device: torch.device) -> int:
    """Peak bytes that torch allocates during one call of ``fn``, above what was held before.

    CUDA: ``torch.cuda.max_memory_allocated``. CPU: torch's CPU allocator keeps no peak
    statistic, so the call runs under the profiler with ``profile_memory=True`` and the peak of
    the running sum of its allocation records is taken (``tracemalloc`` does not see torch's
    allocations, and the process's max RSS only ever grows).
    """
    if device.type == "cuda":
        synchronize(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        synchronize(device)
        return torch.cuda.max_memory_allocated(device) - base
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    records = sorted(
        (event.start_ns(), event.nbytes())
        for event in prof.profiler.kineto_results.events()
        if event.name() == "[memory]" and event.device_type() == torch.autograd.DeviceType.CPU
    )
    current = peak = 0
    for _, nbytes in records:
        current += nbytes
        peak = max(peak, current)
    return peak


def gemm_gflops(
    device: torch.device, size: int = 2048, dtype: torch.dtype = torch.float32, repeats: int = 5,
    clock: Callable[[], float] = time.perf_counter,
) -> float:
    """Measured matrix-multiply rate, GFLOP/s (2 n^3 FLOPs per ``size`` x ``size`` product)."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    out = torch.empty(size, size, device=device, dtype=dtype)
    timing = interleaved_timings({"mm": lambda: torch.mm(a, b, out=out)}, repeats, warmup=1,
                                 device=device, clock=clock)
    return 2 * size**3 / timing["mm"].median / 1e9


def conv_gflops(
    device: torch.device, batch: int = 8, channels: int = 256, size: int = 56,
    dtype: torch.dtype = torch.float32, repeats: int = 5,
    clock: Callable[[], float] = time.perf_counter,
) -> float:
    """Measured rate of a dense 3x3 convolution (channels_last), GFLOP/s.

    A second yardstick beside :func:`gemm_gflops`: ``torch.mm`` goes to the BLAS library (MKL
    on x86), which on some CPUs (MKL on AMD) runs far below what oneDNN's convolutions reach.
    """
    x = torch.randn(batch, channels, size, size, device=device, dtype=dtype)
    w = torch.randn(channels, channels, 3, 3, device=device, dtype=dtype)
    x, w = (t.contiguous(memory_format=torch.channels_last) for t in (x, w))
    timing = interleaved_timings(
        {"conv": lambda: torch.nn.functional.conv2d(x, w, padding=1)}, repeats, warmup=1,
        device=device, clock=clock)
    return 2 * batch * channels * channels * 9 * size * size / timing["conv"].median / 1e9


def cpu_model_name() -> str:
    """The CPU's model name from /proc/cpuinfo (or ``platform.processor()``)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_flags(wanted: tuple[str, ...] = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16",
                                          "avx512_fp16", "amx_tile", "amx_bf16")
              ) -> list[str]:
    """Which of ``wanted`` the CPU advertises in /proc/cpuinfo."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return [flag for flag in wanted if flag in flags]
    except OSError:
        pass
    return []


def load_average() -> str:
    """``os.getloadavg()`` as text: what else was running while we measured."""
    try:
        one, five, fifteen = os.getloadavg()
        return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f}"
    except OSError:
        return "load average unavailable"


def cpu_bf16_support() -> tuple[bool, str]:
    """Whether this CPU runs bf16 natively, and what says so.

    ``torch.ops.mkldnn._is_mkldnn_bf16_supported()`` alone is not enough: on x86 it is true for
    any AVX-512 CPU, where oneDNN emulates bf16 arithmetic. Native means AVX-512 BF16 or AMX on
    x86; elsewhere (Arm) oneDNN's own query is trusted.

    Returns:
        tuple[bool, str]: ``(native, description)``.
    """
    if not torch.backends.mkldnn.is_available():
        return False, "PyTorch was built without oneDNN (mkldnn)"
    onednn = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    if platform.machine().lower() in ("x86_64", "amd64", "i386", "i686"):
        amx = bool(torch.cpu._is_amx_tile_supported())
        if onednn and (amx or torch.cpu._is_avx512_bf16_supported()):
            return True, "AMX" if amx else "AVX-512 BF16"
        capability = torch.backends.cpu.get_cpu_capability()
        return False, f"the CPU has no AVX-512 BF16 or AMX (best vector ISA: {capability})"
    if onednn:
        return True, f"oneDNN bf16 on {platform.machine()}"
    return False, f"oneDNN reports no bf16 support on {platform.machine()}"


def cpu_supports_bf16() -> bool:
    """Whether oneDNN runs bf16 natively here (AVX-512 BF16 or AMX), so bf16 autocast can pay."""
    return cpu_bf16_support()[0]


def environment_lines(device: torch.device, threads: int) -> list[str]:
    """torch version, threads, CPU model, its vector/bf16 features, GPU: for every table."""
    native, why = cpu_bf16_support()
    lines = [
        f"torch {torch.__version__}, {threads} threads, device {device}",
        f"CPU: {cpu_model_name()}, {os.cpu_count()} cores, flags: "
        f"{' '.join(cpu_flags()) or 'none of avx2/avx512/amx'}; native bf16: "
        f"{'yes, ' + why if native else 'no (' + why + ')'}",
    ]
    if device.type == "cuda":
        lines.append(f"GPU: {torch.cuda.get_device_name(device)}")
    return lines

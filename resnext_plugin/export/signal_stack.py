"""Keep OpenVINO from leaving the process with a dangling alternate signal stack.

OpenVINO's CPU plugin (2026.4) installs an alternate signal stack (``sigaltstack``) on the thread
that compiles a model, and can free that memory while it is still registered. CPython installs
its signal handlers with ``SA_ONSTACK`` (``SIGINT``, and the ``SIGCHLD`` handler torch's
``DataLoader`` sets for its workers), so the next such signal finds no stack to run on and the
kernel kills the process with SIGSEGV: seen as ``tools/test.py`` on an ``.xml`` or an in-process
test run crashing when a child process exits. Every OpenVINO compile and inference in the package
runs inside :func:`keep_signal_stack`, which puts back the thread's own signal stack afterwards.
"""
from __future__ import annotations

import contextlib
import ctypes
import functools
import sys
from collections.abc import Iterator


class _SignalStack(ctypes.Structure):
    """``stack_t`` of ``<signal.h>`` (Linux)."""

    _fields_ = [("ss_sp", ctypes.c_void_p), ("ss_flags", ctypes.c_int),
                ("ss_size", ctypes.c_size_t)]


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _read_stack() -> _SignalStack:
    stack = _SignalStack()
    if _libc().sigaltstack(None, ctypes.byref(stack)) != 0:
        raise OSError(ctypes.get_errno(), "sigaltstack failed")
    return stack


def current_signal_stack() -> tuple[int, int, int]:
    """This thread's alternate signal stack as (address, flags, size); Linux only."""
    stack = _read_stack()
    return stack.ss_sp or 0, stack.ss_flags, stack.ss_size


@contextlib.contextmanager
def keep_signal_stack() -> Iterator[None]:
    """Run the body, then restore the calling thread's alternate signal stack (Linux)."""
    if not sys.platform.startswith("linux"):
        yield
        return
    saved = _read_stack()
    try:
        yield
    finally:
        _libc().sigaltstack(ctypes.byref(saved), None)

"""Atomic writes for mmengine's local file backend.

mmengine 0.10.7 writes checkpoints and the ``last_checkpoint`` pointer in place
(``open(path, 'wb').write(...)``): a process killed mid-write leaves a truncated ``iter_N.pth``, or
an empty pointer, that ``--resume`` then picks and fails on. :class:`AtomicLocalBackend` writes to
a temporary file in the same directory, flushes it to disk and renames it over the target, so a
reader sees either the old file or the complete new one.
:func:`resnext_plugin.upstream_fixes.atomic_checkpoint_writes` registers it for plain paths
(mmengine's ``'local'`` backend, prefix ``''``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Union

from mmengine.fileio.backends import LocalBackend

from .checkpoint.atomic import atomic_write_bytes


class AtomicLocalBackend(LocalBackend):
    """mmengine's ``LocalBackend`` whose ``put`` and ``put_text`` replace files atomically."""

    def put(self, obj: bytes, filepath: Union[str, Path]) -> None:
        atomic_write_bytes(obj, filepath)

    def put_text(self, obj: str, filepath: Union[str, Path], encoding: str = "utf-8") -> None:
        atomic_write_bytes(obj.encode(encoding), filepath)

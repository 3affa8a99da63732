"""Writing files atomically: a reader sees the old file or the complete new one, never a part.

The data goes to a temporary file in the target's directory, is flushed to disk and renamed over
the target (``os.replace``); on any failure the temporary file is removed and the target is
untouched. mmengine's checkpoint and ``last_checkpoint`` writes
(:mod:`resnext_plugin.fileio`), the converter's output and the training-curves plot use it.
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from typing import IO, Any

import torch


def _file_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], Any],
                 check: Callable[[str], Any] | None = None) -> None:
    """Call ``write(file)`` on a temporary file next to ``path``, then rename it to ``path``.

    Args:
        path: The file to create or replace; its directory is created if missing.
        write: Writes the content to the open binary file it is given.
        check: Called with the temporary file's path before the rename; raising refuses the
            file (``path`` stays as it was).
    """
    path = os.path.abspath(os.fspath(path))
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp",
                               dir=directory)
    try:
        with os.fdopen(fd, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        if check is not None:
            check(tmp)
        os.chmod(tmp, _file_mode())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_bytes(data: bytes, path: str | os.PathLike) -> None:
    """Write ``data`` to ``path`` atomically."""
    atomic_write(path, lambda file: file.write(data))


def save_atomic(obj: Any, dst: str | os.PathLike) -> None:
    """``torch.save`` atomically, after checking that the file loads with ``weights_only=True``.

    ``dst`` is either the complete new file or left as it was (an existing file is replaced only
    by a complete, loadable one).

    Raises:
        FileNotFoundError: The directory of ``dst`` does not exist.
        ValueError: The written file does not load back with ``weights_only=True``.
    """
    dst = os.path.abspath(os.fspath(dst))
    if not os.path.isdir(os.path.dirname(dst)):
        raise FileNotFoundError(f"output directory does not exist: {os.path.dirname(dst)}")

    def loads_weights_only(tmp: str) -> None:
        # What mmengine's torch.load(weights_only=True) will see must load: catches meta entries
        # the weights-only unpickler refuses before they reach a user's config (mmap: the check
        # reads the pickle, not the tensor data).
        try:
            torch.load(tmp, map_location="cpu", weights_only=True, mmap=True)
        except Exception as err:
            raise ValueError(f"{dst}: the checkpoint would not load with weights_only=True "
                             f"({type(err).__name__}: {err}); not written") from err

    atomic_write(dst, lambda file: torch.save(obj, file), check=loads_weights_only)

"""What the demo-data command lines share: run a generator, report a bad spec as the tools do."""
from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import Any, Optional


def run_generator(tool: str, make: Callable[[Any, Any], dict], out: str | os.PathLike,
                  spec: Any) -> tuple[Optional[dict], float]:
    """``make(out, spec)`` and its wall time; ``(None, 0.0)`` after printing
    ``<tool>: error: ...`` if ``spec`` is refused (``ValueError``): the caller exits with 2."""
    start = time.perf_counter()
    try:
        summary = make(out, spec)
    except ValueError as err:
        print(f"{tool}: error: {err}", file=sys.stderr)
        return None, 0.0
    return summary, time.perf_counter() - start

"""Where the repository's own files are, for the tools that run from a checkout.

The one definition of the repository root: the benchmark's configs and ``tools/train.py``, the
demo pipeline's working folder and the experiments' configs are found from here.
"""
from __future__ import annotations

from pathlib import Path

#: The checkout (or editable install) this package was imported from.
REPO_ROOT = Path(__file__).resolve().parents[1]
CONFIGS = REPO_ROOT / "configs"
TOOLS = REPO_ROOT / "tools"
DOCS = REPO_ROOT / "docs"

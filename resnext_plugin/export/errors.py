"""The errors an export can end with; each message names what failed and what to do."""
from __future__ import annotations


class ExportError(RuntimeError):
    """An export that cannot be made (bad checkpoint, refused operator or shape, bad option)."""


class MissingBackendError(ExportError):
    """A backend's Python package is not installed; the message names the package to install."""


class VerificationError(ExportError):
    """The exported model's outputs differ from PyTorch's beyond the precision's tolerance."""

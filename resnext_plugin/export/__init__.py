"""Verified export of the project's models to ONNX Runtime and OpenVINO (fp32, bf16, int8).

``tools/export.py`` is the command line (:mod:`resnext_plugin.cli.export`); ``tools/test.py``
evaluates an exported file with the config's evaluator (``ExportedClassifier``,
``ExportedDetector``). The backends are one table (:data:`BACKENDS`), the precisions another
(:data:`PRECISIONS`), the tasks (mmpretrain classifiers, mmdet Mask R-CNN) a third
(:data:`~resnext_plugin.export.tasks.TASKS`). This
package sits beside ``convert``: it imports ``models`` and ``checkpoint`` (and mmpretrain,
mmdet and the backends lazily); nothing below it imports it.
"""
from .api import OPSET, SIDECAR, ExportResult, export_model, plan
from .backends import BACKENDS, Backend, backend_for_file, require_packages
from .errors import ExportError, MissingBackendError, VerificationError
from .precisions import PRECISIONS, Precision, file_stem
from .runtime import ExportedRuntime

__all__ = [
    "BACKENDS", "OPSET", "PRECISIONS", "SIDECAR", "Backend", "ExportError", "ExportResult",
    "ExportedRuntime", "MissingBackendError", "Precision", "VerificationError",
    "backend_for_file", "export_model", "file_stem", "plan", "require_packages",
]

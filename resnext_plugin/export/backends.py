"""The inference backends an export can target: one entry per backend in :data:`BACKENDS`.

A backend says which Python packages it needs (and so what to install when one is missing),
the suffix of its files, how it writes each precision from the exported ONNX graph and which
precisions it refuses, and why. Running a written file is :mod:`resnext_plugin.export.runtime`.

The graph is exported once, to ``end2end.onnx`` (fp32); every backend file is made from it, so
both backends run the same graph, as in mmdeploy (whose OpenVINO route also starts from ONNX).
"""
from __future__ import annotations

import importlib.util
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import ExportError, MissingBackendError
from .precisions import file_stem
from .signal_stack import keep_signal_stack

#: What ``pip install`` brings every backend, the ONNX exporter and int8 calibration.
REQUIREMENTS_FILE = "requirements/export.txt"
#: The exporter itself (torch's TorchScript-based ONNX exporter writes through ``onnx``).
EXPORTER_PACKAGES = (("onnx", "onnx"),)
#: int8 post-training quantisation, for every backend.
QUANTIZER_PACKAGES = (("nncf", "nncf"),)


@dataclass(frozen=True)
class WriteRequest:
    """What a backend's writer gets.

    Attributes:
        onnx_path: The exported fp32 ONNX graph (``end2end.onnx``).
        out_dir: Where the backend's file goes.
        precision: ``'fp32'``, ``'bf16'`` or ``'int8'``.
        calibration: Network inputs (float32 NCHW, batch 1 each) for int8 calibration.
    """

    onnx_path: Path
    out_dir: Path
    precision: str
    calibration: Sequence[np.ndarray] = ()


@dataclass(frozen=True)
class Backend:
    """One inference backend.

    Attributes:
        name: The ``--backend`` value.
        packages: ``(import name, pip name)`` of every package the backend needs.
        suffix: Its model file's suffix (``.onnx``, ``.xml``).
        write: Writes the file for a :class:`WriteRequest`; returns its path.
        refused: Precision -> why this backend cannot run it (and what to use instead).
    """

    name: str
    packages: tuple[tuple[str, str], ...]
    suffix: str
    write: Callable[[WriteRequest], Path]
    refused: Mapping[str, str] = field(default_factory=dict)

    def check(self, precision: str) -> None:
        """Raise :class:`ExportError` if this backend refuses ``precision``."""
        if precision in self.refused:
            raise ExportError(f"backend '{self.name}' refuses --precision {precision}: "
                              f"{self.refused[precision]}")


def require_packages(packages: Sequence[tuple[str, str]], needed_for: str) -> None:
    """Raise :class:`MissingBackendError` naming the first of ``packages`` not installed.

    Args:
        packages: ``(import name, pip name)`` pairs.
        needed_for: What needs them (``"backend 'openvino'"``), for the message.
    """
    for module, pip_name in packages:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            raise MissingBackendError(
                f"{needed_for} needs the Python package '{pip_name}', which is not installed: "
                f"pip install {pip_name} (or pip install -r {REQUIREMENTS_FILE} for every "
                "backend)")


def _calibration_dataset(request: WriteRequest, input_name: str | None = None):  # noqa: ANN202
    """``nncf.Dataset`` of the calibration inputs (ONNX models take ``{input_name: array}``)."""
    import nncf

    if not request.calibration:
        raise ExportError("int8 needs calibration images: --calib-images must be >= 1")
    items = list(request.calibration)
    if input_name is None:
        return nncf.Dataset(items)
    return nncf.Dataset(items, lambda item: {input_name: item})


# ------------------------------------------------------------------ ONNX Runtime
def _write_onnxruntime(request: WriteRequest) -> Path:
    if request.precision == "fp32":
        return request.onnx_path
    import nncf
    import onnx

    model = onnx.load(str(request.onnx_path))
    dataset = _calibration_dataset(request, model.graph.input[0].name)
    quantized = nncf.quantize(model, dataset, subset_size=len(request.calibration))
    path = request.out_dir / f"{file_stem(request.precision)}.onnx"
    onnx.save(quantized, str(path))
    return path


# ------------------------------------------------------------------ OpenVINO
#: rt_info key of the inference precision a file is meant to run in. OpenVINO 2026.4's CPU
#: plugin does not apply it by itself (it compiles in bf16 on this Zen 4 either way), so a caller
#: passes it when compiling: ``core.compile_model(path, 'CPU', {'INFERENCE_PRECISION_HINT':
#: value})``, as :mod:`.runtime` does; the sidecar records it too.
OPENVINO_PRECISION_KEY = ("runtime_options", "INFERENCE_PRECISION_HINT")
#: What each precision compiles with. fp32 is forced: on CPUs with AVX-512 BF16 or AMX OpenVINO
#: would otherwise run in bf16 by default. int8 keeps OpenVINO's default for the layers it
#: leaves unquantised (bf16 where the CPU has it natively), the setting users deploy with.
OPENVINO_HINTS = {"fp32": "f32", "bf16": "bf16", "int8": None}


def _write_openvino(request: WriteRequest) -> Path:
    import openvino as ov

    model = ov.convert_model(str(request.onnx_path))
    if request.precision == "int8":
        import nncf

        with keep_signal_stack():  # NNCF compiles the model to collect statistics
            model = nncf.quantize(model, _calibration_dataset(request),
                                  subset_size=len(request.calibration))
    hint = OPENVINO_HINTS[request.precision]
    if hint is not None:
        model.set_rt_info(hint, list(OPENVINO_PRECISION_KEY))
    path = request.out_dir / f"{file_stem(request.precision)}.xml"
    # save_model would halve the weights to fp16 by default; keep them as exported.
    ov.save_model(model, str(path), compress_to_fp16=False)
    return path


BACKENDS: dict[str, Backend] = {
    "onnxruntime": Backend(
        name="onnxruntime", packages=(("onnxruntime", "onnxruntime"),), suffix=".onnx",
        write=_write_onnxruntime,
        refused={"bf16": "ONNX Runtime's CPU execution provider has no bfloat16 convolution "
                         "kernels; use --backend openvino --precision bf16"}),
    "openvino": Backend(
        name="openvino", packages=(("openvino", "openvino"),), suffix=".xml",
        write=_write_openvino),
}


def backend_for_file(path: str | Path) -> Backend:
    """The backend that runs ``path``, by its suffix.

    Raises:
        ExportError: No backend writes files with that suffix.
    """
    suffix = Path(path).suffix.lower()
    for backend in BACKENDS.values():
        if backend.suffix == suffix:
            return backend
    known = ", ".join(f"{b.suffix} ({b.name})" for b in BACKENDS.values())
    raise ExportError(f"{path}: not an exported model file (expected one of: {known})")

"""Run an exported model file (``end2end*.onnx`` with ONNX Runtime, ``end2end*.xml`` with
OpenVINO) on float32 NCHW arrays: what verification, ``tools/test.py`` and the benchmark share."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Optional

import numpy as np

from .backends import OPENVINO_PRECISION_KEY, backend_for_file, require_packages
from .signal_stack import keep_signal_stack


class ExportedRuntime:
    """An exported model loaded into its backend.

    Args:
        path: ``.onnx`` (ONNX Runtime, CPU provider) or ``.xml`` (OpenVINO, CPU device).
        threads: Intra-op threads; ``None`` keeps the backend's default (all cores).
        static_shape: OpenVINO only: fix the input to this shape before compiling (faster
            than a dynamic shape; used by the benchmark). ``None`` keeps the exported shape.

    Attributes:
        backend: ``'onnxruntime'`` or ``'openvino'``.
        output_names: The model's output names, in order.
        precision: What the file was meant to run in (OpenVINO: its inference precision hint,
            ``None`` = OpenVINO's default; ONNX Runtime: ``None``).
    """

    def __init__(self, path: str | Path, threads: Optional[int] = None,
                 static_shape: Optional[Sequence[int]] = None) -> None:
        self.path = Path(path)
        backend = backend_for_file(self.path)
        require_packages(backend.packages, f"backend '{backend.name}'")
        if not self.path.is_file():
            raise FileNotFoundError(f"exported model not found: '{self.path}'")
        self.backend = backend.name
        self.precision: Optional[str] = None
        if backend.name == "onnxruntime":
            self._load_onnxruntime(threads)
        else:
            self._load_openvino(threads, static_shape)

    def _load_onnxruntime(self, threads: Optional[int]) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(str(self.path), options,
                                             providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name
        self.output_names = [out.name for out in self._session.get_outputs()]

    def _load_openvino(self, threads: Optional[int], static_shape: Optional[Sequence[int]]
                       ) -> None:
        import openvino as ov

        core = ov.Core()
        model = core.read_model(str(self.path))
        config: dict[str, object] = {}
        if model.has_rt_info(list(OPENVINO_PRECISION_KEY)):
            self.precision = model.get_rt_info(list(OPENVINO_PRECISION_KEY)).astype(str)
            config["INFERENCE_PRECISION_HINT"] = self.precision
        if threads is not None:
            config["INFERENCE_NUM_THREADS"] = threads
        if static_shape is not None:
            model.reshape(list(static_shape))
        with keep_signal_stack():
            self._compiled = core.compile_model(model, "CPU", config)
            self._request = self._compiled.create_infer_request()
        self.output_names = [out.get_any_name() for out in self._compiled.outputs]

    def __call__(self, inputs: np.ndarray) -> list[np.ndarray]:
        """Outputs for one batch (float32 NCHW), in :attr:`output_names` order."""
        inputs = np.ascontiguousarray(inputs, dtype=np.float32)
        if self.backend == "onnxruntime":
            return self._session.run(None, {self._input: inputs})
        with keep_signal_stack():
            results = self._request.infer([inputs], share_inputs=True)
        return [np.array(results[out]) for out in self._compiled.outputs]

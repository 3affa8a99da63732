"""Mixed precision that also runs on CPUs: ``type='resnext_plugin.AmpOptimWrapper'``.

mmengine's ``AmpOptimWrapper`` refuses to be built without a GPU. This subclass keeps everything
it does on CUDA (autocast, ``GradScaler``, its checkpoint keys) and adds the CPU:

* CPU with native bf16 (AVX-512 BF16 or AMX on x86, BF16 on Arm): bf16 autocast, no loss scaling
  (bf16 has fp32's exponent range);
* CPU without it: fp32, with one logged line saying why. oneDNN would emulate bf16 there, which
  is many times slower than fp32 (14x for a ResNeXt-50 training step on an AVX2-only Zen 3);
* CUDA: ``dtype=None`` is fp16 with a dynamic loss scale (mmengine's default); ``'bfloat16'``
  where the GPU supports it, else fp16 with a logged line.

The choice is made once, when the wrapper is built, by :func:`decide_amp` from the device of the
optimiser's parameters, and is logged (``AmpDecision.reason``).

On CPU, mmcv's NMS and RoIAlign kernels take fp32 only, so for an mmdet detector autocast covers
the backbone, neck and heads' forward (their outputs cast back to fp32), not the proposal and RoI
steps between them (``autocast_modules``). On CUDA the whole model runs under autocast, as with
mmengine's wrapper.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Optional, Union

import torch
from mmengine.logging import print_log
from mmengine.optim import AmpOptimWrapper as MMEngineAmpOptimWrapper
from mmengine.optim import OptimWrapper
from mmengine.runner.amp import autocast
from torch import nn

from resnext_plugin.perf import cpu_bf16_support

from ..registry import OPTIM_WRAPPERS

DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16}
DTYPE_NAMES = {dtype: name for name, dtype in DTYPES.items()}


@dataclass(frozen=True)
class AmpDecision:
    """What autocast will do, and why."""

    device_type: str
    dtype: Optional[torch.dtype]  # None: autocast off, fp32
    loss_scaling: bool
    reason: str

    @property
    def enabled(self) -> bool:
        return self.dtype is not None

    @property
    def precision(self) -> str:
        return "fp32" if self.dtype is None else DTYPE_NAMES[self.dtype]


def _as_dtype(dtype: Union[None, str, torch.dtype]) -> Optional[torch.dtype]:
    if dtype is None or dtype == "auto":
        return None
    if isinstance(dtype, str):
        if dtype not in DTYPES:
            raise ValueError(f"AmpOptimWrapper: `dtype` must be one of {sorted(DTYPES)}, "
                             f"'auto' or None, got {dtype!r}")
        return DTYPES[dtype]
    if dtype not in DTYPE_NAMES:
        raise ValueError(f"AmpOptimWrapper: `dtype` must be torch.float16 or torch.bfloat16, "
                         f"got {dtype!r}")
    return dtype


def decide_amp(device_type: str, dtype: Union[None, str, torch.dtype] = None,
               cpu_bf16: Optional[tuple[bool, str]] = None) -> AmpDecision:
    """The autocast precision for ``device_type``, given the requested ``dtype``.

    Args:
        device_type: ``'cpu'`` or ``'cuda'`` (the device of the parameters being trained).
        dtype: ``None``/``'auto'`` (the device's best), ``'bfloat16'`` or ``'float16'``.
        cpu_bf16: ``(native, description)`` of the CPU; default: :func:`cpu_bf16_support`.

    Returns:
        AmpDecision: Never bf16 on a CPU without native bf16, never fp16 on a CPU.

    Raises:
        ValueError: An unknown ``dtype`` or a device other than CPU and CUDA.
    """
    requested = _as_dtype(dtype)
    if device_type == "cpu":
        native, what = cpu_bf16_support() if cpu_bf16 is None else cpu_bf16
        if not native:
            return AmpDecision("cpu", None, False,
                               f"AMP on CPU: training in fp32, because {what}; bf16 autocast "
                               "would run emulated, slower than fp32")
        if requested == torch.float16:
            return AmpDecision("cpu", torch.bfloat16, False,
                               f"AMP on CPU: bf16 autocast ({what}) instead of the requested "
                               "float16, which CPUs do not run natively")
        return AmpDecision("cpu", torch.bfloat16, False,
                           f"AMP on CPU: bf16 autocast, native on this CPU ({what})")
    if device_type == "cuda":
        if requested == torch.bfloat16:
            if torch.cuda.is_bf16_supported():
                return AmpDecision("cuda", torch.bfloat16, True,
                                   "AMP on CUDA: bf16 autocast, as requested")
            return AmpDecision("cuda", torch.float16, True,
                               "AMP on CUDA: fp16 autocast with dynamic loss scaling, because "
                               "this GPU does not support bf16")
        return AmpDecision("cuda", torch.float16, True,
                           "AMP on CUDA: fp16 autocast with dynamic loss scaling")
    raise ValueError(f"AmpOptimWrapper: parameters on {device_type!r}; this wrapper supports "
                     "'cpu' and 'cuda' (use mmengine's AmpOptimWrapper for npu/mlu)")


def _parameter_device_type(optimizer: torch.optim.Optimizer) -> str:
    for group in optimizer.param_groups:
        for param in group["params"]:
            return param.device.type
    raise ValueError("AmpOptimWrapper: the optimizer has no parameters")


#: Submodules of an mmdet detector whose forward runs under CPU autocast when only parts of the
#: model can (``autocast_modules='auto'``): mmcv's CPU kernels of NMS and RoIAlign take fp32 only,
#: and they run between these modules (proposal NMS after ``rpn_head``, RoIAlign before the RoI
#: heads). The listed modules' outputs are cast back to fp32.
DETECTOR_AUTOCAST_MODULES = ("backbone", "neck", "rpn_head", "bbox_head", "roi_head.bbox_head",
                             "roi_head.mask_head")
#: A model with any of these attributes is treated as an mmdet detector.
DETECTOR_ATTRIBUTES = ("rpn_head", "roi_head", "bbox_head")


def _unwrap(model: nn.Module) -> nn.Module:
    from mmengine.model import is_model_wrapper

    return model.module if is_model_wrapper(model) else model


def _find_module(model: nn.Module, dotted: str) -> Optional[nn.Module]:
    module = model
    for part in dotted.split("."):
        module = getattr(module, part, None)
        if not isinstance(module, nn.Module):
            return None
    return module


def autocast_scopes(model: nn.Module, names: Union[str, Sequence[str], None], device_type: str
                    ) -> Optional[list[nn.Module]]:
    """The submodules to autocast, or ``None`` for the whole model.

    Args:
        model: The (possibly wrapped) model.
        names: ``'auto'``/``None``: the whole model, except a detector on CPU
            (:data:`DETECTOR_AUTOCAST_MODULES`); ``'model'``: the whole model; or dotted names.
        device_type: ``'cpu'`` or ``'cuda'``.

    Raises:
        ValueError: A named submodule does not exist.
    """
    core = _unwrap(model)
    if names in (None, "auto"):
        if device_type != "cpu" or not any(hasattr(core, a) for a in DETECTOR_ATTRIBUTES):
            return None
        names = [n for n in DETECTOR_AUTOCAST_MODULES if _find_module(core, n) is not None]
    elif names == "model":
        return None
    elif isinstance(names, str):
        raise ValueError(f"AmpOptimWrapper: `autocast_modules` must be 'auto', 'model' or a "
                         f"list of submodule names, got {names!r}")
    modules = []
    for name in names:
        module = _find_module(core, name)
        if module is None:
            raise ValueError(f"AmpOptimWrapper: `autocast_modules` names {name!r}, which the "
                             f"model ({type(core).__name__}) does not have")
        # a ModuleList/ModuleDict (cascade heads) has no forward of its own: take its members
        modules += list(module.children()) if isinstance(module, (nn.ModuleList,
                                                                  nn.ModuleDict)) else [module]
    return modules


def _to_float32(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.float() if value.dtype in (torch.bfloat16, torch.float16) else value
    if isinstance(value, (list, tuple)):
        cast = [_to_float32(v) for v in value]
        return type(value)(*cast) if hasattr(value, "_fields") else type(value)(cast)
    if isinstance(value, dict):
        return type(value)((k, _to_float32(v)) for k, v in value.items())
    return value


@contextmanager
def scoped_autocast(modules: Sequence[nn.Module], device_type: str, dtype: torch.dtype
                    ) -> Iterator[None]:
    """Autocast inside each of ``modules``' forward only; their outputs come back as fp32."""
    active: list[torch.autocast] = []

    def enter(_module: nn.Module, _args: Any) -> None:
        context = torch.autocast(device_type, dtype=dtype, cache_enabled=False)
        context.__enter__()
        active.append(context)

    def leave(_module: nn.Module, _args: Any, output: Any) -> Any:
        active.pop().__exit__(None, None, None)
        return _to_float32(output)

    handles = []
    try:
        for module in modules:
            handles.append(module.register_forward_pre_hook(enter))
            handles.append(module.register_forward_hook(leave, always_call=True))
        yield
    finally:
        for handle in handles:
            handle.remove()


@OPTIM_WRAPPERS.register_module(name="AmpOptimWrapper")
class AmpOptimWrapper(MMEngineAmpOptimWrapper):
    """mmengine's ``AmpOptimWrapper`` that also trains on CPUs (see the module docstring).

    Args:
        loss_scale: As mmengine's (CUDA only; bf16 on CPU needs no loss scaling).
        dtype: ``None``/``'auto'``, ``'bfloat16'`` or ``'float16'``; see :func:`decide_amp`.
        use_fsdp: As mmengine's.
        autocast_modules: Where autocast applies: ``'auto'`` (the whole model, except mmdet
            detectors on CPU: :data:`DETECTOR_AUTOCAST_MODULES`), ``'model'`` or a list of
            dotted submodule names. See :func:`autocast_scopes`.
        **kwargs: ``optimizer``, ``accumulative_counts``, ``clip_grad`` (``OptimWrapper``'s).

    Example:
        >>> optim_wrapper = dict(type='resnext_plugin.AmpOptimWrapper',
        ...                      optimizer=dict(type='SGD', lr=0.1, momentum=0.9))
    """

    def __init__(self, loss_scale: Union[str, float, dict] = "dynamic",
                 dtype: Union[None, str, torch.dtype] = None, use_fsdp: bool = False,
                 autocast_modules: Union[str, Sequence[str]] = "auto", **kwargs) -> None:
        if "optimizer" not in kwargs:
            raise ValueError("AmpOptimWrapper: `optimizer` is required")
        self.decision = decide_amp(_parameter_device_type(kwargs["optimizer"]), dtype)
        self.autocast_modules = autocast_modules
        print_log(self.decision.reason, logger="current")
        if self.decision.device_type == "cuda":
            super().__init__(loss_scale=loss_scale, dtype=self.decision.dtype,
                             use_fsdp=use_fsdp, **kwargs)
            return
        # mmengine's __init__ asserts a GPU; everything else of it is reused unchanged
        OptimWrapper.__init__(self, **kwargs)
        self._scale_update_param = None
        # a disabled scaler passes losses and steps through (and saves an empty state)
        self.loss_scaler = torch.amp.GradScaler("cpu", enabled=False)
        self.cast_dtype = self.decision.dtype

    @contextmanager
    def optim_context(self, model: nn.Module) -> Iterator[None]:
        """Autocast on the parameters' device (mmengine's picks CUDA whenever one exists), over
        the whole model or only the submodules :func:`autocast_scopes` names."""
        decision = self.decision
        scopes = autocast_scopes(model, self.autocast_modules, decision.device_type) \
            if decision.enabled else None
        with OptimWrapper.optim_context(self, model):
            if scopes is not None:
                with scoped_autocast(scopes, decision.device_type, decision.dtype):
                    yield
                return
            with autocast(device_type=decision.device_type,
                          dtype=decision.dtype or torch.bfloat16,
                          enabled=decision.enabled, cache_enabled=False):
                yield

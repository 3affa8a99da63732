"""Runner-level speed knobs, applied to a config: what ``tools/train.py --amp --amp-dtype
--channels-last --compile`` do, and what a config can say itself.

=================  ==========================================================================
knob               config
=================  ==========================================================================
AMP                ``optim_wrapper=dict(type='resnext_plugin.AmpOptimWrapper', dtype=None)``
                   (bf16 on CPUs with native bf16, else fp32 with a logged reason; fp16/bf16
                   on CUDA: :mod:`resnext_plugin.engine.amp`)
channels_last      ``model.backbone.channels_last=True`` (the plugin's ResNeXt only; the data
                   preprocessor's NCHW batch is converted once, at the backbone's entry)
compile            ``compile=True`` or ``compile=dict(backend=..., mode=...)``: mmengine's
                   ``Runner`` wraps the model's ``train_step`` in ``torch.compile``
=================  ==========================================================================
"""
from __future__ import annotations

from typing import Optional, Union

from mmengine.config import Config

#: Backbone types that take ``channels_last``.
PLUGIN_BACKBONES = ("resnext_plugin.ResNeXt",)
#: optim_wrapper types ``--amp`` may replace (mmengine's, or already ours).
AMP_REPLACEABLE = ("OptimWrapper", "AmpOptimWrapper", "mmengine.OptimWrapper",
                   "mmengine.AmpOptimWrapper", "resnext_plugin.AmpOptimWrapper")
AMP_DTYPES = ("auto", "bfloat16", "float16")


def enable_amp(cfg: Config, dtype: Optional[str] = None) -> None:
    """Switch ``cfg.optim_wrapper`` to ``resnext_plugin.AmpOptimWrapper``.

    Raises:
        ValueError: The config's wrapper is another kind (e.g. a multi-optimiser wrapper
            dict), or ``dtype`` is unknown.
    """
    if dtype is not None and dtype not in AMP_DTYPES:
        raise ValueError(f"--amp-dtype must be one of {AMP_DTYPES}, got {dtype!r}")
    if "optim_wrapper" not in cfg:
        raise ValueError("--amp: the config has no `optim_wrapper`")
    wrapper = cfg.optim_wrapper
    kind = wrapper.get("type", "OptimWrapper")
    if kind not in AMP_REPLACEABLE:
        raise ValueError(f"--amp: the config's optim_wrapper type is {kind!r}; --amp replaces "
                         f"only {', '.join(AMP_REPLACEABLE[:2])}")
    wrapper.type = "resnext_plugin.AmpOptimWrapper"
    if dtype is not None:
        wrapper.dtype = None if dtype == "auto" else dtype


def enable_channels_last(cfg: Config) -> None:
    """Set ``channels_last=True`` on the config's plugin backbone.

    Raises:
        ValueError: The model has no backbone, or another kind (only the plugin's takes it).
    """
    backbone = cfg.get("model", {}).get("backbone")
    if backbone is None:
        raise ValueError("--channels-last: the config's model has no `backbone`")
    kind = backbone.get("type")
    if kind not in PLUGIN_BACKBONES:
        raise ValueError(f"--channels-last: the backbone is {kind!r}; only "
                         f"{', '.join(PLUGIN_BACKBONES)} has a `channels_last` option")
    backbone.channels_last = True


def enable_compile(cfg: Config, compile: Union[bool, str] = True) -> None:
    """mmengine's ``compile`` option: ``True`` (inductor) or a backend name."""
    cfg.compile = True if compile is True else dict(backend=compile)


def apply_speed_knobs(cfg: Config, amp: bool = False, amp_dtype: Optional[str] = None,
                      channels_last: bool = False, compile: Union[bool, str] = False) -> Config:
    """Apply the command line's speed knobs to ``cfg`` in place and return it."""
    if amp_dtype is not None and not amp:
        raise ValueError("--amp-dtype needs --amp")
    if amp:
        enable_amp(cfg, amp_dtype)
    if channels_last:
        enable_channels_last(cfg)
    if compile:
        enable_compile(cfg, compile)
    return cfg

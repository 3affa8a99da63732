"""ResNeXt backbone plugin for OpenMMLab 2.0.

Importing the package (``custom_imports=dict(imports=['resnext_plugin'])``) registers
``resnext_plugin.ResNeXt`` and lets mmengine load its own checkpoints on torch>=2.6 without
turning ``weights_only`` off (see :mod:`resnext_plugin.checkpoint`).
"""
from .checkpoint import allow_mmengine_checkpoint_globals
from .models import ResNeXt, convert_block_form
from .registry import BACKBONES, MODELS

__version__ = "0.1.0"
allow_mmengine_checkpoint_globals()

__all__ = ["BACKBONES", "MODELS", "ResNeXt", "convert_block_form", "__version__"]

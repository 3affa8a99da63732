"""ResNeXt backbone plugin for OpenMMLab 2.0.

Importing the package (``custom_imports=dict(imports=['resnext_plugin'])``, on every rank)
registers ``resnext_plugin.ResNeXt``, lets mmengine load its own checkpoints on torch>=2.6 without
turning ``weights_only`` off (:mod:`resnext_plugin.checkpoint`) and makes its checkpoint writes
atomic (:mod:`resnext_plugin.fileio`).
"""
from .checkpoint import allow_mmengine_checkpoint_globals
from .fileio import install_atomic_local_backend
from .models import ResNeXt, convert_block_form
from .registry import BACKBONES, MODELS

__version__ = "0.1.0"
allow_mmengine_checkpoint_globals()
install_atomic_local_backend()

__all__ = ["BACKBONES", "MODELS", "ResNeXt", "convert_block_form", "__version__"]

"""ResNeXt backbone plugin for OpenMMLab 2.0.

Importing the package (``custom_imports=dict(imports=['resnext_plugin'])``, on every rank)
registers ``resnext_plugin.ResNeXt``; the plugin's datasets, transforms, hooks and optimiser
wrapper register on the first lookup of their ``resnext_plugin.`` type. Fixes to the upstream
stack are a separate, explicit module: :mod:`resnext_plugin.upstream_fixes`.
"""
from .models import ResNeXt, convert_block_form
from .registry import BACKBONES, MODELS

__version__ = "0.1.0"

__all__ = ["BACKBONES", "MODELS", "ResNeXt", "convert_block_form", "__version__"]

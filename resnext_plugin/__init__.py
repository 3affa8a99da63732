"""ResNeXt backbone plugin for OpenMMLab 2.0.

Importing the package (``custom_imports=dict(imports=['resnext_plugin'])``, on every rank)
registers ``resnext_plugin.ResNeXt``; the plugin's datasets, transforms, hooks and optimiser
wrapper register on the first lookup of their ``resnext_plugin.`` type. Fixes to the upstream
stack are a separate, explicit module: :mod:`resnext_plugin.upstream_fixes`.

It needs torch, mmengine and mmcv (upstream ``mmcv-lite`` is enough; deformable convolution needs
the compiled ``mmcv``); mmpretrain and mmdet are imported only by the parts that use them
(:mod:`resnext_plugin.deps`).
"""
from .deps import check_core
from .version import __version__

check_core()

from .models import ResNeXt, convert_block_form  # noqa: E402
from .registry import BACKBONES, MODELS  # noqa: E402

__all__ = ["BACKBONES", "MODELS", "ResNeXt", "convert_block_form", "__version__"]

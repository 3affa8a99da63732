"""The plugin's registry scope ``resnext_plugin``.

Its ``MODELS`` is a child of mmengine's root ``MODELS``, like mmpretrain's and mmdet's, so
configs of either address our backbone as ``type='resnext_plugin.ResNeXt'`` without shadowing
their own ``ResNeXt``. mmengine imports this module when it meets the ``resnext_plugin.`` prefix,
and ``locations`` then imports the models so that they are registered.
"""
from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import OPTIM_WRAPPERS as MMENGINE_OPTIM_WRAPPERS
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS
from mmengine.registry import Registry

MODELS = Registry(
    "model", parent=MMENGINE_MODELS, scope="resnext_plugin", locations=["resnext_plugin.models"]
)
BACKBONES = MODELS
HOOKS = Registry(
    "hook", parent=MMENGINE_HOOKS, scope="resnext_plugin", locations=["resnext_plugin.engine.hooks"]
)
# Datasets and transforms register on first lookup; the data sets import mmpretrain or mmdet, so
# they are not imported with the package, and one whose framework is missing names it
# (datasets/registration.py).
DATASETS = Registry("dataset", parent=MMENGINE_DATASETS, scope="resnext_plugin",
                    locations=["resnext_plugin.datasets.registration"])
TRANSFORMS = Registry("transform", parent=MMENGINE_TRANSFORMS, scope="resnext_plugin",
                      locations=["resnext_plugin.datasets.transforms"])
OPTIM_WRAPPERS = Registry("optim_wrapper", parent=MMENGINE_OPTIM_WRAPPERS, scope="resnext_plugin",
                          locations=["resnext_plugin.engine.amp"])

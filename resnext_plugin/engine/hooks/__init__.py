"""Runner hooks of the plugin (registered in ``resnext_plugin.registry.HOOKS``).

* ``resnext_plugin.TrainingCurvesHook``: the training curves as a PNG in the work dir.
* ``resnext_plugin.StopOnNonFiniteLossHook``: stops on a NaN/inf loss before that state is saved.
* ``resnext_plugin.ResumableRandomnessHook``: augmentations that ``--resume`` repeats exactly.
* ``resnext_plugin.WeightSyncCheckHook``: all ranks hold bit-identical parameters.
"""
from .nonfinite import NonFiniteLossError, StopOnNonFiniteLossHook
from .randomness import ResumableRandomnessHook, derive_seed
from .training_curves import TrainingCurvesHook
from .weight_sync import WeightSyncCheckHook, parameter_digests

__all__ = ["NonFiniteLossError", "ResumableRandomnessHook", "StopOnNonFiniteLossHook",
           "TrainingCurvesHook", "WeightSyncCheckHook", "derive_seed", "parameter_digests"]

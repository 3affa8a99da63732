from .arch import ARCH_SETTINGS, ArchitectureError, describe, infer_arch
from .block_forms import convert_block_form
from .blocks import BLOCK_FORMS, Bottleneck
from .resnext import ResNeXt

__all__ = ["ARCH_SETTINGS", "ArchitectureError", "BLOCK_FORMS", "Bottleneck", "ResNeXt",
           "convert_block_form", "describe", "infer_arch"]

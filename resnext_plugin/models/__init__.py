from .block_forms import convert_block_form
from .blocks import BLOCK_FORMS, Bottleneck
from .resnext import ARCH_SETTINGS, ResNeXt

__all__ = ["ARCH_SETTINGS", "BLOCK_FORMS", "Bottleneck", "ResNeXt", "convert_block_form"]

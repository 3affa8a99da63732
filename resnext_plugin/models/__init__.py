from .arch import ARCH_SETTINGS, ArchitectureError, describe, infer_arch
from .block_forms import convert_block_form
from .blocks import BLOCKS, Bottleneck, ResNeXtBlock
from .resnext import ResNeXt
from .spec import ResNeXtSpec

__all__ = ["ARCH_SETTINGS", "ArchitectureError", "BLOCKS", "Bottleneck", "ResNeXt", "ResNeXtBlock",
           "ResNeXtSpec", "convert_block_form", "describe", "infer_arch"]

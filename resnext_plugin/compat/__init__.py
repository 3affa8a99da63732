"""Compatibility checks against the stock OpenMMLab ResNeXt (mmdet's and mmpretrain's).

:mod:`.discovery` finds every installed stock config whose model has a ``ResNeXt`` backbone,
:mod:`.stock_configs` swaps its type for ``resnext_plugin.ResNeXt`` and checks that the same model
is built, and :mod:`.equivalence` compares two built backbones (parameters, keys, modes, outputs,
gradients, BatchNorm statistics).
"""
from .discovery import BackboneUse, Discovery, discover
from .equivalence import Comparison, compare_backbones
from .stock_configs import (
    StockBackbone,
    SweepReport,
    SweepResult,
    distinct_backbones,
    format_report,
    run_sweep,
)

__all__ = [
    "BackboneUse",
    "Comparison",
    "Discovery",
    "StockBackbone",
    "SweepReport",
    "SweepResult",
    "compare_backbones",
    "discover",
    "distinct_backbones",
    "format_report",
    "run_sweep",
]

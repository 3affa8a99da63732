"""Argument defaults of the peer whose configs build the backbone: mmdet's or mmpretrain's.

mmdet's ``ResNeXt`` returns all four stages and keeps BatchNorm in eval mode (detection), with a
stem as wide as ``base_channels`` and its deep stem as a flat ``nn.Sequential``; mmpretrain's
returns the last stage and trains its norms (classification), with a 64-channel stem and a deep
stem of three ``ConvModule`` s. The rule: an argument given explicitly always wins; an argument
left out takes the default of the peer named by ``defaults=``, else of the registry scope the
model is built in (``'mmdet'`` -> mmdet's, any other scope or none -> mmpretrain's). Which
defaults were filled in is logged once per process for each peer and set of arguments.
"""
from __future__ import annotations

from typing import Any, Optional

from mmengine.logging import print_log
from mmengine.registry import DefaultScope

PEERS = ("mmdet", "mmpretrain")
#: Per peer: the defaults of out_indices, norm_eval and stem_channels (None: base_channels), and
#: two layouts: the deep stem's, and whether ``avg_down`` pools (kernel 1) in the stride-1 stage.
#: mmdet zero-initialises the last norms only with its default init (no init_cfg, no pretrained),
#: mmpretrain unless the model loads a checkpoint.
PEER_DEFAULTS: dict[str, dict[str, Any]] = {
    "mmdet": dict(out_indices=(0, 1, 2, 3), norm_eval=True, stem_channels=None,
                  deep_stem_layout="sequential", avg_pool_at_stride_one=True,
                  zero_init_with_init_cfg=False),
    "mmpretrain": dict(out_indices=(3,), norm_eval=False, stem_channels=64,
                       deep_stem_layout="convmodule", avg_pool_at_stride_one=False,
                       zero_init_with_init_cfg=True),
}
_logged: set[tuple[str, Optional[str], tuple[str, ...]]] = set()


def current_scope() -> Optional[str]:
    """The scope of mmengine's current ``DefaultScope`` (None when there is none)."""
    instance = DefaultScope.get_current_instance()
    return None if instance is None else instance.scope_name


def resolve_peer(defaults: Optional[str]) -> tuple[str, Optional[str]]:
    """The peer whose defaults apply, and the scope it was read from (None if given)."""
    if defaults is not None:
        if defaults not in PEERS:
            raise ValueError(f"ResNeXt: `defaults` must be one of {PEERS} or None (the registry "
                             f"scope's), got {defaults!r}")
        return defaults, None
    scope = current_scope()
    return ("mmdet" if scope == "mmdet" else "mmpretrain"), scope


def fill_defaults(explicit: dict[str, Any], defaults: Optional[str]) -> tuple[str, dict[str, Any]]:
    """``explicit`` (argument -> value, None where left out) with the peer's defaults filled in.

    Returns:
        tuple: The peer's name and the completed arguments (``deep_stem_layout`` included).
    """
    peer, scope = resolve_peer(defaults)
    table = PEER_DEFAULTS[peer]
    filled = {key: value for key, value in explicit.items() if value is not None}
    missing = tuple(key for key in explicit if key not in filled)
    resolved = table | filled
    marker = (peer, scope, missing)
    if missing and marker not in _logged:
        _logged.add(marker)
        if defaults is not None:
            origin = f"defaults={peer!r}"
        else:
            origin = f"registry scope {scope!r}" if scope else "no registry scope"
        shown = ", ".join(f"{key}={table[key]!r}" for key in missing)
        print_log(f"resnext_plugin.ResNeXt: {peer}'s defaults ({origin}): {shown}",
                  logger="current")
    return peer, resolved

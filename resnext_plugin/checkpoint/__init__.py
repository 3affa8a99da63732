"""Checkpoints as data: safe loading, model-zoo names, state-dict extraction, atomic writes."""
from .atomic import atomic_write, atomic_write_bytes, save_atomic
from .safe_load import (
    NumpyOnlyUnpickler,
    history_buffer_getattr,
    load_checkpoint_file,
    mmengine_checkpoint_globals,
)
from .state_dict import extract_state_dict
from .zoo import (
    ZOO_PREFIXES,
    CheckpointDownloadError,
    cached_download,
    hub_checkpoint_dir,
    read_checkpoint,
    zoo_checkpoint_path,
    zoo_url,
)

__all__ = [
    "CheckpointDownloadError", "NumpyOnlyUnpickler", "ZOO_PREFIXES", "atomic_write",
    "atomic_write_bytes", "cached_download", "extract_state_dict", "history_buffer_getattr",
    "hub_checkpoint_dir",
    "load_checkpoint_file", "mmengine_checkpoint_globals", "read_checkpoint", "save_atomic",
    "zoo_checkpoint_path", "zoo_url",
]

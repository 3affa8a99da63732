"""Data transforms of the plugin (registered in ``resnext_plugin.registry.TRANSFORMS``)."""
from .loading import StrictLoadImageFromFile, find_image_corruption

__all__ = ["StrictLoadImageFromFile", "find_image_corruption"]

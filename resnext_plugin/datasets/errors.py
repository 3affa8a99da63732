"""Errors that name the data that is missing or broken."""


class DataNotFoundError(FileNotFoundError):
    """The data set (root, split folder or annotation file) is not where the config says."""


class CorruptImageError(OSError):
    """An image file that cannot be decoded completely."""

"""The one version string of the package (``pyproject.toml`` reads it; so does ``__init__``)."""

__version__ = "0.1.0"

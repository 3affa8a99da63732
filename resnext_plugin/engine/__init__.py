"""Runner-side pieces of the plugin: hooks, the CPU-capable distributed set-up, AMP on CPU, the
speed knobs and the runner a config asks for (the tools' command-line handling is in
:mod:`resnext_plugin.cli.runner_setup`).

Importing ``resnext_plugin.engine.hooks`` registers the hooks; the registry imports it on the first
lookup of a ``resnext_plugin.`` hook type, so configs need no extra import.
"""
from .dist import cpu_model_wrapper_cfg, has_accelerator, init_distributed, setup_distributed
from .runner import build_runner

__all__ = ["build_runner", "cpu_model_wrapper_cfg", "has_accelerator", "init_distributed",
           "setup_distributed"]

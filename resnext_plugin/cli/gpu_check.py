"""`make gpu-check`: CUDA tests, the CUDA benchmark table and a short AMP training of both demo
configs, in under ten minutes; writes the figures to docs/benchmarks.md. Fails at once, saying
why, where no CUDA GPU is visible. See resnext_plugin.benchmark.gpu_check.
"""
from __future__ import annotations



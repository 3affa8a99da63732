"""Benchmark library behind ``tools/benchmark.py`` and ``tools/gpu_check.py``.

* :mod:`.backbone`: the backbone against its peers (inference, training step), in process;
* :mod:`.detector`: one Mask R-CNN training iteration, stock against plugin, in process;
* :mod:`.runner`: real ``tools/train.py`` runs of our configs against the stock ones;
* :mod:`.profiling`: where an iteration's time goes (``torch.profiler``);
* :mod:`.gpu_check`: ``make gpu-check``.

Timing primitives are in :mod:`resnext_plugin.perf`.
"""

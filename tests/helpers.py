"""Small models and fixtures shared by the tests (pytest puts tests/ on sys.path)."""
import json
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from resnext_plugin.models import ResNeXt


def tiny(**kwargs) -> ResNeXt:
    args = dict(depth=50, groups=4, width_per_group=4, num_stages=2, out_indices=(0, 1),
                base_channels=16, stem_channels=16)
    args.update(kwargs)
    return ResNeXt(**args)


def randomise_bn(model: nn.Module, seed: int = 0) -> None:
    """Non-trivial BN statistics and affine parameters, so eval-mode comparisons mean something."""
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=gen) * 0.1)


def logged_training(work_dir: Path, keys: Sequence[str]) -> dict[int, dict]:
    """``keys`` of every logged training iteration, from all runs' ``vis_data/scalars.json``
    under ``work_dir`` (oldest run first, so a resumed run's entries replace the killed one's)."""
    logged = {}
    for path in sorted(work_dir.glob("*/vis_data/scalars.json")):
        for line in path.read_text().splitlines():
            entry = json.loads(line)
            if "loss" in entry:
                logged[entry["iter"]] = {k: entry[k] for k in keys if k in entry}
    return logged

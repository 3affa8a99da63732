"""Paper Table 1 and Table 2, measured on built models."""
import pytest
import torch
import torchvision

from resnext_plugin.complexity import (
    block_parameters,
    classifier_complexity,
    count_flops,
    count_parameters,
    solve_width,
)
from resnext_plugin.models import ResNeXt


def test_resnext50_32x4d_matches_the_paper_and_the_zoos():
    ours = classifier_complexity(50, 32, 4)
    assert ours.params == 25_028_904  # mmpretrain's and torchvision's count
    tv = torchvision.models.resnext50_32x4d()
    assert count_parameters(tv) == ours.params
    assert count_flops(tv) == ours.flops  # same multiply-adds as torchvision's model
    assert 4.1e9 < ours.flops < 4.3e9  # paper Table 1: 4.2 GFLOPs


def test_resnet50_is_the_1x64d_point():
    ours = classifier_complexity(50, 1, 64)
    assert ours.params == count_parameters(torchvision.models.resnet50())  # 25.5M in Table 1
    assert 4.0e9 < ours.flops < 4.2e9  # Table 1: 4.1 GFLOPs


@pytest.mark.parametrize("groups,width", [(1, 64), (2, 40), (4, 24), (8, 14), (32, 4)])
def test_table2_widths(groups, width):
    assert solve_width(groups) == width
    assert abs(block_parameters(groups, width) - 70_000) < 2_000  # "~70k" in Table 2


def test_flops_follow_the_input_size():
    from resnext_plugin.models import ResNeXt
    model = ResNeXt(50, num_stages=1, out_indices=(0,))
    assert count_flops(model, (3, 64, 64)) * 4 == count_flops(model, (3, 128, 128))


def test_solve_width_rejects_bad_groups():
    with pytest.raises(ValueError, match="`groups` must be >= 1"):
        solve_width(0)


def test_flops_equal_mmengines_count_of_convolutions_and_linear_layers():
    # The paper counts multiply-adds of convolutions and fully-connected layers; mmengine's
    # FlopAnalyzer counts the same per operator (and adds BatchNorm, which the paper leaves out).
    from mmengine.analysis import FlopAnalyzer

    model = ResNeXt(50, groups=8, width_per_group=14, init_cfg=None).eval()
    analyzer = FlopAnalyzer(model, (torch.rand(1, 3, 64, 64),))
    analyzer.unsupported_ops_warnings(False)
    by_operator = analyzer.by_operator()
    assert count_flops(model, (3, 64, 64)) == by_operator["conv"] + by_operator.get("linear", 0)

"""Blocks as classes: a new block variant is one class and one entry in ``BLOCKS``; the backbone,
the fusion and the weight conversion need nothing else. Checkpoint key layouts have one owner."""
from __future__ import annotations

import pytest
import torch
from helpers import randomise_bn, tiny
from torch import nn

from resnext_plugin.models import BLOCKS, Bottleneck, ResNeXtBlock, convert_block_form
from resnext_plugin.models.block_forms import detect_block_form
from resnext_plugin.models.blocks import make_stage
from resnext_plugin.models.fuse import fuse_conv_bn
from resnext_plugin.models.key_layouts import layout_renames, match_layout, stem_layout


class _Gate(nn.Module):
    """A per-channel sigmoid gate from the global average (squeeze-and-excitation, no MLP)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = x.mean(dim=(2, 3), keepdim=True)
        return x * torch.sigmoid(pooled * self.scale.view(1, -1, 1, 1))


class GatedBottleneck(Bottleneck):
    """The docs' example (docs/architecture.md): form (c) with a gate on the residual branch."""

    takes_dcn_and_plugins = False

    def _make_branch(self, conv_cfg, norm_cfg):
        super()._make_branch(conv_cfg, norm_cfg)
        self.se = _Gate(self.out_channels)

    def _branch(self, x):
        return self.se(super()._branch(x))


@pytest.fixture
def gated_form(monkeypatch):
    monkeypatch.setitem(BLOCKS, "se", GatedBottleneck)
    return "se"


def test_a_new_block_class_is_one_table_entry(gated_form):
    plain = tiny().eval()
    model = tiny(block_form=gated_form).eval()
    extra = set(model.state_dict()) - set(plain.state_dict())
    assert extra and all(".se.scale" in key for key in extra)
    assert set(plain.state_dict()) <= set(model.state_dict())  # the standard names are kept
    # its weights convert like form (c)'s (held whole), and the forms' weights load into it
    state = convert_block_form(plain.state_dict(), 4, "c", gated_form)
    assert set(model.load_state_dict(state, strict=False).missing_keys) == extra
    randomise_bn(model)
    x = torch.rand(2, 3, 32, 32)
    reference = model(x)
    fused = fuse_conv_bn(model)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fused.layer1.modules())
    for out, ref in zip(fused(x), reference):
        torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)


def test_dcn_is_refused_by_a_new_form_that_does_not_declare_it(gated_form):
    with pytest.raises(ValueError, match=r"`dcn` needs block_form='c' \(one grouped convolution\)"
                                         r", got block_form='se'"):
        tiny(block_form=gated_form, dcn=dict(type="DCN"), stage_with_dcn=(True, True))


def test_the_forms_share_one_base_class_and_cannot_be_built_without_a_form():
    assert all(issubclass(block, ResNeXtBlock) for block in BLOCKS.values())
    with pytest.raises(TypeError, match="abstract"):
        ResNeXtBlock(64, 256, groups=4, group_width=4)


def test_make_stage_takes_per_block_values_as_lists():
    stage = make_stage(3, 32, 64, 2, BLOCKS["b"], groups=2, group_width=4,
                       norm_cfg=dict(type="BN"), drop_path_rate_per_block=[0.0, 0.1, 0.2])
    assert [type(block) for block in stage] == [BLOCKS["b"]] * 3
    assert isinstance(stage[0].drop_path, nn.Identity)
    assert [block.drop_path.drop_prob for block in stage[1:]] == [0.1, 0.2]
    assert stage[0].stride == 2 and stage[0].downsample is not None
    assert all(block.stride == 1 and block.downsample is None for block in stage[1:])


def test_fold_frozen_bn_is_set_in_one_place():
    model = tiny(fold_frozen_bn=True)
    folding = [m.fold_frozen_bn for m in model.modules() if hasattr(m, "fold_frozen_bn")]
    assert len(folding) > 3 and all(folding)
    model.fold_frozen_bn = False
    assert not any(m.fold_frozen_bn for m in model.modules() if hasattr(m, "fold_frozen_bn"))


@pytest.mark.parametrize("form", sorted(BLOCKS))
def test_detect_block_form_reads_the_form_from_the_keys(form):
    assert detect_block_form(tiny(block_form=form).state_dict()) == form


def test_key_layouts_rename_the_deep_stem_and_the_shortcut_both_ways():
    mmdet = tiny(deep_stem=True, avg_down=True, defaults="mmdet").state_dict()
    mmpretrain = tiny(deep_stem=True, avg_down=True, defaults="mmpretrain").state_dict()
    assert (stem_layout(mmdet), stem_layout(mmpretrain)) == ("sequential", "convmodule")
    assert set(mmdet) != set(mmpretrain)
    for source, target in ((mmdet, mmpretrain), (mmpretrain, mmdet)):
        renamed = match_layout(source, target)
        assert set(renamed) == set(target)
        assert all(renamed[key].shape == target[key].shape for key in target)
    renames = layout_renames(mmdet, mmpretrain)
    assert renames["stem.3.weight"] == "stem.1.conv.weight"
    assert renames["layer1.0.downsample.1.weight"] == "layer1.0.downsample.0.weight"
    assert layout_renames(mmpretrain, mmpretrain) == {}

"""The constructor's arguments are checked once into a frozen ResNeXtSpec; the model is built
from it, and an omitted ``init_cfg`` is told from an explicit one by a sentinel."""
from __future__ import annotations

import dataclasses

import pytest
from helpers import tiny
from mmengine.registry import DefaultScope

from resnext_plugin.models import ResNeXtSpec
from resnext_plugin.models.spec import DEFAULT_INIT_CFG


def test_the_model_carries_its_checked_frozen_spec():
    model = tiny(strides=[1, 2], deep_stem=True)
    assert isinstance(model.spec, ResNeXtSpec)
    assert model.spec.strides == (1, 2) and model.strides == (1, 2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        model.spec.groups = 8
    for name in ResNeXtSpec.MODEL_ATTRIBUTES:
        assert getattr(model, name) == getattr(model.spec, name), name
    assert not hasattr(model, "peer")


@pytest.mark.parametrize("scope,layout,out_indices", [
    ("mmdet", "sequential", (0, 1, 2, 3)), ("mmpretrain", "convmodule", (3,))])
def test_the_spec_holds_the_scope_defaults(scope, layout, out_indices):
    with DefaultScope.overwrite_default_scope(scope):
        spec = tiny(num_stages=4, out_indices=None, deep_stem=True).spec
    assert (spec.deep_stem_layout, spec.out_indices) == (layout, out_indices)


def test_an_omitted_init_cfg_is_not_an_equal_list():
    omitted, explicit = tiny().spec, tiny(init_cfg=DEFAULT_INIT_CFG).spec
    assert omitted.init_cfg == explicit.init_cfg == DEFAULT_INIT_CFG
    # mmdet zero-initialises the last norms only under its default init (not an explicit one)
    assert tiny(defaults="mmdet").spec.zero_init_allowed
    assert not tiny(defaults="mmdet", init_cfg=DEFAULT_INIT_CFG).spec.zero_init_allowed

"""Registry scopes, and equality with mmpretrain's and mmdet's built-in ResNeXt."""
import subprocess
import sys
import textwrap

import pytest
import torch
from helpers import randomise_bn
from mmengine.registry import DefaultScope

import resnext_plugin
from resnext_plugin.models import ResNeXt

SMALL = dict(depth=50, groups=4, width_per_group=4, num_stages=2, out_indices=(0, 1))


def build_in_scope(scope: str, cfg: dict):
    if scope == "mmpretrain":
        from mmpretrain.registry import MODELS
    else:
        from mmdet.registry import MODELS
    with DefaultScope.overwrite_default_scope(scope):
        return MODELS.build(cfg)


@pytest.mark.parametrize("scope", ["mmpretrain", "mmdet"])
def test_scoped_name_builds_the_plugin_and_builtins_are_untouched(scope):
    ours = build_in_scope(scope, dict(type="resnext_plugin.ResNeXt", **SMALL))
    theirs = build_in_scope(scope, dict(type="ResNeXt", depth=50))
    assert type(ours) is ResNeXt
    assert type(theirs).__module__.startswith(f"{scope}.models.backbones")
    assert resnext_plugin.BACKBONES is resnext_plugin.MODELS
    assert resnext_plugin.MODELS.get("ResNeXt") is ResNeXt


@pytest.mark.parametrize("scope,config_model", [
    ("mmpretrain", "dict(type='ImageClassifier', "
                   "backbone=dict(type='resnext_plugin.ResNeXt', "
                   "depth=50, num_stages=1, out_indices=(0,)), "
                   "neck=dict(type='GlobalAveragePooling'), "
                   "head=dict(type='LinearClsHead', num_classes=3, in_channels=256))"),
    ("mmdet", "dict(type='resnext_plugin.ResNeXt', depth=50, base_width=4)"),
])
def test_custom_imports_from_a_config_in_a_fresh_process(tmp_path, scope, config_model):
    """`custom_imports` is the only thing that makes the name known: run in a clean interpreter."""
    cfg = tmp_path / "cfg.py"
    cfg.write_text(textwrap.dedent(f"""
        default_scope = '{scope}'
        custom_imports = dict(imports=['resnext_plugin'], allow_failed_imports=False)
        model = {config_model}
    """))
    script = textwrap.dedent(f"""
        import sys
        from mmengine.config import Config
        from mmengine.registry import DefaultScope
        from {scope}.registry import MODELS
        assert 'resnext_plugin' not in sys.modules
        cfg = Config.fromfile(r'{cfg}')
        with DefaultScope.overwrite_default_scope('{scope}'):
            model = MODELS.build(cfg.model)
            builtin = MODELS.build(dict(type='ResNeXt', depth=50))
        backbone = getattr(model, 'backbone', model)
        print(type(backbone).__module__, type(builtin).__module__)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    ours, builtin = out.stdout.split()[-2:]
    assert ours == "resnext_plugin.models.resnext"
    assert builtin.startswith(f"{scope}.models.backbones")


def peer(scope: str, depth: int, groups: int, width: int):
    if scope == "mmpretrain":
        from mmpretrain.models.backbones import ResNeXt as Peer
        return Peer(depth, groups=groups, width_per_group=width, out_indices=(0, 1, 2, 3))
    from mmdet.models.backbones import ResNeXt as Peer
    return Peer(depth=depth, groups=groups, base_width=width, out_indices=(0, 1, 2, 3),
                norm_eval=False)


@pytest.mark.parametrize("scope", ["mmpretrain", "mmdet"])
@pytest.mark.parametrize("depth,groups,width", [(50, 32, 4), (101, 32, 4), (101, 64, 4)])
def test_same_outputs_as_builtin_resnext_given_the_same_weights(scope, depth, groups, width):
    torch.manual_seed(depth + groups)
    ours = ResNeXt(depth, groups=groups, width_per_group=width, out_indices=(0, 1, 2, 3))
    randomise_bn(ours)
    theirs = peer(scope, depth, groups, width)
    theirs.load_state_dict(ours.state_dict(), strict=True)  # keys and shapes identical
    ours.load_state_dict(theirs.state_dict(), strict=True)  # and back
    ours.eval()
    theirs.eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        for a, b in zip(ours(x), theirs(x)):
            torch.testing.assert_close(a, b, rtol=0, atol=0)

"""The stock-config sweep: every installed mmdet/mmpretrain config with a ResNeXt backbone, type
swapped for ``resnext_plugin.ResNeXt``, builds the same model (resnext_plugin.compat).

The default run loads the configs that name ResNeXt in their inheritance chain and checks the
cheapest few backbones that cover every scope, layer type and switch the stock backbones use;
the slow run loads every config file, checks that it finds the same configs, and checks every
distinct backbone.
"""

import pytest
from mmdet.models.backbones import ResNeXt as MMDetResNeXt

from resnext_plugin.compat import (
    compare_backbones,
    discover,
    distinct_backbones,
    format_report,
)
from resnext_plugin.compat.discovery import config_root, may_name_resnext
from resnext_plugin.compat.stock_configs import (
    StockBackbone,
    SweepReport,
    check_backbone,
    fast_subset,
)
from resnext_plugin.models import ResNeXt

SMALL = dict(depth=50, groups=4, num_stages=2, out_indices=(0, 1), strides=(1, 2),
             dilations=(1, 1))


@pytest.fixture(scope="module")
def discovery():
    return discover(prefilter=True)


def test_discovery_finds_every_kind_of_stock_resnext(discovery):
    assert discovery.configs("mmdet") and discovery.configs("mmpretrain")
    assert not [f for f in discovery.load_failures if "ResNeXt" in f[2]]
    backbones = [u.backbone for u in discovery.uses]
    assert any(b.get("dcn") for b in backbones)
    assert any(b.get("plugins") for b in backbones)
    assert any(b.get("norm_cfg", {}).get("type") == "GN" for b in backbones)
    # Nested below the top-level model (mmdet's tracking configs wrap a detector) ...
    assert any(u.key == "model.detector.backbone" for u in discovery.uses)
    # ... and inherited: found although the file itself never names ResNeXt.
    inherited = [u for u in discovery.uses
                 if "ResNeXt" not in (config_root(u.package) / u.config).read_text()]
    assert inherited


def test_prefilter_follows_the_inheritance_chain(tmp_path):
    (tmp_path / "base.py").write_text("model = dict(backbone=dict(type='ResNeXt', depth=50))\n")
    (tmp_path / "child.py").write_text("_base_ = ['./base.py']\nmodel = dict(neck=None)\n")
    (tmp_path / "other.py").write_text("_base_ = './unrelated.py'\n")
    (tmp_path / "unrelated.py").write_text("model = dict(backbone=dict(type='ResNet'))\n")
    (tmp_path / "dynamic.py").write_text("_base_ = ['./' + 'base.py']\n")
    assert may_name_resnext(tmp_path / "child.py")
    assert not may_name_resnext(tmp_path / "other.py")
    assert may_name_resnext(tmp_path / "dynamic.py")  # not a literal: load it to be sure


def _small_stock(**kwargs):
    return MMDetResNeXt(**SMALL, base_width=4, norm_eval=False, init_cfg=None, **kwargs)


def _small_ours(**kwargs):
    return ResNeXt(**SMALL, width_per_group=4, norm_eval=False, init_cfg=None, **kwargs)


def test_comparison_passes_an_equal_pair_exactly():
    result = compare_backbones(_small_stock(), _small_ours())
    assert result.passed, result.differences
    assert result.exact


@pytest.mark.parametrize("ours_kwargs,expected", [
    (dict(norm_eval=True), "in another mode"),
    (dict(frozen_stages=1), "requires_grad differs"),
    (dict(style="caffe"), "eval output 1: max |stock - ours|"),  # layer1 has stride 1
    (dict(groups=8), "keys with other shapes"),
    (dict(num_stages=1, out_indices=(0,), strides=(1,), dilations=(1,)),
     "stock keys missing from ours: layer2.0.bn1.bias"),
])
def test_comparison_names_what_differs(ours_kwargs, expected):
    kwargs = dict(SMALL, width_per_group=4, norm_eval=False, init_cfg=None)
    kwargs.update(ours_kwargs)
    result = compare_backbones(_small_stock(), ResNeXt(**kwargs))
    assert not result.passed
    assert any(expected in d for d in result.differences), result.differences


def test_comparison_sees_train_mode_statistics():
    """Same weights, outputs and gradients, but a BN momentum of its own: only the running
    statistics after the train-mode forward differ, and the comparison names the buffer."""
    ours = _small_ours()
    ours.bn1.momentum = 0.5
    result = compare_backbones(_small_stock(), ours)
    assert len(result.differences) == 1, result.differences
    assert result.differences[0].startswith(
        "after the train-mode forward, buffer bn1.running_mean")


@pytest.mark.parametrize("scope,backbone", [
    ("mmdet", dict(type="ResNeXt", depth=50, groups=32, base_width=4)),
    ("mmdet", dict(type="ResNeXt", depth=50, groups=32, base_width=4, deep_stem=True,
                   avg_down=True)),
    ("mmpretrain", dict(type="ResNeXt", depth=50)),
    ("mmpretrain", dict(type="ResNeXt", depth=50, deep_stem=True, avg_down=True)),
])
def test_arguments_left_out_take_the_scope_peers_defaults(scope, backbone):
    """Beyond the stock configs (which spell most arguments out): a backbone dict with the
    defaults left out builds the scope's peer (out_indices, norm_eval, stem width and layout)."""
    result = check_backbone(StockBackbone(scope, backbone))
    assert result.status == "pass", result.details()


def test_fast_subset_covers_every_feature_value(discovery):
    backbones = distinct_backbones(discovery.uses)
    subset = fast_subset(backbones)
    assert set().union(*(b.features() for b in subset)) == \
        set().union(*(b.features() for b in backbones))
    assert len(subset) < len(backbones)
    assert fast_subset(backbones) == subset  # deterministic


def _check_and_report(discovery, backbones) -> None:
    results = [check_backbone(b) for b in backbones]
    every = distinct_backbones(discovery.uses)
    report = SweepReport(discovery, every, results, fast=len(results) < len(every),
                         seconds=sum(r.seconds for r in results))
    print(format_report(report))
    failed = [f"{r.backbone.summary()} ({r.backbone.uses[0].name}): {'; '.join(r.details())}"
              for r in results if r.status == "fail"]
    assert not failed, "\n".join(failed)
    skipped = [r for r in results if r.status == "skip"]
    assert all(r.reason for r in skipped)
    assert len(skipped) < len(results)


def test_fast_subset_of_stock_backbones_is_exact(discovery):
    """The few backbones covering every scope, layer type and switch of the stock backbones
    (about a minute on 2 cores)."""
    subset = fast_subset(distinct_backbones(discovery.uses))
    assert {b.scope for b in subset} == {"mmdet", "mmpretrain"}
    _check_and_report(discovery, subset)


@pytest.mark.slow
def test_every_stock_resnext_config_is_exact(discovery):
    """Every config file loaded (about 1,700); every distinct ResNeXt backbone in them checked
    (minutes on 2 cores; `tools/check_stock_configs.py --all-files` prints the same report)."""
    everything = discover(prefilter=False)
    # The default run's inheritance-chain prefilter loses nothing.
    assert [(u.name, u.key) for u in everything.uses] == [(u.name, u.key) for u in discovery.uses]
    assert [u.backbone for u in everything.uses] == [u.backbone for u in discovery.uses]
    _check_and_report(everything, distinct_backbones(everything.uses))


def test_tool_prints_the_report_and_its_exit_status(capsys):
    from resnext_plugin.cli import check_stock_configs as tool

    assert tool.main(["--filter", r"gn\+ws/.*x50", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "PASS   [mmdet] X-50-32x4d conv_cfg=ConvWS" in out
    assert "gn+ws/faster-rcnn_x50-32x4d_fpn_gn-ws-all_1x_coco.py" in out
    assert "RESULT: 1 distinct backbones checked: 1 passed" in out
    # Nothing to check is a failure, not a silent pass.
    assert tool.main(["--filter", "no-such-config", "--quiet"]) == 1
    assert "configs with a ResNeXt backbone: 0" in capsys.readouterr().out

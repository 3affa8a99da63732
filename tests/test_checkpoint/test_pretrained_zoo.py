"""``init_cfg=dict(type='Pretrained', checkpoint='open-mmlab://...' | 'torchvision://...' |
'mmcls://...')``: names resolved through mmengine's model-zoo maps, the file read weights-only
from torch's hub cache, the layout matched to the model, loaded strictly.

There is no network here: each test puts the checkpoint where the download would have put it
(``$TORCH_HOME/hub/checkpoints/<file name of the zoo's URL>``) and fails if a download starts.
"""
import os
import pickle

import pytest
import torch
from mmengine.registry import DefaultScope
from mmengine.runner.checkpoint import get_external_models, get_mmcls_models

from resnext_plugin.checkpoint import zoo_url
from resnext_plugin.models import ResNeXt


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """An empty torch hub cache; downloading from it is an error."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))

    def no_download(url, dst, *args, **kwargs):
        raise AssertionError(f"the test tried to download {url}")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)
    cache = tmp_path / "torch_home" / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    return cache


def place(cache, name: str, checkpoint) -> None:
    torch.save(checkpoint, cache / os.path.basename(zoo_url(name)))


def scoped(scope: str, **kwargs) -> ResNeXt:
    with DefaultScope.overwrite_default_scope(scope):
        return ResNeXt(**kwargs)


def assert_same_tensors(model, state_dict):
    own = model.state_dict()
    for key, value in state_dict.items():
        assert torch.equal(own[key], value), key


def test_open_mmlab_name_loads_mmdets_layout(hub_cache):
    from mmdet.models.backbones import ResNeXt as MMDetResNeXt

    name = "open-mmlab://resnext50_32x4d"
    assert zoo_url(name) == get_external_models()["resnext50_32x4d"]
    source = MMDetResNeXt(depth=50, groups=32, base_width=4).state_dict()
    place(hub_cache, name, source)
    model = scoped("mmdet", depth=50, groups=32, base_width=4,
                   init_cfg=dict(type="Pretrained", checkpoint=name))
    model.init_weights()
    assert_same_tensors(model, source)


def test_gn_ws_checkpoint_loads_into_the_gn_ws_model(hub_cache):
    from mmdet.models.backbones import ResNeXt as MMDetResNeXt

    name = "open-mmlab://jhu/resnext50_32x4d_gn_ws"
    args = dict(depth=50, groups=32, base_width=4, conv_cfg=dict(type="ConvWS"),
                norm_cfg=dict(type="GN", num_groups=32, requires_grad=True))
    source = MMDetResNeXt(**args).state_dict()
    assert "gn1.weight" in source and "layer1.0.gn3.bias" in source
    place(hub_cache, name, {"state_dict": source})
    model = scoped("mmdet", **args, init_cfg=dict(type="Pretrained", checkpoint=name))
    model.init_weights()
    assert_same_tensors(model, source)


def test_torchvision_name_loads_and_ignores_the_classifier(hub_cache):
    import torchvision

    name = "torchvision://resnext50_32x4d"
    source = torchvision.models.resnext50_32x4d().state_dict()
    place(hub_cache, name, source)
    model = scoped("mmpretrain", depth=50, init_cfg=dict(type="Pretrained", checkpoint=name))
    model.init_weights()
    assert_same_tensors(model, {k: v for k, v in source.items() if not k.startswith("fc.")})


def test_mmcls_name_strips_the_classifier_prefix(hub_cache):
    from mmpretrain.models import ResNeXt as MMPretrainResNeXt

    name = "mmcls://resnext50_32x4d"
    assert zoo_url(name) == get_mmcls_models()["resnext50_32x4d"]
    backbone = MMPretrainResNeXt(depth=50).state_dict()
    classifier = {f"backbone.{k}": v for k, v in backbone.items()}
    classifier |= {"head.fc.weight": torch.zeros(1000, 2048), "head.fc.bias": torch.zeros(1000)}
    place(hub_cache, name, {"state_dict": classifier, "meta": {}})
    model = scoped("mmpretrain", depth=50, init_cfg=dict(type="Pretrained", checkpoint=name))
    model.init_weights()
    assert_same_tensors(model, backbone)


class Planted:
    def __reduce__(self):
        return (os.system, ("touch planted_ran",))


def test_a_planted_pickle_in_the_hub_cache_is_refused(hub_cache, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    name = "open-mmlab://resnext50_32x4d"
    with open(hub_cache / os.path.basename(zoo_url(name)), "wb") as f:
        pickle.dump({"state_dict": Planted()}, f)
    model = scoped("mmdet", depth=50, init_cfg=dict(type="Pretrained", checkpoint=name))
    with pytest.raises(ValueError, match="cannot load checkpoint"):
        model.init_weights()
    assert not (tmp_path / "planted_ran").exists()


def test_an_unknown_zoo_name_is_named(hub_cache):
    model = scoped("mmdet", depth=50, init_cfg=dict(type="Pretrained",
                                                    checkpoint="open-mmlab://resnext50_99x9d"))
    with pytest.raises(KeyError, match="'resnext50_99x9d' is not in mmengine's open-mmlab://"):
        model.init_weights()


@pytest.mark.parametrize("src_scope,dst_scope", [("mmpretrain", "mmdet"),
                                                 ("mmdet", "mmpretrain")])
def test_deep_stem_and_avg_down_layouts_convert_between_peers(tmp_path, src_scope, dst_scope):
    args = dict(depth=50, groups=4, base_width=4, base_channels=16, stem_channels=16,
                num_stages=2, out_indices=(1,), deep_stem=True, avg_down=True, init_cfg=None)
    source = scoped(src_scope, **args).eval()
    torch.save(source.state_dict(), tmp_path / "src.pth")
    model = scoped(dst_scope, **args | dict(
        init_cfg=dict(type="Pretrained", checkpoint=str(tmp_path / "src.pth"))))
    assert set(model.state_dict()) != set(source.state_dict())  # two layouts
    model.init_weights()
    x = torch.rand(1, 3, 32, 32)
    assert torch.equal(model.eval()(x)[0], source(x)[0])

"""Checkpoint loading on torch>=2.6: mmengine's own checkpoints load, code in a pickle never runs,
and pretrained backbones load strictly."""
import numpy as np
import pytest
import torch
from helpers import randomise_bn, tiny
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.model import BaseModel
from mmengine.runner import Runner
from mmengine.runner.checkpoint import _load_checkpoint, load_checkpoint
from torch.utils.data import Dataset

from resnext_plugin import upstream_fixes  # (the allow-list for mmengine's loader)
from resnext_plugin.checkpoint import load_checkpoint_file
from resnext_plugin.models import ResNeXt


class PlantedCode:
    """Unpickling this would create `path`: the proof that code ran."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.fixture
def planted(tmp_path):
    marker = tmp_path / "code_ran"
    ckpt = tmp_path / "evil.pth"
    torch.save({"state_dict": tiny().state_dict(), "meta": PlantedCode(marker)}, ckpt)
    return ckpt, marker


class GetattrOn:
    """A pickle calling getattr on an allow-listed class: the first step of a chain to globals."""

    def __init__(self, obj, name):
        self.obj, self.name = obj, name

    def __reduce__(self):
        return (getattr, (self.obj, self.name))


@pytest.mark.parametrize("obj,name", [(HistoryBuffer, "__init__"), (np.ndarray, "tofile")])
def test_getattr_is_restricted_to_history_buffer_methods(tmp_path, obj, name):
    path = tmp_path / "getattr.pth"
    torch.save({"x": GetattrOn(obj, name)}, path)
    with pytest.raises(Exception, match="only HistoryBuffer's statistics methods are allowed"):
        torch.load(path)
    torch.save({"x": GetattrOn(HistoryBuffer, "mean")}, path)
    assert torch.load(path)["x"] is HistoryBuffer.mean


def test_planted_code_does_not_run_through_any_loader(planted):
    ckpt, marker = planted
    with pytest.raises(Exception, match="(?i)weights.only|unsupported global|not allowed"):
        _load_checkpoint(str(ckpt), map_location="cpu")  # what load_from/resume use
    with pytest.raises(Exception, match="(?i)weights.only|unsupported global|not allowed"):
        load_checkpoint(tiny(), str(ckpt))
    with pytest.raises(ValueError, match=f"cannot load checkpoint {ckpt}"):
        load_checkpoint_file(ckpt)
    model = tiny(init_cfg=dict(type="Pretrained", checkpoint=str(ckpt)))
    with pytest.raises(ValueError, match="cannot load checkpoint"):
        model.init_weights()
    assert not marker.exists()


class TinyData(Dataset):
    def __len__(self):
        return 8

    def __getitem__(self, i):
        gen = torch.Generator().manual_seed(i)
        return dict(inputs=torch.rand(3, 32, 32, generator=gen), label=i % 2)


class TinyClassifier(BaseModel):
    def __init__(self):
        super().__init__()
        self.backbone = tiny(num_stages=1, out_indices=(0,))
        self.fc = torch.nn.Linear(64, 2)

    def forward(self, inputs, label, mode="loss"):
        logits = self.fc(self.backbone(inputs)[0].mean((2, 3)))
        if mode == "loss":
            return dict(loss=torch.nn.functional.cross_entropy(logits, label))
        return logits


def make_runner(work_dir, max_iters, **kwargs):
    return Runner(
        model=TinyClassifier(), work_dir=str(work_dir),
        train_dataloader=dict(dataset=TinyData(), batch_size=4, num_workers=0,
                              sampler=dict(type="DefaultSampler", shuffle=False),
                              collate_fn=dict(type="default_collate")),
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.01, momentum=0.9)),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        default_hooks=dict(checkpoint=dict(type="CheckpointHook", interval=2, by_epoch=False),
                           logger=dict(type="LoggerHook", interval=1)),
        randomness=dict(seed=0), env_cfg=dict(dist_cfg=dict(backend="gloo")),
        default_scope="mmengine", **kwargs)


def test_mmengine_checkpoints_load_and_resume_with_weights_only(tmp_path):
    runner = make_runner(tmp_path / "a", 2)
    runner.train()
    ckpt = tmp_path / "a" / "iter_2.pth"
    # Without the allow-list, torch's weights-only unpickler refuses mmengine's own checkpoint.
    allowed = torch.serialization.get_safe_globals()
    torch.serialization.clear_safe_globals()
    try:
        with pytest.raises(Exception, match="(?i)weights.only"):
            torch.load(ckpt, map_location="cpu")
    finally:
        torch.serialization.add_safe_globals(allowed)
    checkpoint = torch.load(ckpt, map_location="cpu")  # weights_only=True by default
    assert checkpoint["meta"]["iter"] == 2 and "message_hub" in checkpoint
    resumed = make_runner(tmp_path / "b", 4, resume=True, load_from=str(ckpt))
    resumed.train()
    assert resumed.iter == 4
    loaded = make_runner(tmp_path / "c", 2, load_from=str(ckpt))
    loaded.load_or_resume()
    for name, value in runner.model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[name], value), name


def backbone_ckpt(tmp_path, name="bb.pth", prefix="", extra=None, **kwargs):
    model = tiny(**kwargs)
    randomise_bn(model)
    state = {prefix + k: v for k, v in model.state_dict().items()}
    state.update(extra or {})
    path = tmp_path / name
    torch.save({"state_dict": state}, path)
    return model, str(path)


def test_pretrained_loads_every_tensor_with_prefix(tmp_path):
    src, path = backbone_ckpt(tmp_path, prefix="backbone.",
                              extra={"head.fc.weight": torch.zeros(2, 2)})
    model = tiny(init_cfg=dict(type="Pretrained", checkpoint=path, prefix="backbone."))
    model.init_weights()
    for key, value in src.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key


def test_pretrained_without_prefix_on_a_whole_model_checkpoint_says_which(tmp_path):
    _, path = backbone_ckpt(tmp_path, prefix="backbone.")
    with pytest.raises(ValueError, match="set prefix='backbone.'"):
        tiny(init_cfg=dict(type="Pretrained", checkpoint=path)).init_weights()


def test_pretrained_of_another_depth_fails(tmp_path):
    _, path = backbone_ckpt(tmp_path, num_stages=4, depth=101, out_indices=(3,))
    model = tiny(num_stages=4, depth=50, out_indices=(3,),
                 init_cfg=dict(type="Pretrained", checkpoint=path))
    with pytest.raises(ValueError, match=r"unexpected key `layer3\.6\..*ResNeXt-101 \(4x4d\).*"
                                         r"ResNeXt-50 \(4x4d\)"):
        model.init_weights()


def test_pretrained_of_another_width_fails(tmp_path):
    _, path = backbone_ckpt(tmp_path, groups=2, width_per_group=8)
    model = tiny(groups=4, width_per_group=4, init_cfg=dict(type="Pretrained", checkpoint=path))
    with pytest.raises(ValueError, match=r"`layer1\.0\.conv2\.weight` has shape \(16, 8, 3, 3\)"):
        model.init_weights()


def test_pretrained_missing_file_and_bad_keys(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.pth"):
        tiny(init_cfg=dict(type="Pretrained", checkpoint=str(tmp_path / "nowhere.pth"))
             ).init_weights()
    with pytest.raises(ValueError, match="`checkpoint` \\(required\\)"):
        tiny(init_cfg=dict(type="Pretrained", checkpoint="x", prefx="backbone.")).init_weights()


def test_pretrained_form_c_weights_load_into_form_a(tmp_path):
    src, path = backbone_ckpt(tmp_path)
    model = tiny(block_form="a", init_cfg=dict(type="Pretrained", checkpoint=path))
    model.init_weights()
    x = torch.rand(1, 3, 32, 32)
    for a, b in zip(src.eval()(x), model.eval()(x)):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_full_size_backbone_builds_for_each_published_arch():
    for depth, groups, width in [(50, 32, 4), (101, 32, 8), (101, 64, 4), (152, 32, 4)]:
        model = ResNeXt(depth, groups=groups, width_per_group=width)
        assert model.feat_dim == 2048


def test_reading_a_checkpoint_keeps_the_allow_list_of_the_upstream_fix(tmp_path):
    """The reader allows mmengine's classes only while it reads, and must not take them off the
    process-wide list that resnext_plugin.upstream_fixes put them on."""
    upstream_fixes.allow_mmengine_checkpoints()
    path = tmp_path / "plain.pth"
    torch.save({"state_dict": tiny().state_dict()}, path)
    load_checkpoint_file(path)
    assert HistoryBuffer in torch.serialization.get_safe_globals()

"""`import resnext_plugin` and the backbone need torch, mmengine and mmcv (mmcv-lite is enough);
mmpretrain, mmdet and mmcv's compiled ops are imported only by the parts that use them.

Each test runs a fresh interpreter in which the frameworks it must not need are made unimportable
(``sys.modules[name] = None``: a real ImportError on import, as on a stack without them)."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

BLOCKED = ("mmdet", "mmpretrain", "mmcv.ops", "mmcv._ext")


def run_without(blocked: tuple[str, ...], body: str) -> dict:
    """Run ``body`` in a fresh interpreter with ``blocked`` unimportable; it sets ``result``."""
    script = "import sys\n" + "".join(f"sys.modules[{name!r}] = None\n" for name in blocked)
    script += textwrap.dedent(body)
    script += "\nprint('RESULT=' + __import__('json').dumps(result))\n"
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(ln for ln in proc.stdout.splitlines()[::-1] if ln.startswith("RESULT="))
    return json.loads(line[len("RESULT="):])


def test_package_backbone_and_fixes_work_without_mmdet_mmpretrain_and_mmcv_ops():
    result = run_without(BLOCKED, """
        import torch
        import resnext_plugin
        import resnext_plugin.upstream_fixes  # what the configs' custom_imports name
        from mmengine.registry import MODELS
        model = MODELS.build(dict(type='resnext_plugin.ResNeXt', depth=50, groups=4,
                                  width_per_group=4, num_stages=2, out_indices=(0, 1),
                                  base_channels=16, stem_channels=16))
        model.init_weights()
        outs = model.eval()(torch.rand(1, 3, 32, 32))
        loaded = sorted(name for name in sys.modules if sys.modules[name] is not None
                        and name.split('.')[0] in ('mmdet', 'mmpretrain')
                        or name.startswith(('mmcv.ops', 'mmcv._ext')) and sys.modules[name])
        result = dict(shapes=[list(o.shape) for o in outs], loaded=loaded,
                      version=resnext_plugin.__version__)
    """)
    assert result["shapes"] == [[1, 64, 8, 8], [1, 128, 4, 4]]
    assert result["loaded"] == []
    from resnext_plugin.version import __version__
    assert result["version"] == __version__


def test_dcn_without_compiled_mmcv_names_it():
    result = run_without(BLOCKED, """
        from resnext_plugin.deps import MissingFrameworkError
        from resnext_plugin.models import ResNeXt
        try:
            ResNeXt(depth=50, dcn=dict(type='DCN', deform_groups=1),
                    stage_with_dcn=(False, True, True, True))
            result = dict(error=None)
        except MissingFrameworkError as err:
            result = dict(error=str(err))
    """)
    assert result["error"] is not None
    assert "compiled `mmcv` (not `mmcv-lite`)" in result["error"]
    assert "`onedl-mmcv`" in result["error"] and "deformable convolution" in result["error"]


@pytest.mark.parametrize("module,upstream,onedl", [("mmengine", "`mmengine`", "`onedl-mmengine`"),
                                                   ("mmcv", "`mmcv-lite`", "`onedl-mmcv`")])
def test_a_missing_core_framework_names_both_distributions(module, upstream, onedl):
    result = run_without((module,), """
        try:
            import resnext_plugin
            result = dict(error=None)
        except ImportError as err:
            result = dict(error=str(err), type=type(err).__name__)
    """)
    assert result["type"] == "MissingFrameworkError", result
    assert upstream in result["error"] and onedl in result["error"]
    assert "pip install 'resnext_plugin[onedl]'" in result["error"]


def test_data_sets_of_a_missing_framework_name_it_and_the_others_still_build():
    result = run_without(BLOCKED, """
        import resnext_plugin.datasets as datasets
        from mmengine.registry import DATASETS, TRANSFORMS
        transform = TRANSFORMS.build(dict(type='resnext_plugin.StrictLoadImageFromFile'))
        errors = {}
        for name in ('CheckedCocoDataset', 'CheckedImageNet'):
            try:
                DATASETS.build(dict(type='resnext_plugin.' + name, data_root='nowhere'))
            except ImportError as err:
                errors[name] = str(err)
        try:
            datasets.CheckedImageNet
        except ImportError as err:
            errors['attribute'] = str(err)
        result = dict(errors=errors, transform=type(transform).__name__,
                      loaded=sorted(n for n in sys.modules if n.split('.')[0] in
                                    ('mmdet', 'mmpretrain') and sys.modules[n] is not None))
    """)
    errors = result["errors"]
    assert "`mmdet`" in errors["CheckedCocoDataset"]
    assert "`onedl-mmdetection`" in errors["CheckedCocoDataset"]
    for key in ("CheckedImageNet", "attribute"):
        assert "`mmpretrain`" in errors[key] and "`onedl-mmpretrain`" in errors[key], errors
    assert result["transform"] == "StrictLoadImageFromFile" and result["loaded"] == []

"""What ``tools/test.py`` adds to a config: drawn predictions, test-time augmentation and
dumped predictions, done the way mmdet's and mmpretrain's own ``tools/test.py`` do them.

The framework is the config's ``default_scope`` (``'mmdet'`` or ``'mmpretrain'``); each gets its
own visualization hook settings and prediction dump (mmdet's ``DumpDetResults`` stores masks as
RLE, mmengine's ``DumpResults`` stores the data samples as they are).
"""
from __future__ import annotations

import os.path as osp
import time
from typing import Optional

from mmengine.config import Config, ConfigDict
from mmengine.visualization import Visualizer

FRAMEWORKS = ("mmdet", "mmpretrain")
PREDICTION_SUFFIXES = (".pkl", ".pickle")
METRICS_SUFFIXES = (".json", ".yaml", ".yml", ".pkl", ".pickle")


_TTA_HINTS = {
    "mmpretrain": "mmpretrain's: tta_model = dict(type='AverageClsScoreTTA') and a tta_pipeline "
                  "that ends in TestTimeAug (configs/_base_/resnext_imagenet.py has both).",
    "mmdet": "mmdet's DetTTAModel merges boxes only and refuses instance masks (mmdet 3.3), so "
             "this project's Mask R-CNN configs define none; a box-only detector can use "
             "tta_model = dict(type='DetTTAModel', tta_cfg=dict(nms=dict(type='nms', "
             "iou_threshold=0.5), max_per_img=100)) and a TestTimeAug tta_pipeline.",
}


def framework_of(cfg: Config) -> Optional[str]:
    """``'mmdet'`` or ``'mmpretrain'`` from the config's ``default_scope``, else ``None``."""
    scope = cfg.get("default_scope")
    return scope if scope in FRAMEWORKS else None


def resolve_out_item(out: Optional[str], out_item: Optional[str]) -> Optional[str]:
    """What ``--out`` holds: ``'pred'`` (the predictions) or ``'metrics'``.

    ``--out-item`` decides when given (mmpretrain's option); otherwise the suffix does:
    ``.pkl``/``.pickle`` are predictions (as in mmdet and mmpretrain), ``.json``/``.yaml``/``.yml``
    the metrics.

    Raises:
        ValueError: ``--out-item`` without ``--out``, or a suffix the item cannot be written as.
    """
    if out is None:
        if out_item is not None:
            raise ValueError("--out-item needs --out (the file to write)")
        return None
    suffix = osp.splitext(out)[1].lower()
    if out_item is None:
        if suffix in PREDICTION_SUFFIXES:
            return "pred"
        if suffix in METRICS_SUFFIXES:
            return "metrics"
        raise ValueError(f"--out must end with .pkl or .pickle (predictions) or .json, .yaml or "
                         f".yml (metrics), got '{out}'")
    if out_item == "pred" and suffix not in PREDICTION_SUFFIXES:
        raise ValueError(f"--out-item pred writes a pickle: --out must end with .pkl or .pickle, "
                         f"got '{out}'")
    if out_item == "metrics" and suffix not in METRICS_SUFFIXES:
        raise ValueError(f"--out-item metrics: --out must end with one of "
                         f"{', '.join(METRICS_SUFFIXES)}, got '{out}'")
    return out_item


def enable_visualization(cfg: Config, show_dir: Optional[str] = None, show: bool = False,
                         wait_time: float = 2.0, interval: Optional[int] = None) -> None:
    """Turn on the config's visualization hook for the test loop, in place.

    mmdet (``DetVisualizationHook``): ``draw=True``, ``test_out_dir`` (every test image, ground
    truth beside the prediction). mmpretrain (``VisualizationHook``): ``enable=True``,
    ``out_dir``, ``interval`` (every ``interval``-th sample, default 1). ``show_dir`` is taken
    relative to the current directory for both (mmdet's own tool would put a relative one under
    ``work_dir/<timestamp>/``).

    Raises:
        ValueError: The config has no ``default_hooks.visualization``, is neither an mmdet nor an
            mmpretrain config, or ``interval`` is given for an mmdet config.
    """
    framework = framework_of(cfg)
    if framework is None:
        raise ValueError("--show/--show-dir need an mmdet or mmpretrain config (default_scope "
                         f"'mmdet' or 'mmpretrain'), got default_scope "
                         f"{cfg.get('default_scope')!r}")
    hooks = cfg.get("default_hooks") or {}
    if "visualization" not in hooks:
        hook_type = "DetVisualizationHook" if framework == "mmdet" else "VisualizationHook"
        raise ValueError("--show/--show-dir need a visualization hook: the config has no "
                         f"'default_hooks.visualization' (add visualization=dict(type="
                         f"'{hook_type}'))")
    hook = hooks["visualization"]
    out_dir = osp.abspath(show_dir) if show_dir else None
    if framework == "mmdet":
        if interval is not None:
            raise ValueError("--interval applies to mmpretrain configs; mmdet's "
                             "DetVisualizationHook draws every test image")
        hook["draw"] = True
        if show:
            hook["show"] = True
            hook["wait_time"] = wait_time
        if out_dir:
            hook["test_out_dir"] = out_dir
    else:
        hook["enable"] = True
        hook["show"] = show
        hook["wait_time"] = wait_time
        hook["out_dir"] = out_dir
        hook["interval"] = 1 if interval is None else interval


def use_tta(cfg: Config) -> None:
    """Wrap the model in the config's ``tta_model`` and test with its ``tta_pipeline``, in place
    (what mmdet's and mmpretrain's ``tools/test.py --tta`` do).

    A top-level ``data_preprocessor`` (mmpretrain's configs) reaches the wrapped model as
    before: mmengine's runner gives it to the TTA model, which passes it on.

    Raises:
        ValueError: The config has no ``tta_model`` or no ``tta_pipeline``, or it is an
            mmpretrain config whose visualization hook is on (it fails on TTA batches).
    """
    missing = [key for key in ("tta_model", "tta_pipeline") if key not in cfg]
    if missing:
        raise ValueError(f"--tta needs `tta_model` and `tta_pipeline` in the config, and it has "
                         f"no {' and no '.join(f'`{key}`' for key in missing)}. "
                         + _TTA_HINTS.get(framework_of(cfg), ""))
    hook = (cfg.get("default_hooks") or {}).get("visualization") or {}
    if framework_of(cfg) == "mmpretrain" and hook.get("enable"):
        raise ValueError("--tta with mmpretrain's VisualizationHook on (--show-dir, --show or "
                         "default_hooks.visualization.enable=True): the hook draws each "
                         "sample's network input and fails on the augmented views of a TTA "
                         "batch; run --tta and --show-dir separately")
    cfg.model = ConfigDict(**cfg.tta_model, module=cfg.model)
    dataset = cfg.test_dataloader.dataset
    while "pipeline" not in dataset and "dataset" in dataset:  # dataset wrappers
        dataset = dataset.dataset
    dataset.pipeline = cfg.tta_pipeline


def add_prediction_dump(cfg: Config, out: str) -> None:
    """Append the metric that pickles every prediction to ``out``, in place.

    mmdet configs get mmdet's ``DumpDetResults`` (masks as RLE, ground truth dropped), others
    mmengine's ``DumpResults``; both write only on rank 0, after all ranks' results are collected.
    """
    dump = "mmdet.DumpDetResults" if framework_of(cfg) == "mmdet" else "DumpResults"
    evaluators = cfg.test_evaluator
    evaluators = list(evaluators) if isinstance(evaluators, (list, tuple)) else [evaluators]
    evaluators.append(ConfigDict(type=dump, out_file_path=out))
    cfg.test_evaluator = evaluators


def fresh_visualizer_name(cfg: Config) -> None:
    """Rename the config's visualizer, in place, if this process already has one of that name.

    mmengine keeps visualizers by name for the life of the process and its visualization hooks
    draw with the most recently created one. A second runner in one process (tools run
    in-process, as ``tools/demo_pipeline.py`` and the tests do) whose config names its
    visualizer like an earlier one (every mmdet config says ``name='visualizer'``) would get the
    earlier object back, and its hook whichever visualizer came last. mmengine's inferencers
    rename the same way.
    """
    visualizer = cfg.get("visualizer")
    if isinstance(visualizer, dict) and Visualizer.check_instance_created(
            visualizer.get("name", "")):
        visualizer["name"] = f"{visualizer['name']}-{time.time_ns()}"

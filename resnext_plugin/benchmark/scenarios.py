"""The benchmark scenarios, declared once: a config, its input and how long to run it.

Every tool that names a scenario reads :data:`SCENARIOS`: the runner-level benchmark
(``tools/benchmark.py runner --scenarios``), the profiler (``tools/benchmark.py profile``),
``make gpu-check`` (the ``smoke`` ones) and the command line's help and choices. A scenario is
one :func:`register` call in this file, as timm's ``register_model``::

    register(ScenarioSpec(
        "det-640", "det", "configs/demo/mask-rcnn_resnext50-32x4d_fpn_demo.py", (640, 640),
        batch=2, iters=8, skip=3, resize=True,
        description="demo Mask R-CNN config at 640x640, batch 2"))

``task`` picks what the runner and the profiler do with it (their tables are keyed by task:
``'cls'`` for mmpretrain classification configs, ``'det'`` for mmdet detection configs).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from resnext_plugin.paths import REPO_ROOT

TASKS = ("cls", "det")
#: Iterations per run and untimed first ones, for every scenario under ``--quick``.
QUICK_ITERS, QUICK_SKIP = 3, 1


@dataclass(frozen=True)
class ScenarioSpec:
    """A benchmark scenario.

    Attributes:
        name: What the command line calls it, e.g. ``'det-demo'``.
        task: ``'cls'`` or ``'det'`` (one of :data:`TASKS`).
        config: The plugin config the runs derive from, relative to the repository root.
        image_hw: The training input, height and width (the crop for classification).
        batch: Images per iteration.
        iters: Iterations per runner-level run; ``skip``: of which the first are not timed.
        resize: The benchmark imposes ``image_hw`` (else the config's own pipeline gives it).
        loader: Extra ``train_dataloader`` settings for the runner-level runs.
        smoke: Short enough for ``make gpu-check``'s AMP training.
        description: One line for reports.
    """

    name: str
    task: str
    config: str
    image_hw: tuple[int, int]
    batch: int
    iters: int
    skip: int
    resize: bool = False
    loader: Mapping[str, object] = field(default_factory=dict)
    smoke: bool = False
    description: str = ""

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"scenario {self.name!r}: task must be one of {TASKS}, "
                             f"got {self.task!r}")
        if not 0 <= self.skip < self.iters:
            raise ValueError(f"scenario {self.name!r}: need 0 <= skip < iters, got "
                             f"skip={self.skip}, iters={self.iters}")
        object.__setattr__(self, "loader", MappingProxyType(dict(self.loader)))

    @property
    def config_path(self) -> Path:
        return REPO_ROOT / self.config

    def run_length(self, quick: bool = False) -> tuple[int, int]:
        """``(iters, skip)`` of one runner-level run."""
        return (QUICK_ITERS, QUICK_SKIP) if quick else (self.iters, self.skip)


#: Every scenario, by name, in the order registered (reports follow it).
SCENARIOS: dict[str, ScenarioSpec] = {}


def register(spec: ScenarioSpec) -> ScenarioSpec:
    """Add ``spec`` to :data:`SCENARIOS`; a name is registered once."""
    if spec.name in SCENARIOS:
        raise ValueError(f"scenario {spec.name!r} is already registered")
    SCENARIOS[spec.name] = spec
    return spec


def get_scenarios(names: list[str] | tuple[str, ...], option: str = "--scenarios"
                  ) -> list[ScenarioSpec]:
    """The scenarios ``names``; a ``ValueError`` naming ``option``, the unknown and the known."""
    unknown = [name for name in names if name not in SCENARIOS]
    if unknown or not names:
        raise ValueError(f"{option}: unknown {unknown or list(names)}; known: "
                         f"{', '.join(SCENARIOS)}")
    return [SCENARIOS[name] for name in names]


def smoke_scenarios() -> list[str]:
    """The names of the scenarios short enough for ``make gpu-check``."""
    return [spec.name for spec in SCENARIOS.values() if spec.smoke]


_CLS_DEMO = "configs/demo/resnext50_32x4d_imagenet_demo.py"
_DET_DEMO = "configs/demo/mask-rcnn_resnext50-32x4d_fpn_demo.py"
_DET_1X = "configs/mask-rcnn_resnext50-32x4d_fpn_1x_coco.py"

register(ScenarioSpec("cls-demo", "cls", _CLS_DEMO, (24, 24), batch=32, iters=14, skip=4,
                      smoke=True,
                      description="demo classification config: 24 px crops, batch 32"))
register(ScenarioSpec("cls-224", "cls", _CLS_DEMO, (224, 224), batch=16, iters=7, skip=3,
                      resize=True, description="demo classification config at the recipe's "
                                               "224 px crop, batch 16"))
register(ScenarioSpec("det-demo", "det", _DET_DEMO, (96, 96), batch=4, iters=10, skip=4,
                      smoke=True, description="demo Mask R-CNN config: 96x96 images, batch 4"))
register(ScenarioSpec("det-800x1333", "det", _DET_1X, (800, 1333), batch=1, iters=6, skip=3,
                      resize=True, loader=dict(num_workers=0, persistent_workers=False),
                      description="Mask R-CNN 1x config (stock heads and samplers), 800x1333 "
                                  "input, batch 1"))

"""The paper's experiments (Xie et al., CVPR 2017) as runnable configs, and ours beside them.

:data:`EXPERIMENTS` lists one entry per config under ``configs/paper/``: the paper's table, its
top-1 (and, where given, top-5) error and its complexity claim. :func:`measure_complexity`
counts parameters and multiply-adds on the model each config builds (with
:mod:`resnext_plugin.complexity`); :data:`COMPLEXITY_GROUPS` says which models the paper
compares "at the same complexity"; :func:`read_run` reads the validation metrics of a finished
(or running) work dir. ``tools/paper_experiments.py`` prints all of it and plots ours against
the paper.
"""
from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from .complexity import Complexity, count_flops, count_parameters
from .paths import REPO_ROOT

CONFIG_DIR = "configs/paper"
#: GPUs of the paper's runs (ImageNet: 8 x 32 images; CIFAR: 8 x 16).
PAPER_GPUS = 8
IMAGENET, CIFAR10, CIFAR100 = "ImageNet-1k", "CIFAR-10", "CIFAR-100"


@dataclass(frozen=True)
class Experiment:
    """One experiment of the paper and the config that reruns it.

    Attributes:
        name: Config file name without ``.py`` under ``configs/paper/`` (depth, C x d, data set).
        model: The paper's name for the model, e.g. ``'ResNeXt-50 (32x4d)'``.
        dataset: ``'ImageNet-1k'``, ``'CIFAR-10'`` or ``'CIFAR-100'``.
        source: Where the paper reports it, e.g. ``'Table 3'``.
        top1_error: The paper's top-1 error (%) (CIFAR: test error).
        top5_error: The paper's top-5 error (%), where given.
        counterpart: ``name`` of the ResNet the paper compares it with at the same complexity.
        paper_params_m: Parameters (millions) the paper states, if it states a number.
        paper_gflops: Multiply-adds (billions) the paper states, if it states a number.
        complexity_claim: The paper's complexity statement, as printed beside our counts.
    """

    name: str
    model: str
    dataset: str
    source: str
    top1_error: float
    top5_error: Optional[float] = None
    counterpart: Optional[str] = None
    paper_params_m: Optional[float] = None
    paper_gflops: Optional[float] = None
    complexity_claim: str = ""

    @property
    def config(self) -> str:
        """The config path, relative to the repository root."""
        return f"{CONFIG_DIR}/{self.name}.py"

    @property
    def input_size(self) -> int:
        """Side of the (square) input the paper evaluates at: 224 on ImageNet, 32 on CIFAR."""
        return 224 if self.dataset == IMAGENET else 32

    def train_command(self, gpus: int = PAPER_GPUS) -> str:
        """The command that reruns the experiment as the paper ran it (8 GPUs)."""
        if gpus == 1:
            return f"python tools/train.py {self.config}"
        return f"bash tools/dist_train.sh {self.config} {gpus}"


_T3_50 = "~ResNet-50: ~4.1 GFLOPs, ~25M (Table 2 widths)"
_T3_101 = "~ResNet-101: ~7.8 GFLOPs, ~44M (Table 2 widths)"
_T4 = "2x ResNet-101: ~15.6 GFLOPs"


def _imagenet(name: str, model: str, source: str, top1: float, top5: Optional[float] = None,
              counterpart: Optional[str] = None, claim: str = "", params: Optional[float] = None,
              gflops: Optional[float] = None) -> Experiment:
    return Experiment(name, model, IMAGENET, source, top1, top5, counterpart, params, gflops,
                      claim)


def _cifar(cd: str, dataset: str, top1: float, params: float) -> Experiment:
    tag = dataset.replace("-", "").lower()
    return Experiment(f"resnext29_{cd}_{tag}", f"ResNeXt-29 ({cd})", dataset, "Table 7", top1,
                      paper_params_m=params, complexity_claim=f"{params}M (Table 7)")


#: Every experiment of ``configs/paper/``, in the paper's order.
EXPERIMENTS: tuple[Experiment, ...] = (
    _imagenet("resnet50_1x64d_imagenet", "ResNet-50 (1x64d)", "Table 3", 23.9,
              claim="25.5M, 4.1 GFLOPs (Table 1)", params=25.5, gflops=4.1),
    _imagenet("resnext50_2x40d_imagenet", "ResNeXt-50 (2x40d)", "Table 3", 23.0,
              counterpart="resnet50_1x64d_imagenet", claim=_T3_50),
    _imagenet("resnext50_4x24d_imagenet", "ResNeXt-50 (4x24d)", "Table 3", 22.6,
              counterpart="resnet50_1x64d_imagenet", claim=_T3_50),
    _imagenet("resnext50_8x14d_imagenet", "ResNeXt-50 (8x14d)", "Table 3", 22.3,
              counterpart="resnet50_1x64d_imagenet", claim=_T3_50),
    _imagenet("resnext50_32x4d_imagenet", "ResNeXt-50 (32x4d)", "Table 3", 22.2,
              counterpart="resnet50_1x64d_imagenet", claim="25.0M, 4.2 GFLOPs (Table 1)",
              params=25.0, gflops=4.2),
    _imagenet("resnet101_1x64d_imagenet", "ResNet-101 (1x64d)", "Tables 3, 4", 22.0, 6.0,
              claim="~7.8 GFLOPs, ~44M (authors' README)", gflops=7.8),
    _imagenet("resnext101_2x40d_imagenet", "ResNeXt-101 (2x40d)", "Table 3", 21.7,
              counterpart="resnet101_1x64d_imagenet", claim=_T3_101),
    _imagenet("resnext101_4x24d_imagenet", "ResNeXt-101 (4x24d)", "Table 3", 21.4,
              counterpart="resnet101_1x64d_imagenet", claim=_T3_101),
    _imagenet("resnext101_8x14d_imagenet", "ResNeXt-101 (8x14d)", "Table 3", 21.3,
              counterpart="resnet101_1x64d_imagenet", claim=_T3_101),
    _imagenet("resnext101_32x4d_imagenet", "ResNeXt-101 (32x4d)", "Tables 3, 4", 21.2, 5.6,
              counterpart="resnet101_1x64d_imagenet",
              claim="~7.8 GFLOPs, ~44M (authors' README)", gflops=7.8),
    _imagenet("resnet200_1x64d_imagenet", "ResNet-200 (1x64d)", "Table 4", 21.7, 5.8,
              counterpart="resnet101_1x64d_imagenet", claim=_T4),
    _imagenet("resnet101_1x100d_imagenet", "ResNet-101 wider (1x100d)", "Table 4", 21.3, 5.7,
              counterpart="resnet101_1x64d_imagenet", claim=_T4),
    _imagenet("resnext101_2x64d_imagenet", "ResNeXt-101 (2x64d)", "Table 4", 20.7, 5.5,
              counterpart="resnet101_1x64d_imagenet", claim=_T4),
    _imagenet("resnext101_64x4d_imagenet", "ResNeXt-101 (64x4d)", "Table 4", 20.4, 5.3,
              counterpart="resnet101_1x64d_imagenet",
              claim="~15.6 GFLOPs (authors' README)", gflops=15.6),
    _imagenet("resnet50_1x64d_noresidual_imagenet", "ResNet-50 (1x64d), no shortcuts",
              "Sec. 5.1", 31.2, claim="not stated (no projection shortcuts)"),
    _imagenet("resnext50_32x4d_noresidual_imagenet", "ResNeXt-50 (32x4d), no shortcuts",
              "Sec. 5.1", 26.1, claim="not stated (no projection shortcuts)"),
    _cifar("8x64d", CIFAR10, 3.65, 34.4),
    _cifar("16x64d", CIFAR10, 3.58, 68.1),
    _cifar("8x64d", CIFAR100, 17.77, 34.4),
    _cifar("16x64d", CIFAR100, 17.31, 68.1),
)
_BY_NAME = {e.name: e for e in EXPERIMENTS}


def get_experiment(name: str) -> Experiment:
    """The experiment called ``name``; ``KeyError`` naming the known ones otherwise."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown experiment {name!r}; known: {', '.join(_BY_NAME)}") from None


def select_experiments(patterns: Optional[Sequence[str]] = None) -> list[Experiment]:
    """The experiments whose names match any of the shell ``patterns`` (all without patterns);
    a config path (``configs/paper/<name>.py``) counts as its name.

    Raises:
        ValueError: A pattern matches no experiment.
    """
    if not patterns:
        return list(EXPERIMENTS)
    patterns = [Path(p).name.removesuffix(".py") for p in patterns]
    for pattern in patterns:
        if not any(fnmatch.fnmatchcase(e.name, pattern) for e in EXPERIMENTS):
            raise ValueError(f"no experiment matches {pattern!r}; known: {', '.join(_BY_NAME)}")
    return [e for e in EXPERIMENTS if any(fnmatch.fnmatchcase(e.name, p) for p in patterns)]


@dataclass(frozen=True)
class ComplexityGroup:
    """Models the paper compares at the same complexity.

    Attributes:
        title: What the paper says about the group.
        reference: The ResNet every member is compared with.
        members: The other models of the group.
        flops_factor: Members' multiply-adds are this multiple of the reference's.
        compares_params: Whether the paper also holds the parameter count (Table 4 does not).
        tolerance: Largest relative difference that still counts as "the same".
    """

    title: str
    reference: str
    members: tuple[str, ...]
    flops_factor: float = 1.0
    compares_params: bool = True
    tolerance: float = 0.05

    def deviations(self, measured: dict[str, Complexity]) -> dict[str, dict[str, float]]:
        """Relative difference of each member's params and FLOPs from the group's target."""
        ref = measured[self.reference]
        out = {}
        for name in self.members:
            ours = measured[name]
            dev = {"flops": ours.flops / (self.flops_factor * ref.flops) - 1.0}
            if self.compares_params:
                dev["params"] = ours.params / ref.params - 1.0
            out[name] = dev
        return out


COMPLEXITY_GROUPS: tuple[ComplexityGroup, ...] = (
    ComplexityGroup("Table 3, 50 layers: same params and FLOPs as ResNet-50",
                    "resnet50_1x64d_imagenet",
                    tuple(f"resnext50_{cd}_imagenet" for cd in ("2x40d", "4x24d", "8x14d",
                                                                 "32x4d"))),
    ComplexityGroup("Table 3, 101 layers: same params and FLOPs as ResNet-101",
                    "resnet101_1x64d_imagenet",
                    tuple(f"resnext101_{cd}_imagenet" for cd in ("2x40d", "4x24d", "8x14d",
                                                                  "32x4d"))),
    ComplexityGroup("Table 4: twice ResNet-101's FLOPs (parameters not held equal)",
                    "resnet101_1x64d_imagenet",
                    ("resnet200_1x64d_imagenet", "resnet101_1x100d_imagenet",
                     "resnext101_2x64d_imagenet", "resnext101_64x4d_imagenet"),
                    flops_factor=2.0, compares_params=False),
)


def build_model(experiment: Experiment, root: Path = REPO_ROOT):
    """The classifier ``experiment``'s config builds (weights not initialised), in eval mode."""
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS

    cfg = Config.fromfile(str(root / experiment.config))
    with DefaultScope.overwrite_default_scope(cfg.get("default_scope", "mmpretrain")):
        model = MODELS.build(cfg.model)
    return model.eval()


def measure_complexity(experiment: Experiment, root: Path = REPO_ROOT,
                       input_size: Optional[int] = None) -> Complexity:
    """Parameters and multiply-adds per image of the model ``experiment``'s config builds, at
    ``input_size`` (default: the paper's, :attr:`Experiment.input_size`). Table 1 counts the
    linear classifier too; so do we."""
    model = build_model(experiment, root)
    size = experiment.input_size if input_size is None else input_size
    return Complexity(count_parameters(model), count_flops(model, (3, size, size)))


# ------------------------------------------------------------------ results of our runs

@dataclass(frozen=True)
class RunResult:
    """Validation metrics of one work dir (all its runs: a resumed run continues the epochs).

    Attributes:
        work_dir: The work dir read.
        epoch: The last validated epoch (or iteration, for iteration-based loops).
        top1_error: 100 - top-1 accuracy at that epoch.
        top5_error: 100 - top-5 accuracy there, if logged.
        best_top1_error: The lowest top-1 error of any validation.
        sources: The files the numbers came from.
    """

    work_dir: Path
    epoch: int
    top1_error: float
    top5_error: Optional[float]
    best_top1_error: float
    sources: tuple[Path, ...]


_VAL_LINE = re.compile(r"Epoch\(val\)\s*\[(\d+)\]\[\d+/\d+\]\s+(.*)")
_METRIC = re.compile(r"(accuracy/top\d+):\s*([-+0-9.eE]+)")


def _from_scalars(path: Path) -> dict[int, dict[str, float]]:
    found = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}:{number}: not a JSON line ({err})") from err
        if "accuracy/top1" in entry:
            found[int(entry["step"])] = {k: float(v) for k, v in entry.items()
                                         if k.startswith("accuracy/")}
    return found


def _from_log(path: Path) -> dict[int, dict[str, float]]:
    found = {}
    for line in path.read_text(errors="replace").splitlines():
        match = _VAL_LINE.search(line)
        if match:
            metrics = {k: float(v) for k, v in _METRIC.findall(match.group(2))}
            if "accuracy/top1" in metrics:
                found[int(match.group(1))] = metrics
    return found


def read_run(work_dir: str | Path) -> Optional[RunResult]:
    """The validation metrics mmengine logged under ``work_dir``, or None if there are none.

    Each run writes ``<work_dir>/<timestamp>/vis_data/scalars.json`` (JSON lines; validation
    entries carry ``accuracy/top1`` and ``step`` = epoch) and ``<timestamp>/<timestamp>.log``;
    a run without the JSON file (another visualisation backend) is read from its log's
    ``Epoch(val) [N][...] accuracy/top1: ...`` lines. Runs are read oldest first, so a resumed
    run's epochs replace the interrupted one's.

    Raises:
        ValueError: A ``scalars.json`` line is not JSON (names the file and line).
    """
    work_dir = Path(work_dir)
    by_epoch: dict[int, dict[str, float]] = {}
    sources = []
    for run in sorted(p for p in work_dir.glob("*") if p.is_dir()):
        scalars, log = run / "vis_data" / "scalars.json", run / f"{run.name}.log"
        if scalars.is_file():
            found, source = _from_scalars(scalars), scalars
        elif log.is_file():
            found, source = _from_log(log), log
        else:
            continue
        if found:
            by_epoch.update(found)
            sources.append(source)
    if not by_epoch:
        return None
    last = max(by_epoch)
    top5 = by_epoch[last].get("accuracy/top5")
    return RunResult(work_dir, last, 100.0 - by_epoch[last]["accuracy/top1"],
                     None if top5 is None else 100.0 - top5,
                     100.0 - max(m["accuracy/top1"] for m in by_epoch.values()), tuple(sources))


def read_runs(work_dirs: str | Path,
              experiments: Iterable[Experiment]) -> dict[str, RunResult]:
    """``read_run(work_dirs / name)`` for each experiment that has metrics there
    (``tools/train.py`` puts a config's run in ``work_dirs/<config name>`` by default)."""
    results = {}
    for experiment in experiments:
        result = read_run(Path(work_dirs) / experiment.name)
        if result is not None:
            results[experiment.name] = result
    return results


# ------------------------------------------------------------------ report

def _error(top1: Optional[float], top5: Optional[float]) -> str:
    if top1 is None:
        return "-"
    return f"{top1:.2f}" + ("" if top5 is None else f" / {top5:.2f}")


def format_table(experiments: Sequence[Experiment],
                 measured: Optional[dict[str, Complexity]] = None,
                 results: Optional[dict[str, RunResult]] = None,
                 gpus: int = PAPER_GPUS) -> str:
    """A Markdown table: paper error, ours (if ``results``), measured complexity beside the
    paper's claim (if ``measured``) and the train command of each experiment."""
    header = ["config", "model", "data", "paper", "paper error (top-1 / top-5, %)"]
    if results is not None:
        header.append("ours (last epoch; best top-1)")
    if measured is not None:
        header += ["params (ours)", "GFLOPs (ours)"]
    header += ["paper's complexity", "train"]
    rows = [header, ["---"] * len(header)]
    for e in experiments:
        row = [f"`{e.name}`", e.model, e.dataset, e.source, _error(e.top1_error, e.top5_error)]
        if results is not None:
            run = results.get(e.name)
            row.append("not run" if run is None else
                       f"{_error(run.top1_error, run.top5_error)} (epoch {run.epoch}; "
                       f"{run.best_top1_error:.2f})")
        if measured is not None:
            ours = measured.get(e.name)
            row += ["-", "-"] if ours is None else [f"{ours.params / 1e6:.2f}M",
                                                    f"{ours.gflops:.2f}"]
        row += [e.complexity_claim or "-", f"`{e.train_command(gpus)}`"]
        rows.append(row)
    return "\n".join("| " + " | ".join(r) + " |" for r in rows)


def format_groups(measured: dict[str, Complexity]) -> str:
    """One line per model of each :data:`COMPLEXITY_GROUPS` entry whose models were measured:
    its params and FLOPs relative to the group's target."""
    lines = []
    for group in COMPLEXITY_GROUPS:
        names = (group.reference, *group.members)
        if not all(n in measured for n in names):
            continue
        ref = get_experiment(group.reference).model
        target = ref if group.flops_factor == 1 else f"{group.flops_factor:g}x {ref}"
        lines.append(f"- {group.title} (target: {target}, tolerance "
                     f"{group.tolerance:.0%}):")
        for name, dev in group.deviations(measured).items():
            parts = [f"{k} {v:+.1%}" for k, v in sorted(dev.items())]
            ok = all(abs(v) <= group.tolerance for v in dev.values())
            lines.append(f"  - {get_experiment(name).model}: {', '.join(parts)}"
                         f"{'' if ok else '  (outside the tolerance)'}")
    return "\n".join(lines)


def plot_results(experiments: Sequence[Experiment], results: dict[str, RunResult],
                 path: str | Path) -> Path:
    """Bar chart of the paper's top-1 error beside ours, one panel per data set, as a PNG.

    Raises:
        ValueError: None of ``experiments`` has a result.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = [e for e in experiments if e.name in results]
    if not done:
        raise ValueError("plot_results: none of the experiments has results")
    datasets = [d for d in (IMAGENET, CIFAR10, CIFAR100) if any(e.dataset == d for e in done)]
    fig, axes = plt.subplots(1, len(datasets), squeeze=False,
                             figsize=(max(4.0, 1.1 * len(done) + 2.5 * len(datasets)), 4.8))
    for ax, dataset in zip(axes[0], datasets):
        rows = [e for e in done if e.dataset == dataset]
        xs = range(len(rows))
        ax.bar([x - 0.2 for x in xs], [e.top1_error for e in rows], 0.4, label="paper")
        ax.bar([x + 0.2 for x in xs], [results[e.name].top1_error for e in rows], 0.4,
               label="ours (last epoch)")
        ax.set_xticks(list(xs), [e.model for e in rows], rotation=35, ha="right", fontsize=8)
        ax.set_ylabel("top-1 error (%)")
        ax.set_title(dataset)
        ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path

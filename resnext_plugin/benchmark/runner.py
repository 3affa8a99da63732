"""Runner-level benchmark: iterations per second of real ``tools/train.py`` runs.

Each candidate is one ``tools/train.py`` process on a config derived from one of ours (data
loading, hooks and logging included), with the speed knobs on its command line. The stock
candidates use the same config with the framework's own backbone (mmpretrain's or mmdet's
``ResNeXt``) and only the knobs the frameworks offer (``--compile``: mmengine's ``compile``;
``--amp``: mmengine's ``AmpOptimWrapper``, which needs a GPU). Every candidate loads the same
weights (``load_from``) and seed, so their first losses agree: the log shows they computed the
same thing.

A scenario runs in rounds; each round runs every candidate once (the order rotating), for
``iters`` iterations, of which the first ``skip`` (start-up, compilation) are not timed. An
iteration's time is mmengine's ``IterTimerHook`` ``time`` (end of one iteration to the end of the
next, data loading included) from ``vis_data/scalars.json``. Ratios are paired per round (the
runs of one round are adjacent in time) and the median over rounds is reported.
"""
from __future__ import annotations

import dataclasses
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from resnext_plugin import perf
from resnext_plugin.paths import REPO_ROOT, TOOLS

from .scenarios import SCENARIOS, ScenarioSpec, get_scenarios

TRAIN_TOOL = TOOLS / "train.py"
CLS_DEMO = SCENARIOS["cls-demo"].config_path
DET_DEMO = SCENARIOS["det-demo"].config_path

MMPRETRAIN_BACKBONE = dict(_delete_=True, type="ResNeXt", depth=50, groups=32, width_per_group=4,
                           num_stages=4, out_indices=(3,), style="pytorch")
MMDET_BACKBONE = dict(_delete_=True, type="ResNeXt", depth=50, groups=32, base_width=4,
                      num_stages=4, out_indices=(0, 1, 2, 3), frozen_stages=1,
                      norm_cfg=dict(type="BN", requires_grad=True), norm_eval=True,
                      style="pytorch", init_cfg=None)
#: The framework's own backbone, per task: what a stock candidate runs.
STOCK_BACKBONES = {"cls": MMPRETRAIN_BACKBONE, "det": MMDET_BACKBONE}


@dataclass(frozen=True)
class Candidate:
    """One ``tools/train.py`` configuration.

    Attributes:
        name: Row label.
        stock: The framework's own backbone (else the plugin's).
        args: Speed knobs for ``tools/train.py`` (``--channels-last``, ``--compile``, ``--amp``).
        backbone: Extra backbone settings for the plugin (e.g. ``fold_frozen_bn``).
    """

    name: str
    stock: bool
    args: tuple[str, ...] = ()
    backbone: tuple[tuple[str, object], ...] = ()

    @property
    def framework_knobs(self) -> tuple[str, ...]:
        """The knobs a stock run can have too: whom to compare with."""
        return tuple(a for a in self.args if a in ("--compile", "--amp"))


@dataclass(frozen=True)
class Scenario:
    """A config and how to run it: a :class:`~.scenarios.ScenarioSpec` made concrete (the demo
    data's folders and the run length filled in).

    Attributes:
        name: Label, e.g. ``'det-demo'``.
        base: The plugin config the runs derive from.
        task: ``'cls'`` or ``'det'``.
        overrides: Config settings on top of ``base`` (data, batch, pipeline).
        iters: Iterations per run; ``skip``: of which the first are not timed.
        flops_per_iter: Forward multiply-adds per iteration of the backbone (0: unknown).
    """

    name: str
    base: Path
    task: str
    overrides: dict
    iters: int
    skip: int
    description: str = ""
    flops_per_iter: float = 0.0


@dataclass
class RunResult:
    """One ``tools/train.py`` run: per-iteration seconds (timed ones) and the logged losses."""

    seconds: list[float]
    data_seconds: list[float]
    losses: list[float]
    wall: float

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


@dataclass
class CandidateResult:
    candidate: Candidate
    runs: list[RunResult] = field(default_factory=list)

    @property
    def seconds(self) -> list[float]:
        return [s for run in self.runs for s in run.seconds]

    @property
    def median(self) -> float:
        return statistics.median(run.median for run in self.runs)

    @property
    def first_loss(self) -> float:
        return self.runs[0].losses[0] if self.runs and self.runs[0].losses else float("nan")

    @property
    def data_fraction(self) -> float:
        data = sum(s for run in self.runs for s in run.data_seconds)
        return data / sum(self.seconds)


# --------------------------------------------------------------------------------------------
# Scenarios and candidates
# --------------------------------------------------------------------------------------------
def _cls_overrides(data_root: Path, iters: int, batch: int, crop: Optional[int]) -> dict:
    overrides = dict(
        train_dataloader=dict(batch_size=batch,
                              dataset=dict(data_root=str(data_root), indices=iters * batch)),
    )
    if crop is not None:
        pipeline = [dict(type="resnext_plugin.StrictLoadImageFromFile"),
                    dict(type="RandomResizedCrop", scale=crop),
                    dict(type="RandomFlip", prob=0.5, direction="horizontal"),
                    dict(type="PackInputs")]
        overrides["train_dataloader"]["dataset"]["pipeline"] = pipeline
    return overrides


def _coco_dataset(data_root: Path, iters: int, batch: int, pipeline: Optional[list]) -> dict:
    from resnext_plugin.demo_data.coco import CATEGORIES

    dataset = dict(data_root=str(data_root) + "/", indices=iters * batch,
                   metainfo=dict(classes=tuple(CATEGORIES)),
                   ann_file="annotations/instances_train2017.json",
                   data_prefix=dict(img="train2017/"))
    if pipeline is not None:
        dataset["pipeline"] = pipeline
    return dataset


def stock_size_pipeline(scale: tuple[int, int] = (1333, 800)) -> list[dict]:
    """mmdet's 1x training pipeline, resized to exactly ``scale`` (w, h) (the demo images are
    square; ``keep_ratio=False`` gives the 800x1333 input of a typical COCO image)."""
    return [dict(type="resnext_plugin.StrictLoadImageFromFile"),
            dict(type="LoadAnnotations", with_bbox=True, with_mask=True),
            dict(type="Resize", scale=scale, keep_ratio=False),
            dict(type="RandomFlip", prob=0.5),
            dict(type="PackDetInputs")]


def _cls_spec_overrides(spec: ScenarioSpec, data: dict[str, Path], iters: int) -> dict:
    crop = spec.image_hw[0] if spec.resize else None
    overrides = _cls_overrides(data["imagenet"], iters, spec.batch, crop)
    overrides["train_dataloader"].update(spec.loader)
    return overrides


def _det_spec_overrides(spec: ScenarioSpec, data: dict[str, Path], iters: int) -> dict:
    height, width = spec.image_hw
    pipeline = stock_size_pipeline((width, height)) if spec.resize else None
    return dict(train_dataloader=dict(
        batch_size=spec.batch, **spec.loader,
        dataset=_coco_dataset(data["coco"], iters, spec.batch, pipeline)))


#: How a scenario's data and input become config settings, per task.
SPEC_OVERRIDES = {"cls": _cls_spec_overrides, "det": _det_spec_overrides}


def make_scenario(spec: ScenarioSpec, data: dict[str, Path], quick: bool = False) -> Scenario:
    """The runnable scenario of ``spec`` over the demo data in ``data`` (``'imagenet'``,
    ``'coco'``); ``quick`` shrinks it to a few iterations (a smoke run, or the tests)."""
    iters, skip = spec.run_length(quick)
    return Scenario(spec.name, spec.config_path, spec.task,
                    SPEC_OVERRIDES[spec.task](spec, data, iters), iters, skip, spec.description)


#: The eager candidates per task, stock first and the plugin's best last. Detection has frozen
#: BatchNorms (``norm_eval``, frozen stem), so its runs have ``fold_frozen_bn`` on and off.
EAGER_CANDIDATES = {
    "cls": (Candidate("stock", True), Candidate("plugin", False),
            Candidate("plugin-cl", False, ("--channels-last",))),
    "det": (Candidate("stock", True),
            Candidate("plugin", False, (), (("fold_frozen_bn", False),)),
            Candidate("plugin-fold", False, (), (("fold_frozen_bn", True),)),
            Candidate("plugin-cl", False, ("--channels-last",), (("fold_frozen_bn", False),)),
            Candidate("plugin-cl-fold", False, ("--channels-last",),
                      (("fold_frozen_bn", True),))),
}


def default_candidates(task: str, compile: bool, amp: bool, cuda: bool = False
                       ) -> list[Candidate]:
    """Stock and plugin runs with the same framework knobs, plus the plugin's own knobs.

    Args:
        task: ``'cls'`` or ``'det'`` (a key of :data:`EAGER_CANDIDATES`).
        compile: Add ``--compile`` runs (stock and plugin).
        amp: Add ``--amp`` runs (plugin; stock too on CUDA, where mmengine's wrapper runs).
        cuda: The runs train on a GPU.
    """
    out = list(EAGER_CANDIDATES[task])
    best = out[-1]
    if compile:
        out += [Candidate("stock-compile", True, ("--compile",)),
                Candidate(best.name + "-compile", False, best.args + ("--compile",),
                          best.backbone)]
    if amp:
        if cuda:  # mmengine's AmpOptimWrapper (the stock knob) needs a GPU
            out.append(Candidate("stock-amp", True, ("--amp",)))
        out += [Candidate(best.name + "-amp", False, best.args + ("--amp",), best.backbone)]
    return out


def keep_candidates(candidates: Sequence[Candidate], names: Sequence[str]) -> list[Candidate]:
    """The plugin candidates named, with plain stock and the stock run each is compared with."""
    kept = [c for c in candidates if not c.stock and c.name in names]
    unknown = set(names) - {c.name for c in kept}
    if unknown:
        raise ValueError(f"--candidates: unknown {sorted(unknown)}; known: "
                         f"{', '.join(c.name for c in candidates if not c.stock)}")
    references = {reference_for(c, candidates) for c in kept} | {candidates[0]}
    return [c for c in candidates if c in kept or c in references]


def reference_for(candidate: Candidate, candidates: Sequence[Candidate]) -> Optional[Candidate]:
    """The stock candidate with the same framework knobs (``None`` if not in the run)."""
    for other in candidates:
        if other.stock and other.framework_knobs == candidate.framework_knobs:
            return other
    return None


# --------------------------------------------------------------------------------------------
# Configs and runs
# --------------------------------------------------------------------------------------------
def config_text(scenario: Scenario, candidate: Candidate, load_from: Optional[Path]) -> str:
    """A config file deriving ``scenario.base`` for one candidate and a timed run."""
    settings = dict(scenario.overrides)
    if candidate.stock:
        settings["model"] = dict(backbone=dict(STOCK_BACKBONES[scenario.task]))
    else:
        settings["model"] = dict(backbone=dict(init_cfg=None, **dict(candidate.backbone)))
    settings.update(
        train_cfg=dict(max_epochs=1, val_interval=1000),
        default_hooks=dict(logger=dict(interval=1),
                           checkpoint=dict(interval=1000, save_last=False)),
        log_processor=dict(window_size=1),  # per-iteration times in scalars.json
        randomness=dict(seed=0),
        load_from=None if load_from is None else str(load_from),
        resume=False,
    )
    lines = [f"# Derived by resnext_plugin.benchmark.runner for {scenario.name}/{candidate.name}",
             f"_base_ = [{str(scenario.base)!r}]"]
    lines += [f"{key} = {value!r}" for key, value in settings.items()]
    return "\n".join(lines) + "\n"


def write_weights(config: Path, out: Path, seed: int = 0) -> Path:
    """Initialise the model of ``config`` (seeded) and save its state dict as ``out``.

    Every candidate of a scenario then starts from these weights (``load_from``); the stock
    backbones' parameter names are the plugin's, so one file serves both.
    """
    import torch
    from mmengine.config import Config
    from mmengine.registry import MODELS, init_default_scope
    from mmengine.utils import import_modules_from_strings

    cfg = Config.fromfile(str(config))
    if cfg.get("custom_imports"):
        import_modules_from_strings(**cfg.custom_imports)
    init_default_scope(cfg.get("default_scope", "mmengine"))
    torch.manual_seed(seed)
    model = MODELS.build(cfg.model)
    model.init_weights()
    torch.save({"state_dict": model.state_dict()}, out)
    return out


def read_scalars(work_dir: Path) -> list[dict]:
    """The records of mmengine's ``vis_data/scalars.json`` under ``work_dir`` (one run)."""
    files = sorted(work_dir.glob("*/vis_data/scalars.json"))
    if not files:
        raise FileNotFoundError(f"no vis_data/scalars.json under {work_dir}")
    with open(files[-1], encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def parse_run(records: list[dict], skip: int, wall: float) -> RunResult:
    """Per-iteration times after the first ``skip`` iterations, and every logged loss."""
    train = sorted((r for r in records if "time" in r and "loss" in r), key=lambda r: r["step"])
    if len(train) <= skip:
        raise ValueError(f"the run logged {len(train)} iterations; need more than skip={skip}")
    timed = train[skip:]
    return RunResult(seconds=[r["time"] for r in timed],
                     data_seconds=[r.get("data_time", 0.0) for r in timed],
                     losses=[r["loss"] for r in train], wall=wall)


def run_train(config: Path, work_dir: Path, args: Sequence[str], skip: int,
              timeout: Optional[float] = None) -> RunResult:
    """One ``tools/train.py`` process; raises ``RuntimeError`` with the log's tail if it fails."""
    work_dir.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, str(TRAIN_TOOL), str(config), "--work-dir", str(work_dir),
               "--no-validate", *args]
    log = work_dir / "train.log"
    begin = time.perf_counter()
    with open(log, "w", encoding="utf-8") as handle:
        result = subprocess.run(command, cwd=REPO_ROOT, stdout=handle, stderr=subprocess.STDOUT,
                                timeout=timeout, check=False)
    wall = time.perf_counter() - begin
    if result.returncode != 0:
        tail = "".join(log.read_text(encoding="utf-8", errors="replace").splitlines(True)[-25:])
        raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}):\n{tail}")
    return parse_run(read_scalars(work_dir), skip, wall)


def run_scenario(scenario: Scenario, candidates: Sequence[Candidate], rounds: int,
                 out_dir: Path, log: Callable[[str], None] = print) -> list[CandidateResult]:
    """Run every candidate ``rounds`` times, interleaved (the start rotating each round)."""
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    folder = out_dir / scenario.name
    folder.mkdir(parents=True, exist_ok=True)
    plugin_cfg = folder / "weights_source.py"
    plugin_cfg.write_text(config_text(scenario, Candidate("plugin", False), None))
    weights = write_weights(plugin_cfg, folder / "weights.pth")
    configs = {}
    for candidate in candidates:
        path = folder / f"{candidate.name}.py"
        path.write_text(config_text(scenario, candidate, weights))
        configs[candidate.name] = path
    results = {c.name: CandidateResult(c) for c in candidates}
    order = list(candidates)
    for round_index in range(rounds):
        start = round_index % len(order)
        for candidate in order[start:] + order[:start]:
            log(f"[{scenario.name}] round {round_index + 1}/{rounds}: {candidate.name} "
                f"{' '.join(candidate.args)} ({perf.load_average()})")
            run = run_train(configs[candidate.name],
                            folder / candidate.name / f"round{round_index}",
                            candidate.args, scenario.skip)
            results[candidate.name].runs.append(run)
            log(f"[{scenario.name}]   median {run.median:.3f} s/iter, first loss "
                f"{run.losses[0]:.5f}, process {run.wall:.0f} s")
    return [results[c.name] for c in candidates]


def paired_ratio(result: CandidateResult, reference: CandidateResult) -> float:
    """Median over rounds of reference time / candidate time (runs of a round are adjacent)."""
    ratios = [ref.median / run.median for ref, run in zip(reference.runs, result.runs)]
    return statistics.median(ratios)


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------
def format_results(scenario: Scenario, results: Sequence[CandidateResult],
                   conv_gflops: Optional[float] = None) -> str:
    """A markdown table: s/iter, it/s, ratios vs stock eager and vs stock with the same
    framework knobs, the first loss and its difference from stock's, data-loading share."""
    by_name = {r.candidate.name: r for r in results}
    candidates = [r.candidate for r in results]
    stock = by_name.get("stock")
    header = ("| candidate | knobs | s/iter (median) | IQR | it/s | vs stock | vs stock, same "
              "framework knobs | first loss | rel diff to stock | data time |")
    if scenario.flops_per_iter and conv_gflops:
        header += " GFLOP/s | % of 3x3 conv |"
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    for result in results:
        c = result.candidate
        seconds = result.seconds
        q = statistics.quantiles(seconds, n=4) if len(seconds) >= 4 else (min(seconds),
                                                                          0, max(seconds))
        ref = reference_for(c, candidates)
        same = "" if ref is None or ref is c else f"{paired_ratio(result, by_name[ref.name]):.2f}x"
        vs_stock = "" if stock is None else f"{paired_ratio(result, stock):.2f}x"
        diff = ""
        if stock is not None and stock.first_loss == stock.first_loss:
            diff = f"{abs(result.first_loss - stock.first_loss) / abs(stock.first_loss):.0e}"
        knobs = " ".join(c.args + tuple(f"{k}={v}" for k, v in c.backbone)) or "-"
        row = (f"| {c.name}{' *' if c.stock else ''} | {knobs} | {result.median:.3f} | "
               f"{100 * (q[2] - q[0]) / result.median:.0f}% | {1 / result.median:.2f} | "
               f"{vs_stock} | {same} | {result.first_loss:.5f} | {diff} | "
               f"{100 * result.data_fraction:.0f}% |")
        if scenario.flops_per_iter and conv_gflops:
            gflops = 3 * 2 * scenario.flops_per_iter / result.median / 1e9
            row += f" {gflops:.0f} | {100 * gflops / conv_gflops:.0f}% |"
        lines.append(row)
    return "\n".join(lines)


#: The speed targets: Mask R-CNN iteration against stock with the same framework knobs; the
#: classification step's rate against the dense 3x3 convolution's.
DETECTION_TARGET = 1.3
CONV_FRACTION_TARGET = 0.75


def verdict_lines(scenario: Scenario, results: Sequence[CandidateResult],
                  conv_gflops: Optional[float] = None, amp_native: bool = False) -> list[str]:
    """The targets this scenario measures, met or missed (misses said as misses)."""
    by_name = {r.candidate.name: r for r in results}
    candidates = [r.candidate for r in results]
    lines = []
    paired = [(r, paired_ratio(r, by_name[ref.name])) for r in results
              if not r.candidate.stock
              and (ref := reference_for(r.candidate, candidates)) is not None]
    if scenario.task == "det" and paired:
        best, ratio = max(paired, key=lambda p: p[1])
        lines.append(f"target: Mask R-CNN iteration >= {DETECTION_TARGET}x stock with the same "
                     f"framework knobs: best {best.candidate.name} {ratio:.2f}x: "
                     f"{'met' if ratio >= DETECTION_TARGET else 'MISSED'}")
    if scenario.task == "cls" and scenario.flops_per_iter and conv_gflops:
        # The yardstick is an fp32 convolution: only fp32 runs are held against it.
        fp32 = [r for r in results if not r.candidate.stock and "--amp" not in r.candidate.args]
        if fp32:
            best = min(fp32, key=lambda r: r.median)
            fraction = 3 * 2 * scenario.flops_per_iter / best.median / 1e9 / conv_gflops
            lines.append(f"target: fp32 classification step >= "
                         f"{100 * CONV_FRACTION_TARGET:.0f}% of the dense fp32 3x3 convolution's "
                         f"rate: best {best.candidate.name} {100 * fraction:.0f}%: "
                         f"{'met' if fraction >= CONV_FRACTION_TARGET else 'MISSED'}")
    for result in results:
        c = result.candidate
        if "--amp" not in c.args or c.stock:
            continue
        without = Candidate(c.name, False, tuple(a for a in c.args if a != "--amp"), c.backbone)
        twin = next((r for r in results if r.candidate.args == without.args
                     and r.candidate.backbone == c.backbone and not r.candidate.stock), None)
        if twin is None:
            continue
        ratio = paired_ratio(result, twin)
        if amp_native:
            lines.append(f"target: bf16 never slower than fp32: {c.name} {ratio:.2f}x "
                         f"{twin.candidate.name}: {'met' if ratio >= 0.97 else 'MISSED'}")
        else:
            lines.append(f"bf16 vs fp32: not applicable here (no native bf16, --amp trained in "
                         f"fp32); {c.name} / {twin.candidate.name} = {ratio:.2f}x (noise)")
    return lines


# --------------------------------------------------------------------------------------------
# The whole benchmark
# --------------------------------------------------------------------------------------------
def prepare_demo_data(root: Path) -> dict[str, Path]:
    """The demo ImageNet and COCO sets under ``root``, written once (a stamp marks them done)."""
    from resnext_plugin.demo_data.coco import make_demo_coco
    from resnext_plugin.demo_data.imagenet import make_demo_imagenet

    data = {"imagenet": root / "demo_imagenet", "coco": root / "demo_coco"}
    for name, make in (("imagenet", make_demo_imagenet), ("coco", make_demo_coco)):
        stamp = data[name] / ".complete"
        if not stamp.exists():
            make(data[name])
            stamp.write_text("written by resnext_plugin.benchmark.runner\n")
    return data


def backbone_flops(spec: ScenarioSpec) -> float:
    """Forward multiply-adds of the backbone per iteration (classification scenarios; 0 for
    the others)."""
    if spec.task != "cls":
        return 0.0
    from resnext_plugin.complexity import count_flops
    from resnext_plugin.models import ResNeXt

    model = ResNeXt(50, groups=32, width_per_group=4, out_indices=(3,), init_cfg=None)
    return count_flops(model, (3, *spec.image_hw)) * spec.batch


def run_benchmark(names: Sequence[str], out_dir: Path, rounds: int, quick: bool = False,
                  compile: bool = False, amp: bool = False,
                  only: Optional[Sequence[str]] = None, conv_gflops: Optional[float] = None,
                  log: Callable[[str], None] = print) -> str:
    """Run the scenarios ``names`` and return the report (markdown, CPU features and load
    included)."""
    import torch

    specs = get_scenarios(names)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    plans = {spec.name: default_candidates(spec.task, compile, amp, cuda=device.type == "cuda")
             for spec in specs}
    known_names = {c.name for plan in plans.values() for c in plan if not c.stock}
    if only and set(only) - known_names:
        raise ValueError(f"--candidates: unknown {sorted(set(only) - known_names)}; known "
                         f"here: {', '.join(sorted(known_names))}")
    data = prepare_demo_data(out_dir / "data")
    report = [f"* {line}" for line in perf.environment_lines(device, torch.get_num_threads())]
    report.append(f"* {perf.load_average()} (before)")
    if conv_gflops is None and any(spec.task == "cls" for spec in specs):
        conv_gflops = perf.conv_gflops(device)
    if conv_gflops:
        report.append(f"* dense 3x3 convolution (8x256x56x56, channels_last, fp32) measured "
                      f"now: {conv_gflops:.0f} GFLOP/s")
    for spec in specs:
        scenario = dataclasses.replace(make_scenario(spec, data, quick),
                                       flops_per_iter=backbone_flops(spec))
        candidates = plans[spec.name]
        if only:
            candidates = keep_candidates(
                candidates, [n for n in only if n in {c.name for c in candidates}])
        results = run_scenario(scenario, candidates, rounds, out_dir, log)
        report += ["", f"#### {scenario.name}: {scenario.description}", "",
                   f"{rounds} round(s) x {scenario.iters - scenario.skip} timed iterations "
                   f"(of {scenario.iters}); {perf.load_average()} after. `*` = stock "
                   "(the framework's own ResNeXt).", "",
                   format_results(scenario, results, conv_gflops), ""]
        amp_native = device.type == "cuda" or perf.cpu_supports_bf16()
        report += [f"* {line}" for line in verdict_lines(scenario, results, conv_gflops,
                                                         amp_native)]
    return "\n".join(report) + "\n"

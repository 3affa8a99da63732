"""Small CIFAR-10 / CIFAR-100 stand-ins in the official on-disk format, generated from a seed.

The files are what ``cifar-10-python.tar.gz`` and ``cifar-100-python.tar.gz`` unpack to, and
what mmpretrain's ``CIFAR10`` / ``CIFAR100`` read::

    ROOT/cifar-10-batches-py/data_batch_1 .. data_batch_5, test_batch, batches.meta
    ROOT/cifar-100-python/train, test, meta

Each file is a pickled dict: ``data`` is a ``uint8`` array of shape (N, 3072), one image a row,
channel-planar (1024 red, 1024 green, 1024 blue values, row-major); ``labels`` (CIFAR-10) or
``fine_labels`` and ``coarse_labels`` (CIFAR-100) are lists of ints; ``filenames`` and
``batch_label`` as in the originals. The images are 32x32 stripes whose hue family and orientation
encode the class, with jittered period, phase, tilt and colour and pixel noise.

The contents differ from the official release, so their MD5 sums differ too: read them with
``resnext_plugin.CheckedCIFAR10`` / ``CheckedCIFAR100`` and ``verify_checksums=False``. The same
seed and arguments give the same bytes.
"""
from __future__ import annotations

import colorsys
import math
import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

IMAGE_SIZE = 32
#: Stripe directions (radians); CIFAR-10 uses the first two, CIFAR-100 all four.
ORIENTATIONS = (0.0, math.pi / 2, math.pi / 4, -math.pi / 4)
#: Official layout: data set -> (folder, training files, test file, meta file, meta key).
LAYOUTS = {
    "cifar10": ("cifar-10-batches-py", tuple(f"data_batch_{i}" for i in range(1, 6)),
                "test_batch", "batches.meta", "label_names"),
    "cifar100": ("cifar-100-python", ("train",), "test", "meta", "fine_label_names"),
}
NUM_CLASSES = {"cifar10": 10, "cifar100": 100}


@dataclass(frozen=True)
class DemoCifarSpec:
    """What :func:`make_demo_cifar` writes.

    Attributes:
        dataset: ``'cifar10'`` or ``'cifar100'``.
        train_per_class: Training images per class (spread over the training files).
        test_per_class: Test images per class.
        noise: Standard deviation of the per-pixel noise, in grey levels.
        seed: Seed of everything random.
    """

    dataset: str = "cifar10"
    train_per_class: int = 10
    test_per_class: int = 2
    noise: float = 12.0
    seed: int = 0

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad field."""
        if self.dataset not in LAYOUTS:
            raise ValueError(f"demo CIFAR: `dataset` must be one of {sorted(LAYOUTS)}, "
                             f"got {self.dataset!r}")
        for name in ("train_per_class", "test_per_class"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"demo CIFAR: `{name}` must be an integer >= 1, got {value!r}")
        if not 0 <= self.noise <= 100:
            raise ValueError(f"demo CIFAR: `noise` must be in [0, 100], got {self.noise!r}")


def class_cues(label: int, num_classes: int) -> tuple[float, float]:
    """(hue centre, stripe angle) of class ``label``: orientation-minor, hue-major."""
    orientations = 2 if num_classes <= 10 else 4
    hues = math.ceil(num_classes / orientations)
    return (label // orientations) / hues, ORIENTATIONS[label % orientations]


def render_image(rng: np.random.Generator, label: int, num_classes: int,
                 noise: float) -> np.ndarray:
    """One (3, 32, 32) ``uint8`` image of class ``label`` (channel-planar, as CIFAR stores it)."""
    hue_centre, angle = class_cues(label, num_classes)
    hue_step = 1.0 / math.ceil(num_classes / (2 if num_classes <= 10 else 4))
    hue = (hue_centre + rng.uniform(-0.3, 0.3) * hue_step) % 1.0
    colour = np.array(colorsys.hsv_to_rgb(hue, rng.uniform(0.6, 1.0),
                                          rng.uniform(0.65, 1.0))) * 255.0
    angle += rng.uniform(-0.15, 0.15)
    yy, xx = np.mgrid[0:IMAGE_SIZE, 0:IMAGE_SIZE].astype(np.float64)
    across = yy * math.cos(angle) + xx * math.sin(angle)
    period = rng.uniform(5.0, 9.0)
    wave = np.sin(2 * math.pi * (across / period + rng.uniform(0, 1)))
    mask = 1.0 / (1.0 + np.exp(-rng.uniform(3.0, 12.0) * (wave - rng.uniform(-0.3, 0.3))))
    background = rng.uniform(10, 100) + rng.uniform(-12, 12, size=3)
    image = background + rng.uniform(0.7, 1.0) * mask[..., None] * (colour - background)
    image = image + rng.normal(0.0, noise, size=image.shape)
    return np.clip(image, 0, 255).round().astype(np.uint8).transpose(2, 0, 1)


def _images(labels: list[int], num_classes: int, noise: float,
            seed_seq: np.random.SeedSequence) -> np.ndarray:
    rows = [render_image(np.random.default_rng(child), label, num_classes, noise).reshape(-1)
            for label, child in zip(labels, seed_seq.spawn(len(labels)))]
    return np.stack(rows)


def _write_pickle(path: Path, obj: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        pickle.dump(obj, f, protocol=4)
    os.replace(tmp, path)


def _batch(name: str, dataset: str, data: np.ndarray, labels: list[int]) -> dict:
    batch = dict(batch_label=name, data=data,
                 filenames=[f"demo_{name}_{i:05d}.png" for i in range(len(labels))])
    if dataset == "cifar10":
        batch["labels"] = labels
    else:  # CIFAR-100 also stores the 20 superclasses: five fine classes each here.
        batch["fine_labels"] = labels
        batch["coarse_labels"] = [label // 5 for label in labels]
    return batch


def make_demo_cifar(root: str | os.PathLike, spec: DemoCifarSpec | None = None) -> dict:
    """Write the data set under ``root`` and return a summary.

    Args:
        root: Output folder (created if missing); the data set's folder inside it is written.
        spec: What to write; defaults to :class:`DemoCifarSpec`'s defaults.

    Returns:
        ``{'folder': ..., 'train': N, 'test': M, 'files': [...]}``.

    Raises:
        ValueError: A field of ``spec`` is out of range.
    """
    from mmpretrain.datasets.categories import CIFAR10_CATEGORIES, CIFAR100_CATEGORIES

    spec = spec or DemoCifarSpec()
    spec.validate()
    folder_name, train_files, test_file, meta_file, meta_key = LAYOUTS[spec.dataset]
    num_classes = NUM_CLASSES[spec.dataset]
    folder = Path(root) / folder_name
    folder.mkdir(parents=True, exist_ok=True)
    train_seq, test_seq, order_seq = np.random.SeedSequence(spec.seed).spawn(3)

    train_labels = [label for label in range(num_classes) for _ in range(spec.train_per_class)]
    np.random.default_rng(order_seq).shuffle(train_labels)
    train_data = _images(train_labels, num_classes, spec.noise, train_seq)
    parts = np.array_split(np.arange(len(train_labels)), len(train_files))
    for name, index in zip(train_files, parts):
        _write_pickle(folder / name, _batch(name, spec.dataset, train_data[index],
                                            [train_labels[i] for i in index]))
    test_labels = [label for label in range(num_classes) for _ in range(spec.test_per_class)]
    _write_pickle(folder / test_file, _batch(test_file, spec.dataset,
                                             _images(test_labels, num_classes, spec.noise,
                                                     test_seq), test_labels))
    classes = CIFAR10_CATEGORIES if spec.dataset == "cifar10" else CIFAR100_CATEGORIES
    meta = {meta_key: list(classes)}
    if spec.dataset == "cifar10":
        meta.update(num_cases_per_batch=len(parts[0]), num_vis=3 * IMAGE_SIZE * IMAGE_SIZE)
    else:
        meta["coarse_label_names"] = [f"superclass_{i}" for i in range(num_classes // 5)]
    _write_pickle(folder / meta_file, meta)
    return dict(folder=str(folder), train=len(train_labels), test=len(test_labels),
                files=[*train_files, test_file, meta_file])

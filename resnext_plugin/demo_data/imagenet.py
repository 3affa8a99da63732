"""A small ImageNet-layout classification data set, generated from a seed.

Every class is a pair (colour family, stripe orientation): five hue families (red, yellow,
green, blue, purple) times horizontal or vertical stripes. Each image jitters the stripes'
period, phase, tilt, duty cycle, edge softness and contrast, the stripe colour's hue, saturation
and brightness and the dark, nearly grey background, and adds pixel noise, so a network has to
learn colour and orientation rather than memorise pixels. Both cues survive a horizontal flip and
a random-resized crop, the augmentations of the recipe, at any zoom.

The layout is mmpretrain's ``ImageNet`` layout (image folders plus ``meta/{split}.txt`` lines
``<relative path> <label>``), so an mmpretrain config only needs another ``data_root``::

    ROOT/train/n00_red_horizontal/train_00000.jpg ...
    ROOT/val/n00_red_horizontal/val_00000.jpg ...
    ROOT/meta/train.txt
    ROOT/meta/val.txt
    ROOT/meta/classes.txt     (the class names, one a line; label = line number)

The same seed and arguments give the same files, byte for byte.
"""
from __future__ import annotations

import colorsys
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

#: Hue family -> centre of its hue range (fraction of the colour wheel); each spans +-0.04.
COLOURS: dict[str, float] = {"red": 0.0, "yellow": 0.15, "green": 0.35, "blue": 0.62,
                             "purple": 0.82}
HUE_JITTER = 0.04
ORIENTATIONS: tuple[str, ...] = ("horizontal", "vertical")
#: Class names in label order: colour-major, orientation-minor.
CLASSES: tuple[str, ...] = tuple(
    f"n{i * len(ORIENTATIONS) + j:02d}_{colour}_{orientation}"
    for i, colour in enumerate(COLOURS)
    for j, orientation in enumerate(ORIENTATIONS)
)
SPLITS: tuple[str, ...] = ("train", "val")


@dataclass(frozen=True)
class DemoImageNetSpec:
    """What :func:`make_demo_imagenet` writes.

    Attributes:
        num_classes: How many of :data:`CLASSES` to use (the first ones).
        train_per_class: Training images per class.
        val_per_class: Validation images per class.
        image_size: Width and height of every image, in pixels.
        noise: Standard deviation of the per-pixel noise, in grey levels (difficulty).
        seed: Seed of everything random.
        jpeg_quality: JPEG quality of the written images.
    """

    num_classes: int = len(CLASSES)
    train_per_class: int = 100
    val_per_class: int = 20
    image_size: int = 48
    noise: float = 12.0
    seed: int = 0
    jpeg_quality: int = 90

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad field."""
        if not isinstance(self.num_classes, int) or not 2 <= self.num_classes <= len(CLASSES):
            raise ValueError(f"demo ImageNet: `num_classes` must be an integer in "
                             f"[2, {len(CLASSES)}], got {self.num_classes!r}")
        for name in ("train_per_class", "val_per_class"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"demo ImageNet: `{name}` must be an integer >= 1, got {value!r}")
        if not isinstance(self.image_size, int) or not 16 <= self.image_size <= 512:
            raise ValueError(f"demo ImageNet: `image_size` must be an integer in [16, 512], "
                             f"got {self.image_size!r}")
        if not 0 <= self.noise <= 100:
            raise ValueError(f"demo ImageNet: `noise` must be in [0, 100], got {self.noise!r}")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"demo ImageNet: `jpeg_quality` must be in [1, 100], "
                             f"got {self.jpeg_quality!r}")


def _colour(rng: np.random.Generator, colour: str) -> np.ndarray:
    """A stripe colour (RGB floats in [0, 255]) of the given hue family."""
    hue = (COLOURS[colour] + rng.uniform(-HUE_JITTER, HUE_JITTER)) % 1.0
    rgb = colorsys.hsv_to_rgb(hue, rng.uniform(0.6, 1.0), rng.uniform(0.65, 1.0))
    return np.array(rgb) * 255.0


def _stripes(rng: np.random.Generator, orientation: str, size: int) -> np.ndarray:
    """A (size, size) map in [0, 1]: 1 where a stripe is."""
    period = rng.uniform(0.12, 0.25) * size
    tilt = rng.uniform(-0.2, 0.2)  # radians
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    if orientation == "horizontal":
        across = yy * math.cos(tilt) + xx * math.sin(tilt)
    elif orientation == "vertical":
        across = xx * math.cos(tilt) + yy * math.sin(tilt)
    else:
        raise ValueError(f"demo ImageNet: unknown orientation {orientation!r}; "
                         f"known: {ORIENTATIONS}")
    wave = np.sin(2 * math.pi * (across / period + rng.uniform(0, 1)))
    duty = rng.uniform(-0.4, 0.4)  # shifts the threshold: thinner or thicker stripes
    sharpness = rng.uniform(3.0, 12.0)  # soft (sine-like) to hard edges
    return 1.0 / (1.0 + np.exp(-sharpness * (wave - duty)))


def render_image(rng: np.random.Generator, label: int, spec: DemoImageNetSpec) -> Image.Image:
    """One RGB image of class ``CLASSES[label]``."""
    colour = list(COLOURS)[label // len(ORIENTATIONS)]
    orientation = ORIENTATIONS[label % len(ORIENTATIONS)]
    size = spec.image_size
    mask = _stripes(rng, orientation, size)[..., None]
    foreground = _colour(rng, colour)
    # A dark, nearly grey background: the colour family is the stripes'.
    background = rng.uniform(10, 100) + rng.uniform(-12, 12, size=3)
    contrast = rng.uniform(0.7, 1.0)
    image = background + contrast * mask * (foreground - background)
    image = image + rng.normal(0.0, spec.noise, size=image.shape)
    return Image.fromarray(np.clip(image, 0, 255).round().astype(np.uint8), mode="RGB")


def _write_split(root: Path, split: str, per_class: int, spec: DemoImageNetSpec,
                 seed_seq: np.random.SeedSequence) -> dict:
    lines = []
    for label, class_seq in enumerate(seed_seq.spawn(spec.num_classes)):
        folder = root / split / CLASSES[label]
        folder.mkdir(parents=True, exist_ok=True)
        for index, child in enumerate(class_seq.spawn(per_class)):
            image = render_image(np.random.default_rng(child), label, spec)
            rel = f"{CLASSES[label]}/{split}_{index:05d}.jpg"
            image.save(root / split / rel, format="JPEG", quality=spec.jpeg_quality)
            lines.append(f"{rel} {label}\n")
    ann_file = root / "meta" / f"{split}.txt"
    _write_text(ann_file, "".join(lines))
    return dict(ann_file=str(ann_file), img_dir=str(root / split), images=len(lines))


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def make_demo_imagenet(root: str | os.PathLike, spec: DemoImageNetSpec | None = None) -> dict:
    """Write the demo data set under ``root`` and return a summary per split.

    Args:
        root: Output folder (created if missing); existing files of the same names are replaced.
        spec: What to write; defaults to :class:`DemoImageNetSpec`'s defaults.

    Returns:
        ``{'train': {...}, 'val': {...}, 'classes': (...)}``, each split with its annotation file,
        image folder and image count.

    Raises:
        ValueError: A field of ``spec`` is out of range.
    """
    spec = spec or DemoImageNetSpec()
    spec.validate()
    root = Path(root)
    classes = CLASSES[: spec.num_classes]
    train_seq, val_seq = np.random.SeedSequence(spec.seed).spawn(2)
    summary = dict(
        train=_write_split(root, "train", spec.train_per_class, spec, train_seq),
        val=_write_split(root, "val", spec.val_per_class, spec, val_seq),
        classes=classes,
    )
    _write_text(root / "meta" / "classes.txt", "".join(f"{name}\n" for name in classes))
    return summary

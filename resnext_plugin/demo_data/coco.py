"""A small COCO-format instance-segmentation data set, generated from a seed.

Each image is a smooth, noisy, muted background with one to ``max_objects`` non-overlapping filled
shapes (circle, square, triangle, star) of random sizes and rotations. Each class has its own hue
family (jittered hue, saturation and brightness), so the classes separate within a few minutes of
CPU training; the masks still have to follow each shape's outline. Every shape is drawn from the
very polygon that is written as its ``segmentation``, so boxes, masks and areas are exact.

The layout is COCO's, so an mmdet config only needs another ``data_root``::

    ROOT/annotations/instances_train2017.json
    ROOT/annotations/instances_val2017.json
    ROOT/train2017/000000000001.jpg ...
    ROOT/val2017/000000100001.jpg ...

The same seed and arguments give the same annotation files and the same JPEG bytes.
"""
from __future__ import annotations

import colorsys
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

#: Category names; their COCO ids are 1..len(CATEGORIES) in this order.
CATEGORIES: tuple[str, ...] = ("circle", "square", "triangle", "star")

#: Split name -> (annotation file, image folder, first image id).
SPLITS: dict[str, tuple[str, str, int]] = {
    "train": ("annotations/instances_train2017.json", "train2017", 1),
    "val": ("annotations/instances_val2017.json", "val2017", 100_001),
}


@dataclass(frozen=True)
class DemoCocoSpec:
    """What :func:`make_demo_coco` writes.

    Attributes:
        num_train: Training images.
        num_val: Validation images.
        image_size: Width and height of every image, in pixels.
        max_objects: At most this many shapes per image (at least one).
        min_radius: Smallest shape radius, as a fraction of ``image_size``.
        max_radius: Largest shape radius, as a fraction of ``image_size``.
        seed: Seed of everything random.
        jpeg_quality: JPEG quality of the written images.
    """

    num_train: int = 240
    num_val: int = 60
    image_size: int = 96
    max_objects: int = 3
    min_radius: float = 0.12
    max_radius: float = 0.26
    seed: int = 0
    jpeg_quality: int = 92

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad field."""
        for name in ("num_train", "num_val", "max_objects"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"demo COCO: `{name}` must be an integer >= 1, got {value!r}")
        if not isinstance(self.image_size, int) or self.image_size < 32:
            raise ValueError(
                f"demo COCO: `image_size` must be an integer >= 32, got {self.image_size!r}")
        if not 0 < self.min_radius <= self.max_radius <= 0.4:
            raise ValueError(
                "demo COCO: need 0 < `min_radius` <= `max_radius` <= 0.4, got "
                f"min_radius={self.min_radius!r}, max_radius={self.max_radius!r}")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(
                f"demo COCO: `jpeg_quality` must be in [1, 100], got {self.jpeg_quality!r}")


def shape_polygon(category: str, cx: float, cy: float, radius: float,
                  angle: float) -> np.ndarray:
    """Vertices (K, 2) of a shape centred at (cx, cy) with circumradius ``radius``.

    Raises:
        ValueError: ``category`` is not one of :data:`CATEGORIES`.
    """
    if category == "circle":
        theta = np.linspace(0.0, 2 * math.pi, 32, endpoint=False)
        radii = np.full_like(theta, radius)
    elif category in ("square", "triangle"):
        corners = 4 if category == "square" else 3
        theta = angle + np.arange(corners) * 2 * math.pi / corners
        radii = np.full_like(theta, radius)
    elif category == "star":
        theta = angle + np.arange(10) * math.pi / 5
        radii = np.where(np.arange(10) % 2 == 0, radius, 0.45 * radius)
    else:
        raise ValueError(f"demo COCO: unknown category {category!r}; known: {CATEGORIES}")
    return np.stack([cx + radii * np.cos(theta), cy + radii * np.sin(theta)], axis=1)


def polygon_area(points: np.ndarray) -> float:
    """Area of a simple polygon (shoelace formula)."""
    x, y = points[:, 0], points[:, 1]
    return float(0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A muted two-colour gradient with pixel noise, (size, size, 3) uint8."""
    grey = rng.uniform(40, 140, size=(2, 1))
    c0, c1 = grey + rng.uniform(-15, 15, size=(2, 3))
    direction = rng.uniform(0, 2 * math.pi)
    grid = np.linspace(-0.5, 0.5, size)
    ramp = math.cos(direction) * grid[None, :] + math.sin(direction) * grid[:, None] + 0.5
    image = c0 + (c1 - c0) * ramp[..., None]
    image += rng.normal(0, 6, size=image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def _class_colour(rng: np.random.Generator, category: str) -> tuple[int, int, int]:
    """A saturated colour of the category's hue family, bright against :func:`_background`."""
    hue = (CATEGORIES.index(category) / len(CATEGORIES) + rng.uniform(-0.06, 0.06)) % 1.0
    rgb = colorsys.hsv_to_rgb(hue, rng.uniform(0.65, 1.0), rng.uniform(0.8, 1.0))
    return tuple(int(round(255 * c)) for c in rgb)


def _place_shapes(rng: np.random.Generator, spec: DemoCocoSpec) -> list[tuple[str, np.ndarray]]:
    """Non-overlapping shapes (category, polygon) inside the image."""
    size = spec.image_size
    count = int(rng.integers(1, spec.max_objects + 1))
    placed: list[tuple[float, float, float]] = []
    shapes = []
    for _ in range(50 * count):
        if len(shapes) == count:
            break
        radius = rng.uniform(spec.min_radius, spec.max_radius) * size
        cx, cy = rng.uniform(radius + 1, size - radius - 1, size=2)
        if any(math.hypot(cx - x, cy - y) < radius + r + 2 for x, y, r in placed):
            continue
        category = CATEGORIES[int(rng.integers(len(CATEGORIES)))]
        polygon = shape_polygon(category, cx, cy, radius, rng.uniform(0, 2 * math.pi))
        placed.append((cx, cy, radius))
        shapes.append((category, polygon))
    return shapes


def render_image(rng: np.random.Generator, spec: DemoCocoSpec
                 ) -> tuple[Image.Image, list[tuple[str, np.ndarray]]]:
    """One image and its shapes, drawn from their annotation polygons."""
    image = Image.fromarray(_background(rng, spec.image_size))
    draw = ImageDraw.Draw(image)
    shapes = _place_shapes(rng, spec)
    for category, polygon in shapes:
        draw.polygon([tuple(p) for p in polygon.tolist()], fill=_class_colour(rng, category))
    return image, shapes


def _annotation(ann_id: int, image_id: int, category: str, polygon: np.ndarray) -> dict:
    x0, y0 = polygon.min(axis=0)
    x1, y1 = polygon.max(axis=0)
    return dict(
        id=ann_id,
        image_id=image_id,
        category_id=CATEGORIES.index(category) + 1,
        segmentation=[[round(float(v), 2) for v in polygon.reshape(-1)]],
        area=round(polygon_area(polygon), 2),
        bbox=[round(float(v), 2) for v in (x0, y0, x1 - x0, y1 - y0)],
        iscrowd=0,
    )


def _write_split(root: Path, split: str, num_images: int, spec: DemoCocoSpec,
                 seed_seq: np.random.SeedSequence) -> dict:
    ann_file, img_dir, first_id = SPLITS[split]
    (root / img_dir).mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for index, child in enumerate(seed_seq.spawn(num_images)):
        image_id = first_id + index
        image, shapes = render_image(np.random.default_rng(child), spec)
        file_name = f"{image_id:012d}.jpg"
        image.save(root / img_dir / file_name, quality=spec.jpeg_quality)
        images.append(dict(id=image_id, file_name=file_name,
                           width=spec.image_size, height=spec.image_size))
        for category, polygon in shapes:
            annotations.append(_annotation(len(annotations) + first_id, image_id,
                                           category, polygon))
    coco = dict(
        info=dict(description=f"resnext_plugin demo COCO ({split})", version="1.0"),
        licenses=[],
        images=images,
        annotations=annotations,
        categories=[dict(id=i + 1, name=name, supercategory="shape")
                    for i, name in enumerate(CATEGORIES)],
    )
    path = root / ann_file
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(coco))
    os.replace(tmp, path)
    return dict(ann_file=str(path), img_dir=str(root / img_dir), images=len(images),
                annotations=len(annotations))


def make_demo_coco(root: str | os.PathLike, spec: DemoCocoSpec | None = None) -> dict:
    """Write the demo data set under ``root`` and return a summary per split.

    Args:
        root: Output folder (created if missing); existing files of the same names are replaced.
        spec: What to write; defaults to :class:`DemoCocoSpec`'s defaults.

    Returns:
        ``{'train': {...}, 'val': {...}, 'classes': CATEGORIES}``, each split with its annotation
        file, image folder and counts.

    Raises:
        ValueError: A field of ``spec`` is out of range.
    """
    spec = spec or DemoCocoSpec()
    spec.validate()
    root = Path(root)
    train_seq, val_seq = np.random.SeedSequence(spec.seed).spawn(2)
    return dict(
        train=_write_split(root, "train", spec.num_train, spec, train_seq),
        val=_write_split(root, "val", spec.num_val, spec, val_seq),
        classes=CATEGORIES,
    )

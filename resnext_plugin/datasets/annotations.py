"""Validation of annotation files: classification lists and COCO instance files.

mmpretrain splits each line with ``rsplit(' ', 1)`` and ``int()``: a line without a label fails
with "not enough values to unpack" and no file name, and a label outside the class range passes
until the loss indexes past the logits. :func:`validate_classification_annotations` names the
file, the line number and the record instead.
"""
from __future__ import annotations

import functools
import json
import math
import os
from collections.abc import Sequence
from typing import Optional


class AnnotationError(ValueError):
    """An annotation file is empty or has a malformed record."""


def validate_classification_annotations(path: str, num_classes: int) -> int:
    """Check every record of ``path``; return the number of records.

    Raises:
        AnnotationError: the file has no records, a line is not ``<path> <integer label>``, or a
            label is outside ``[0, num_classes)``; the message names the file, line and record.
    """
    count = 0
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            record = line.strip()
            if not record:
                continue
            parts = record.rsplit(" ", 1)
            where = f"{path}, line {number}: {record!r}"
            if len(parts) != 2 or not parts[0].strip():
                raise AnnotationError(f"{where}: expected '<image path> <label>'")
            try:
                label = int(parts[1])
            except ValueError:
                raise AnnotationError(f"{where}: the label {parts[1]!r} is not an integer") \
                    from None
            if not 0 <= label < num_classes:
                raise AnnotationError(f"{where}: label {label} is outside [0, {num_classes}) "
                                      f"({num_classes} classes)")
            count += 1
    if count == 0:
        raise AnnotationError(f"{os.fspath(path)}: the annotation file has no records")
    return count


# ---------------------------------------------------------------- COCO instance annotations

#: How far (pixels) a box or polygon may reach past the image border before it counts as outside.
BORDER_TOLERANCE = 1.0


class CocoReport:
    """What :func:`validate_coco_annotations` found: skipped and clipped records, by reason."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.num_annotations = 0
        self.skipped: dict[str, list[str]] = {}
        self.clipped: list[str] = []
        self.dropped_polygons: list[str] = []
        self.skipped_ids: set = set()
        self.clipped_boxes: dict = {}  # annotation id -> [x, y, w, h] inside the image
        self.kept_polygons: dict = {}  # annotation id -> the valid polygons

    def reject(self, ann_id: object, record: str, where: str, on_invalid: str, reason: str,
               detail: str) -> None:
        """Count ``ann_id`` as skipped for ``reason``; raise if ``on_invalid='error'``."""
        if on_invalid == "error":
            raise AnnotationError(f"{where}: {reason}: {detail}")
        self.skipped.setdefault(reason, []).append(f"{record} ({detail})")
        self.skipped_ids.add(ann_id)

    @property
    def num_skipped(self) -> int:
        return len(self.skipped_ids)

    def counts(self) -> dict[str, int]:
        counts = {reason: len(records) for reason, records in sorted(self.skipped.items())}
        counts["clipped box"] = len(self.clipped)
        counts["dropped polygon"] = len(self.dropped_polygons)
        return counts

    def summary(self, examples: int = 3) -> str:
        lines = [f"{self.path}: {self.num_annotations} annotations, {self.num_skipped} skipped, "
                 f"{len(self.clipped)} boxes clipped to the image, {len(self.dropped_polygons)} "
                 "invalid polygons dropped from otherwise valid annotations"]
        groups = [*sorted(self.skipped.items()), ("clipped box", self.clipped),
                  ("dropped polygon", self.dropped_polygons)]
        for reason, records in groups:
            if records:
                shown = "; ".join(records[:examples])
                more = f" (+{len(records) - examples} more)" if len(records) > examples else ""
                lines.append(f"  {reason}: {len(records)}, e.g. {shown}{more}")
        return "\n".join(lines)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and \
        math.isfinite(value)


def load_coco_json(path: str) -> dict:
    """Read a COCO annotation file; an empty, unreadable or malformed file raises
    :class:`AnnotationError` naming it (and the position of a JSON syntax error)."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise FileNotFoundError(f"COCO annotation file not found: '{path}' "
                                f"(absolute: {os.path.abspath(path)})") from None
    except UnicodeDecodeError as err:
        raise AnnotationError(f"{path}: not UTF-8 text ({err})") from None
    if not text.strip():
        raise AnnotationError(f"{path}: the annotation file is empty")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise AnnotationError(f"{path}: malformed JSON at line {err.lineno}, column "
                              f"{err.colno}: {err.msg}") from None
    if not isinstance(data, dict):
        raise AnnotationError(f"{path}: expected a JSON object with 'images', 'annotations' "
                              f"and 'categories', got a {type(data).__name__}")
    return data


def validate_coco_annotations(data: dict, path: str, classes: Optional[Sequence[str]] = None,
                              on_invalid: str = "skip") -> CocoReport:
    """Check a COCO instance annotation file's content.

    Structural faults always raise :class:`AnnotationError` naming ``path`` and the record:
    missing top-level keys, an image without ``file_name``/``height``/``width``, duplicate ids,
    an annotation whose ``image_id`` is not an image or whose ``category_id`` is not one of the
    file's categories (a class index out of range), a ``bbox`` that is not four finite numbers,
    a segmentation of the wrong type, and ``classes`` (the config's ``metainfo``) naming a
    category the file does not have.

    Geometric faults, which real COCO files contain a few of and mmdet drops without a word,
    are counted in the returned :class:`CocoReport`; with ``on_invalid='error'`` the first one
    raises instead. Skipped: a box narrower or lower than 1 px or with ``area <= 0``, a box
    entirely outside the image, an annotation whose polygons are all invalid (fewer than 3
    points, an odd number of coordinates, or points outside the image). Clipped: a box reaching
    more than :data:`BORDER_TOLERANCE` px past the border. Dropped: invalid polygons of an
    annotation that keeps at least one valid polygon.
    """
    if on_invalid not in ("skip", "error"):
        raise ValueError(f"`on_invalid` must be 'skip' or 'error', got {on_invalid!r}")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise AnnotationError(f"{path}: missing or non-list top-level key '{key}'")
    report = CocoReport(path)

    images: dict = {}
    for index, image in enumerate(data["images"]):
        where = f"{path}: images[{index}]"
        if not isinstance(image, dict) or "id" not in image:
            raise AnnotationError(f"{where}: expected an object with an 'id'")
        for key in ("file_name", "height", "width"):
            if key not in image:
                raise AnnotationError(f"{where} (id {image['id']}): missing '{key}'")
        if not all(isinstance(image[k], int) and image[k] > 0 for k in ("height", "width")):
            raise AnnotationError(f"{where} (id {image['id']}): height and width must be "
                                  f"positive integers, got {image['height']!r} x "
                                  f"{image['width']!r}")
        if image["id"] in images:
            raise AnnotationError(f"{where}: duplicate image id {image['id']}")
        images[image["id"]] = image

    categories: dict = {}
    for index, category in enumerate(data["categories"]):
        if not isinstance(category, dict) or "id" not in category or "name" not in category:
            raise AnnotationError(f"{path}: categories[{index}]: expected 'id' and 'name'")
        if category["id"] in categories:
            raise AnnotationError(f"{path}: categories[{index}]: duplicate category id "
                                  f"{category['id']}")
        categories[category["id"]] = category["name"]
    if classes is not None:
        missing = [name for name in classes if name not in categories.values()]
        if missing:
            raise AnnotationError(f"{path}: the config's classes {missing} are not categories "
                                  f"of this file (it has {sorted(categories.values())})")

    seen: set = set()
    for index, ann in enumerate(data["annotations"]):
        report.num_annotations += 1
        if not isinstance(ann, dict) or "id" not in ann:
            raise AnnotationError(f"{path}: annotations[{index}]: expected an object with an "
                                  "'id'")
        ann_id = ann["id"]
        where = f"{path}: annotation id {ann_id} (annotations[{index}])"
        if ann_id in seen:
            raise AnnotationError(f"{where}: duplicate annotation id")
        seen.add(ann_id)
        image = images.get(ann.get("image_id"))
        if image is None:
            raise AnnotationError(f"{where}: image_id {ann.get('image_id')!r} is not an image "
                                  "of this file")
        if ann.get("category_id") not in categories:
            raise AnnotationError(f"{where}: category_id {ann.get('category_id')!r} is not one "
                                  f"of the file's categories {sorted(categories)}")
        bbox = ann.get("bbox")
        if not (isinstance(bbox, list) and len(bbox) == 4 and all(map(_is_number, bbox))):
            raise AnnotationError(f"{where}: bbox must be [x, y, width, height] (finite "
                                  f"numbers), got {bbox!r}")
        if not _is_number(ann.get("area")):
            raise AnnotationError(f"{where}: area must be a finite number, got "
                                  f"{ann.get('area')!r}")
        record = f"annotation id {ann_id} in image '{image['file_name']}'"
        where = f"{where} (image '{image['file_name']}')"
        invalid = functools.partial(report.reject, ann_id, record, where, on_invalid)

        x, y, w, h = bbox
        width, height = image["width"], image["height"]
        if w < 1 or h < 1 or ann["area"] <= 0:
            invalid("degenerate box", f"bbox {bbox}, area {ann['area']}")
            continue
        if x >= width or y >= height or x + w <= 0 or y + h <= 0:
            invalid("box outside the image", f"bbox {bbox}, image {width}x{height}")
            continue
        tol = BORDER_TOLERANCE
        if x < -tol or y < -tol or x + w > width + tol or y + h > height + tol:
            if on_invalid == "error":
                raise AnnotationError(f"{where}: box reaches past the image border: "
                                      f"bbox {bbox}, image "
                                      f"{width}x{height}")
            x1, y1 = max(x, 0.0), max(y, 0.0)
            x2, y2 = min(x + w, float(width)), min(y + h, float(height))
            report.clipped.append(f"{record} (bbox {bbox}, image {width}x{height})")
            report.clipped_boxes[ann_id] = [x1, y1, x2 - x1, y2 - y1]

        segmentation = ann.get("segmentation")
        if segmentation is None or segmentation == []:
            continue
        if isinstance(segmentation, dict):
            if not ("counts" in segmentation and "size" in segmentation):
                raise AnnotationError(f"{where}: an RLE segmentation needs 'counts' and 'size'")
            if list(segmentation["size"]) != [height, width]:
                raise AnnotationError(f"{where}: RLE size {segmentation['size']} is not the "
                                      f"image's [height, width] [{height}, {width}]")
            continue
        if not (isinstance(segmentation, list) and all(isinstance(p, list)
                                                       for p in segmentation)):
            raise AnnotationError(f"{where}: segmentation must be a list of polygons or an RLE "
                                  f"object, got {type(segmentation).__name__}")
        valid, problems = [], []
        for number, polygon in enumerate(segmentation):
            problem = _polygon_problem(polygon, width, height)
            if problem is None:
                valid.append(polygon)
            else:
                problems.append(f"polygon {number}: {problem}")
        if not problems:
            continue
        if on_invalid == "error" or not valid:
            invalid("invalid polygon", "; ".join(problems))
        else:
            report.dropped_polygons.append(f"{record} ({'; '.join(problems)})")
            report.kept_polygons[ann_id] = valid
    return report


def _polygon_problem(polygon: list, width: int, height: int) -> Optional[str]:
    if not all(map(_is_number, polygon)):
        return "coordinates must be finite numbers"
    if len(polygon) % 2 or len(polygon) < 6:
        return f"{len(polygon)} coordinates (needs an even number, at least 6)"
    xs, ys = polygon[0::2], polygon[1::2]
    tol = BORDER_TOLERANCE
    if min(xs) < -tol or min(ys) < -tol or max(xs) > width + tol or max(ys) > height + tol:
        return f"points outside the {width}x{height} image"
    return None

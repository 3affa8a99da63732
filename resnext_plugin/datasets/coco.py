"""``resnext_plugin.CheckedCocoDataset``: mmdet's ``CocoDataset`` that validates what it loads.

mmdet's ``CocoDataset`` trusts its annotation file: an empty or malformed file fails inside
``json`` or pycocotools without the file's name, an annotation of an unknown category or a box
outside the image is dropped without a word, invalid polygons turn their instance into an
ignored one, a class of the config's ``metainfo`` that the file lacks silently shrinks the label
set, and a missing image file surfaces epochs later. This subclass checks the file first
(:func:`~resnext_plugin.datasets.annotations.validate_coco_annotations`): structural faults raise an
:class:`~resnext_plugin.datasets.annotations.AnnotationError` naming the file and the record;
geometric faults are skipped, clipped or dropped, counted, and logged as a summary with
examples, or raise with ``on_invalid='error'``. If more than ``max_invalid_fraction`` of the
annotations are skipped or clipped, that is taken for a broken conversion and raises too.
"""
from __future__ import annotations

import os.path as osp
from typing import Any, Optional

from mmdet.datasets import CocoDataset
from mmengine.fileio import get_local_path
from mmengine.logging import print_log

from ..registry import DATASETS
from .annotations import AnnotationError, CocoReport, load_coco_json, validate_coco_annotations


def _parsed(coco_api: type, data: dict) -> Any:
    def build(_path: str) -> Any:
        coco = coco_api()
        coco.dataset = data
        coco.createIndex()
        if hasattr(coco, "img_ann_map"):  # mmdet's wrapper aliases the indexes in __init__
            coco.img_ann_map, coco.cat_img_map = coco.imgToAnns, coco.catToImgs
        return coco
    return build


@DATASETS.register_module()
class CheckedCocoDataset(CocoDataset):
    """mmdet's ``CocoDataset`` with the annotation file and image files validated at load time.

    Args:
        on_invalid (str): ``'skip'`` (count, log and leave out degenerate boxes, boxes outside
            the image and annotations without a valid polygon; clip boxes that reach past the
            border) or ``'error'`` (raise on the first such record). Defaults to ``'skip'``.
        max_invalid_fraction (float): Raise if more than this fraction of the annotations is
            skipped or clipped. Defaults to 0.01.
        check_image_files (bool): Check that every image file exists (local paths only).
            Defaults to True.
        **kwargs: ``CocoDataset``'s arguments.
    """

    def __init__(self, *args: Any, on_invalid: str = "skip", max_invalid_fraction: float = 0.01,
                 check_image_files: bool = True, **kwargs: Any) -> None:
        if on_invalid not in ("skip", "error"):
            raise ValueError(f"CheckedCocoDataset: `on_invalid` must be 'skip' or 'error', got "
                             f"{on_invalid!r}")
        if not 0.0 <= max_invalid_fraction <= 1.0:
            raise ValueError("CheckedCocoDataset: `max_invalid_fraction` must be in [0, 1], got "
                             f"{max_invalid_fraction!r}")
        self.on_invalid = on_invalid
        self.max_invalid_fraction = max_invalid_fraction
        self.check_image_files = check_image_files
        self.report: Optional[CocoReport] = None
        super().__init__(*args, **kwargs)

    def load_data_list(self) -> list[dict]:
        with get_local_path(self.ann_file, backend_args=self.backend_args) as local_path:
            data = load_coco_json(local_path)
        report = validate_coco_annotations(data, self.ann_file, self.metainfo.get("classes"),
                                           self.on_invalid)
        self.report = report
        invalid = report.num_skipped + len(report.clipped)
        if report.num_annotations and invalid > self.max_invalid_fraction * report.num_annotations:
            raise AnnotationError(
                f"{report.summary()}\n{invalid} of {report.num_annotations} annotations are "
                f"skipped or clipped, more than max_invalid_fraction="
                f"{self.max_invalid_fraction}: is the file converted correctly (boxes are "
                "[x, y, width, height] in pixels)?")
        if report.num_skipped or report.clipped or report.dropped_polygons:
            print_log(report.summary(), logger="current", level=30)
        self.COCOAPI = _parsed(self.COCOAPI, data)  # mmdet's loader reuses the parsed file
        try:
            data_list = super().load_data_list()
        finally:
            del self.COCOAPI
        if self.check_image_files:
            self._check_image_files(data_list)
        return data_list

    def parse_data_info(self, raw_data_info: dict) -> dict | list[dict]:
        report = self.report
        if report is not None and (report.skipped_ids or report.clipped_boxes
                                   or report.kept_polygons):
            kept = []
            for ann in raw_data_info["raw_ann_info"]:
                if ann["id"] in report.skipped_ids:
                    continue
                if ann["id"] in report.clipped_boxes or ann["id"] in report.kept_polygons:
                    ann = dict(ann)
                    ann["bbox"] = report.clipped_boxes.get(ann["id"], ann["bbox"])
                    ann["segmentation"] = report.kept_polygons.get(ann["id"],
                                                                   ann.get("segmentation"))
                kept.append(ann)
            raw_data_info = dict(raw_data_info, raw_ann_info=kept)
        return super().parse_data_info(raw_data_info)

    def _check_image_files(self, data_list: list[dict]) -> None:
        if self.backend_args and self.backend_args.get("backend", "local") != "local":
            return
        missing = [info["img_path"] for info in data_list if not osp.isfile(info["img_path"])]
        if missing:
            raise FileNotFoundError(
                f"{len(missing)} of the {len(data_list)} images listed in '{self.ann_file}' are "
                f"missing, e.g. '{missing[0]}'" + (f" and '{missing[1]}'" if len(missing) > 1
                                                    else ""))

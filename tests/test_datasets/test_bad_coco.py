"""Bad COCO data: errors that name the file and the record, or counted skips.

The validator is checked on small in-memory files; ``CheckedCocoDataset`` on a generated demo COCO
set, built through mmdet's registry the way the configs build it.
"""
from __future__ import annotations

import copy
import json
import logging
from pathlib import Path

import pytest
from mmengine.logging import MMLogger
from mmengine.registry import DefaultScope

from resnext_plugin.datasets.annotations import (
    AnnotationError,
    load_coco_json,
    validate_coco_annotations,
)
from resnext_plugin.demo_data.coco import DemoCocoSpec, make_demo_coco

CLASSES = ("circle", "square", "triangle", "star")


def small_coco() -> dict:
    square = [10, 10, 30, 10, 30, 30, 10, 30]
    return dict(
        images=[dict(id=1, file_name="a.jpg", height=40, width=50),
                dict(id=2, file_name="b.jpg", height=40, width=50)],
        categories=[dict(id=1, name="circle"), dict(id=2, name="square")],
        annotations=[dict(id=i, image_id=1 + i % 2, category_id=1 + i % 2, bbox=[10, 10, 20, 20],
                          area=400.0, iscrowd=0, segmentation=[list(square)])
                     for i in range(1, 201)])


def _with(change) -> dict:
    data = small_coco()
    change(data)
    return data


def _ann(data: dict, ann_id: int) -> dict:
    return next(a for a in data["annotations"] if a["id"] == ann_id)


@pytest.mark.parametrize("change,pattern", [
    (lambda d: d.pop("annotations"), r"missing or non-list top-level key 'annotations'"),
    (lambda d: d["images"][1].pop("height"), r"images\[1\] \(id 2\): missing 'height'"),
    (lambda d: d["images"].append(dict(d["images"][0])), r"images\[2\]: duplicate image id 1"),
    (lambda d: _ann(d, 7).update(category_id=9),
     r"annotation id 7 \(annotations\[6\]\): category_id 9 is not one of the file's "
     r"categories \[1, 2\]"),
    (lambda d: _ann(d, 8).update(image_id=99), r"annotation id 8 .*image_id 99 is not an image"),
    (lambda d: _ann(d, 9).update(bbox=[1, 2, 3]), r"annotation id 9 .*bbox must be \[x, y, "),
    (lambda d: _ann(d, 9).update(bbox=[1, 2, float("nan"), 3]), r"annotation id 9 .*bbox must"),
    (lambda d: _ann(d, 10).update(segmentation="x"), r"annotation id 10 .*segmentation must be"),
    (lambda d: _ann(d, 11).update(segmentation=dict(counts="ab", size=[4, 4])),
     r"annotation id 11 .*RLE size \[4, 4\] is not the image's \[height, width\] \[40, 50\]"),
    (lambda d: d["annotations"].append(dict(d["annotations"][0])),
     r"annotation id 1 \(annotations\[200\]\): duplicate annotation id"),
])
def test_structural_faults_raise_naming_file_and_record(change, pattern):
    with pytest.raises(AnnotationError, match=pattern) as err:
        validate_coco_annotations(_with(change), "/data/x.json")
    assert str(err.value).startswith("/data/x.json: ")


def test_config_classes_missing_from_the_file_raise():
    with pytest.raises(AnnotationError, match=r"classes \['dog'\] are not categories"):
        validate_coco_annotations(small_coco(), "x.json", classes=("circle", "dog"))


@pytest.mark.parametrize("change,reason,detail", [
    (lambda d: _ann(d, 3).update(bbox=[60, 10, 20, 20]), "box outside the image",
     "bbox [60, 10, 20, 20], image 50x40"),
    (lambda d: _ann(d, 3).update(bbox=[10, 10, 0.5, 20]), "degenerate box", "bbox"),
    (lambda d: _ann(d, 3).update(area=0), "degenerate box", "bbox [10, 10, 20, 20], area 0"),
    (lambda d: _ann(d, 3).update(segmentation=[[1, 2, 3, 4]]), "invalid polygon",
     "polygon 0: 4 coordinates"),
    (lambda d: _ann(d, 3).update(segmentation=[[1, 2, 3, 4, 5]]), "invalid polygon",
     "polygon 0: 5 coordinates"),
    (lambda d: _ann(d, 3).update(segmentation=[[1, 2, 3, 4, 500, 6]]), "invalid polygon",
     "polygon 0: points outside the 50x40 image"),
])
def test_geometric_faults_are_counted_or_raise(change, reason, detail):
    data = _with(change)
    report = validate_coco_annotations(data, "x.json")
    assert report.skipped_ids == {3}
    assert report.counts()[reason] == 1
    assert f"annotation id 3 in image 'b.jpg' ({detail}" in report.summary()
    with pytest.raises(AnnotationError, match=rf"annotation id 3 .*'b.jpg'\): {reason}"):
        validate_coco_annotations(data, "x.json", on_invalid="error")


def test_boxes_past_the_border_are_clipped_and_bad_polygons_dropped():
    def change(d):
        _ann(d, 4).update(bbox=[40, 30, 20, 20])  # reaches 10 px past the right and bottom
        _ann(d, 5)["segmentation"].append([0, 0, 1, 1])  # a valid polygon stays
    report = validate_coco_annotations(_with(change), "x.json")
    assert report.num_skipped == 0
    assert report.clipped_boxes == {4: [40, 30, 10.0, 10.0]}
    assert len(report.kept_polygons[5]) == 1 and report.counts()["dropped polygon"] == 1
    # One pixel over is within the tolerance (real COCO boxes do that).
    assert not validate_coco_annotations(
        _with(lambda d: _ann(d, 4).update(bbox=[40.5, 30, 10.4, 10])), "x.json").clipped


@pytest.mark.parametrize("text,pattern", [
    ("", r"the annotation file is empty"),
    ("  \n", r"the annotation file is empty"),
    ('{"images": [', r"malformed JSON at line 1, column 13"),
    ("[1, 2]", r"expected a JSON object .* got a list"),
])
def test_empty_or_malformed_files_name_the_file(tmp_path, text, pattern):
    path = tmp_path / "instances.json"
    path.write_text(text)
    with pytest.raises(AnnotationError, match=pattern) as err:
        load_coco_json(str(path))
    assert str(path) in str(err.value)


def test_missing_annotation_file_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="COCO annotation file not found: .*nope.json"):
        load_coco_json(str(tmp_path / "nope.json"))


# ---------------------------------------------------------------- the dataset, through mmdet

@pytest.fixture(scope="module")
def coco_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("coco")
    make_demo_coco(root, DemoCocoSpec(num_train=6, num_val=4, image_size=64, seed=3))
    return root


def build_dataset(root: Path, ann: dict | None = None, dataset_type: str =
                  "resnext_plugin.CheckedCocoDataset", **kwargs):
    from mmdet.registry import DATASETS

    ann_file = root / "annotations" / "instances_train2017.json"
    if ann is not None:
        ann_file = root / "annotations" / "edited.json"
        ann_file.write_text(json.dumps(ann))
    kwargs.setdefault("pipeline", [])
    cfg = dict(type=dataset_type, data_root=str(root), ann_file=str(ann_file),
               data_prefix=dict(img="train2017/"), metainfo=dict(classes=CLASSES),
               filter_cfg=dict(filter_empty_gt=True, min_size=32), **kwargs)
    with DefaultScope.overwrite_default_scope("mmdet"):
        return DATASETS.build(copy.deepcopy(cfg))


def train_json(root: Path) -> dict:
    return json.loads((root / "annotations" / "instances_train2017.json").read_text())


def test_clean_data_loads_exactly_as_mmdet_loads_it(coco_root):
    checked = build_dataset(coco_root)
    stock = build_dataset(coco_root, dataset_type="CocoDataset")
    assert type(checked).__name__ == "CheckedCocoDataset"
    assert len(checked) == len(stock) == 6
    assert [checked.get_data_info(i) for i in range(6)] == \
        [stock.get_data_info(i) for i in range(6)]
    assert checked.report.num_skipped == 0 and checked.report.num_annotations > 6


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_bad_records_are_skipped_counted_and_logged(coco_root):
    data = train_json(coco_root)
    data["annotations"][0]["bbox"] = [500, 500, 10, 10]
    bad_image = data["annotations"][0]["image_id"]
    before = sum(a["image_id"] == bad_image for a in data["annotations"])
    logger, records = MMLogger.get_current_instance(), _Records()
    logger.addHandler(records)
    try:
        dataset = build_dataset(coco_root, data, max_invalid_fraction=0.5)
    finally:
        logger.removeHandler(records)
    assert dataset.report.counts()["box outside the image"] == 1
    logged = "\n".join(records.messages)
    assert "1 skipped" in logged
    assert "box outside the image: 1, e.g. annotation id" in logged
    info = next(dataset.get_data_info(i) for i in range(len(dataset))
                if dataset.get_data_info(i)["img_id"] == bad_image)
    assert len(info["instances"]) == before - 1


def test_too_many_bad_records_mean_a_broken_conversion(coco_root):
    data = train_json(coco_root)
    for ann in data["annotations"]:  # [x1, y1, x2, y2] written where [x, y, w, h] belongs
        x, y, w, h = ann["bbox"]
        ann["bbox"] = [x + w, y + h, x + w, y + h]
    with pytest.raises(AnnotationError, match=r"annotations are skipped or clipped, more than "
                                              r"max_invalid_fraction=0.01"):
        build_dataset(coco_root, data)


def test_category_out_of_range_raises_through_mmdet(coco_root):
    data = train_json(coco_root)
    data["annotations"][2]["category_id"] = 77
    ann_id = data["annotations"][2]["id"]
    with pytest.raises(AnnotationError, match=rf"edited.json: annotation id {ann_id} "
                                              r".*category_id 77"):
        build_dataset(coco_root, data)


def test_error_mode_raises_on_an_invalid_polygon(coco_root):
    data = train_json(coco_root)
    data["annotations"][1]["segmentation"] = [[1, 2, 3, 4]]
    with pytest.raises(AnnotationError, match=r"invalid polygon: polygon 0: 4 coordinates"):
        build_dataset(coco_root, data, on_invalid="error")


def test_missing_image_file_is_named(coco_root, tmp_path):
    data = train_json(coco_root)
    data["images"][0]["file_name"] = "gone.jpg"
    with pytest.raises(FileNotFoundError, match=r"1 of the 6 images listed in .*edited.json' "
                                                r"are missing, e.g. '.*train2017/gone.jpg'"):
        build_dataset(coco_root, data)


def test_empty_annotation_file_through_mmdet(coco_root):
    (coco_root / "annotations" / "empty.json").write_text("")
    from mmdet.registry import DATASETS
    with DefaultScope.overwrite_default_scope("mmdet"), \
            pytest.raises(AnnotationError, match=r"empty.json: the annotation file is empty"):
        DATASETS.build(dict(type="resnext_plugin.CheckedCocoDataset", data_root=str(coco_root),
                            ann_file="annotations/empty.json", pipeline=[],
                            data_prefix=dict(img="train2017/")))


def test_bad_arguments_are_named(coco_root):
    with pytest.raises(ValueError, match="`on_invalid` must be 'skip' or 'error'"):
        build_dataset(coco_root, on_invalid="ignore")


def test_a_corrupt_image_in_the_demo_pipeline_is_named(coco_root, tmp_path):
    """The demo detection config loads images with StrictLoadImageFromFile: a truncated JPEG
    stops the data pipeline with the file's name."""
    import shutil

    from mmengine.config import Config

    from resnext_plugin.datasets import CorruptImageError

    root = tmp_path / "coco"
    shutil.copytree(coco_root, root)
    victim = sorted((root / "train2017").glob("*.jpg"))[0]
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    cfg = Config.fromfile(str(Path(__file__).resolve().parents[2] /
                              "configs/demo/mask-rcnn_resnext50-32x4d_fpn_demo.py"))
    dataset = build_dataset(root, pipeline=cfg.train_pipeline)
    index = next(i for i in range(len(dataset))
                 if dataset.get_data_info(i)["img_path"].endswith(victim.name))
    with DefaultScope.overwrite_default_scope("mmdet"), \
            pytest.raises(CorruptImageError, match=rf"corrupt image file '.*{victim.name}'"):
        dataset[index]

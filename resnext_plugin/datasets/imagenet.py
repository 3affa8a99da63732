"""``resnext_plugin.CheckedImageNet``: mmpretrain's ``ImageNet`` that explains a missing data root.

Before anything else it checks that the data root, the split folder and the annotation file exist,
and otherwise raises a :class:`~resnext_plugin.datasets.errors.DataNotFoundError` (a
``FileNotFoundError``) naming the path, the expected layout and how to make the demo data set;
every annotation record is checked (file, line, label range) before mmpretrain parses them.
"""
from __future__ import annotations

import os.path as osp
from typing import Optional

from mmpretrain.datasets import ImageNet

from ..registry import DATASETS
from .annotations import validate_classification_annotations
from .errors import DataNotFoundError

DEMO_COMMAND = "make demo  (or: python tools/make_demo_imagenet.py --out data/demo_imagenet)"
IMAGENET_LAYOUT = """\
    {root}/
    ├── train/<class>/<image>.JPEG   (or train/<image>.JPEG listed in meta/train.txt)
    ├── val/<class>/<image>.JPEG     (or val/<image>.JPEG listed in meta/val.txt)
    └── meta/
        ├── train.txt                lines '<path relative to train/> <label 0..999>'
        └── val.txt                  lines '<path relative to val/> <label 0..999>'"""


def _missing(what: str, path: str, root: str) -> DataNotFoundError:
    return DataNotFoundError(
        f"ImageNet {what} not found: '{path}' (absolute: {osp.abspath(path)}).\n"
        f"Expected mmpretrain's ImageNet layout:\n{IMAGENET_LAYOUT.format(root=root)}\n"
        "Download ImageNet-1k from https://image-net.org and arrange it like that (or link it "
        "there), or set the data root with --cfg-options "
        "train_dataloader.dataset.data_root=... val_dataloader.dataset.data_root=... "
        "test_dataloader.dataset.data_root=...\n"
        f"For a small generated stand-in, run: {DEMO_COMMAND}\n"
        "and train configs/demo/resnext50_32x4d_imagenet_demo.py.")


def check_imagenet_layout(data_root: str, split: str = "", data_prefix: str = "",
                          ann_file: str = "") -> None:
    """Raise :class:`DataNotFoundError` (path, expected layout, demo command) if data is missing.

    Args:
        data_root: The data set root, e.g. ``'data/imagenet'``.
        split: ``'train'``, ``'val'`` or ``'test'`` (``''`` when ``data_prefix`` is given).
        data_prefix: Image folder relative to ``data_root``; defaults to ``split``.
        ann_file: Annotation file relative to ``data_root``; ``''`` uses ``meta/{split}.txt``
            when it exists, else the class folders.
    """
    if data_root and not osp.isdir(data_root):
        raise _missing("data root", data_root, data_root)
    prefix = data_prefix if isinstance(data_prefix, str) and data_prefix else split
    if prefix:
        image_dir = osp.join(data_root, prefix)
        if not osp.isdir(image_dir):
            raise _missing(f"image folder of split '{split or prefix}'", image_dir,
                           data_root or ".")
    if ann_file:
        path = osp.join(data_root, ann_file)
        if not osp.isfile(path):
            raise _missing("annotation file", path, data_root or ".")


@DATASETS.register_module()
class CheckedImageNet(ImageNet):
    """mmpretrain's ``ImageNet`` with :func:`check_imagenet_layout` run first and every
    annotation record validated.

    Arguments are those of ``mmpretrain.datasets.ImageNet``.
    """

    def __init__(self, data_root: str = "", split: str = "", data_prefix: str | dict = "",
                 ann_file: str = "", metainfo: Optional[dict] = None, **kwargs) -> None:
        check_imagenet_layout(data_root, split, data_prefix if isinstance(data_prefix, str)
                              else "", ann_file)
        super().__init__(data_root=data_root, split=split, data_prefix=data_prefix,
                         ann_file=ann_file, metainfo=metainfo, **kwargs)

    def load_data_list(self) -> list:
        """mmpretrain's parsing, after every annotation record was checked (file, line, label
        range): see :func:`.annotations.validate_classification_annotations`.
        """
        classes = self.metainfo.get("classes")
        if self.ann_file and classes:
            validate_classification_annotations(self.ann_file, len(classes))
        return super().load_data_list()

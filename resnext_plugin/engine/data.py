"""Data checks: an ImageNet dataset that explains a missing data root, and a strict image loader.

* ``resnext_plugin.CheckedImageNet``: mmpretrain's ``ImageNet`` that, before anything else, checks
  that the data root, the split folder and the annotation file exist, and otherwise raises a
  :class:`DataNotFoundError` (a ``FileNotFoundError``) naming the path, the expected layout and
  how to make the demo data set.
* ``resnext_plugin.StrictLoadImageFromFile``: mmcv's ``LoadImageFromFile``, except that a truncated
  or undecodable file raises :class:`CorruptImageError` naming the file and the reason. mmcv's own
  loader ends in ``assert img is not None`` (gone under ``python -O``, and then the next transform
  fails without a file name); and whether a truncated JPEG decodes to ``None`` or to a partly grey
  image depends on the decoder (OpenCV 5.0 here gives ``None``; Pillow with
  ``LOAD_TRUNCATED_IMAGES`` decodes it), so the container is checked first. Bit errors inside the
  compressed data cannot be detected without a checksum and still decode.
  An input that is already an image array (no ``img_path``: mmpretrain's inference APIs)
  passes through, so the configs work with ``ImageClassificationInferencer``/``inference_model``.

Both live in the plugin's own ``DATASETS`` and ``TRANSFORMS`` registries (scope
``resnext_plugin``, children of mmengine's roots), so mmpretrain and mmdet configs address them as
``type='resnext_plugin.CheckedImageNet'`` and ``type='resnext_plugin.StrictLoadImageFromFile'``.
"""
from __future__ import annotations

import os.path as osp
from typing import Optional

import mmcv
import numpy as np
from mmcv.transforms import LoadImageFromFile
from mmengine import fileio
from mmpretrain.datasets import ImageNet

from ..registry import DATASETS, TRANSFORMS
from .annotations import validate_classification_annotations

DEMO_COMMAND = "make demo  (or: python tools/make_demo_imagenet.py --out data/demo_imagenet)"
IMAGENET_LAYOUT = """\
    {root}/
    ├── train/<class>/<image>.JPEG   (or train/<image>.JPEG listed in meta/train.txt)
    ├── val/<class>/<image>.JPEG     (or val/<image>.JPEG listed in meta/val.txt)
    └── meta/
        ├── train.txt                lines '<path relative to train/> <label 0..999>'
        └── val.txt                  lines '<path relative to val/> <label 0..999>'"""


class CorruptImageError(OSError):
    """An image file that cannot be decoded completely."""


class DataNotFoundError(FileNotFoundError):
    """The data set (root, split folder or annotation file) is not where the config says."""


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
        range): see :func:`~resnext_plugin.engine.annotations.validate_classification_annotations`.
        """
        classes = self.metainfo.get("classes")
        if self.ann_file and classes:
            validate_classification_annotations(self.ann_file, len(classes))
        return super().load_data_list()


def find_image_corruption(content: bytes) -> Optional[str]:
    """Why ``content`` is not a complete image file, or ``None`` when nothing is found.

    Checks the container, not every pixel: an empty file, a JPEG whose end-of-image marker does
    not follow its last scan (a truncated file), a PNG without its closing ``IEND`` chunk.
    """
    if not content:
        return "the file is empty"
    if content[:2] == b"\xff\xd8":
        # Entropy-coded data escapes 0xFF, so FFDA/FFD9 only occur as markers; an EXIF thumbnail
        # has its own scan and end marker earlier in the file.
        last_scan, last_end = content.rfind(b"\xff\xda"), content.rfind(b"\xff\xd9")
        if last_scan < 0:
            return "JPEG without image data (no start-of-scan marker)"
        if last_end < last_scan:
            return "truncated JPEG (no end-of-image marker after the image data)"
    elif content[:8] == b"\x89PNG\r\n\x1a\n" and b"IEND" not in content[-16:]:
        return "truncated PNG (no IEND chunk at the end)"
    return None


@TRANSFORMS.register_module()
class StrictLoadImageFromFile(LoadImageFromFile):
    """``LoadImageFromFile`` that raises :class:`CorruptImageError` naming a corrupt file.

    Arguments are those of ``mmcv.transforms.LoadImageFromFile``; with ``ignore_empty=True`` a
    missing or corrupt file gives ``None`` (the sample is skipped), as in mmcv.

    Results that carry an ``img`` array and no ``img_path`` (what mmpretrain's
    ``ImageClassificationInferencer`` and ``inference_model`` feed: they decode the image
    themselves and keep the first transform unless it is named ``LoadImageFromFile``) pass
    through with ``img_shape`` and ``ori_shape`` set as mmcv's loader sets them.
    """

    def transform(self, results: dict) -> Optional[dict]:
        if results.get("img_path") is None and "img" in results:
            return self._pass_array_through(results)
        if "img_path" not in results:
            raise KeyError(f"{type(self).__name__} needs 'img_path' (an image file) or 'img' (a "
                           f"decoded image array) in its input, got keys {sorted(results)}")
        filename = results["img_path"]
        try:
            content = fileio.get(filename, backend_args=self.backend_args)
        except Exception as err:
            if self.ignore_empty:
                return None
            raise FileNotFoundError(f"cannot read image file '{filename}': {err}") from err
        reason = find_image_corruption(content)
        img = None
        if reason is None:
            try:
                img = mmcv.imfrombytes(content, flag=self.color_type,
                                       backend=self.imdecode_backend)
            except Exception as err:  # the decoders raise many types
                reason = f"{type(err).__name__}: {err}"
            if img is None and reason is None:
                reason = f"the {self.imdecode_backend} decoder could not decode it"
        if reason is not None:
            if self.ignore_empty:
                return None
            raise CorruptImageError(f"corrupt image file '{filename}': {reason}")
        if self.to_float32:
            img = img.astype(np.float32)
        results["img"] = img
        results["img_shape"] = img.shape[:2]
        results["ori_shape"] = img.shape[:2]
        return results

    def _pass_array_through(self, results: dict) -> dict:
        """An already decoded image: checked, converted as ``to_float32`` asks, shapes set."""
        img = results["img"]
        if not isinstance(img, np.ndarray):
            raise TypeError(f"{type(self).__name__}: 'img' must be a numpy array (H, W, C) when "
                            f"no 'img_path' is given, got {type(img).__name__}")
        if img.ndim not in (2, 3) or (self.color_type == "color" and
                                      (img.ndim != 3 or img.shape[2] != 3)):
            expected = "(H, W, 3)" if self.color_type == "color" else "(H, W) or (H, W, C)"
            raise ValueError(f"{type(self).__name__}: 'img' must be an {expected} array for "
                             f"color_type={self.color_type!r}, got shape {img.shape}")
        if self.to_float32:
            img = img.astype(np.float32)
        results["img"] = img
        results["img_shape"] = img.shape[:2]
        results["ori_shape"] = img.shape[:2]
        return results

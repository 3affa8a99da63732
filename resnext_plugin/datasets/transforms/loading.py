"""``resnext_plugin.StrictLoadImageFromFile``: mmcv's ``LoadImageFromFile`` naming a corrupt file.

A truncated or undecodable file raises
:class:`~resnext_plugin.datasets.errors.CorruptImageError` naming the file and the reason. mmcv's
own loader ends in ``assert img is not None`` (gone under ``python -O``, and then the next
transform fails without a file name); and whether a truncated JPEG decodes to ``None`` or to a
partly grey image depends on the decoder (OpenCV 5.0 here gives ``None``; Pillow with
``LOAD_TRUNCATED_IMAGES`` decodes it), so the container is checked first. Bit errors inside the
compressed data cannot be detected without a checksum and still decode. An input that is already
an image array (no ``img_path``: mmpretrain's inference APIs) passes through, so the configs work
with ``ImageClassificationInferencer``/``inference_model``.
"""
from __future__ import annotations

from typing import Optional

import mmcv
import numpy as np
from mmcv.transforms import LoadImageFromFile
from mmengine import fileio

from ...registry import TRANSFORMS
from ..errors import CorruptImageError


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
        return self._store(results, img)

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
        return self._store(results, img)

    def _store(self, results: dict, img: np.ndarray) -> dict:
        """``img`` into ``results`` (float32 if asked), with its shape as both shapes."""
        if self.to_float32:
            img = img.astype(np.float32)
        results["img"] = img
        results["img_shape"] = img.shape[:2]
        results["ori_shape"] = img.shape[:2]
        return results

"""ImageNet layout checks, image corruption detection and the strict image loader."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from resnext_plugin.datasets import (
    CorruptImageError,
    DataNotFoundError,
    check_imagenet_layout,
    find_image_corruption,
)


# ------------------------------------------------------------------------------- data checks
def test_check_imagenet_layout_names_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError) as err:
        check_imagenet_layout(str(tmp_path / "imagenet"), "train")
    message = str(err.value)
    assert str(tmp_path / "imagenet") in message and "meta/" in message
    assert "tools/make_demo_imagenet.py" in message and "make demo" in message
    (tmp_path / "imagenet").mkdir()
    with pytest.raises(FileNotFoundError, match="image folder of split 'val'"):
        check_imagenet_layout(str(tmp_path / "imagenet"), "val")
    (tmp_path / "imagenet" / "val").mkdir()
    check_imagenet_layout(str(tmp_path / "imagenet"), "val")
    with pytest.raises(FileNotFoundError, match="annotation file"):
        check_imagenet_layout(str(tmp_path / "imagenet"), "val", ann_file="meta/val.txt")


def _jpeg_bytes(size: int = 24) -> bytes:
    import io

    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (size, size, 3), dtype=np.uint8)
                    ).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def test_find_image_corruption() -> None:
    good = _jpeg_bytes()
    scan = good.rfind(b"\xff\xda")
    assert find_image_corruption(good) is None
    assert "truncated JPEG" in find_image_corruption(good[: (scan + len(good)) // 2])
    assert "no start-of-scan" in find_image_corruption(good[:scan])
    assert find_image_corruption(b"") == "the file is empty"


def _build_transform(type_name: str):
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import TRANSFORMS

    init_default_scope("mmpretrain")
    return TRANSFORMS.build(dict(type=type_name))


def test_strict_loader_names_a_corrupt_file_and_why(tmp_path: Path) -> None:
    good = _jpeg_bytes()
    path = tmp_path / "cut.jpg"
    path.write_bytes(good[: (good.rfind(b"\xff\xda") + len(good)) // 2])
    strict = _build_transform("resnext_plugin.StrictLoadImageFromFile")
    with pytest.raises(CorruptImageError, match=f"corrupt image file '{path}': truncated JPEG"):
        strict(dict(img_path=str(path)))
    # A download whose second half was never written (zeros): also a truncated JPEG.
    path.write_bytes(good[: len(good) // 2] + bytes(len(good) - len(good) // 2))
    with pytest.raises(CorruptImageError, match="truncated JPEG"):
        strict(dict(img_path=str(path)))
    # Complete markers around garbage: the decoder gives up, and the error still names the file.
    path.write_bytes(b"\xff\xd8\xff\xda" + bytes(range(64)) + b"\xff\xd9")
    with pytest.raises(CorruptImageError, match=f"corrupt image file '{path}': the cv2 decoder"):
        strict(dict(img_path=str(path)))
    path.write_bytes(good)
    assert strict(dict(img_path=str(path)))["img"].shape == (24, 24, 3)
    with pytest.raises(FileNotFoundError, match="missing.jpg"):
        strict(dict(img_path=str(tmp_path / "missing.jpg")))
    # ignore_empty keeps mmcv's meaning: skip the sample.
    lenient = _build_transform("resnext_plugin.StrictLoadImageFromFile")
    lenient.ignore_empty = True
    path.write_bytes(b"")
    assert lenient(dict(img_path=str(path))) is None



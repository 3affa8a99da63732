"""The demo ImageNet generator (resnext_plugin.demo_data.imagenet) and its command line."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from resnext_plugin.demo_data.imagenet import CLASSES, DemoImageNetSpec, make_demo_imagenet

SMALL = DemoImageNetSpec(num_classes=4, train_per_class=3, val_per_class=2, image_size=24)

# ------------------------------------------------------------------------------- demo data
def test_demo_imagenet_layout_labels_and_jpegs(tmp_path: Path) -> None:
    summary = make_demo_imagenet(tmp_path, SMALL)
    assert summary["classes"] == CLASSES[:4]
    for split, per_class in (("train", 3), ("val", 2)):
        lines = (tmp_path / "meta" / f"{split}.txt").read_text().splitlines()
        assert len(lines) == 4 * per_class == summary[split]["images"]
        for line in lines:
            rel, label = line.rsplit(" ", 1)
            assert rel.split("/")[0] == CLASSES[int(label)]
            with Image.open(tmp_path / split / rel) as image:
                assert image.format == "JPEG" and image.size == (24, 24)
                assert image.mode == "RGB"
    assert (tmp_path / "meta" / "classes.txt").read_text().split() == list(CLASSES[:4])


def test_demo_imagenet_is_deterministic_per_seed(tmp_path: Path) -> None:
    def files(root: Path) -> dict[str, bytes]:
        return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.*"))}

    make_demo_imagenet(tmp_path / "a", SMALL)
    make_demo_imagenet(tmp_path / "b", SMALL)
    make_demo_imagenet(tmp_path / "c", DemoImageNetSpec(**{**SMALL.__dict__, "seed": 7}))
    a, b, c = files(tmp_path / "a"), files(tmp_path / "b"), files(tmp_path / "c")
    assert a == b
    assert a.keys() == c.keys() and a != c


def test_demo_imagenet_classes_differ_in_colour_and_orientation(tmp_path: Path) -> None:
    make_demo_imagenet(tmp_path, DemoImageNetSpec(num_classes=10, train_per_class=6,
                                                  val_per_class=1, image_size=32))

    def stats(label: int) -> tuple[np.ndarray, float]:
        images = [np.asarray(Image.open(p), dtype=np.float64)
                  for p in sorted((tmp_path / "train" / CLASSES[label]).glob("*.jpg"))]
        # Mean colour of the brightest quarter of pixels (the stripes), and how much more the
        # image varies along y than along x (horizontal stripes: > 1).
        colour = np.mean([im.reshape(-1, 3)[im.sum(-1).reshape(-1).argsort()[-256:]].mean(0)
                          for im in images], axis=0)
        ratio = np.mean([np.abs(np.diff(im.sum(-1), axis=0)).mean()
                         / np.abs(np.diff(im.sum(-1), axis=1)).mean() for im in images])
        return colour, ratio

    red_h, red_v, blue_h = stats(0), stats(1), stats(6)
    assert red_h[1] > 1.5 and red_v[1] < 1 / 1.5
    assert red_h[0][0] > red_h[0][2] + 60 and blue_h[0][2] > blue_h[0][0] + 60


@pytest.mark.parametrize("field, value", [("num_classes", 1), ("num_classes", 11),
                                          ("train_per_class", 0), ("image_size", 8),
                                          ("noise", -1.0), ("jpeg_quality", 0)])
def test_demo_imagenet_rejects_bad_spec(tmp_path: Path, field: str, value) -> None:
    with pytest.raises(ValueError, match=f"`{field}`"):
        make_demo_imagenet(tmp_path, DemoImageNetSpec(**{field: value}))


def test_make_demo_imagenet_cli(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from resnext_plugin.cli import make_demo_imagenet as cli

    out = tmp_path / "demo"
    assert cli.main(["--out", str(out), "--num-classes", "2", "--train-per-class", "2",
                     "--val-per-class", "1", "--image-size", "16"]) == 0
    printed = capsys.readouterr().out
    assert "train: 4 images" in printed and "val: 2 images" in printed
    assert len(list((out / "train").rglob("*.jpg"))) == 4
    assert cli.main(["--out", str(out), "--image-size", "4"]) == 2
    assert "`image_size`" in capsys.readouterr().err



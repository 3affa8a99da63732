"""Bad classification annotations give errors that name the file, the line and the record."""
import pytest

from resnext_plugin.datasets.annotations import AnnotationError, validate_classification_annotations


@pytest.mark.parametrize("content,pattern", [
    ("", r"has no records"),
    ("a/1.JPEG 0\nb/2.JPEG\n", r"line 2: 'b/2.JPEG': expected '<image path> <label>'"),
    ("a/1.JPEG 0\n\nb/2.JPEG x\n", r"line 3: 'b/2.JPEG x': the label 'x' is not an integer"),
    ("a/1.JPEG 3\n", r"line 1: 'a/1.JPEG 3': label 3 is outside \[0, 3\)"),
    ("a/1.JPEG -1\n", r"label -1 is outside"),
])
def test_bad_annotation_records(tmp_path, content, pattern):
    path = tmp_path / "train.txt"
    path.write_text(content)
    with pytest.raises(AnnotationError, match=pattern) as err:
        validate_classification_annotations(str(path), num_classes=3)
    assert str(path) in str(err.value)


def test_good_annotations_are_counted(tmp_path):
    path = tmp_path / "val.txt"
    path.write_text("a b/1.JPEG 0\nc.JPEG 2\n\n")  # paths may contain spaces
    assert validate_classification_annotations(str(path), num_classes=3) == 2


def test_checked_imagenet_validates_its_annotation_file(tmp_path):
    from resnext_plugin.datasets import CheckedImageNet

    (tmp_path / "train").mkdir()
    (tmp_path / "meta").mkdir()
    (tmp_path / "meta" / "train.txt").write_text("n1/a.JPEG 0\nn1/b.JPEG 1000\n")
    with pytest.raises(AnnotationError, match=r"train.txt, line 2: 'n1/b.JPEG 1000': label 1000"):
        CheckedImageNet(data_root=str(tmp_path), split="train")

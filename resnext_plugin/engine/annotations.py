"""Validation of classification annotation files (``meta/train.txt``: ``<path> <label>``).

mmpretrain splits each line with ``rsplit(' ', 1)`` and ``int()``: a line without a label fails
with "not enough values to unpack" and no file name, and a label outside the class range passes
until the loss indexes past the logits. :func:`validate_classification_annotations` names the
file, the line number and the record instead.
"""
from __future__ import annotations

import os


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

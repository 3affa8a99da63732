"""CIFAR-10 / CIFAR-100 that name what is wrong with the files, and read generated stand-ins.

mmpretrain's ``CIFAR10`` and ``CIFAR100`` compare every file with the MD5 sum of the official
release; when one differs or is missing they download the archive again (``download=True``) or
stop with "Cannot find CIFAR10 dataset", without saying which file. Here:

* ``verify_checksums=True`` (the default, and the paper configs'): a file that is present but
  differs from the official release stops the run naming the file and the expected MD5 (it is not
  silently replaced by a download); missing files are downloaded as mmpretrain does, or, with
  ``download=False``, named in a :class:`~resnext_plugin.datasets.errors.DataNotFoundError` with the
  expected layout.
* ``verify_checksums=False``: for data in the official format but with other contents (the
  generated stand-ins of :mod:`resnext_plugin.demo_data.cifar`, a subset). The MD5 entries are
  dropped (mmpretrain skips a file whose MD5 is ``None``) and each file of the split is checked
  instead: a pickle of plain data only (no code: a file that would import anything but numpy's
  array reconstruction is refused before mmpretrain unpickles it), ``data`` a ``uint8`` array of
  shape (N, 3072), N labels in range. Any problem is raised naming the file.

Registered in the plugin's ``DATASETS`` as ``resnext_plugin.CheckedCIFAR10`` and
``resnext_plugin.CheckedCIFAR100``; configs import :mod:`resnext_plugin.datasets`.
"""
from __future__ import annotations

import io
import pickle
from typing import Any

import numpy as np
from mmengine import fileio
from mmpretrain.datasets import CIFAR10, CIFAR100
from mmpretrain.datasets.utils import check_md5

from ..registry import DATASETS
from .errors import DataNotFoundError

DEMO_COMMAND = "python tools/make_demo_cifar.py --out data/demo_cifar10 --dataset cifar10"
PIXELS = 3 * 32 * 32
#: The only globals a CIFAR pickle needs: numpy's array reconstruction, and ``_codecs.encode``,
#: with which Python 3 writes bytes at pickle protocol 2 (torch's weights-only loader allows it
#: too).
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
}


class CifarFileError(ValueError):
    """A CIFAR file that is present but not what the data set expects."""


class _PlainDataUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(
                f"refers to '{module}.{name}'; a CIFAR file holds only arrays, lists and strings")
        return super().find_class(module, name)


def load_plain_pickle(data: bytes) -> Any:
    """Unpickle ``data`` allowing no globals but those of ``_ALLOWED_GLOBALS`` (latin-1 strings,
    as the Python 2 pickles of the official release need)."""
    return _PlainDataUnpickler(io.BytesIO(data), encoding="latin1").load()


class _CheckedCifarMixin:
    """The checks, shared by the CIFAR-10 and CIFAR-100 classes below."""

    def __init__(self, *args: Any, verify_checksums: bool = True, **kwargs: Any) -> None:
        if not isinstance(verify_checksums, bool):
            raise TypeError(f"{type(self).__name__}: `verify_checksums` must be True or False, "
                            f"got {verify_checksums!r}")
        self.verify_checksums = verify_checksums
        if not verify_checksums:  # mmpretrain skips the MD5 of an entry whose sum is None
            self.train_list = [[name, None] for name, _ in type(self).train_list]
            self.test_list = [[name, None] for name, _ in type(self).test_list]
        super().__init__(*args, **kwargs)

    def _folder(self) -> str:
        return fileio.join_path(self.data_prefix["root"], self.base_folder)

    def _split_files(self) -> list[str]:
        entries = self.test_list if self.test_mode else self.train_list
        return [name for name, _ in entries]

    def _layout(self) -> str:
        names = [name for name, _ in type(self).train_list + type(self).test_list]
        return "\n".join(f"    {self._folder()}/{name}" for name in names)

    def load_data_list(self) -> list[dict]:
        """Check the files as the module docstring says, then let mmpretrain read them."""
        folder = self._folder()
        official = type(self).train_list + type(self).test_list
        missing = [name for name, _ in official
                   if not fileio.exists(fileio.join_path(folder, name))]
        if missing and not self.download:
            raise DataNotFoundError(
                f"{type(self).__name__}: missing {', '.join(missing)} in '{folder}'.\n"
                f"Expected the files of {self.url} unpacked there:\n{self._layout()}\n"
                "Set download=True to fetch and verify them, or set the data root with "
                "--cfg-options train_dataloader.dataset.data_root=... "
                "val_dataloader.dataset.data_root=... test_dataloader.dataset.data_root=...\n"
                f"For a small generated stand-in (with verify_checksums=False): {DEMO_COMMAND}")
        if not missing:
            if self.verify_checksums:
                self._check_official(folder, official)
            else:
                for name in self._split_files():
                    self._check_contents(fileio.join_path(folder, name))
        return super().load_data_list()

    def _check_official(self, folder: str, official: list) -> None:
        altered = [name for name, md5 in official
                   if not check_md5(fileio.join_path(folder, name), md5)]
        if altered:
            raise CifarFileError(
                f"{type(self).__name__}: {', '.join(altered)} in '{folder}' differ from the "
                f"official release of {self.url} (expected MD5: "
                f"{', '.join(f'{n} {m}' for n, m in official if n in altered)}). A generated or "
                "modified data set in this format needs verify_checksums=False; a damaged "
                "download: delete the folder and run again with download=True.")

    def _check_contents(self, path: str) -> None:
        try:
            entry = load_plain_pickle(fileio.get(path))
        except Exception as err:  # any unpickling failure means the same thing here
            raise CifarFileError(f"{type(self).__name__}: '{path}' is not a CIFAR batch file "
                                 f"(a pickled dict of arrays): {err}") from err
        label_key = "labels" if isinstance(entry, dict) and "labels" in entry else "fine_labels"
        if not isinstance(entry, dict) or "data" not in entry or label_key not in entry:
            keys = sorted(entry) if isinstance(entry, dict) else type(entry).__name__
            raise CifarFileError(f"{type(self).__name__}: '{path}' must be a dict with 'data' "
                                 f"and 'labels' (CIFAR-10) or 'fine_labels' (CIFAR-100); "
                                 f"got {keys}")
        data, labels = entry["data"], entry[label_key]
        if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2
                and data.shape[1] == PIXELS):
            shape = getattr(data, "shape", None)
            raise CifarFileError(f"{type(self).__name__}: '{path}': 'data' must be a uint8 array "
                                 f"of shape (N, {PIXELS}), got {type(data).__name__} "
                                 f"{getattr(data, 'dtype', '')} {shape}")
        num_classes = len(self.metainfo["classes"])
        if len(labels) != len(data):
            raise CifarFileError(f"{type(self).__name__}: '{path}' has {len(data)} images but "
                                 f"{len(labels)} '{label_key}'")
        bad = [(i, v) for i, v in enumerate(labels)
               if not isinstance(v, (int, np.integer)) or not 0 <= v < num_classes]
        if bad:
            raise CifarFileError(f"{type(self).__name__}: '{path}': '{label_key}' must be "
                                 f"integers in [0, {num_classes}); first bad: index {bad[0][0]} "
                                 f"= {bad[0][1]!r} ({len(bad)} bad)")


@DATASETS.register_module()
class CheckedCIFAR10(_CheckedCifarMixin, CIFAR10):
    """mmpretrain's ``CIFAR10`` with the checks of :mod:`resnext_plugin.datasets.cifar`.

    Args:
        verify_checksums (bool): Require the official files (MD5). ``False`` accepts other data
            in the official format after checking each file's contents. Defaults to True.
        **kwargs: mmpretrain's ``CIFAR10`` arguments (``data_root``, ``split``, ``download``,
            ``pipeline``, ...).
    """


@DATASETS.register_module()
class CheckedCIFAR100(_CheckedCifarMixin, CIFAR100):
    """mmpretrain's ``CIFAR100`` with the checks of :mod:`resnext_plugin.datasets.cifar`.

    Args:
        verify_checksums (bool): As :class:`CheckedCIFAR10`. Defaults to True.
        **kwargs: mmpretrain's ``CIFAR100`` arguments.
    """

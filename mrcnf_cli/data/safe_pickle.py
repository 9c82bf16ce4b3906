"""A pickle reader that rebuilds numpy arrays and plain Python values, and nothing else.

Plain ``pickle.load`` on a downloaded file can call any function the file names, such as
``os.system``. `load_arrays_pickle` resolves only the globals numpy needs to rebuild an ndarray,
so a file that names anything else raises DataError before any of its calls run.
"""

from __future__ import annotations

import importlib
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from mrcnf_cli.errors import DataError

# (module, name) pairs a pickled ndarray refers to. numpy 2 writes numpy._core; numpy 1 and the
# CIFAR-10 files (written by Python 2) write numpy.core. Protocol 5 pickles use _frombuffer.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): ("multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"): ("multiarray", "_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"): ("numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"): ("numeric", "_frombuffer"),
}


def _numpy_core_attribute(submodule: str, name: str) -> Any:
    # numpy 2 renamed numpy.core to numpy._core, and importing numpy.core there warns.
    try:
        module = importlib.import_module(f"numpy._core.{submodule}")
    except ImportError:
        module = importlib.import_module(f"numpy.core.{submodule}")
    return getattr(module, name)


# Exceptions that the unpickler raises on a damaged or foreign file.
_READ_ERRORS = (OSError, pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError)


class _ArrayUnpickler(pickle.Unpickler):
    def __init__(self, stream, *, path: Path):
        super().__init__(stream, encoding="bytes")
        self._path = path

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("numpy", "ndarray"):
            return np.ndarray

        if (module, name) == ("numpy", "dtype"):
            return np.dtype

        if (module, name) in _ALLOWED_GLOBALS:
            return _numpy_core_attribute(*_ALLOWED_GLOBALS[(module, name)])

        raise DataError(
            f"{self._path} refers to {module}.{name}, which a data file has no need for, so it was "
            "not loaded; pass the original data files"
        )

    def persistent_load(self, pid: Any) -> Any:
        raise DataError(
            f"{self._path} uses persistent pickle ids, which a data file has no need for; "
            "pass the original data files"
        )


def load_arrays_pickle(path: Path) -> Any:
    """Unpickle `path`, allowing numpy arrays, dtypes and plain built-in values only.

    Byte strings of Python 2 pickles stay bytes (``encoding="bytes"``), so dictionary keys of
    the CIFAR-10 batches are ``b"data"`` and ``b"labels"``.

    Raises:
        DataError: the file names any other global, or is not a readable pickle.
    """
    try:
        with open(path, "rb") as stream:
            return _ArrayUnpickler(stream, path=path).load()

    except DataError:
        raise

    except _READ_ERRORS as error:
        raise DataError(
            f"cannot read {path} as a pickled batch ({error}); pass the original data files"
        ) from None

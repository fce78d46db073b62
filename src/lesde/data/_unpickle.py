"""A restricted unpickler for the CIFAR-10 python batches.

Plain `pickle.load` runs whatever callable a file names, so a tampered or look-alike
file could execute code. The CIFAR-10 batches (pickled by Python 2's cPickle) hold only
dicts, lists, strings/bytes, ints and numpy uint8 arrays; rebuilding those needs three
globals — numpy's ``_reconstruct`` (under its numpy 1.x or 2.x module name),
``numpy.ndarray`` and ``numpy.dtype``. Copies re-pickled by Python 3 may also name
``_codecs.encode`` (how protocols ≤ 2 write bytes; admitted for latin-1 only, all it is
used for) and numpy's ``_frombuffer`` (arrays at protocol 5). Every other global is
refused before anything is called.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["UnsafePickleError", "restricted_load"]


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle names a global outside the allow-list (nothing was called)."""


def _numpy_reconstruct() -> Callable[..., Any]:
    try:  # numpy >= 2
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import _reconstruct  # type: ignore[no-redef]
    return _reconstruct


def _numpy_frombuffer() -> Callable[..., Any]:
    try:  # numpy >= 2
        from numpy._core.numeric import _frombuffer
    except ImportError:  # numpy 1.x
        from numpy.core.numeric import _frombuffer  # type: ignore[no-redef]
    return _frombuffer


def _latin1_encode(text: str, encoding: str = "utf-8") -> bytes:
    # Python 3 pickles bytes at protocol <= 2 as _codecs.encode(str, "latin1")
    if encoding.lower().replace("_", "-") not in ("latin1", "latin-1", "iso-8859-1"):
        raise UnsafePickleError(f"refusing _codecs.encode with encoding {encoding!r}")
    if not isinstance(text, str):
        raise UnsafePickleError(f"refusing _codecs.encode of {type(text).__name__}")
    return text.encode("latin-1")


_ALLOWED: dict[tuple[str, str], Callable[[], Any]] = {
    ("numpy.core.multiarray", "_reconstruct"): _numpy_reconstruct,  # numpy 1.x pickles
    ("numpy._core.multiarray", "_reconstruct"): _numpy_reconstruct,  # numpy 2.x pickles
    # numpy arrays pickled at protocol 5 (a copy re-saved by a recent Python)
    ("numpy.core.numeric", "_frombuffer"): _numpy_frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _numpy_frombuffer,
    ("numpy", "ndarray"): lambda: np.ndarray,
    ("numpy", "dtype"): lambda: np.dtype,
    ("_codecs", "encode"): lambda: _latin1_encode,
}


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: io.BufferedIOBase, source: str) -> None:
        # encoding="bytes": Python 2 str objects (all keys and names in CIFAR) load as bytes
        super().__init__(file, encoding="bytes")
        self._source = source

    def find_class(self, module: str, name: str) -> Any:
        factory = _ALLOWED.get((module, name))
        if factory is None:
            raise UnsafePickleError(
                f"refusing to load {self._source}: it names the global {module}.{name}, "
                "but a CIFAR-10 batch holds only dicts, lists, bytes and numpy arrays "
                f"(allowed globals: {', '.join(f'{m}.{n}' for m, n in _ALLOWED)}); the "
                "file is not a genuine CIFAR-10 batch and was not executed"
            )
        return factory()

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(f"refusing to load {self._source}: persistent id {pid!r}")


def restricted_load(data: bytes | io.BufferedIOBase, *, source: str = "<pickle>") -> Any:
    """Unpickle with only the globals a CIFAR-10 python batch needs.

    Args:
        data: the pickle (bytes or a binary file object).
        source: name used in error messages (e.g. the file path).

    Returns:
        The unpickled object.

    Raises:
        UnsafePickleError: the pickle names any other global (before calling anything).
        pickle.UnpicklingError, EOFError, ...: a truncated or malformed pickle.
    """
    f = io.BytesIO(data) if isinstance(data, bytes | bytearray) else data
    return _RestrictedUnpickler(f, source).load()

"""One entry point to every dataset: ``lesde.data.load(name, **options)``.

Loaders register here by name; each returns a `Dataset` whose ``provenance`` holds
what a run store needs to say which data a run saw: ``name``, ``seed``, ``source``,
``options`` and ``sha256`` checksums of the four arrays.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from lesde.data.dataset import Dataset

__all__ = ["DATASETS", "array_sha256", "available", "load", "load_data", "with_checksums"]

# name -> (module, function, defaults filled in when absent, option aliases)
# Aliases let every dataset take the generic `n_train` / `n_val` (per class) that
# `lesde train --n-per-class/--n-val-per-class` passes, besides its own names.
DATASETS: dict[str, tuple[str, str, dict[str, Any], dict[str, str]]] = {
    "geomnist": (
        "lesde.data.geomnist",
        "make_geomnist",
        # the default scale of `lesde run geomnist` (300 + 100 images per class)
        {"n_train": 300, "n_val": 100, "seed": 0},
        {"n_train_per_class": "n_train", "n_val_per_class": "n_val"},
    ),
    "digits": (
        "lesde.data.digits",
        "load_digits",
        {"seed": 0},
        {"n_train": "n_train_per_class", "n_val": "n_val_per_class"},
    ),
    "cifar10": (
        "lesde.data.cifar",
        "load_cifar10",
        {"root": None, "seed": 0},
        {"n_train": "n_train_per_class", "n_val": "n_val_per_class"},
    ),
}


def available() -> list[str]:
    """Names `load` accepts."""
    return sorted(DATASETS)


def array_sha256(x: np.ndarray) -> str:
    """SHA-256 of an array's dtype, shape and C-order bytes (hex)."""
    x = np.ascontiguousarray(x)
    h = hashlib.sha256(f"{x.dtype.str}{x.shape}".encode())
    h.update(x.reshape(-1).view(np.uint8))
    return h.hexdigest()


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def with_checksums(data: Dataset, name: str, options: Mapping[str, Any]) -> Dataset:
    """``data`` with complete provenance: name, seed, source, options and sha256.

    The loader's own provenance (source, its full options, normalisation, ...) is kept;
    ``options`` (what the caller asked for) fill in what the loader did not record.

    Returns:
        A new `Dataset` sharing the arrays, with ``provenance["sha256"]`` holding
        `array_sha256` of x_train, y_train, x_val and y_val.
    """
    prov = dict(data.provenance)
    prov["name"] = name
    prov.setdefault("seed", options.get("seed"))
    prov.setdefault("source", name)
    prov["options"] = {**_jsonable(dict(options)), **prov.get("options", {})}
    prov["sha256"] = {
        k: array_sha256(getattr(data, k)) for k in ("x_train", "y_train", "x_val", "y_val")
    }
    return dataclasses.replace(data, provenance=_jsonable(prov))


def _resolve(name: str) -> Callable[..., Dataset]:
    module, func, _, _ = DATASETS[name]
    return getattr(importlib.import_module(module), func)


def load(name: str, **options: Any) -> Dataset:
    """Load a dataset by name.

    Args:
        name: "geomnist" (`make_geomnist`), "digits" (`load_digits`) or "cifar10"
            (`load_cifar10`).
        **options: the loader's keyword options. Counts per class may be given as
            ``n_train`` / ``n_val`` for every dataset; ``seed`` defaults to 0, and
            GeoMNIST's counts to 300 / 100.

    Returns:
        The loader's `Dataset`; its ``provenance`` has name, seed, source, options and
        sha256 checksums of the arrays.

    Raises:
        ValueError: unknown name (the message lists the known ones), or an option given
            under two names.
        TypeError: an option the loader does not take.
    """
    if not isinstance(name, str):
        raise TypeError(f"`name` must be a str, got {type(name).__name__}")
    key = name.lower()
    if key not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known datasets: {', '.join(available())}")
    _, func, defaults, aliases = DATASETS[key]
    opts: dict[str, Any] = {}
    for k, v in options.items():
        target = aliases.get(k, k)
        if target in opts:
            raise ValueError(f"option {target!r} given twice (as {k!r} and {target!r})")
        opts[target] = v
    for k, v in defaults.items():
        opts.setdefault(k, v)
    loader = _resolve(key)
    try:
        data = loader(**opts)
    except TypeError as err:
        if "unexpected keyword" in str(err):
            raise TypeError(f"dataset {key!r} ({func}): {err}") from None
        raise
    return with_checksums(data, key, opts)


def load_data(name: str, options: Mapping[str, Any] | None = None) -> Dataset:
    """A dataset by name (`lesde.data.load`) or from an ``.npz`` file.

    An ``.npz`` file (read with ``allow_pickle=False``) must hold ``x_train``,
    ``y_train``, ``x_val``, ``y_val`` and ``class_names``; it lets one train on one's own
    arrays (and the tests run without the dataset generators).
    """
    options = dict(options or {})
    if str(name).endswith(".npz"):
        import zipfile

        path = Path(name)
        if not path.is_file():
            raise FileNotFoundError(f"--data {path}: no such file")
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except (zipfile.BadZipFile, EOFError, OSError, ValueError) as err:
            raise ValueError(f"--data {path}: not a readable .npz file ({err})") from err
        missing = [k for k in ("x_train", "y_train", "x_val", "y_val") if k not in arrays]
        if missing:
            raise ValueError(
                f"--data {path}: missing {', '.join(missing)} (an .npz needs x_train, "
                f"y_train, x_val, y_val and optionally class_names); found {sorted(arrays)}"
            )
        try:
            return Dataset.from_arrays(
                arrays["x_train"], arrays["y_train"], arrays["x_val"], arrays["y_val"],
                arrays.get("class_names"), provenance={"name": "npz", "path": str(path.resolve())},
            )  # fmt: skip
        except ValueError as err:
            raise ValueError(f"--data {path}: {err}") from err
    return load(name, **options)

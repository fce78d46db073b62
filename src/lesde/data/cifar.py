"""CIFAR-10 from a local copy of either official distribution (paper §4.1).

The python version (``cifar-10-batches-py/``: pickled dicts ``data_batch_1`` …
``data_batch_5``, ``test_batch``, ``batches.meta``) is read with a restricted unpickler
(`lesde.data._unpickle`), the binary version (``cifar-10-batches-bin/``: records of one
label byte and 3,072 pixel bytes in ``data_batch_1.bin`` … ``data_batch_5.bin``,
``test_batch.bin``, names in ``batches.meta.txt``) with numpy. Images are stored
channel-major (1,024 red, 1,024 green, 1,024 blue bytes, rows top to bottom).

Training images come from the five data batches and validation images from the test
batch. Nothing is downloaded unless asked (``download=True``), and then only from the
given URL with its MD5 checked before anything is extracted.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lesde.data._unpickle import UnsafePickleError, restricted_load
from lesde.data.dataset import Dataset

__all__ = [
    "CIFAR10_CLASSES",
    "CIFAR10_URLS",
    "download_cifar10",
    "find_cifar10",
    "load_cifar10",
]

CIFAR10_CLASSES: tuple[str, ...] = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip

# official tarballs and their published MD5 (https://www.cs.toronto.edu/~kriz/cifar.html)
CIFAR10_URLS: dict[str, tuple[str, str]] = {
    "python": (
        "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        "c58f30108f718f92721af3b95e74349a",
    ),
    "binary": (
        "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
        "c32a1d4ab5d03f1284b67883e8d87530",
    ),
}

_PIXELS = 3 * 32 * 32  # bytes per image
_FORMATS: dict[str, tuple[str, tuple[str, ...], str]] = {
    # format -> (directory name, required files (5 train batches + test), names file)
    "python": (
        "cifar-10-batches-py",
        tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch",),
        "batches.meta",
    ),
    "binary": (
        "cifar-10-batches-bin",
        tuple(f"data_batch_{i}.bin" for i in range(1, 6)) + ("test_batch.bin",),
        "batches.meta.txt",
    ),
}
ENV_VAR = "LESDE_DATA"

_HOW_TO = (
    "Get CIFAR-10 from https://www.cs.toronto.edu/~kriz/cifar.html (the python version "
    "cifar-10-python.tar.gz or the binary version cifar-10-binary.tar.gz), unpack it with "
    "`tar xzf FILE`, and pass the directory that holds cifar-10-batches-py/ (or -bin/) "
    f"with `--cifar-root DIR` or the environment variable {ENV_VAR}=DIR; or call "
    "load_cifar10(DIR, ..., download=True) to fetch and verify the official tarball."
)


class CifarNotFoundError(FileNotFoundError):
    """No complete CIFAR-10 copy where we looked (the message says where and how to get it)."""


def _expected() -> str:
    return "; ".join(
        f"{d}/ with {', '.join(files)}" + (f" (and {meta})" if meta else "")
        for d, files, meta in _FORMATS.values()
    )


def find_cifar10(root: str | os.PathLike | None) -> tuple[Path, str]:
    """Locate a complete CIFAR-10 copy under ``root``.

    Looks at ``root`` itself (when it is a ``cifar-10-batches-py`` or ``-bin``
    directory, or holds the batch files directly) and at ``root/cifar-10-batches-py``
    and ``root/cifar-10-batches-bin``, in that order; the python version wins when both
    are there. ``root=None`` means ``$LESDE_DATA``.

    Returns:
        (directory, format) with format "python" or "binary".

    Raises:
        CifarNotFoundError (a FileNotFoundError): no complete copy; the message lists the
            directories searched, the files expected, the ones missing and how to get them.
    """
    if root is None:
        env = os.environ.get(ENV_VAR)
        if not env:
            raise CifarNotFoundError(
                f"CIFAR-10: no data directory given and ${ENV_VAR} is not set. {_HOW_TO}"
            )
        root = env
    root = Path(root).expanduser()
    looked: list[str] = []
    for fmt, (dirname, files, _) in _FORMATS.items():
        for cand in (root, root / dirname):
            if cand == root and not (
                root.name == dirname or any((root / f).is_file() for f in files)
            ):
                continue
            missing = [f for f in files if not (cand / f).is_file()]
            if not missing:
                return cand, fmt
            if cand.is_dir():
                looked.append(f"{cand} ({fmt} version, missing {', '.join(missing)})")
            else:
                looked.append(f"{cand} (does not exist)")
    raise CifarNotFoundError(
        f"CIFAR-10 not found under {root}. Looked in: {'; '.join(dict.fromkeys(looked))}. "
        f"Expected {_expected()}. {_HOW_TO}"
    )


def _corrupt(path: Path, why: str) -> ValueError:
    return ValueError(
        f"CIFAR-10 file {path} is corrupt or not a CIFAR-10 batch: {why}. "
        f"Replace it with a fresh copy. {_HOW_TO}"
    )


def _read_python_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(data (n, 3072) uint8, labels (n,) int64) of one pickled batch, restricted."""
    try:
        with open(path, "rb") as f:
            d = restricted_load(f, source=str(path))
    except UnsafePickleError:
        raise
    except Exception as err:  # truncated or garbled pickles fail in many ways
        raise _corrupt(path, f"unpickling failed ({type(err).__name__}: {err})") from err
    if not isinstance(d, dict):
        raise _corrupt(path, f"expected a dict, found {type(d).__name__}")
    d = {k.decode("latin-1") if isinstance(k, bytes) else k: v for k, v in d.items()}
    if "data" not in d or "labels" not in d:
        raise _corrupt(path, f"expected keys b'data' and b'labels', found {sorted(d)}")
    data, labels = d["data"], np.asarray(d["labels"])
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2:
        raise _corrupt(path, "b'data' must be a 2-D uint8 array")
    if data.shape[1] != _PIXELS or labels.shape != (data.shape[0],):
        raise _corrupt(
            path,
            f"expected data (n, {_PIXELS}) and n labels, found {data.shape} and {labels.shape}",
        )
    return data, labels.astype(np.int64)


def _read_binary_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(data (n, 3072) uint8, labels (n,) int64) of one binary batch."""
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size == 0 or raw.size % (_PIXELS + 1):
        raise _corrupt(
            path, f"size {raw.size} bytes is not a positive multiple of {_PIXELS + 1} (records)"
        )
    rec = raw.reshape(-1, _PIXELS + 1)  # (n, 1 + 3072): label byte, then pixels
    return np.ascontiguousarray(rec[:, 1:]), rec[:, 0].astype(np.int64)


def _class_names(directory: Path, fmt: str) -> tuple[str, ...]:
    meta = directory / _FORMATS[fmt][2]
    if not meta.is_file():
        return CIFAR10_CLASSES
    if fmt == "binary":
        names = [ln.strip() for ln in meta.read_text(encoding="latin-1").splitlines()]
    else:
        with open(meta, "rb") as f:
            d = restricted_load(f, source=str(meta))
        names = d.get(b"label_names", d.get("label_names", [])) if isinstance(d, dict) else []
        names = [n.decode("latin-1") if isinstance(n, bytes) else str(n) for n in names]
    names = [n for n in names if n]
    return tuple(names) if len(names) == 10 else CIFAR10_CLASSES


def _read_split(directory: Path, fmt: str, files: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    read = _read_python_batch if fmt == "python" else _read_binary_batch
    parts = [read(directory / f) for f in files]
    data = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise _corrupt(directory, f"labels outside 0-9 ([{labels.min()}, {labels.max()}])")
    return data, labels


def _md5(path: Path) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def download_cifar10(
    root: str | os.PathLike, *, url: str | None = None, md5: str | None = None
) -> Path:
    """Download a CIFAR-10 tarball into ``root``, verify its MD5, unpack it safely.

    Only called on request (``load_cifar10(..., download=True)``). The tarball is
    written to ``root/<name>.part``, checked against ``md5`` and only then unpacked —
    into a temporary directory inside root, keeping only regular files and directories
    under ``cifar-10-batches-py/`` or ``cifar-10-batches-bin/`` (no links, no absolute
    or ``..`` paths), which are then moved into place.

    Args:
        root: directory to put ``cifar-10-batches-*/`` in (created if needed).
        url: tarball URL (``file://`` works); default the official python version.
        md5: expected MD5 hex digest; default the published one for the official URLs
            (required for any other URL).

    Returns:
        The directory holding the batches.

    Raises:
        ValueError: unknown URL without ``md5``, MD5 mismatch, or a tarball without
            CIFAR-10 batches.
        OSError: the download failed.
    """
    root = Path(root).expanduser()
    url = url or CIFAR10_URLS["python"][0]
    if md5 is None:
        known = {u: m for u, m in CIFAR10_URLS.values()}
        if url not in known:
            raise ValueError(f"`md5` is required for a URL other than the official ones: {url}")
        md5 = known[url]
    root.mkdir(parents=True, exist_ok=True)
    name = Path(urllib.parse.urlparse(url).path).name or "cifar-10.tar.gz"
    part = root / f"{name}.part"
    h = hashlib.md5(usedforsecurity=False)
    with urllib.request.urlopen(url, timeout=60) as resp, open(part, "wb") as f:
        for block in iter(lambda: resp.read(1 << 20), b""):
            h.update(block)
            f.write(block)
    if h.hexdigest() != md5.lower():
        part.unlink()
        raise ValueError(
            f"MD5 mismatch for {url}: expected {md5.lower()}, got {h.hexdigest()}; "
            "the download was deleted and nothing was unpacked"
        )
    tarball = root / name
    os.replace(part, tarball)
    dirnames = {d for d, _, _ in _FORMATS.values()}
    with tempfile.TemporaryDirectory(dir=root, prefix=".cifar-unpack-") as tmp:
        with tarfile.open(tarball, "r:*") as tar:
            members = []
            for m in tar.getmembers():
                parts = Path(m.name).parts
                if (
                    (m.isfile() or m.isdir())
                    and parts
                    and parts[0] in dirnames
                    and not Path(m.name).is_absolute()
                    and ".." not in parts
                ):
                    members.append(m)
            kwargs = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            tar.extractall(tmp, members=members, **kwargs)  # members vetted above
        found = [d for d in dirnames if (Path(tmp) / d).is_dir()]
        if not found:
            raise ValueError(f"{url} holds no {' or '.join(sorted(dirnames))} directory")
        for d in found:
            if (root / d).exists():
                shutil.rmtree(root / d)
            os.replace(Path(tmp) / d, root / d)
    return find_cifar10(root)[0]


def load_cifar10(
    root: str | os.PathLike | None,
    *,
    classes: Sequence[int] = (0, 1, 2),
    n_train_per_class: int = 5000,
    n_val_per_class: int = 1000,
    seed: int,
    normalize: bool = True,
    download: bool = False,
    url: str | None = None,
    md5: str | None = None,
) -> Dataset:
    """CIFAR-10 class subsets from a local copy (paper §4.1: K ∈ {2, 3} classes).

    Per class, n_train_per_class images are drawn without replacement from the five
    training batches and n_val_per_class from the test batch (``np.random.default_rng
    (seed)``, classes in the given order), kept in file order. Pixels are scaled to
    [0, 1] and, with ``normalize``, standardised per channel with the mean and
    (population) standard deviation of the **selected training images**; the same
    statistics are applied to the validation images and recorded in the provenance.

    Args:
        root: directory holding ``cifar-10-batches-py/`` or ``cifar-10-batches-bin/``
            (or one of those directories); None means ``$LESDE_DATA``.
        classes: distinct CIFAR-10 class indices 0-9, in label order
            (0 airplane, 1 automobile, 2 bird, ...).
        n_train_per_class: training images per class (≤ 5000).
        n_val_per_class: validation images per class (≤ 1000).
        seed: random seed of the selection.
        normalize: standardise per channel (else values in [0, 1]).
        download: when no copy is found, fetch the tarball (`download_cifar10`) into
            root first; never happens otherwise.
        url: tarball URL for ``download`` (default: the official python version).
        md5: its expected MD5 (default: the published one for the official URLs).

    Returns:
        `Dataset`: ``x_train`` (K·n_train_per_class, 3, 32, 32) float32, ``y_train``
        int64 positions in ``classes``, ``x_val``, ``y_val``, ``class_names`` and
        provenance (files read, format, normalisation statistics).

    Raises:
        FileNotFoundError: no complete copy (says where it looked, what is expected and
            how to get the data).
        ValueError: bad classes or counts; corrupt files; a pickle naming a forbidden
            global (`lesde.data._unpickle.UnsafePickleError`, raised before anything in
            it runs).
    """
    classes = tuple(classes)
    if not classes or any(
        isinstance(c, bool) or not isinstance(c, int | np.integer) for c in classes
    ):
        raise TypeError(f"`classes` must be a non-empty sequence of ints, got {classes!r}")
    if len(set(classes)) != len(classes) or any(not 0 <= c <= 9 for c in classes):
        raise ValueError(f"`classes` must be distinct CIFAR-10 classes 0-9, got {classes!r}")
    for name, value, lo, hi in (
        ("n_train_per_class", n_train_per_class, 1, 5000),
        ("n_val_per_class", n_val_per_class, 0, 1000),
    ):
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise TypeError(f"`{name}` must be an int, got {type(value).__name__} {value!r}")
        if not lo <= value <= hi:
            raise ValueError(f"`{name}` must be in [{lo}, {hi}], got {value}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise TypeError(f"`seed` must be an int, got {type(seed).__name__} {seed!r}")

    try:
        directory, fmt = find_cifar10(root)
    except FileNotFoundError:
        if not download:
            raise
        if root is None and not os.environ.get(ENV_VAR):
            raise
        download_cifar10(root if root is not None else os.environ[ENV_VAR], url=url, md5=md5)
        directory, fmt = find_cifar10(root)
    files = _FORMATS[fmt][1]
    data_tr, lab_tr = _read_split(directory, fmt, files[:5])
    data_va, lab_va = _read_split(directory, fmt, files[5:])

    rng = np.random.default_rng(seed)

    def select(labels: np.ndarray, n: int, split: str) -> np.ndarray:
        picks = []
        for c in classes:
            idx = np.flatnonzero(labels == c)
            if n > idx.size:
                raise ValueError(
                    f"CIFAR-10 {split} split in {directory} has {idx.size} images of class "
                    f"{c}, fewer than the {n} requested"
                )
            picks.append(np.sort(rng.choice(idx, n, replace=False)))
        return np.concatenate(picks)

    sel_tr = select(lab_tr, n_train_per_class, "training")
    sel_va = select(lab_va, n_val_per_class, "test")
    x_tr = data_tr[sel_tr].reshape(-1, 3, 32, 32).astype(np.float32) / np.float32(255)
    x_va = data_va[sel_va].reshape(-1, 3, 32, 32).astype(np.float32) / np.float32(255)
    y_tr = np.repeat(np.arange(len(classes), dtype=np.int64), n_train_per_class)
    y_va = np.repeat(np.arange(len(classes), dtype=np.int64), n_val_per_class)
    norm: dict = {"normalized": False}
    if normalize:
        mean = x_tr.mean(axis=(0, 2, 3), dtype=np.float64)  # (3,)
        std = x_tr.std(axis=(0, 2, 3), dtype=np.float64)
        std = np.where(std > 0, std, 1.0)  # a constant channel (tiny fixtures) stays finite
        m32 = mean.astype(np.float32)[None, :, None, None]
        s32 = std.astype(np.float32)[None, :, None, None]
        x_tr = (x_tr - m32) / s32
        x_va = (x_va - m32) / s32
        norm = {
            "normalized": True,
            "stats_from": "selected training images",
            "mean": mean.tolist(),
            "std": std.tolist(),
        }
    all_names = _class_names(directory, fmt)
    prov = {
        "name": "cifar10",
        "seed": int(seed),
        "source": f"CIFAR-10 {fmt} version at {directory.resolve()}",
        "format": fmt,
        "files": list(files),
        "options": {
            "classes": [int(c) for c in classes],
            "n_train_per_class": int(n_train_per_class),
            "n_val_per_class": int(n_val_per_class),
            "normalize": bool(normalize),
        },
        "normalization": norm,
    }
    return Dataset(x_tr, y_tr, x_va, y_va, tuple(all_names[c] for c in classes), prov)

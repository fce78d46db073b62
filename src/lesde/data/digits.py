"""scikit-learn's bundled handwritten digits as a small real dataset that works offline.

1,797 images of 8×8 pixels with 17 grey levels (~180 per digit), shipped inside
scikit-learn (no download). They are scaled to [0, 1] and upsampled bilinearly to
size × size (32 by default, the paper's input size), so that the same CNNs train on
them as on GeoMNIST and CIFAR-10.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lesde.data.dataset import Dataset

__all__ = ["load_digits", "upsample_bilinear"]

_SOURCE_SIZE = 8
_LEVELS = 16.0  # sklearn's digits take the integer values 0..16


def _interp_matrix(n_out: int, n_in: int) -> np.ndarray:
    """(n_out, n_in) bilinear interpolation weights, pixel centres aligned.

    Output pixel i samples the input at x = (i + ½) n_in / n_out − ½, clamped to
    [0, n_in − 1] (``align_corners=False`` in torch's terms); each row sums to 1.
    """
    x = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0.0, n_in - 1.0)
    i0 = np.floor(x).astype(int)
    i1 = np.minimum(i0 + 1, n_in - 1)
    frac = x - i0
    U = np.zeros((n_out, n_in))
    np.add.at(U, (np.arange(n_out), i0), 1.0 - frac)
    np.add.at(U, (np.arange(n_out), i1), frac)
    return U


def upsample_bilinear(images: np.ndarray, size: int) -> np.ndarray:
    """Bilinear upsampling of square images, all at once: U X Uᵀ.

    Args:
        images: (N, h, h) array.
        size: output side.

    Returns:
        (N, size, size) float32; values stay within the input's range (each output is
        a convex combination of inputs).
    """
    U = _interp_matrix(size, images.shape[-1])
    return np.matmul(np.matmul(U, images), U.T).astype(np.float32)  # (N, size, size)


def load_digits(
    *,
    classes: Sequence[int] = (0, 1, 2),
    n_train_per_class: int = 120,
    n_val_per_class: int | None = None,
    seed: int,
    size: int = 32,
) -> Dataset:
    """scikit-learn's digits: a class subset, upsampled, split into train and validation.

    Each class's images are shuffled with ``np.random.default_rng(seed)``; the first
    n_train_per_class train and the next n_val_per_class (default: all the rest)
    validate. Labels are positions in ``classes`` (class_names are the digits).

    Args:
        classes: distinct digits 0-9, in label order.
        n_train_per_class: training images per class (the smallest class has 174).
        n_val_per_class: validation images per class; None takes the rest of each class.
        seed: random seed of the split.
        size: output side in pixels (≥ 8).

    Returns:
        `Dataset`: ``x_train`` (K·n_train_per_class, 1, size, size) float32 in [0, 1],
        ``y_train`` int64 in [0, K), ``x_val``, ``y_val``, ``class_names``, provenance.

    Raises:
        TypeError: non-integer classes, counts, seed or size.
        ValueError: classes empty, repeated or outside 0-9; counts < 0 or more than a
            class holds; size < 8.
    """
    classes = tuple(classes)
    if not classes or any(
        isinstance(c, bool) or not isinstance(c, int | np.integer) for c in classes
    ):
        raise TypeError(f"`classes` must be a non-empty sequence of ints, got {classes!r}")
    if len(set(classes)) != len(classes) or any(not 0 <= c <= 9 for c in classes):
        raise ValueError(f"`classes` must be distinct digits 0-9, got {classes!r}")
    checks = [("n_train_per_class", n_train_per_class, 1), ("size", size, 8)]
    if n_val_per_class is not None:
        checks.append(("n_val_per_class", n_val_per_class, 0))
    for name, value, lo in checks:
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise TypeError(f"`{name}` must be an int, got {type(value).__name__} {value!r}")
        if value < lo:
            raise ValueError(f"`{name}` must be >= {lo}, got {value}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise TypeError(f"`seed` must be an int, got {type(seed).__name__} {seed!r}")

    from sklearn.datasets import load_digits as _sk_load_digits  # bundled, offline

    raw = _sk_load_digits()
    images, target = raw.images, raw.target  # (1797, 8, 8) floats 0..16, (1797,)
    rng = np.random.default_rng(seed)
    tr_idx, va_idx = [], []
    for c in classes:
        idx = np.flatnonzero(target == c)
        n_val = idx.size - n_train_per_class if n_val_per_class is None else n_val_per_class
        if n_train_per_class + max(n_val, 0) > idx.size or n_val < 0:
            raise ValueError(
                f"digit {c} has {idx.size} images, fewer than `n_train_per_class` "
                f"({n_train_per_class}) + `n_val_per_class` ({n_val_per_class})"
            )
        idx = rng.permutation(idx)
        tr_idx.append(idx[:n_train_per_class])
        va_idx.append(idx[n_train_per_class : n_train_per_class + n_val])

    def take(parts: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        idx = np.concatenate(parts)
        x = upsample_bilinear(images[idx] / _LEVELS, size)[:, None]  # (n, 1, size, size)
        y = np.repeat(np.arange(len(classes), dtype=np.int64), [p.size for p in parts])
        return x, y

    x_tr, y_tr = take(tr_idx)
    x_va, y_va = take(va_idx)
    prov = {
        "name": "digits",
        "seed": int(seed),
        "source": "sklearn.datasets.load_digits (bundled with scikit-learn), "
        f"8x8 upsampled bilinearly to {size}x{size}, values / 16",
        "options": {
            "classes": [int(c) for c in classes],
            "n_train_per_class": int(n_train_per_class),
            "n_val_per_class": None if n_val_per_class is None else int(n_val_per_class),
            "size": int(size),
        },
    }
    return Dataset(x_tr, y_tr, x_va, y_va, tuple(str(c) for c in classes), prov)

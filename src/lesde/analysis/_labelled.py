"""Validation shared by the analyses of labelled point clouds (separation, collapse)."""

from __future__ import annotations

from typing import Any

import numpy as np


def check_labelled(
    X: Any, y: Any, *, allow_1d: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Check features ``X`` (N, p) and labels ``y`` (N,) with at least 2 classes.

    Args:
        X: (N, p) features, N ≥ 1; with ``allow_1d`` also (N,), read as p = 1.
        y: (N,) labels.

    Returns:
        (X as float64 (N, p), y, the sorted distinct classes).

    Raises:
        ValueError: naming ``X`` or ``y``, with the expected and found shape or value.
    """
    X = np.asarray(X, dtype=float)
    if allow_1d and X.ndim == 1:
        X = X[:, None]  # (N,) -> (N, 1): p = 1
    if X.ndim != 2 or X.shape[0] == 0:
        raise ValueError(f"`X` must be (N, p) with N >= 1, got shape {X.shape}")
    if not np.all(np.isfinite(X)):
        raise ValueError("`X` must be finite")
    y = np.asarray(y)
    if y.shape != (X.shape[0],):
        raise ValueError(f"`y` must be ({X.shape[0]},) labels, got shape {y.shape}")
    classes = np.unique(y)
    if classes.size < 2:
        raise ValueError(f"`y` must contain at least 2 classes, got {classes.size}")
    return X, y, classes

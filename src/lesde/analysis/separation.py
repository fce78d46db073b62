"""Linear separability of class point clouds (docs/math.md §6, paper §3.1).

Two finite sets P, Q ⊂ R^p are *separable* when some (w, b) gives
wᵀx + b ≥ 1 on P and wᵀx + b ≤ −1 on Q (a hard margin; for finite sets this is the same
as strict separation). Sets that share a point ("touching") are therefore not separable.
K classes are separable when every pair is (the paper's definition before Theorem 3.1).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.optimize import linprog

from lesde.analysis._labelled import check_labelled

__all__ = ["pairwise_separable", "is_separable", "separable_pair"]


def separable_pair(P: np.ndarray, Q: np.ndarray) -> bool:
    """Whether point sets P (n_P, p) and Q (n_Q, p) are linearly separable.

    p = 1: exact, min P > max Q or max P < min Q. Otherwise: the direction of the mean
    difference is tried first (a sufficient certificate, exact arithmetic); when it
    fails, the feasibility LP of y(wᵀx + b) ≥ 1 is solved with HiGHS on the pair after
    centring and scaling to unit max-norm (separability is affine invariant; the scaling
    keeps HiGHS's 1e-7 feasibility tolerance meaningful when features grow exponentially).
    """
    if P.shape[1] == 1:
        return bool(P.min() > Q.max() or P.max() < Q.min())
    d = P.mean(axis=0) - Q.mean(axis=0)
    pp, qq = P @ d, Q @ d
    if pp.min() > qq.max():
        return True
    Z = np.concatenate([P, Q])
    Z = Z - Z.mean(axis=0)
    scale = np.abs(Z).max()
    if scale == 0:
        return False  # all points coincide
    Z = Z / scale
    sign = np.concatenate([np.ones(len(P)), -np.ones(len(Q))])
    # Variables (w, b); constraint −s_i (wᵀz_i + b) ≤ −1.
    A = -sign[:, None] * np.hstack([Z, np.ones((len(Z), 1))])
    res = linprog(
        np.zeros(Z.shape[1] + 1),
        A_ub=A,
        b_ub=-np.ones(len(Z)),
        bounds=(None, None),
        method="highs",
    )
    if res.status not in (0, 2):  # pragma: no cover - HiGHS on a tiny LP
        raise RuntimeError(f"separability LP failed: {res.message}")
    return res.status == 0


def pairwise_separable(X: Any, y: Any) -> np.ndarray:
    """Pairwise linear separability of the classes of ``X``.

    Args:
        X: (N, p) points (or (N,) for p = 1).
        y: (N,) labels; the classes are ``np.unique(y)`` in sorted order.

    Returns:
        (K, K) bool, entry (k, l) True when classes k and l are separable; the diagonal
        is True by convention so that ``.all()`` means "every pair separable".

    Raises:
        ValueError: on bad shapes or non-finite points.
    """
    X, y, classes = check_labelled(X, y, allow_1d=True)
    K = classes.size
    groups = [X[y == c] for c in classes]
    out = np.eye(K, dtype=bool)
    for k in range(K):
        for l in range(k + 1, K):
            out[k, l] = out[l, k] = separable_pair(groups[k], groups[l])
    return out


def is_separable(X: Any, y: Any) -> bool:
    """True when every pair of classes of ``X`` (N, p) with labels ``y`` (N,) is separable."""
    X, y, classes = check_labelled(X, y, allow_1d=True)
    groups = [X[y == c] for c in classes]
    # Early exit on the first non-separable pair.
    return all(
        separable_pair(groups[k], groups[l])
        for k in range(classes.size)
        for l in range(k + 1, classes.size)
    )

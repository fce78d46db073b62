"""Neural-collapse metrics (docs/math.md §6; Papyan, Han & Donoho 2020; paper Prop. 3.4).

For class means μ_k (K, p) and global mean μ_G = (1/K) Σ_k μ_k:

* ETF deviation = max_{k≠l} |cos(μ_k − μ_G, μ_l − μ_G) + 1/(K−1)|, 0 for a simplex
  equiangular tight frame (any scale, rotation and translation);
* norm spread = std_k ‖μ_k − μ_G‖ / mean_k ‖μ_k − μ_G‖, 0 when the centred means are
  equinorm;
* NC1 = tr(Σ_W Σ_B^†) / K, within-class variability relative to between-class.

μ_G is the mean of the class means (for balanced classes, the mean of all samples).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from lesde.analysis._labelled import check_labelled

__all__ = ["etf_deviation", "norm_spread", "neural_collapse", "CollapseMetrics"]


class CollapseMetrics(NamedTuple):
    """Output of `neural_collapse`: unpack as ``nc1, etf, spread = neural_collapse(X, y)``."""

    nc1: float
    etf_deviation: float
    norm_spread: float


def _check_means(means: Any) -> np.ndarray:
    mu = np.asarray(means, dtype=float)
    if mu.ndim < 2 or mu.shape[-2] < 2 or mu.shape[-1] < 1:
        raise ValueError(f"`means` must be (..., K, p) with K >= 2, got shape {mu.shape}")
    if not np.all(np.isfinite(mu)):
        raise ValueError("`means` must be finite")
    return mu


def etf_deviation(means: Any, *, center: bool = True) -> np.ndarray | float:
    """Deviation of class means from a simplex ETF: max_{k≠l} |cos_kl + 1/(K−1)|.

    Args:
        means: (..., K, p) class means; leading axes are batch axes (e.g. time).
        center: subtract μ_G first (the Papyan et al. definition). With ``center=False``
            the cosines of the raw vectors are used, which is the statement of Prop. 3.4
            about the normalised class means X̄^k/‖X̄^k‖ themselves.

    Returns:
        A float for (K, p) input, else an array of the batch shape. NaN where a centred
        mean is zero (the angle is undefined).
    """
    mu = _check_means(means)
    K = mu.shape[-2]
    v = mu - mu.mean(axis=-2, keepdims=True) if center else mu
    norm = np.linalg.norm(v, axis=-1, keepdims=True)  # (..., K, 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        u = v / norm
    cos = u @ np.swapaxes(u, -1, -2)  # (..., K, K)
    off = ~np.eye(K, dtype=bool)
    dev = np.abs(cos[..., off] + 1.0 / (K - 1)).max(axis=-1)
    return float(dev) if dev.ndim == 0 else dev


def norm_spread(means: Any) -> np.ndarray | float:
    """std/mean over k of ‖μ_k − μ_G‖ for (..., K, p) class means."""
    mu = _check_means(means)
    r = np.linalg.norm(mu - mu.mean(axis=-2, keepdims=True), axis=-1)  # (..., K)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = r.std(axis=-1) / r.mean(axis=-1)
    return float(out) if out.ndim == 0 else out


def neural_collapse(X: Any, y: Any) -> CollapseMetrics:
    """NC1, ETF deviation and norm spread of features ``X`` with labels ``y``.

    Args:
        X: (N, p) features.
        y: (N,) labels (at least 2 classes).

    Returns:
        `CollapseMetrics` (nc1, etf_deviation, norm_spread).

    Raises:
        ValueError: on bad shapes or values.
    """
    X, y, classes = check_labelled(X, y)
    K = classes.size
    mu = np.stack([X[y == c].mean(axis=0) for c in classes])  # (K, p)
    mu_g = mu.mean(axis=0)
    centred = X - mu[np.searchsorted(classes, y)]  # (N, p), x − μ_{y}
    sigma_w = centred.T @ centred / X.shape[0]  # (p, p)
    dm = mu - mu_g  # (K, p)
    sigma_b = dm.T @ dm / K  # (p, p)
    nc1 = float(np.trace(sigma_w @ np.linalg.pinv(sigma_b)) / K)
    return CollapseMetrics(nc1, float(etf_deviation(mu)), float(norm_spread(mu)))

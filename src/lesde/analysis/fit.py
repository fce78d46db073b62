"""Goodness of fit of simulated class means against genuine ones (paper §4.2, docs/math.md §5)."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["relative_difference"]


def relative_difference(sim: Any, real: Any, *, rescale: bool = False) -> np.ndarray:
    """Per-class relative difference RD_k(t) = ‖X̂^k − X̄^k‖ / ((‖X̂^k‖ + ‖X̄^k‖)/2).

    RD is 0 on identical inputs, symmetric in its arguments, scale-invariant
    (RD(c·a, c·b) = RD(a, b) for c ≠ 0) and lies in [0, 2]; it is defined as 0 where both
    norms are 0.

    Args:
        sim: (T, K, p) simulated class means X̂^k(t) (e.g. the mean over paths).
        real: (T, K, p) genuine class means X̄^k(t).
        rescale: PAPER-STYLE RESCALING, off by default. When True, each simulated class
            path is first multiplied by c_k = X̄^k_1(T) / X̂^k_1(T), so that its first
            coordinate matches the genuine one at the last time (our reading of paper
            §4.2: "we rescale the simulated paths such that its first coordinate is
            approximately equal to the ground truth at convergence"). The result is then
            no longer symmetric, and it hides a wrong overall scale; report it labelled
            as rescaled.

    Returns:
        (T, K) array of RD_k(t).

    Raises:
        ValueError: if the shapes differ or are not (T, K, p); if ``rescale`` meets a
            zero simulated first coordinate at the last time.
    """
    a = np.asarray(sim, dtype=float)
    b = np.asarray(real, dtype=float)
    if a.ndim != 3:
        raise ValueError(f"`sim` must be (T, K, p) class means, got shape {a.shape}")
    if b.shape != a.shape:
        raise ValueError(f"`real` must have the shape of `sim` {a.shape}, got {b.shape}")
    if not isinstance(rescale, bool):
        raise TypeError(f"`rescale` must be a bool, got {type(rescale).__name__}")
    if rescale:
        last = a[-1, :, 0]  # (K,)
        if np.any(last == 0) or not np.all(np.isfinite(last)):
            raise ValueError("`rescale` needs a finite non-zero sim[-1, k, 0] for every class")
        a = a * (b[-1, :, 0] / last)[None, :, None]
    num = np.linalg.norm(a - b, axis=-1)  # (T, K)
    den = 0.5 * (np.linalg.norm(a, axis=-1) + np.linalg.norm(b, axis=-1))  # (T, K)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)

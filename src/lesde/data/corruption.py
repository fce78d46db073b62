"""Label corruption (paper §4.2, Fig. 4; docs/math.md §7).

For each class k with n_k training samples, m_k = ⌊p_err · n_k + ½⌋ of them (round half
up) are chosen uniformly at random without replacement and relabelled with the other
K − 1 classes in equal shares: each other class receives ⌊m_k / (K − 1)⌋ of them, and
the remainder m_k mod (K − 1) goes one each to that many other classes drawn uniformly
at random. Which chosen sample gets which new label is random too. At
p_err* = (K − 1)/K every class keeps n_k/K of its own samples and gives n_k/K to each
other class: the labels carry no information about the images.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["corrupt_labels", "n_corrupted"]


def n_corrupted(n_k: int, p_err: float) -> int:
    """Number of samples of a class of n_k that `corrupt_labels` relabels.

    ⌊p_err · n_k + ½⌋ (round half up), so 0 ≤ m_k ≤ n_k and p_err = 1 relabels all.
    """
    return min(int(n_k), int(math.floor(p_err * n_k + 0.5)))


def corrupt_labels(
    y: np.ndarray, p_err: float, *, seed: int, n_classes: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Relabel a fraction p_err of each class with the other classes in equal shares.

    Args:
        y: (N,) integer labels in [0, K).
        p_err: corruption ratio in [0, 1]; p_err* = (K − 1)/K makes labels uninformative.
        seed: random seed (which samples, which remainder classes, which pairing).
        n_classes: K; inferred as ``y.max() + 1`` when None.

    Returns:
        ``(y_new, changed)``: (N,) int64 labels and (N,) bool mask of the relabelled
        samples (``y_new != y`` exactly there). Class k has exactly
        `n_corrupted`(n_k, p_err) changed samples.

    Raises:
        TypeError: non-integer labels.
        ValueError: p_err outside [0, 1] (or NaN), y not 1-D, labels outside [0, K),
            K < 2 with p_err > 0.
    """
    if isinstance(p_err, bool) or not isinstance(p_err, int | float | np.integer | np.floating):
        raise TypeError(f"`p_err` must be a number in [0, 1], got {type(p_err).__name__}")
    p_err = float(p_err)
    if not 0.0 <= p_err <= 1.0:  # also rejects NaN
        raise ValueError(f"`p_err` must lie in [0, 1], got {p_err}")
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"`y` must be 1-D (N,), got shape {y.shape}")
    if y.size and not np.issubdtype(y.dtype, np.integer):
        raise TypeError(f"`y` must hold integer labels, got dtype {y.dtype}")
    y = y.astype(np.int64)
    if n_classes is None:
        K = int(y.max()) + 1 if y.size else 0
    else:
        if isinstance(n_classes, bool) or not isinstance(n_classes, int | np.integer):
            raise TypeError(f"`n_classes` must be an int, got {type(n_classes).__name__}")
        K = int(n_classes)
    if y.size and (y.min() < 0 or y.max() >= K):
        raise ValueError(f"labels `y` must lie in [0, {K}), got [{y.min()}, {y.max()}]")
    if p_err > 0 and K < 2 and y.size:
        raise ValueError(f"`p_err` > 0 needs at least 2 classes, got K = {K}")

    rng = np.random.default_rng(seed)
    y_new = y.copy()
    changed = np.zeros(y.size, dtype=bool)
    for k in range(K):
        idx = np.flatnonzero(y == k)
        m = n_corrupted(idx.size, p_err)
        if m == 0:
            continue
        others = np.delete(np.arange(K), k)  # (K−1,)
        share = np.full(K - 1, m // (K - 1))
        share[rng.choice(K - 1, m % (K - 1), replace=False)] += 1  # remainder: random classes
        chosen = rng.choice(idx, m, replace=False)  # uniformly random samples, random order
        y_new[chosen] = np.repeat(others, share)
        changed[chosen] = True
    return y_new, changed

"""Class means X̄^k(t) from a training record: the input of every estimator (paper §4.1)."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

__all__ = [
    "class_means_from_samples",
    "class_sums_from_samples",
    "class_means_from_sums",
    "probe_class_means",
]


def class_means_from_samples(
    sample_logits: Any, sample_label: Any, steps: Any, n_classes: int, *, bin_width: int
) -> tuple[np.ndarray, np.ndarray]:
    """X̄^k(t) from the logits of the trained samples (the paper's estimate of X̄(t)).

    Args:
        sample_logits: (R, S, K) logits of the sample trained at each step (before update).
        sample_label: (R, S) its (training) label.
        steps: (S,) step index of each record.
        n_classes: K.
        bin_width: steps pooled per grid point.

    Returns:
        ``ts`` (T,) mean step of each bin and ``xbar`` (T, K, K); a bin with no sample of
        some class is dropped (warned).
    """
    x = np.asarray(sample_logits, dtype=float)
    y = np.asarray(sample_label)
    s = np.asarray(steps, dtype=float)
    if x.ndim != 3 or y.shape != x.shape[:2] or s.shape != (x.shape[1],):
        raise ValueError(
            "`sample_logits` (R, S, K), `sample_label` (R, S) and `steps` (S,) must agree, "
            f"got {x.shape}, {y.shape}, {s.shape}"
        )
    nb = x.shape[1] // bin_width
    if nb < 2:
        raise ValueError(
            f"`bin_width`={bin_width} leaves {nb} bins of {x.shape[1]} steps; need >= 2"
        )
    sums, counts = class_sums_from_samples(x, y, n_classes, bin_width=bin_width)
    ts = s[: nb * bin_width].reshape(nb, bin_width).mean(axis=1)
    ts, xbar, _ = class_means_from_sums(ts, sums, counts)
    return ts, xbar


def class_sums_from_samples(
    sample_logits: Any, sample_label: Any, n_classes: int, *, bin_width: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per-trial sums and counts of trained-sample logits per class and time bin.

    Summed over trials and divided (`class_means_from_sums`), they give the binned X̄(t)
    of `class_means_from_samples`; kept per trial, any resample of trials is a weighted
    sum (the bootstrap of `lesde.estimate.bootstrap`).

    Args:
        sample_logits: (R, S, K) logits of the sample trained at each step.
        sample_label: (R, S) its label.
        n_classes: K.
        bin_width: steps per bin (S // bin_width bins; the remainder is dropped).

    Returns:
        ``sums`` (R, nb, K_label, K_logit) and ``counts`` (R, nb, K_label).
    """
    x = np.asarray(sample_logits, dtype=float)
    y = np.asarray(sample_label)
    R, S, K = x.shape
    nb = S // bin_width
    xs = x[:, : nb * bin_width].reshape(R, nb, bin_width, K)
    ys = y[:, : nb * bin_width].reshape(R, nb, bin_width)
    onehot = (ys[..., None] == np.arange(n_classes)).astype(float)  # (R, nb, w, K_label)
    counts = onehot.sum(axis=2)  # (R, nb, K_label)
    sums = np.einsum("rbwk,rbwj->rbkj", onehot, xs)  # (R, nb, K_label, K_logit)
    return sums, counts


def class_means_from_sums(
    ts: np.ndarray, sums: np.ndarray, counts: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """X̄(t) from per-trial bin sums: bins lacking a sample of some class are dropped (warned).

    Args:
        ts: (nb,) bin times. sums: (R, nb, K, p). counts: (R, nb, K).

    Returns:
        ``ts`` and ``xbar`` (T, K, p) of the kept bins, and the (nb,) mask ``ok`` of them.
    """
    total = counts.sum(axis=0)  # (nb, K)
    ok = np.all(total > 0, axis=1)
    if not ok.all():
        warnings.warn(
            f"{int((~ok).sum())} of {ok.size} time bins lack a sample of some class; dropped",
            stacklevel=3,
        )
    with np.errstate(invalid="ignore", divide="ignore"):
        xbar = sums.sum(axis=0) / total[..., None]
    return ts[ok], xbar[ok], ok


def probe_class_means(probe_logits: Any, probe_label: Any, n_classes: int) -> np.ndarray:
    """Per-trial class means of probe logits.

    Args:
        probe_logits: (R, C, P, K) probe logits at C checkpoints.
        probe_label: (P,) probe labels.
        n_classes: K.

    Returns:
        (R, C, K, K) class means (class index, then logit).
    """
    z = np.asarray(probe_logits, dtype=float)
    lab = np.asarray(probe_label)
    out = np.stack([z[:, :, lab == k].mean(axis=2) for k in range(n_classes)], axis=2)
    return out  # (R, C, K, K)

"""Estimate A(t) = ∫α and B(t) = ∫β from class-mean dynamics (paper §4.1, docs/math.md §4).

Both estimators invert the closed forms of docs/math.md §3, which hold for a two-parameter E
and a uniform W = c·11ᵀ (c = 1/K for balanced single-sample SGD):

- I-model (H_kl = I_p, any p): the deviations X̄^k − X̄_g grow as exp(c(A − B)) and the
  grand mean X̄_g as exp(c(A + (K−1)B)).
- L-model (H_kl = d̂_l d̂_lᵀ, p = K): the margin sum S = Σ_k s_k grows as exp(c(A − B)) and
  the centred margins u = s − S/K as exp(c(A + B/(K−1))).

The inverted mode series are a ≈ A − B and b ≈ A + (K−1)B (I-model) or b ≈ A + B/(K−1)
(L-model); A and B follow by a 2×2 solve.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from lesde.closed_form import class_margins
from lesde.model import check_ts

__all__ = ["ABResult", "estimate_ab"]


@dataclass(frozen=True)
class ABResult:
    """Integrated rates estimated from class means (paper §4.1).

    Attributes:
        ts: (T,) times.
        A: (T,) Â(t) − Â(t₀), the estimate of A = ∫_{t₀}^t α.
        B: (T,) B̂(t) − B̂(t₀), the estimate of B = ∫_{t₀}^t β.
        a: (T,) first inverted mode series, an estimate of A − B (both models).
        b: (T,) second inverted mode series: A + (K−1)B (I-model) or A + B/(K−1) (L-model).
        model: "I" or "L".
        t0_index: index of the reference time t₀ in ``ts``.
        negative_fraction: fraction of the used ratios that were negative (kept through
            |·| as the paper does); a fit diagnostic, 0 for clean exponential dynamics.
        n_nan: number of time points where ``A``/``B`` are NaN (no usable ratio).
    """

    ts: np.ndarray
    A: np.ndarray
    B: np.ndarray
    a: np.ndarray
    b: np.ndarray
    model: str
    t0_index: int
    negative_fraction: float
    n_nan: int


def _log_abs_mean(ratio: np.ndarray) -> tuple[np.ndarray, int, int]:
    """Mean of log|ratio| over the last axis, over finite non-zero elements only.

    Returns the (T,) means (NaN where no element is usable), the number of used
    elements that were negative, and the number of used elements.
    """
    usable = np.isfinite(ratio) & (ratio != 0)
    safe = np.where(usable, np.abs(ratio), 1.0)  # log(1) = 0 for the left-out elements
    n_used = usable.sum(axis=-1)  # (T,)
    total = np.log(safe).sum(axis=-1)  # (T,)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n_used > 0, total / np.maximum(n_used, 1), np.nan)
    n_neg = int(np.count_nonzero(usable & (ratio < 0)))
    return mean, n_neg, int(n_used.sum())


def _check_c(W: Any, K: int) -> float:
    if W is None:
        return 1.0 / K
    if isinstance(W, bool | str) or not isinstance(W, int | float | np.number | np.ndarray | list):
        raise TypeError(f"`W` must be a number or a (K, K) array, got {type(W).__name__}")
    if np.ndim(W) == 0:
        c = float(W)
    else:
        Warr = np.asarray(W, dtype=float)
        if Warr.shape != (K, K):
            raise ValueError(f"`W` must be a scalar or ({K}, {K}), got shape {Warr.shape}")
        if not np.allclose(Warr, Warr.flat[0], rtol=1e-12, atol=0.0):
            raise ValueError(
                "`W` must be uniform (all entries equal) for the A/B inversion; "
                "use estimate_le_matrix for a general W"
            )
        c = float(Warr.flat[0])
    if not (np.isfinite(c) and c > 0):
        raise ValueError(f"`W` must be a positive finite weight, got {c}")
    return c


def estimate_ab(
    xbar: Any,
    ts: Any,
    *,
    model: str = "I",
    t0_index: int = 0,
    W: Any = None,
) -> ABResult:
    """Estimate A(t), B(t) by inverting the I-model or L-model closed form (paper §4.1).

    I-model: a = (1/c)·avg_{k,j} log|(X̄^k_j(t) − X̄_{g,j}(t)) / (X̄^k_j(t₀) − X̄_{g,j}(t₀))|,
    b = (1/c)·avg_j log|X̄_{g,j}(t) / X̄_{g,j}(t₀)|; B = (b − a)/K, A = a + B.
    L-model: a = (1/c)·log|S(t)/S(t₀)|, b = (1/c)·log(‖u(t)‖/‖u(t₀)‖);
    B = (K−1)(b − a)/K, A = a + B. With c = 1/K this is docs/math.md §4 verbatim.

    Signs and zeros (docs/math.md §4): logs take absolute values; the averages run over the
    elements whose ratio is finite and non-zero; negative ratios are kept (through |·|)
    and counted; a time point with no usable element is NaN. One warning names the
    number of NaN points and the fraction of negative ratios when either is non-zero.

    Args:
        xbar: (T, K, p) class means X̄^k(t) (averaged over trials and samples); p = K for
            the L-model.
        ts: (T,) strictly increasing times (iterations).
        model: "I" (H_kl = I_p) or "L" (H_kl = d̂_l d̂_lᵀ, logits).
        t0_index: index of the reference time t₀; early points are dominated by
            initialisation noise, so a later t₀ can be chosen. A and B are 0 at t₀.
        W: extension beyond the paper: the uniform sampling weight c (a scalar, or a
            (K, K) array with all entries equal); default 1/K (balanced SGD).

    Returns:
        An `ABResult` with ``ts``, ``A``, ``B`` (each (T,)), the mode series ``a``, ``b``
        and the diagnostics ``negative_fraction``, ``n_nan``.

    Raises:
        ValueError: on a bad shape, model, t₀ or W, naming the argument.
    """
    x = np.asarray(xbar, dtype=float)
    if x.ndim != 3:
        raise ValueError(f"`xbar` must be (T, K, p) class means, got shape {x.shape}")
    T, K, p = x.shape
    if K < 2:
        raise ValueError(f"`xbar` must have K >= 2 classes on axis 1, got K={K}")
    t = check_ts(ts)
    if t.shape != (T,):
        raise ValueError(f"`ts` must have shape ({T},) to match `xbar`, got {t.shape}")
    if model not in ("I", "L"):
        raise ValueError(f"`model` must be 'I' or 'L', got {model!r}")
    if model == "L" and p != K:
        raise ValueError(f"`model`='L' needs p == K (logits), got xbar of shape {x.shape}")
    if isinstance(t0_index, bool) or not isinstance(t0_index, int | np.integer):
        raise TypeError(f"`t0_index` must be an int, got {type(t0_index).__name__}")
    if not 0 <= t0_index < T:
        raise ValueError(f"`t0_index` must be in [0, {T}), got {t0_index}")
    c = _check_c(W, K)
    i0 = int(t0_index)

    with np.errstate(divide="ignore", invalid="ignore"):
        if model == "I":
            xg = x.mean(axis=1)  # (T, p) grand mean X̄_g
            dev = x - xg[:, None, :]  # (T, K, p) deviations X̄^k − X̄_g
            a_mean, neg_a, used_a = _log_abs_mean((dev / dev[i0]).reshape(T, K * p))
            b_mean, neg_b, used_b = _log_abs_mean(xg / xg[i0])
            a, b = a_mean / c, b_mean / c
            B = (b - a) / K
        else:
            s = class_margins(x)  # (T, K) margins s_k = d̂_kᵀ X̄^k
            S = s.sum(axis=1)  # (T,)
            u_norm = np.linalg.norm(s - S[:, None] / K, axis=1)  # (T,) ‖u‖
            a_mean, neg_a, used_a = _log_abs_mean((S / S[i0])[:, None])
            b_mean, neg_b, used_b = _log_abs_mean((u_norm / u_norm[i0])[:, None])
            a, b = a_mean / c, b_mean / c
            B = (K - 1) * (b - a) / K
        A = a + B

    n_used = used_a + used_b
    neg_frac = (neg_a + neg_b) / n_used if n_used else 0.0
    n_nan = int(np.count_nonzero(~np.isfinite(A)))
    if n_nan or neg_frac:
        warnings.warn(
            f"estimate_ab ({model}-model): {n_nan} of {T} time points have no usable ratio "
            f"(zero or non-finite; set to NaN), and {neg_frac:.1%} of the used ratios are "
            "negative (kept through |.|, as in the paper)",
            stacklevel=2,
        )
    return ABResult(
        ts=t,
        A=A,
        B=B,
        a=a,
        b=b,
        model=model,
        t0_index=i0,
        negative_fraction=float(neg_frac),
        n_nan=n_nan,
    )

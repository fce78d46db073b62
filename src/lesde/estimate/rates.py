"""Rates α̂ = dÂ/dt, β̂ = dB̂/dt by Savitzky–Golay differentiation, and tail indices.

Paper §4.1 and docs/math.md §4. The paper differentiates with scipy's Savitzky–Golay filter
(polyorder 2; windows 191/551 for plots of the rates, 21 when the rates drive a
simulation). `lesde` does the same on uniform grids and, on non-uniform grids, fits the
same local polynomials explicitly in t (see `savgol_derivative`).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from lesde.estimate._savgol import _check_window, savgol_derivative
from lesde.estimate.tail import _window, fit_tail_many, warn_unidentified
from lesde.model import check_ts

__all__ = ["estimate_rates", "tail_index", "savgol_derivative"]


def estimate_rates(
    ts: Any, A: Any, B: Any, *, window: int, polyorder: int = 2
) -> tuple[np.ndarray, np.ndarray]:
    """α̂(t) = dÂ/dt and β̂(t) = dB̂/dt by Savitzky–Golay differentiation (paper §4.1).

    Time is in the units of ``ts`` (iterations by default), so the rates are
    per-iteration coefficients. See `savgol_derivative` for uniform and non-uniform grids.

    NaN handling (NaNs come from `estimate_ab` at points with no usable ratio): leading
    and trailing NaNs are trimmed; interior NaNs are linearly interpolated in t before
    differentiating. The returned rates are NaN at every point where ``A`` or ``B`` was
    NaN (a derivative there would be invented), and one warning gives the count.

    Args:
        ts: (T,) strictly increasing times.
        A: (T,) Â(t).
        B: (T,) B̂(t).
        window: odd number of points of the local fits, polyorder < window <= number of
            points between the first and last finite value. The paper uses 191/551 for
            plots and 21 to drive simulations.
        polyorder: polynomial degree (paper: 2).

    Returns:
        (alpha_hat, beta_hat), each (T,).

    Raises:
        ValueError: on mismatched shapes, a bad window, or too few finite points.
    """
    t = check_ts(ts)
    Aa, Ba = np.asarray(A, dtype=float), np.asarray(B, dtype=float)
    if Aa.shape != t.shape or Ba.shape != t.shape:
        raise ValueError(
            f"`A` and `B` must each have shape ({t.size},) to match `ts`, "
            f"got {Aa.shape} and {Ba.shape}"
        )
    AB = np.stack([Aa, Ba], axis=1)  # (T, 2)
    bad = ~np.all(np.isfinite(AB), axis=1)  # (T,)
    good_idx = np.flatnonzero(~bad)
    if good_idx.size == 0:
        raise ValueError("`A` and `B` have no point where both are finite")
    lo, hi = good_idx[0], good_idx[-1] + 1  # trimmed core [lo, hi)
    _check_window(window, polyorder, hi - lo)
    core_t = t[lo:hi]
    core = AB[lo:hi].copy()  # (Tc, 2)
    core_bad = bad[lo:hi]
    if core_bad.any():
        for j in range(2):
            core[core_bad, j] = np.interp(core_t[core_bad], core_t[~core_bad], core[~core_bad, j])
    d = savgol_derivative(core_t, core, window=window, polyorder=polyorder)  # (Tc, 2)
    out = np.full((t.size, 2), np.nan)
    out[lo:hi] = d
    out[bad] = np.nan
    n_bad = int(bad.sum())
    if n_bad:
        warnings.warn(
            f"estimate_rates: {n_bad} of {t.size} points of A/B are NaN; rates are NaN there "
            "(interior gaps were interpolated linearly to differentiate their neighbours)",
            stacklevel=2,
        )
    return out[:, 0], out[:, 1]


def _default_window(t: np.ndarray) -> tuple[float, float]:
    """The last 1000 iterations or the last 10% of the time span, whichever is shorter."""
    span = min(1000.0, 0.1 * (t[-1] - t[0]))
    return t[-1] - span, t[-1]


def tail_index(
    ts: Any, series: Any, *, t_range: tuple[float, float] | None = None, method: str = "fit"
) -> float:
    """Tail index r̂ of a rate from its integral, e.g. r̂_α from Â(t) (paper §4.1).

    If α(t) ~ c·t^{−s} then r̂ → s; separation is predicted iff r_γ < 1 (Theorem 3.1).

    - ``method="fit"`` (default): least-squares fit of A(t) ≈ a + c·((1+t)^{1−s} − 1)/(1−s)
      on the window (`lesde.estimate.tail.tail_fit`, which also gives an interval). Valid
      for s < 1, s = 1 and s > 1, insensitive to the reference offset of A (a absorbs it).
      Warns when the data do not identify s (its interval reaches the search bounds
      [−1, 5]). Default window: the last 3/4 of the time span.
    - ``method="slope"``: r̂ = 1 − (least-squares slope of log|A| against log(1 + t)).
      It saturates: for s > 1 A converges and r̂ → 1 from below, so s > 1 is never
      detected (on ∫₀ᵗ(1+u)^{−s}du over [0, 10⁵]: 0.99 / 1.00 / 1.00 for s = 1.1 / 1.5 / 2),
      and an offset in A (Â measured from t₀ > 0) biases it down.
    - ``method="paper"``: r̂ = 1 − avg_{T₁ ≤ t ≤ T₂} log|A(t)| / log(1 + t), the paper's
      formula. It approaches s only as fast as log C / log t vanishes and saturates below
      1 as well (0.44 / 0.67 / 0.71 / 0.72 for s = 0.5 / 0.9 / 1.1 / 2 on the grid above).
      Default window of slope and paper: the last 1000 iterations or the last 10% of the
      span, whichever is shorter (the paper's last 1000 of 10⁵ iterations).

    With log|·| a mostly negative series needs no sign flip. Points where A is not finite
    (and, for slope/paper, zero) are left out.

    Args:
        ts: (T,) strictly increasing times (iterations; log(1 + t) needs t > −1).
        series: (T,) the integrated rate (Â, B̂, or Â − B̂ for γ).
        t_range: (T₁, T₂), the window; default as above, per method.
        method: "fit" (default), "slope" or "paper".

    Returns:
        r̂ as a float (NaN if too few usable points; a warning says so).

    Raises:
        ValueError: on a bad shape, method or window.
    """
    t = check_ts(ts)
    y = np.asarray(series, dtype=float)
    if y.shape != t.shape:
        raise ValueError(f"`series` must have shape {t.shape} to match `ts`, got {y.shape}")
    if method not in ("fit", "slope", "paper"):
        raise ValueError(f"`method` must be 'fit', 'slope' or 'paper', got {method!r}")
    if t[0] <= -1:
        raise ValueError(f"`ts` must be > -1 for log(1 + t), got ts[0]={t[0]}")
    if method == "fit":
        fit = fit_tail_many(t, y[None, :], t_range=t_range)[0]
        if fit is None:
            warnings.warn(
                f"tail_index: fewer than 4 usable points (or a constant series) in "
                f"t_range={t_range}; returning NaN",
                stacklevel=2,
            )
            return float("nan")
        warn_unidentified(fit, stacklevel=3)
        return fit.s
    t1, t2 = _window(t, t_range, default=_default_window)
    sel = (t >= t1) & (t <= t2) & np.isfinite(y) & (y != 0)
    # log(1 + t) = 0 at t = 0 would divide by zero in the paper formula
    sel &= t > 0 if method == "paper" else True
    if np.count_nonzero(sel) < 2:
        warnings.warn(
            f"tail_index: fewer than two usable points in t_range=({t1}, {t2}); returning NaN",
            stacklevel=2,
        )
        return float("nan")
    logy = np.log(np.abs(y[sel]))
    logt = np.log1p(t[sel])
    if method == "paper":
        return float(1.0 - np.mean(logy / logt))
    slope = np.polyfit(logt, logy, 1)[0]
    return float(1.0 - slope)

"""Tail index s of a rate α(t) ~ c·(1+t)^(−s) from its integral A(t), on both sides of 1.

Theorem 3.1 of the paper: the features separate when the tail index r_γ of γ = α − β is
below 1 and do not when it is above. The paper reads r̂ off log|A| / log t, which
cannot exceed 1: when s > 1, A(t) converges and every log-slope form tends to 1 from
below (measured on A(t) = ∫₀ᵗ (1+u)^(−s) du over [0, 10⁵]: the slope form gives
0.99 / 1.00 / 1.00 for s = 1.1 / 1.5 / 2). It also depends on the reference offset of
A: Â is measured from a reference time t₀ > 0, so log|Â| carries −A(t₀).

`tail_fit` therefore fits the integral itself,

    A(t) ≈ a + c · ((1+t)^(1−s) − 1) / (1−s)        (→ a + c·log(1+t) at s = 1),

by least squares on a tail window. The free offset a absorbs A(t₀) (and any early
transient that has settled), the form is continuous through s = 1, and s > 1 shows as
the curvature of a converging A. For fixed s the model is linear in (a, c), so s is
found by profiling: the residual sum of squares RSS(s) on a grid over
`S_BOUNDS`, refined by golden-section search. The interval is the profile-likelihood
set {s : n_eff · log(RSS(s)/RSS_min) ≤ χ²₁(level)}, with n_eff the number of points
corrected for the lag-1 autocorrelation ρ of the residuals (n·(1−ρ)/(1+ρ)): estimated
A(t) from real runs is smooth in t, and treating its points as independent would give
intervals far too narrow. Where the data do not pin s down (a fast-decaying rate whose
A(t) is flat in the window, noise, a short run) the interval runs into a search bound
and the fit says so (`TailFit.identifiable` is False; `tail_index` warns).

Why a fit of A rather than of α̂ = dÂ/dt: differentiating amplifies noise (the
Savitzky–Golay window trades that against bias), and α̂ changes sign on real runs,
which a log-log fit cannot take. Measured on the issue's test case (2001 points over
[0, 10⁵], Gaussian noise of sd 10⁻³·max|A|, 20 draws), the A-fit on the last 3/4 of the
span has a largest error of 0.002 / 0.004 / 0.08 for s = 0.5 / 0.9 / 1.3; on the last
half 0.008 / 0.02 / 0.30 (the curvature that identifies s > 1 needs a wider range of
log t). The default window is therefore the last 3/4 of the time span (t from a
quarter of the run on, 0.6 decades of log t for a run from 0); the theorem is about
t → ∞, and an early window would mistake the initial rise of real runs for a decay.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import chi2

from lesde.model import check_ts

__all__ = [
    "TailFit",
    "tail_fit",
    "fit_tail_many",
    "rate_slope_index",
    "S_BOUNDS",
    "DEFAULT_TAIL_FRACTION",
]

# Search range of s. Below −1 A grows faster than t²; above 5 a power-law decay is
# indistinguishable from "A has converged" on any run we can simulate or train.
S_BOUNDS = (-1.0, 5.0)
# Grid spacing of the profile; golden-section refinement then brings s to ~1e-7.
_GRID_STEP = 0.01
_GOLDEN_ITERS = 24  # bracket 2·0.01 · 0.618^24 ≈ 2e-7
# The default window: the last 3/4 of the span (see the module docstring).
DEFAULT_TAIL_FRACTION = 0.75


@dataclass(frozen=True)
class TailFit:
    """A least-squares fit of A(t) ≈ a + c·((1+t)^(1−s) − 1)/(1−s) on a tail window.

    Attributes:
        s: the tail index estimate ŝ (r̂ of the rate A integrates).
        lo, hi: profile-likelihood interval of s at ``level`` (clipped to `S_BOUNDS`).
        level: confidence level of the interval.
        t_range: (T₁, T₂) of the window used.
        n_points: usable points in the window.
        n_eff: points corrected for residual autocorrelation (the interval uses it).
        identifiable: False when the interval reaches a search bound: the data do not
            pin s down on that side (a one-sided interval, or none at all).
        coef: (a, c) of the fitted curve in the basis of `predict`.
        t_ref: the window start, the reference of that basis.
    """

    s: float
    lo: float
    hi: float
    level: float
    t_range: tuple[float, float]
    n_points: int
    n_eff: float
    identifiable: bool
    coef: tuple[float, float]
    t_ref: float

    def predict(self, ts: Any) -> np.ndarray:
        """The fitted A(t) at ``ts`` (any shape)."""
        L = np.log1p(np.asarray(ts, dtype=float)) - np.log1p(self.t_ref)
        return self.coef[0] + self.coef[1] * _basis(np.array([self.s]), L.ravel())[0].reshape(
            L.shape
        )


def _basis(s: np.ndarray, L: np.ndarray) -> np.ndarray:
    """φ_s(t) = ((1+t)^(1−s)·(1+t_ref)^(s−1) − 1)/(1−s) for each s: (S, n).

    ``L`` is log(1+t) − log(1+t_ref). The factor (1+t_ref)^(s−1) and the constant are
    absorbed by c and a, and writing the basis relative to the window start keeps it
    well scaled for every s: expm1 of (1−s)·L never loses the variation to rounding, as
    ((1+t)^(1−s) − 1) would for s ≫ 1.
    """
    e = (1.0 - s)[:, None] * L[None, :]  # (S, n)
    small = np.abs(1.0 - s) < 1e-9
    denom = np.where(small, 1.0, 1.0 - s)[:, None]
    out = np.expm1(e) / denom
    if small.any():  # the s → 1 limit: L (1 + e/2) to second order
        out[small] = L[None, :] * (1.0 + 0.5 * e[small])
    return out


def _profile_rss(G: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """RSS of the best (a, c) for every basis row of G and every series row of Y.

    Args:
        G: (S, n) basis values. Y: (m, n) series.

    Returns:
        (m, S) residual sums of squares.
    """
    Gc = G - G.mean(axis=1, keepdims=True)
    Yc = Y - Y.mean(axis=1, keepdims=True)
    gg = np.einsum("sn,sn->s", Gc, Gc)  # (S,)
    yy = np.einsum("mn,mn->m", Yc, Yc)  # (m,)
    C = Yc @ Gc.T  # (m, S)
    with np.errstate(divide="ignore", invalid="ignore"):
        rss = yy[:, None] - np.where(gg > 0, C * C / gg, 0.0)
    return np.maximum(rss, 0.0)


def _golden(L: np.ndarray, Y: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Minimise RSS(s) of each series on its bracket [lo, hi] by golden sections: (m,)."""
    g = (np.sqrt(5.0) - 1.0) / 2.0
    Yc = Y - Y.mean(axis=1, keepdims=True)
    yy = np.einsum("mn,mn->m", Yc, Yc)

    def rss(s: np.ndarray) -> np.ndarray:
        G = _basis(s, L)  # (m, n): one s per series
        Gc = G - G.mean(axis=1, keepdims=True)
        gg = np.einsum("mn,mn->m", Gc, Gc)
        cy = np.einsum("mn,mn->m", Gc, Yc)
        with np.errstate(divide="ignore", invalid="ignore"):
            return yy - np.where(gg > 0, cy * cy / gg, 0.0)

    a, b = lo.copy(), hi.copy()
    x1, x2 = b - g * (b - a), a + g * (b - a)
    f1, f2 = rss(x1), rss(x2)
    for _ in range(_GOLDEN_ITERS):
        left = f1 <= f2  # the minimum lies in [a, x2]
        b = np.where(left, x2, b)
        a = np.where(left, a, x1)
        x2n = np.where(left, x1, a + g * (b - a))
        x1n = np.where(left, b - g * (b - a), x2)
        fn = rss(np.where(left, x1n, x2n))
        f1, f2 = np.where(left, fn, f2), np.where(left, f1, fn)
        x1, x2 = x1n, x2n
    return 0.5 * (a + b)


def _window(t: np.ndarray, t_range: Any, default=None) -> tuple[float, float]:
    """(T₁, T₂) from a user's ``t_range``, validated; None: ``default(t)`` or the last 3/4."""
    if t_range is None:
        if default is not None:
            return default(t)
        return t[-1] - DEFAULT_TAIL_FRACTION * (t[-1] - t[0]), t[-1]
    try:
        t1, t2 = (float(v) for v in t_range)
    except (TypeError, ValueError) as err:
        raise ValueError(f"`t_range` must be a pair (T1, T2), got {t_range!r}") from err
    if not t1 < t2:
        raise ValueError(f"`t_range` must have T1 < T2, got {t_range!r}")
    return t1, t2


def _check_series(ts: Any, Ya: np.ndarray, level: float, arg: str = "Y"):
    """(t, Ya) after checking ts (> −1, increasing), Ya (m, T) and the level in (0, 1);
    ``arg`` is the name the error gives the series."""
    t = check_ts(ts)
    if Ya.ndim != 2 or Ya.shape[1] != t.size:
        raise ValueError(f"`{arg}` must be (m, {t.size}) to match `ts`, got {Ya.shape}")
    if t[0] <= -1:
        raise ValueError(f"`ts` must be > -1 for log(1 + t), got ts[0]={t[0]}")
    if not 0 < level < 1:
        raise ValueError(f"`level` must be in (0, 1), got {level!r}")
    return t, Ya


def fit_tail_many(
    ts: Any,
    Y: Any,
    *,
    t_range: tuple[float, float] | None = None,
    level: float = 0.95,
    intervals: bool = True,
) -> list[TailFit | None]:
    """`tail_fit` of many series on one grid at once (the bootstrap's workhorse).

    The profile on the grid is one matrix product for all series; series with a
    non-finite value in the window are fitted one by one on their finite points.

    Args:
        ts: (T,) strictly increasing times (> −1).
        Y: (m, T) series.
        t_range: the window (default: the last 3/4 of the span).
        level: interval level.
        intervals: compute the profile intervals (False: ``lo = hi = nan``, faster).

    Returns:
        m fits; None for a series with fewer than 4 usable points or no variation.
    """
    t, Ya = _check_series(ts, np.atleast_2d(np.asarray(Y, dtype=float)), level)
    t1, t2 = _window(t, t_range)
    win = (t >= t1) & (t <= t2)
    out: list[TailFit | None] = [None] * Ya.shape[0]
    finite = np.all(np.isfinite(Ya[:, win]), axis=1)
    groups = [(np.flatnonzero(finite), win)]
    for i in np.flatnonzero(~finite):
        groups.append((np.array([i]), win & np.isfinite(Ya[i])))
    grid = np.arange(S_BOUNDS[0], S_BOUNDS[1] + 0.5 * _GRID_STEP, _GRID_STEP)  # (S,)
    thr = float(chi2.ppf(level, df=1))
    for idx, sel in groups:
        if idx.size == 0 or np.count_nonzero(sel) < 4:
            continue
        tw = t[sel]
        L = np.log1p(tw) - np.log1p(tw[0])  # (n,)
        Yw = Ya[np.ix_(idx, np.flatnonzero(sel))]  # (m', n)
        yc = Yw - Yw.mean(axis=1, keepdims=True)
        yy = np.einsum("mn,mn->m", yc, yc)
        G = _basis(grid, L)  # (S, n)
        rss = _profile_rss(G, Yw)  # (m', S)
        j = np.argmin(rss, axis=1)
        lo_b = grid[np.maximum(j - 1, 0)]
        hi_b = grid[np.minimum(j + 1, grid.size - 1)]
        s_hat = _golden(L, Yw, lo_b, hi_b)
        Gs = _basis(s_hat, L)  # (m', n)
        Gsc = Gs - Gs.mean(axis=1, keepdims=True)
        gg = np.einsum("mn,mn->m", Gsc, Gsc)
        with np.errstate(divide="ignore", invalid="ignore"):
            c = np.where(gg > 0, np.einsum("mn,mn->m", Gsc, yc) / gg, 0.0)
        a = Yw.mean(axis=1) - c * Gs.mean(axis=1)
        resid = Yw - a[:, None] - c[:, None] * Gs  # (m', n)
        n = tw.size
        rss_min = np.einsum("mn,mn->m", resid, resid)
        # rounding floor: exact data must not give log(0)
        rss_min = np.maximum(rss_min, (1e-13) ** 2 * np.maximum(yy, 1e-300) * n)
        num = np.einsum("mn,mn->m", resid[:, 1:], resid[:, :-1])
        with np.errstate(divide="ignore", invalid="ignore"):
            rho = np.where(rss_min > 0, num / rss_min, 0.0)
        rho = np.clip(rho, 0.0, 0.999)
        n_eff = np.clip(n * (1 - rho) / (1 + rho), 3.0, n)
        for row, i in enumerate(idx):
            if yy[row] <= 0:
                continue
            lo_s = hi_s = float("nan")
            ident = True
            if intervals:
                dev = n_eff[row] * np.log(np.maximum(rss[row], rss_min[row]) / rss_min[row])
                ok = np.flatnonzero(dev <= thr)
                if ok.size == 0:  # the grid's nearest points already exceed: the minimum
                    lo_s = hi_s = float(s_hat[row])
                else:
                    lo_s = _edge(grid, dev, ok[0], thr, -1)
                    hi_s = _edge(grid, dev, ok[-1], thr, +1)
                lo_s, hi_s = min(lo_s, float(s_hat[row])), max(hi_s, float(s_hat[row]))
                ident = bool(ok.size == 0 or (ok[0] > 0 and ok[-1] < grid.size - 1))
            out[i] = TailFit(
                s=float(s_hat[row]), lo=lo_s, hi=hi_s, level=level, t_range=(t1, t2),
                n_points=int(n), n_eff=float(n_eff[row]), identifiable=ident,
                coef=(float(a[row]), float(c[row])), t_ref=float(tw[0]),
            )  # fmt: skip
    return out


def _edge(grid: np.ndarray, dev: np.ndarray, k: int, thr: float, side: int) -> float:
    """Where the deviance crosses ``thr`` beyond grid point ``k`` (linear interpolation)."""
    nb = k + side
    if nb < 0 or nb >= grid.size:
        return float(grid[k])
    d0, d1 = dev[k], dev[nb]
    if not np.isfinite(d1) or d1 == d0:
        return float(grid[k])
    return float(grid[k] + (thr - d0) / (d1 - d0) * (grid[nb] - grid[k]))


def tail_fit(
    ts: Any, series: Any, *, t_range: tuple[float, float] | None = None, level: float = 0.95
) -> TailFit:
    """Fit A(t) ≈ a + c·((1+t)^(1−s) − 1)/(1−s) on a tail window: ŝ with an interval.

    See the module docstring for the method and why. ``series`` may be Â, B̂, Â − B̂ or
    any integrated rate, measured from any reference time (the offset a absorbs it),
    of either sign (c takes it).

    Args:
        ts: (T,) strictly increasing times (iterations; log(1 + t) needs t > −1).
        series: (T,) the integrated rate.
        t_range: (T₁, T₂), the window; default: the last 3/4 of the time span.
        level: confidence level of the profile-likelihood interval.

    Returns:
        A `TailFit` (``identifiable`` False when the interval reaches a search bound).

    Raises:
        ValueError: on a bad shape, window or level, or fewer than 4 usable points or a
            constant series in the window.
    """
    t = check_ts(ts)
    y = np.asarray(series, dtype=float)
    if y.shape != t.shape:
        raise ValueError(f"`series` must have shape {t.shape} to match `ts`, got {y.shape}")
    fit = fit_tail_many(t, y[None, :], t_range=t_range, level=level)[0]
    if fit is None:
        t1, t2 = _window(t, t_range)
        raise ValueError(
            f"`series` needs at least 4 finite, not all equal values in t_range=({t1:g}, {t2:g})"
        )
    return fit


def rate_slope_index(
    ts: Any, series: Any, *, window: int, t_range: tuple[float, float] | None = None
) -> float:
    """ŝ from the rate itself: −(slope of log|dA/dt| against log(1+t)) on the window.

    The alternative to `tail_fit` that the sensitivity table of a run compares with:
    dA/dt by Savitzky–Golay (``window`` points, polyorder 2), then a least-squares line
    through the points of the window where the rate has its majority sign. It depends
    on the smoothing window, and a rate that changes sign leaves few points; NaN (with
    no warning) when fewer than 3 remain.
    """
    from lesde.estimate._savgol import savgol_derivative

    t = check_ts(ts)
    y = np.asarray(series, dtype=float)
    ok = np.isfinite(y)
    if np.count_nonzero(ok) < window:
        return float("nan")
    rate = np.full(t.shape, np.nan)
    rate[ok] = savgol_derivative(t[ok], y[ok], window=window)
    t1, t2 = _window(t, t_range)
    sel = (t >= t1) & (t <= t2) & np.isfinite(rate) & (rate != 0)
    if np.count_nonzero(sel) < 3:
        return float("nan")
    sign = 1.0 if np.count_nonzero(rate[sel] > 0) >= np.count_nonzero(rate[sel] < 0) else -1.0
    sel &= np.sign(rate) == sign
    if np.count_nonzero(sel) < 3:
        return float("nan")
    slope = np.polyfit(np.log1p(t[sel]), np.log(np.abs(rate[sel])), 1)[0]
    return float(-slope)


def warn_unidentified(fit: TailFit, stacklevel: int = 3, *, name: str = "") -> None:
    """One warning for a fit whose interval reaches a search bound, naming the series
    (``name``: "Â", "B̂", "Â − B̂") and the window."""
    if fit.identifiable:
        return
    t1, t2 = fit.t_range
    what = f"tail_index of {name}" if name else "tail_index"
    warnings.warn(
        f"{what}: s is not identified by the data on t_range=({t1:g}, {t2:g}): its "
        f"{fit.level:.0%} interval [{fit.lo:.2f}, {fit.hi:.2f}] reaches the search bound "
        f"{list(S_BOUNDS)}; ŝ = {fit.s:.3f} is not a reliable value (a longer run, a "
        "later or wider window, or less noise would help)",
        stacklevel=stacklevel,
    )

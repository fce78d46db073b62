"""Does the tail-index power law fit at all? Three checks before r̂ is read.

`lesde.estimate.tail` fits A(t) ≈ a + c·((1+t)^(1−s) − 1)/(1−s) and reports ŝ with a
profile-likelihood interval, but the interval is only meaningful when the power law
describes the series. It does not on a converged network's Γ = Â − B̂ (the fits on the
last 25 / 50 / 75 % of one measured run gave 0.72 [−0.24, 1.69] / 3.88 [3.72, 4.04] /
1.57 [1.36, 1.79]), on a relaxation Γ = 1 − e^{−t/τ} (a narrow "identifiable" interval
for a curve that has no tail index), or on a fast decay whose fits pile up at the search
bound. `check_tail_fit` runs three checks (`CHECKS`) and says which failed and why.

Why this file is long: the three checks share one noise model (the AR(1) fit by exact
GLS, its REML ρ and confidence set) that both the residual test and the windows' Wald
errors read; split, the noise model would be fitted twice or passed through a module
boundary as private arrays.

"windows disagree"
    The fits on the last 25 / 50 / 75 % of the span ts[0]..ts[-1] (`fit_tail_many`) must
    have pairwise overlapping intervals. The windows are nested, so for a true power law
    their estimates are positively correlated and disjoint intervals are rarer than for
    independent ones. Each interval is widened by one profile grid step (0.01) on both
    sides before comparing: `fit_tail_many` finds the edge by linear interpolation of a
    convex deviance between grid points, which puts it inside the true crossing by up to
    one step; at 2001 points with noise 10⁻³·max|A| the intervals are ~0.003 wide and
    the unwidened ones came out disjoint on true power laws (measured: 10 % of the
    draws at s = 0.3, 2001 points over [0, 10⁵] with i.i.d. noise; 0 % after widening).

"systematic residuals"
    A nested-model F-test on the main window, robust to smooth, autocorrelated noise.
    The power law's tangent space at ŝ is spanned by {1, φ_ŝ, ψ₁}, where in u = log(1+t)
    − log(1+T₁), φ_s(u) = ∫₀ᵘ e^{(1−s)v} dv is the fitted shape and ψ_j(u) = ∫₀ᵘ v^j
    e^{(1−s)v} dv; ψ₁ ∝ ∂φ/∂s is the direction of a change of s. The alternative adds ψ₂,
    ψ₃: a rate whose log-log slope bends (quadratic and cubic in log-time), which a power
    law cannot do and a relaxation or a saturating curve does. The noise is modelled
    as AR(1) with coefficient ρ ∈ [0, 1) (i.i.d. at ρ = 0, a random walk as ρ → 1), and
    both models are fitted by exact generalised least squares (the Prais–Winsten
    transform, whose stationary start keeps an exponential from being explained as the
    AR(1) process relaxing from its first value, as the conditional likelihood would).
    ρ is estimated by restricted maximum likelihood on the alternative on a grid of
    ρ up to 1 − 10⁻⁶ (REML removes most of the downward bias of ρ̂ after fitting a
    trend, which is what made an F-test at the plain ML or lag-1 ρ̂ reject 10–40 % of
    true power laws under random-walk noise). ρ is a nuisance parameter, so the p-value
    is Berger and Boos' (1994): the largest F-test p-value over the 99.9 % REML
    confidence set of ρ, plus 0.001. The check fails when it is below 0.005.

"at search bound"
    ŝ within 0.02 (2 grid steps) of a bound of `S_BOUNDS`, or more than 5 % of the
    finite bootstrap values ``boot_samples`` within 0.02 of a bound: the least-squares
    minimum is the bound itself, so the value is the search range's, not the data's.

Measured by ``examples/tail_check_validation.py`` (20 draws per case, seed 0; the
numbers are in docs/results/tail-check/summary.json) on true power laws
A(t) = ((1+t)^(1−s) − 1)/(1−s), s ∈ {0.3, 0.6, 0.9, 1.1, 1.4, 2}, on 201 and 2001 points
over [0, 10⁴] and [0, 10⁵], noise i.i.d., AR(1) with ρ = 0.9 and a random walk, each
scaled to an sd (the walk: an rms) of 10⁻³ and 10⁻² of max|A|: the check passes in
99.6 % of the 1,119 draws whose main fit is identifiable (i.i.d. 99.5 %, AR(1) 99.7 %,
walk 99.7 %); "systematic residuals" alone rejects 0.09 %. On Γ = 1 − e^{−t/τ}, τ = 5 /
10 / 20 % of the span, it fails in 100 % of the draws at noise 10⁻³ of the level; at
10⁻² in 70 / 60 / 100 %: a relaxation is then often within the noise of a power law (the
best power law misses 1 − e^{−t/τ} at τ = 20 % by an rms of 3·10⁻³ on the default
window), and no check can tell a smooth misfit from noise of the same size and
smoothness. Time: ~34 ms a call on 2001 points, most of it the three window fits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.signal import lfilter
from scipy.stats import chi2, norm
from scipy.stats import f as f_dist

from lesde.estimate.tail import (
    _GRID_STEP,
    S_BOUNDS,
    TailFit,
    _basis,
    _check_series,
    _window,
    fit_tail_many,
)
from lesde.model import check_ts

__all__ = ["CHECKS", "TailCheck", "check_tail_fit", "check_tail_fit_many"]

CHECKS = ("windows disagree", "systematic residuals", "at search bound")

# "at search bound": 2 profile grid steps; the share of bootstrap values allowed there
BOUND_TOL = 2 * _GRID_STEP
BOOT_BOUND_SHARE = 0.05
# "windows disagree": widening of each interval (one grid step, see the module docstring)
WINDOW_WIDEN = _GRID_STEP
# "systematic residuals": test level, and the Berger–Boos level of the ρ confidence set
RESID_ALPHA = 5e-3
RHO_BETA = 1e-3
# AR(1) coefficients searched: fine near 1, where a random walk sits
_RHO = np.concatenate([np.linspace(0.0, 0.9, 10), 1.0 - np.geomspace(0.05, 1e-6, 21)])
_MIN_RESID_POINTS = 12  # below this the 5-column alternative leaves too few residual dof


@dataclass(frozen=True)
class TailCheck:
    """The verdict of the goodness-of-fit checks on one series' tail fit.

    Attributes:
        fits: True when no check failed: the power law may be read.
        failed: names of the failed checks, from `CHECKS`, in that order.
        why: one line naming each failed check, the series and window, with the numbers;
            "" when ``fits``.
        details: JSON-able numbers of every check (floats, lists, bools; NaN allowed).
    """

    fits: bool
    failed: tuple[str, ...]
    why: str
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """{"fits", "failed", "why", **details} with plain Python numbers."""
        return {"fits": self.fits, "failed": list(self.failed), "why": self.why,
                **_plain(self.details)}  # fmt: skip


def _plain(x: Any) -> Any:
    """Numpy scalars and arrays, tuples, nested → Python floats, ints, bools, lists."""
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple, np.ndarray)):
        return [_plain(v) for v in x]
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return float(x)
    return x


def check_tail_fit(
    ts: Any,
    series: Any,
    *,
    t_range: tuple[float, float] | None = None,
    name: str = "Â − B̂",
    boot_samples: Any = None,
    windows: tuple[float, ...] = (0.25, 0.5, 0.75),
    level: float = 0.95,
) -> TailCheck:
    """Check that the power law of `lesde.estimate.tail` fits ``series`` (see module doc).

    Args:
        ts: (T,) strictly increasing times (> −1).
        series: (T,) the integrated rate (Â, B̂ or Â − B̂).
        t_range: (T₁, T₂), the main window, as in `fit_tail_many` (None: its default,
            the last 3/4 of the span).
        name: the series' name, used in ``why``.
        boot_samples: optional (n_boot,) bootstrap values of ŝ on the main window
            (NaN allowed: only finite values count).
        windows: fractions of the span ts[0]..ts[-1] whose last part each comparison
            window covers.
        level: level of the profile intervals compared across windows.

    Returns:
        A `TailCheck`.

    Raises:
        ValueError: on a bad shape, window, level or fraction, or when the main window
            has fewer than 4 finite, not all equal values.
    """
    t = check_ts(ts)
    y = np.asarray(series, dtype=float)
    if y.shape != t.shape:
        raise ValueError(f"`series` must have shape {t.shape} to match `ts`, got {y.shape}")
    boot = None
    if boot_samples is not None:
        boot = np.asarray(boot_samples, dtype=float)
        if boot.ndim != 1:
            raise ValueError(f"`boot_samples` must be 1-D (n_boot,), got shape {boot.shape}")
        boot = boot[None, :]
    return check_tail_fit_many(t, y[None, :], t_range=t_range, name=name, boot_samples=boot,
                               windows=windows, level=level, _arg="series")[0]  # fmt: skip


def check_tail_fit_many(
    ts: Any,
    Y: Any,
    *,
    t_range: tuple[float, float] | None = None,
    name: str = "Â − B̂",
    boot_samples: Any = None,
    windows: tuple[float, ...] = (0.25, 0.5, 0.75),
    level: float = 0.95,
    _arg: str = "Y",
) -> list[TailCheck]:
    """`check_tail_fit` of many series on one grid at once (the fits are batched).

    Args:
        ts: (T,) strictly increasing times (> −1).
        Y: (m, T) series.
        t_range, name, windows, level: as in `check_tail_fit` (one name for all).
        boot_samples: optional (m, n_boot) bootstrap values of ŝ, a row per series.

    Returns:
        m `TailCheck`.

    Raises:
        ValueError: as `check_tail_fit`.
    """
    t, Ya = _check_series(ts, np.asarray(Y, dtype=float), level, _arg)
    try:
        fr = [float(f) for f in windows]
    except (TypeError, ValueError) as err:
        raise ValueError(f"`windows` must be fractions in (0, 1], got {windows!r}") from err
    if not all(0 < f <= 1 for f in fr):
        raise ValueError(f"`windows` must be fractions in (0, 1], got {windows!r}")
    m = Ya.shape[0]
    boot = None
    if boot_samples is not None:
        boot = np.asarray(boot_samples, dtype=float)
        if boot.ndim != 2 or boot.shape[0] != m:
            raise ValueError(
                f"`boot_samples` must be (m, n_boot) with m={m} rows, got shape {boot.shape}"
            )
    t1, t2 = _window(t, t_range)
    main = fit_tail_many(t, Ya, t_range=(t1, t2), level=level)
    for i, fit in enumerate(main):
        if fit is None:
            row = "" if _arg == "series" else f" row {i}"
            raise ValueError(f"`{_arg}`{row} needs at least 4 finite, not all equal values "
                             f"in t_range=({t1:g}, {t2:g})")  # fmt: skip
    span = t[-1] - t[0]
    w_ranges = [(float(t[-1] - f * span), float(t[-1])) for f in fr]
    w_fits: list[list[TailFit | None]] = []
    for wr in w_ranges:
        if np.isclose(wr[0], t1, rtol=0, atol=1e-9 * max(span, 1.0)) and wr[1] == t2:
            w_fits.append(list(main))  # the default main window is the 75 % one: reuse
        else:
            w_fits.append(fit_tail_many(t, Ya, t_range=wr, level=level))
    noise = _main_window_tests(t, Ya, main, (t1, t2))
    # Bonferroni: each window's interval at 1 − (1 − joint)/k, so that under a power law
    # all k cover s (and so overlap) with probability >= `level`
    lw = 1.0 - (1.0 - level) / max(len(fr), 1)
    z = float(norm.ppf(0.5 + lw / 2))
    stretch = z / float(norm.ppf(0.5 + level / 2))
    w_se = [_wald_se(t, Ya, wf, wr, noise) for wf, wr in zip(w_fits, w_ranges, strict=True)]
    out = []
    for i in range(m):
        out.append(_verdict(
            main[i], [w[i] for w in w_fits], [se[i] for se in w_se], z, stretch, lw, fr, w_ranges,
            noise[i]["test"], None if boot is None else boot[i], name,
        ))  # fmt: skip
    return out


def _fmt_fit(fit: TailFit) -> str:
    return f"ŝ = {fit.s:.2f} [{fit.lo:.2f}, {fit.hi:.2f}]"


def _fmt_range(r: tuple[float, float]) -> str:
    return f"t ∈ [{r[0]:g}, {r[1]:g}]"


def _verdict(
    fit: TailFit,
    w_fits: list[TailFit | None],
    w_se: list[float],
    z: float,
    stretch: float,
    lw: float,
    fractions: list[float],
    w_ranges: list[tuple[float, float]],
    resid: dict[str, Any],
    boot: np.ndarray | None,
    name: str,
) -> TailCheck:
    """Assemble the three checks of one series into a `TailCheck`."""
    failed: list[str] = []
    why: list[str] = []
    d: dict[str, Any] = {
        "s": fit.s, "s_interval": [fit.lo, fit.hi], "t_range": list(fit.t_range),
        "n_points": fit.n_points, "identifiable": fit.identifiable, "level": fit.level,
    }  # fmt: skip

    # 1. windows disagree: the widest gap between two widened intervals
    nan = float("nan")
    wide: list[tuple[float, float] | None] = []
    for f, se in zip(w_fits, w_se, strict=True):
        if f is None:
            wide.append(None)
            continue
        # NaN: no noise model (a window too short): the profile interval alone
        half = 0.0 if np.isnan(se) else z * se
        lo = min(f.s - stretch * (f.s - f.lo), f.s - half) - WINDOW_WIDEN
        hi = max(f.s + stretch * (f.hi - f.s), f.s + half) + WINDOW_WIDEN
        wide.append((lo, hi))
    d["window_fractions"] = list(fractions)
    d["window_t_ranges"] = [list(r) for r in w_ranges]
    d["window_s"] = [f.s if f is not None else nan for f in w_fits]
    d["window_intervals"] = [[f.lo, f.hi] if f is not None else [nan, nan] for f in w_fits]
    d["window_se_ar1"] = [float(v) for v in w_se]
    d["window_level"] = lw
    d["window_intervals_widened"] = [list(v) if v is not None else [nan, nan] for v in wide]
    worst, pairs = None, []
    for i, wi in enumerate(wide):
        for j, wj in enumerate(wide):
            if i == j or wi is None or wj is None:
                continue
            gap = wj[0] - wi[1]  # i entirely below j
            if gap > 0:
                pairs.append([i, j])
                if worst is None or gap > worst[0]:
                    worst = (gap, i, j)
    d["windows_disjoint_pairs"] = pairs
    if worst is not None:
        _, i, j = worst
        failed.append(CHECKS[0])
        why.append(
            f"windows disagree: {name} on {_fmt_range(w_ranges[i])} (last "
            f"{fractions[i]:.0%}) gives {_fmt_fit(w_fits[i])}, on {_fmt_range(w_ranges[j])} "
            f"(last {fractions[j]:.0%}) {_fmt_fit(w_fits[j])}: disjoint even widened to "
            f"[{wide[i][0]:.2f}, {wide[i][1]:.2f}] and [{wide[j][0]:.2f}, {wide[j][1]:.2f}]"
        )

    # 2. systematic residuals
    d.update({f"residual_{k}": v for k, v in resid.items()})
    d["residual_alpha"] = RESID_ALPHA
    p = resid["p"]
    if np.isfinite(p) and p < RESID_ALPHA:
        failed.append(CHECKS[1])
        why.append(
            f"systematic residuals: {name} on {_fmt_range(fit.t_range)} ({_fmt_fit(fit)}) "
            f"bends in log-time where a power law cannot (F = {resid['F']:.3g} on "
            f"{resid['df'][0]:g}, {resid['df'][1]:g} dof, p = {p:.2g} < {RESID_ALPHA:g}, "
            f"AR(1) ρ̂ = {resid['rho']:.4f}; residual rms {resid['rms_null']:.3g} → "
            f"{resid['rms_alt']:.3g})"
        )

    # 3. at search bound
    dist = min(abs(fit.s - S_BOUNDS[0]), abs(fit.s - S_BOUNDS[1]))
    d["bound_distance"] = dist
    d["search_bounds"] = list(S_BOUNDS)
    share, n_fin = nan, 0
    if boot is not None:
        b = boot[np.isfinite(boot)]
        n_fin = int(b.size)
        if n_fin:
            near = (np.abs(b - S_BOUNDS[0]) <= BOUND_TOL + 1e-12) | (
                np.abs(b - S_BOUNDS[1]) <= BOUND_TOL + 1e-12
            )
            share = float(np.mean(near))
    d["boot_n_finite"] = n_fin
    d["boot_at_bound_share"] = share
    point_at = dist <= BOUND_TOL + 1e-12
    boot_at = np.isfinite(share) and share > BOOT_BOUND_SHARE
    if point_at or boot_at:
        failed.append(CHECKS[2])
        parts = []
        if point_at:
            bound = (
                S_BOUNDS[0] if abs(fit.s - S_BOUNDS[0]) <= abs(fit.s - S_BOUNDS[1]) else S_BOUNDS[1]
            )
            parts.append(f"ŝ = {fit.s:.3f} is within {BOUND_TOL:g} of the bound {bound:g}")
        if boot_at:
            parts.append(f"{share:.0%} of {n_fin} bootstrap ŝ are within {BOUND_TOL:g} of a "
                         f"bound (> {BOOT_BOUND_SHARE:.0%})")  # fmt: skip
        why.append(
            f"at search bound: {name} on {_fmt_range(fit.t_range)}: "
            + " and ".join(parts)
            + f"; the search range {list(S_BOUNDS)}, not the data, sets the value"
        )
    return TailCheck(fits=not failed, failed=tuple(failed), why="; ".join(why), details=d)


def _groups(t: np.ndarray, Y: np.ndarray, t_range: tuple[float, float]):
    """(rows, columns) of the window: all-finite rows as one batch, the others one by one
    on their finite points (the AR(1) transform then bridges a gap as if adjacent)."""
    win = (t >= t_range[0]) & (t <= t_range[1])
    finite = np.all(np.isfinite(Y[:, win]), axis=1)
    out = []
    if finite.any():
        out.append((np.flatnonzero(finite), np.flatnonzero(win)))
    for i in np.flatnonzero(~finite):
        out.append((np.array([i]), np.flatnonzero(win & np.isfinite(Y[i]))))
    return out


def _cumtrapz(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """∫₀ˣ y along the last axis by the trapezoid rule, starting at 0: same shape."""
    out = np.zeros_like(y)
    out[..., 1:] = np.cumsum(0.5 * (y[..., 1:] + y[..., :-1]) * np.diff(x), axis=-1)
    return out


def _design(L: np.ndarray, s: np.ndarray, degree: int) -> tuple[np.ndarray, np.ndarray]:
    """Columns 1, φ_s, ψ₁ … ψ_degree on the window, each scaled to unit norm.

    Args:
        L: (n,) log(1 + t) − log(1 + T₁). s: (m,) tail indices.

    Returns:
        X (m, n, 2 + degree) and the column norms (m, 2 + degree) divided out.
    """
    m, n = s.size, L.size
    w = np.exp(np.clip((1.0 - s)[:, None] * L[None, :], -700.0, 700.0))  # e^{(1−s)u}
    cols = [np.ones((m, n)), _basis(s, L)]
    cols += [_cumtrapz(L[None, :] ** j * w, L) for j in range(1, degree + 1)]
    X = np.stack(cols, axis=-1)
    nrm = np.maximum(np.linalg.norm(X, axis=1), 1e-300)  # (m, p)
    return X / nrm[:, None, :], nrm


def _pw(Z: np.ndarray, rho: np.ndarray) -> np.ndarray:
    """Prais–Winsten transform of (m, n, ...) along axis 1 for each ρ: (m, R, n, ...).

    Row 0 is scaled by √(1 − ρ²) (the stationary start), row i is z_i − ρ z_{i−1}; the
    transformed errors of an AR(1) process with coefficient ρ are i.i.d.
    """
    extra = (None,) * (Z.ndim - 2)
    r = rho[(None, slice(None), None, *extra)]
    Zr = Z[:, None]
    out = np.empty((Z.shape[0], rho.size, *Z.shape[1:]))
    out[:, :, 1:] = Zr[:, :, 1:] - r * Zr[:, :, :-1]
    out[:, :, :1] = np.sqrt(1.0 - r * r) * Zr[:, :, :1]
    return out


def _proj_rss(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Least squares of y (..., n) on the columns of X (..., n, p) by SVD.

    Returns:
        RSS (...), rank (...), singular values (..., p). The residual is formed
        explicitly: |y|² − |Uᵀy|² would lose the small RSS of a smooth series to rounding.
    """
    U, sv, _ = np.linalg.svd(X, full_matrices=False)
    keep = sv > 1e-11 * sv[..., :1]
    c = np.einsum("...np,...n->...p", U, y) * keep
    r = y - np.einsum("...np,...p->...n", U, c)
    return np.einsum("...n,...n->...", r, r), keep.sum(axis=-1), sv


def _main_window_tests(
    t: np.ndarray, Y: np.ndarray, fits: list[TailFit], t_range: tuple[float, float]
) -> list[dict[str, Any]]:
    """The noise model and the "systematic residuals" test of each series (module doc).

    Returns:
        Per series: ``test`` (the numbers of the F-test, for ``details``), ``rho_set``
        (R,) bool, the ρ grid points in the REML confidence set, and ``sigma2`` (R,)
        the innovation variance at each ρ (NaN where the window is too short).
    """
    nan = float("nan")
    blank = {"test": {"F": nan, "p": nan, "df": [nan, nan], "rho": nan, "rms_null": nan,
                      "rms_alt": nan},
             "rho_set": np.zeros(_RHO.size, bool), "sigma2": np.full(_RHO.size, nan)}  # fmt: skip
    out: list[dict[str, Any]] = [blank] * Y.shape[0]
    for idx, cols in _groups(t, Y, t_range):
        n = cols.size
        if n < _MIN_RESID_POINTS:
            continue
        L = np.log1p(t[cols]) - np.log1p(t[cols[0]])
        Yw = Y[np.ix_(idx, cols)]
        X, _ = _design(L, np.array([fits[i].s for i in idx]), 3)  # (m, n, 5)
        p_null, p_alt = 3, 5
        Xs, ys = _pw(X, _RHO), _pw(Yw, _RHO)  # (m, R, n, 5), (m, R, n)
        rss1, k1, sv = _proj_rss(Xs, ys)
        rss0, k0, _ = _proj_rss(Xs[..., :p_null], ys)
        # rounding floor: an exact power law must not give 0/0
        floor = (1e-12) ** 2 * np.einsum("mrn,mrn->mr", ys, ys) + 1e-300
        rss1, rss0 = np.maximum(rss1, floor), np.maximum(rss0, floor)
        # REML of ρ on the alternative, σ² concentrated out
        logdet = 2.0 * np.log(np.maximum(sv, 1e-300)).sum(axis=-1)
        reml = 0.5 * np.log1p(-(_RHO**2))[None] - 0.5 * logdet - 0.5 * (n - p_alt) * np.log(rss1)
        inset = 2.0 * (reml.max(axis=1, keepdims=True) - reml) <= chi2.ppf(1 - RHO_BETA, 1)
        kk, df2 = k1 - k0, n - k1
        with np.errstate(divide="ignore", invalid="ignore"):
            F = np.where(kk > 0, ((rss0 - rss1) / kk) / (rss1 / df2), nan)
            pv = np.where(kk > 0, f_dist.sf(F, np.maximum(kk, 1), df2), nan)
            sigma2 = rss1 / df2
        for row, i in enumerate(idx):
            jr = int(np.argmax(reml[row]))
            cand = pv[row][inset[row] & np.isfinite(pv[row])]
            test = dict(blank["test"])
            if cand.size:
                test = {
                    "F": float(F[row, jr]), "p": float(min(1.0, cand.max() + RHO_BETA)),
                    "df": [float(kk[row, jr]), float(df2[row, jr])], "rho": float(_RHO[jr]),
                    # rms of the untransformed residuals, to size the misfit
                    "rms_null": float(np.sqrt(_proj_rss(X[row, :, :p_null], Yw[row])[0] / n)),
                    "rms_alt": float(np.sqrt(_proj_rss(X[row], Yw[row])[0] / n)),
                }  # fmt: skip
            out[i] = {"test": test, "rho_set": inset[row], "sigma2": sigma2[row]}
    return out


def _ar1_quad(w: np.ndarray, rho: float) -> np.ndarray:
    """wᵀ V w for each row of w (m, n), V the AR(1) covariance of unit innovations.

    V⁻¹ = PᵀP with P the Prais–Winsten matrix, so wᵀVw = |P⁻ᵀw|²; Pᵀ is upper
    bidiagonal and z = P⁻ᵀw is a backward recursion (an IIR filter on reversed w).
    """
    z = lfilter([1.0], [1.0, -rho], w[:, :0:-1], axis=1)  # z_{n−1}, …, z_1
    z0 = (w[:, 0] + rho * z[:, -1]) / np.sqrt(1.0 - rho * rho)
    return z0 * z0 + np.einsum("mn,mn->m", z, z)


def _wald_se(
    t: np.ndarray,
    Y: np.ndarray,
    fits: list[TailFit | None],
    t_range: tuple[float, float],
    noise: list[dict[str, Any]],
) -> np.ndarray:
    """Standard error of each window's least-squares ŝ under the main window's AR(1) noise.

    The fit's tangent model {1, φ_ŝ, ψ₁} with ψ₁ = ∂φ/∂(1 − s): ŝ − s ≈ −b₁/c for the
    coefficient b₁ of ψ₁, and the OLS b₁ = wᵀy has variance σ²·wᵀVw (the sandwich). The
    largest value over the ρ confidence set is taken, as for the F-test.

    Returns:
        (m,) standard errors; NaN without a fit or noise model, inf where c = 0.
    """
    se = np.full(Y.shape[0], np.nan)
    for idx, cols in _groups(t, Y, t_range):
        keep = np.array([fits[i] is not None and np.any(noise[i]["rho_set"]) for i in idx])
        idx = idx[keep] if keep.size else idx
        if idx.size == 0 or cols.size < 4:
            continue
        L = np.log1p(t[cols]) - np.log1p(t[cols[0]])
        X, nrm = _design(L, np.array([fits[i].s for i in idx]), 1)  # (m, n, 3)
        W = np.linalg.pinv(X)  # (m, 3, n): OLS coefficients = W y
        c = np.einsum("mn,mn->m", W[:, 1], Y[np.ix_(idx, cols)]) / nrm[:, 1]
        sets = np.stack([noise[i]["rho_set"] for i in idx])  # (m, R)
        s2 = np.stack([noise[i]["sigma2"] for i in idx])
        var = np.zeros(idx.size)
        for j in np.flatnonzero(sets.any(axis=0)):
            v = s2[:, j] * _ar1_quad(W[:, 2], float(_RHO[j]))
            var = np.where(sets[:, j], np.maximum(var, v), var)
        with np.errstate(divide="ignore", invalid="ignore"):
            se[idx] = np.sqrt(var) / (np.abs(c) * nrm[:, 2])
    return se

"""The full LE matrix E(t) by least squares over trials and a sliding window (docs/math.md §4).

Beyond the paper, which assumes the two-parameter form E_kk = α, E_kl = β. The LE-ODE
X̄_r^k'(t) = Σ_l W_kl E_kl(t) H_kl X̄_r^l(t) is linear in the K² unknowns E_kl, and the
equations of different rows k do not share unknowns: row k of E is the least-squares
solution of a K-unknown problem whose regressors are φ_kl = W_kl H_kl X̄_r^l(t) and whose
target is X̄_r^k'(t), stacked over the trials r, the p coordinates and the times of a
window. Derivatives come from Savitzky–Golay filters per trial; intervals come from
resampling whole trials (the independent units) with replacement.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from lesde.estimate.rates import _check_window, savgol_derivative
from lesde.model import LEModel, check_ts

__all__ = ["LEMatrixResult", "estimate_le_matrix"]

# Normal equations whose Gram matrix has a condition number above this are reported as
# NaN: with float64 data, 1e12 leaves ~4 significant digits in the solution.
_MAX_COND = 1e12


@dataclass(frozen=True)
class LEMatrixResult:
    """E(t) estimated on sliding windows.

    Attributes:
        ts: (T',) window centres (the time at each window's middle grid point).
        E: (T', K, K) least-squares estimate Ê_kl on each window (all trials).
        lo: (T', K, K) lower end of the bootstrap-over-trials percentile interval.
        hi: (T', K, K) upper end.
        window: number of grid points per window.
        level: nominal coverage of [lo, hi].
        n_trials: R.
        n_boot: number of bootstrap resamples.
    """

    ts: np.ndarray
    E: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    window: int
    level: float
    n_trials: int
    n_boot: int


def _solve_rows(G: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, int]:
    """Solve G[..., k, :, :] e_k = g[..., k, :] for every row k; NaN where ill-conditioned.

    Args:
        G: (..., K, q, q) Gram matrices, one (q, q) per row k.
        g: (..., K, q) right-hand sides.

    Returns:
        (..., K, q) solutions and the number of ill-conditioned systems.
    """
    lam = np.linalg.eigvalsh(G)  # (..., K, q) ascending; Gram matrices are symmetric PSD
    with np.errstate(divide="ignore", invalid="ignore"):
        cond = lam[..., -1] / lam[..., 0]
    bad = ~((lam[..., 0] > 0) & (cond < _MAX_COND))  # NaN counts as bad
    q = G.shape[-1]
    Gs = np.where(bad[..., None, None], np.eye(q), G)  # keep solve well posed
    e = np.linalg.solve(Gs, g[..., None])[..., 0]  # (..., K, q)
    e[bad] = np.nan
    return e, int(bad.sum())


def estimate_le_matrix(
    xbar_trials: Any,
    ts: Any,
    *,
    H: str | np.ndarray = "I",
    W: Any = None,
    window: int,
    step: int | None = None,
    deriv_window: int | None = None,
    polyorder: int = 2,
    trend: bool = True,
    n_boot: int = 200,
    level: float = 0.95,
    seed: int | None = None,
) -> LEMatrixResult:
    """Estimate the full LE matrix E(t) with bootstrap-over-trials intervals (docs/math.md §4).

    On each window of ``window`` consecutive grid points, row k of Ê minimises
    Σ_{r, t, j} (X̄_r^k'(t)_j − Σ_l E_kl W_kl (H_kl X̄_r^l(t))_j)². Identifiability needs
    the regressors to vary across trials or times (e.g. trials with different
    initialisations); windows whose normal equations are ill-conditioned give NaN and a
    warning.

    Cost: the per-time regressors and products take 8·R·T·(K³ + K² + K²p) bytes (100
    trials × 10⁴ times × K = p = 3: 0.5 GB); windows are then summed with no python loop
    per window, and the bootstrap solves n_boot·T'·K small systems (use ``step`` to thin
    the centres).

    Args:
        xbar_trials: (R, T, K, p) class means of R independent trials (p = K for H="L").
        ts: (T,) strictly increasing times (iterations).
        H: "I", "L" or a (Kp, Kp) similarity matrix, as in `LEModel`.
        W: (K, K) sampling weights; default 1/K.
        window: grid points per least-squares window (odd, so the centre is a grid
            point; ≥ 3 with ``trend``, ≥ 1 without).
        step: grid points between consecutive window starts; default ``window``
            (non-overlapping windows, independent estimates).
        deriv_window: Savitzky–Golay window for X̄_r'(t); default 2·polyorder + 1 (the
            shortest, least biased filter; the least-squares window averages the noise).
        polyorder: Savitzky–Golay polynomial degree (2 as in the paper).
        trend: fit E_kl(t) ≈ E_kl + Ė_kl·(t − t_c) on each window and report the value at
            the centre t_c (default; removes the first-order bias of a time-varying E);
            False fits a constant per window.
        n_boot: bootstrap resamples of the R trials (0 disables intervals: lo = hi = NaN).
        level: nominal coverage of the percentile intervals, in (0, 1).
        seed: seed of the bootstrap resampling.

    Returns:
        An `LEMatrixResult` with ``ts`` (T',), ``E``, ``lo``, ``hi`` (each (T', K, K)).

    Raises:
        ValueError: on bad shapes or options, naming the argument.
    """
    x = np.asarray(xbar_trials, dtype=float)
    if x.ndim != 4:
        raise ValueError(f"`xbar_trials` must be (R, T, K, p) class means, got shape {x.shape}")
    R, T, K, p = x.shape
    if not np.all(np.isfinite(x)):
        raise ValueError("`xbar_trials` must be finite")
    t = check_ts(ts)
    if t.shape != (T,):
        raise ValueError(f"`ts` must have shape ({T},) to match `xbar_trials`, got {t.shape}")
    # LEModel validates K, p, H and W with the project's messages; its rates are unused.
    m = LEModel(K, p, alpha=0.0, beta=0.0, H=H, W=W)
    for nm, v in (("window", window), ("n_boot", n_boot)):
        if isinstance(v, bool) or not isinstance(v, int | np.integer):
            raise TypeError(f"`{nm}` must be an int, got {type(v).__name__}")
    if not 1 <= window <= T or window % 2 == 0:
        raise ValueError(f"`window` must be odd and in [1, {T}], got {window}")
    if trend and window < 3:
        raise ValueError(f"`window` must be >= 3 when `trend` is True, got {window}")
    step = int(window) if step is None else step
    if isinstance(step, bool) or not isinstance(step, int | np.integer) or step < 1:
        raise ValueError(f"`step` must be a positive int, got {step!r}")
    if deriv_window is None:
        # the shortest symmetric SG window: its bias (∝ window²·X̄''') is smallest, and the
        # least-squares window, not the derivative filter, averages the noise
        deriv_window = 2 * int(polyorder) + 1 if isinstance(polyorder, int | np.integer) else 5
    deriv_window, polyorder = _check_window(deriv_window, polyorder, T, name="deriv_window")
    if n_boot < 0:
        raise ValueError(f"`n_boot` must be >= 0, got {n_boot}")
    if not (isinstance(level, float | int) and 0 < level < 1):
        raise ValueError(f"`level` must be in (0, 1), got {level!r}")

    # X̄_r'(t) by Savitzky–Golay along time, for every trial at once
    dx = savgol_derivative(t, np.moveaxis(x, 1, 0), window=deriv_window, polyorder=polyorder)
    dx = np.moveaxis(dx, 0, 1)  # (R, T, K, p)

    # φ_kl = W_kl H_kl X̄^l; the Gram of row k is Σ φ_kl·φ_km, its rhs Σ φ_kl·X̄^k'.
    # With a trend, the regressors are [φ_kl, τ φ_kl] (τ = (t − t_c)/half-width), i.e.
    # E_kl(t) ≈ E_kl + Ė_kl (t − t_c) on the window: E(t_c) is then free of the first-order
    # bias that a constant fit takes from regressors growing across the window. The Gram
    # blocks are then window sums of τ^a·(φ_kl·φ_km), a = 0, 1, 2, of per-time products.
    WH = m.W[:, :, None, None] * m.H_blocks  # (K, K, p, p)
    phi = np.einsum("klij,rtlj->rtkli", WH, x)  # (R, T, K, K, p)
    prod_G = np.einsum("rtkli,rtkmi->rtklm", phi, phi).reshape(R, T, K**3)  # φ_kl·φ_km
    prod_g = np.einsum("rtkli,rtki->rtkl", phi, dx).reshape(R, T, K**2)  # φ_kl·X̄^k'
    prod = np.concatenate([prod_G, prod_g], axis=2)  # (R, T, K³ + K²)
    del phi, prod_G, prod_g
    starts = np.arange(0, T - window + 1, step)  # (T',)
    centres = starts + window // 2
    n_mom = 3 if trend else 1  # moments a = 0..2 of τ
    mom = np.empty((R, starts.size, prod.shape[2], n_mom))  # Σ_window τ^a · prod
    view = sliding_window_view(prod, window, axis=1)  # (R, T − w + 1, K³ + K², w), no copy
    # windows are gathered in chunks of ≤ 2²² numbers: bounded memory, few python steps
    chunk = max(1, 2**22 // (R * prod.shape[2] * window))
    for lo in range(0, starts.size, chunk):
        st = starts[lo : lo + chunk]
        tw = t[st[:, None] + np.arange(window)]  # (c, w) times of each window
        tc = t[centres[lo : lo + chunk], None]  # (c, 1)
        hw = np.maximum(tw[:, -1:] - tc, tc - tw[:, :1])  # (c, 1) half-width
        tau = (tw - tc) / hw  # (c, w) in [-1, 1]
        kern = tau[:, :, None] ** np.arange(n_mom)  # (c, w, n_mom)
        mom[:, lo : lo + chunk] = np.matmul(view[:, st], kern[None])  # (R, c, ·, n_mom)
    del view, prod
    Gm = mom[:, :, : K**3].reshape(R, starts.size, K, K, K, n_mom)  # [k, l, m, a]
    gm = mom[:, :, K**3 :].reshape(R, starts.size, K, K, n_mom)  # [k, l, a]
    if trend:
        # [[Σφφ, Στφφ], [Στφφ, Στ²φφ]] and [Σφy, Στφy]
        top = np.concatenate([Gm[..., 0], Gm[..., 1]], axis=-1)
        bottom = np.concatenate([Gm[..., 1], Gm[..., 2]], axis=-1)
        G = np.concatenate([top, bottom], axis=-2)  # (R, T', K, 2K, 2K)
        g = np.concatenate([gm[..., 0], gm[..., 1]], axis=-1)  # (R, T', K, 2K)
    else:
        G, g = Gm[..., 0], gm[..., 0]  # (R, T', K, K, K), (R, T', K, K)

    E, n_bad = _solve_rows(G.sum(axis=0), g.sum(axis=0))  # (T', K, q)
    E = E[..., :K]  # (T', K, K): the value at the centre, without the slope
    lo = np.full_like(E, np.nan)
    hi = np.full_like(E, np.nan)
    if n_boot > 0:
        rng = np.random.default_rng(seed)
        counts = rng.multinomial(R, np.full(R, 1.0 / R), size=n_boot).astype(float)  # (n_boot, R)
        # resampled sums as one BLAS product over the trial axis
        Gb = (counts @ G.reshape(R, -1)).reshape((n_boot,) + G.shape[1:])
        gb = (counts @ g.reshape(R, -1)).reshape((n_boot,) + g.shape[1:])
        Eb = _solve_rows(Gb, gb)[0][..., :K]  # (n_boot, T', K, K)
        pct = 100 * np.array([(1 - level) / 2, (1 + level) / 2])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices stay NaN
            lo, hi = np.nanpercentile(Eb, pct, axis=0)
    if n_bad:
        warnings.warn(
            f"estimate_le_matrix: {n_bad} of {E.shape[0] * K} row systems are ill-conditioned "
            f"(cond > {_MAX_COND:g}); their entries are NaN. Trials need different "
            "initialisations (or longer windows) for E to be identifiable.",
            stacklevel=2,
        )
    return LEMatrixResult(
        ts=t[centres],
        E=E,
        lo=lo,
        hi=hi,
        window=int(window),
        level=float(level),
        n_trials=R,
        n_boot=int(n_boot),
    )

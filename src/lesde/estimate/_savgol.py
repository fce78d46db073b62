"""Savitzky–Golay differentiation on uniform and non-uniform grids (paper §4.1).

The one place the project differentiates estimated integrals: `savgol_derivative` (and
its re-export `lesde.savgol_derivative`), used by the rates and by the tail-index rate
form. A module of its own so that `lesde.estimate.rates` and `lesde.estimate.tail` both
build on it without importing each other.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.signal import savgol_filter

from lesde.model import check_ts

__all__ = ["savgol_derivative"]

# A grid counts as uniform when every spacing equals the mean spacing to this relative
# tolerance: float rounding of t = t0 + m·h is ~1e-16·|t|/h, far below it.
_UNIFORM_RTOL = 1e-9


def _is_uniform(t: np.ndarray) -> bool:
    if t.size < 3:
        return True
    dt = np.diff(t)
    h = (t[-1] - t[0]) / (t.size - 1)
    return bool(np.all(np.abs(dt - h) <= _UNIFORM_RTOL * h))


def _check_window(window: Any, polyorder: Any, n: int, name: str = "window") -> tuple[int, int]:
    for nm, v in ((name, window), ("polyorder", polyorder)):
        if isinstance(v, bool) or not isinstance(v, int | np.integer):
            raise TypeError(f"`{nm}` must be an int, got {type(v).__name__}")
    window, polyorder = int(window), int(polyorder)
    if polyorder < 1:
        raise ValueError(f"`polyorder` must be >= 1 to differentiate, got {polyorder}")
    if window % 2 == 0 or window <= polyorder:
        raise ValueError(f"`{name}` must be odd and > polyorder={polyorder}, got {window}")
    if window > n:
        raise ValueError(f"`{name}` must be <= the number of usable time points {n}, got {window}")
    return window, polyorder


def _local_poly_derivative(t: np.ndarray, y: np.ndarray, window: int, polyorder: int):
    """First derivative from least-squares polynomials over `window` neighbouring points.

    The window of point i is the `window` grid points centred on i, shifted inwards at
    the two ends (scipy's mode="interp"); the polynomial is fitted in τ = t − t_i, so the
    derivative at t_i is its linear coefficient. On a uniform grid this is exactly the
    Savitzky–Golay derivative.

    Args:
        t: (T,) times (any spacing).
        y: (T, m) values, m series fitted at once.

    Returns:
        (T, m) derivatives.
    """
    T = t.size
    half = window // 2
    out = np.empty(y.shape)
    # points are processed in blocks so the (block, window, q) Vandermonde stays small
    block = max(1, 2**20 // (window * (polyorder + 1)))
    for lo in range(0, T, block):
        i = np.arange(lo, min(lo + block, T))
        start = np.clip(i - half, 0, T - window)  # first index of each window
        idx = start[:, None] + np.arange(window)[None, :]  # (b, window)
        tau = t[idx] - t[i, None]  # (b, window)
        # scaling τ to [-1, 1] per window keeps the normal equations well conditioned
        scale = np.abs(tau).max(axis=1, keepdims=True)  # (b, 1), > 0 as window >= 2
        u = tau / scale
        V = np.empty(u.shape + (polyorder + 1,))  # (b, window, q), V[..., a] = u^a
        V[..., 0] = 1.0
        for a in range(1, polyorder + 1):
            V[..., a] = V[..., a - 1] * u
        Vt = V.transpose(0, 2, 1)  # (b, q, window); matmul is ~6x faster than einsum here
        G = Vt @ V  # (b, q, q)
        rhs = Vt @ y[idx]  # (b, q, m)
        coef = np.linalg.solve(G, rhs)  # (b, q, m)
        out[i] = coef[:, 1, :] / scale  # linear coefficient, back in units of 1/t
    return out


def savgol_derivative(ts: Any, y: Any, *, window: int, polyorder: int = 2) -> np.ndarray:
    """dy/dt of one or several series by Savitzky–Golay differentiation along axis 0.

    Uniform grids use `scipy.signal.savgol_filter(deriv=1, delta=h, mode="interp")`.
    Non-uniform grids are handled explicitly, never treated as uniform: at every grid
    point a degree-`polyorder` polynomial in t is fitted by least squares to the
    `window` neighbouring points (the Savitzky–Golay definition without the uniform-
    spacing shortcut) and differentiated.

    Args:
        ts: (T,) strictly increasing times.
        y: (T, ...) finite values.
        window: odd number of points per local fit, polyorder < window <= T.
        polyorder: polynomial degree (≥ 1).

    Returns:
        (T, ...) derivatives.
    """
    t = check_ts(ts)
    yy = np.asarray(y, dtype=float)
    if yy.shape[:1] != t.shape:
        raise ValueError(f"`y` must have {t.size} rows to match `ts`, got shape {yy.shape}")
    window, polyorder = _check_window(window, polyorder, t.size)
    if _is_uniform(t):
        h = (t[-1] - t[0]) / (t.size - 1)
        return savgol_filter(
            yy, window_length=window, polyorder=polyorder, deriv=1, delta=h, axis=0, mode="interp"
        )
    flat = yy.reshape(t.size, -1)  # (T, m)
    return _local_poly_derivative(t, flat, window, polyorder).reshape(yy.shape)

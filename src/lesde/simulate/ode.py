"""Numerical solution of the LE-ODE X̄'(t) = M(t) X̄(t) (paper eq. 6) for any model."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.integrate import solve_ivp

from lesde.model import LEModel, check_ts

__all__ = ["solve_ode"]


def solve_ode(model: LEModel, x0: Any, ts: Any, *, rtol: float = 1e-9) -> np.ndarray:
    """Integrate the LE-ODE with an adaptive 8th-order Runge–Kutta (DOP853).

    Works for any `LEModel` (time-dependent E or α, β; any H, W).

    Args:
        model: the model giving M(t).
        x0: (K, p) class means at ts[0].
        ts: (T,) increasing output times.
        rtol: relative tolerance; the absolute tolerance is rtol·1e-3·max|x0|.

    Returns:
        (T, K, p) class means X̄(t).
    """
    x0 = model.check_x0(x0)
    t = check_ts(ts)
    if not (isinstance(rtol, float | int) and 0 < rtol < 1):
        raise ValueError(f"`rtol` must be in (0, 1), got {rtol!r}")
    K, p = model.n_classes, model.n_features
    if t.size == 1:
        return x0[None].copy()
    scale = max(float(np.abs(x0).max()), 1e-300)
    sol = solve_ivp(
        lambda s, y: model.drift(s) @ y,
        (t[0], t[-1]),
        x0.ravel(),
        method="DOP853",
        t_eval=t,
        rtol=rtol,
        atol=rtol * 1e-3 * scale,
    )
    if not sol.success:
        raise RuntimeError(f"solve_ode failed: {sol.message}")
    return sol.y.T.reshape(t.size, K, p)  # (T, K, p)

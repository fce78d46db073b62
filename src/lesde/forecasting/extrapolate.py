"""Extrapolate an integrated rate beyond the data by its fitted power-law tail.

Â(t) = ∫α̂, B̂(t) = ∫β̂ and the within-class variance V(t) (whose growth is the diffusion,
V' = (1 − 1/n)σ²) are all integrals of a rate. Each is fitted on a tail window before the
cut by the tail-index curve of `lesde.estimate.tail`,

    Y(t) ≈ a + c·((1+t)^(1−s)·(1+t_ref)^(s−1) − 1)/(1−s),

whose derivative is the rate c·(1+t)^(−s)·(1+t_ref)^(s−1): a power law, the form Theorem
3.1 assumes. Beyond the cut the rate is that derivative. When the window holds too few
points or the series does not vary, the rate is held at its mean over the window (the
increment of Y across it over its length), and the extrapolation says so (``method``).
Before the window start t_ref the rate is held at its value there: the fitted law says
nothing about earlier times, and a steep tail (s near its bound 5) evaluated backwards
would be orders of magnitude off (a cloud started at an early checkpoint reads it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from lesde.estimate.tail import fit_tail_many

__all__ = ["TailRate", "fit_tail_rates"]


@dataclass(frozen=True)
class TailRate:
    """A rate extrapolated from the fitted tail of its integral.

    Attributes:
        method: "power law" (the fitted curve's derivative) or "constant" (the window mean).
        s: the fitted tail index (NaN for "constant").
        c: the rate at t_ref (power law), or the constant rate.
        t_ref: the window start.
        t_range: (T₁, T₂) the window.
    """

    method: str
    s: float
    c: float
    t_ref: float
    t_range: tuple[float, float]

    def __call__(self, ts: Any) -> np.ndarray:
        """The rate at ``ts`` (any shape); held at its t_ref value for t < t_ref."""
        t = np.asarray(ts, dtype=float)
        if self.method == "constant":
            return np.full(t.shape, self.c)
        lt = np.log1p(np.maximum(t, self.t_ref))
        return self.c * np.exp(-self.s * (lt - np.log1p(self.t_ref)))

    def to_json(self) -> dict[str, Any]:
        return {"method": self.method, "s": self.s, "c": self.c, "t_ref": self.t_ref,
                "t_range": list(self.t_range)}  # fmt: skip


def fit_tail_rates(
    ts: Any, Y: Any, t_range: tuple[float, float], *, min_points: int = 4
) -> list[TailRate]:
    """Fit each row of ``Y`` on ``t_range`` and return the rates it extrapolates to.

    Args:
        ts: (T,) grid (only points ≤ the cut may be passed: nothing else is read).
        Y: (m, T) integrated rates.
        t_range: (T₁, T₂) the fit window.
        min_points: fewer finite points in the window give the "constant" rate.

    Returns:
        m `TailRate` objects.
    """
    t = np.asarray(ts, dtype=float)
    Ya = np.atleast_2d(np.asarray(Y, dtype=float))
    t1, t2 = float(t_range[0]), float(t_range[1])
    win = (t >= t1) & (t <= t2)
    fits = [None] * Ya.shape[0]
    if np.count_nonzero(win) >= min_points:
        fits = fit_tail_many(t, Ya, t_range=(t1, t2), intervals=False)
    out = []
    for y, fit in zip(Ya, fits, strict=True):
        if fit is not None:
            # d/dt of c·φ_s(t) = c·(1+t)^(−s)·(1+t_ref)^(s−1): at t_ref, c/(1+t_ref)
            rate0 = fit.coef[1] / (1.0 + fit.t_ref)
            out.append(TailRate("power law", fit.s, rate0, fit.t_ref, (t1, t2)))
            continue
        ok = win & np.isfinite(y)
        if np.count_nonzero(ok) >= 2:
            tw, yw = t[ok], y[ok]
            c = float((yw[-1] - yw[0]) / (tw[-1] - tw[0]))
        else:
            c = 0.0
        out.append(TailRate("constant", float("nan"), c, t1, (t1, t2)))
    return out

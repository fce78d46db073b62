"""Figures of the out-of-sample forecast and of the LE-SDE clouds against the genuine ones.

Every function draws on ``ax`` (a new figure's axes when None) and returns the axes.
"""

from __future__ import annotations

from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from lesde.plots.dynamics import CLASS_COLORS  # noqa: E402

__all__ = ["plot_forecast", "plot_cloud_spread", "plot_cloud_separability"]


def _ax(ax):
    if ax is not None:
        return ax
    return plt.figure(figsize=(5, 4)).add_subplot()


def plot_forecast(
    ts: Any,
    mean: Any,
    lo: Any,
    hi: Any,
    genuine: Any,
    persistence: Any,
    trend: Any,
    nu: Any,
    t_cut: float,
    *,
    fit_ts: Any = None,
    fit_genuine: Any = None,
    class_names: list[str] | None = None,
    title: str = "",
    ax=None,
):
    """The forecast of the class means projected on ν, with its band and the baselines.

    Args:
        ts: (F,) forecast grid. mean, lo, hi, genuine, persistence, trend: (F, K, p).
        nu: (p,) the projection direction (Fig. 1's ν).
        t_cut: the cut (a vertical line).
        fit_ts, fit_genuine: (T₀,), (T₀, K, p) the genuine class means before the cut.
        class_names: K names.
    """
    ax = _ax(ax)
    nu = np.asarray(nu, dtype=float)
    K = np.asarray(mean).shape[1]
    names = class_names or [f"class {k}" for k in range(K)]
    proj = {k: np.asarray(v, dtype=float) @ nu for k, v in
            dict(mean=mean, lo=lo, hi=hi, genuine=genuine, persistence=persistence,
                 trend=trend).items()}  # fmt: skip
    for c in range(K):
        col = CLASS_COLORS[c % len(CLASS_COLORS)]
        if fit_ts is not None:
            ax.plot(fit_ts, np.asarray(fit_genuine)[:, c] @ nu, ".", ms=2, color=col, alpha=0.5)
        ax.plot(ts, proj["genuine"][:, c], ".", ms=2, color=col,
                label=f"{names[c]} genuine" if K <= 4 else None)  # fmt: skip
        band_lo = np.minimum(proj["lo"][:, c], proj["hi"][:, c])
        band_hi = np.maximum(proj["lo"][:, c], proj["hi"][:, c])
        if np.isfinite(band_lo).any():
            ax.fill_between(ts, band_lo, band_hi, color=col, alpha=0.2, lw=0)
        ax.plot(ts, proj["mean"][:, c], "-", color="k", lw=1.2,
                label="LE-ODE forecast (95 % band)" if c == 0 else None)  # fmt: skip
        ax.plot(ts, proj["persistence"][:, c], ":", color="0.4", lw=1,
                label="persistence" if c == 0 else None)  # fmt: skip
        ax.plot(ts, proj["trend"][:, c], "--", color="0.6", lw=1,
                label="log-time trend" if c == 0 else None)  # fmt: skip
    ax.axvline(t_cut, color="tab:red", lw=1, ls="-.", label="cut: fit before, forecast after")
    ax.set_xlabel("iteration t")
    ax.set_ylabel("class-mean logits projected on ν")
    # the axis is the genuine data's range, widened by half: a diverging forecast (it can
    # grow like e^{∫α̂} when a fitted rate grows) must not squash the data to a line
    seen = [proj["genuine"].ravel()]
    if fit_ts is not None:
        seen.append((np.asarray(fit_genuine, dtype=float) @ nu).ravel())
    lo_y, hi_y = np.nanpercentile(np.concatenate(seen), [0, 100])
    pad = 0.5 * (hi_y - lo_y + 1e-12)
    ax.set_ylim(lo_y - pad, hi_y + pad)
    m = proj["mean"]
    if not (np.isfinite(m).all() and m.min() >= lo_y - pad and m.max() <= hi_y + pad):
        ax.text(0.02, 0.02, "the forecast leaves the plot (diverges)", transform=ax.transAxes,
                fontsize=7, color="k")  # fmt: skip
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=6)
    return ax


def plot_cloud_spread(ts: Any, curves: dict[str, Any], *, genuine: Any, ax=None):
    """Within-class variance V(t): genuine probes (dots) and simulated LE-SDE clouds (lines).

    Args:
        ts: (C,) checkpoint times. curves: {label: (C,)} simulated. genuine: (C,).
    """
    ax = _ax(ax)
    t = np.asarray(ts, dtype=float)
    ax.plot(t, genuine, "k.", label="genuine probes")
    for i, (label, v) in enumerate(curves.items()):
        ax.plot(t, v, color=f"C{i}", label=label)
    ax.set_yscale("log")
    ax.set_xlabel("iteration t")
    ax.set_ylabel("within-class variance V (per coordinate)")
    ax.legend(fontsize=7)
    return ax


def plot_cloud_separability(ts: Any, curves: dict[str, Any], *, genuine: Any, ax=None):
    """Fraction of trials whose clouds are linearly separable: genuine vs simulated."""
    ax = _ax(ax)
    ax.plot(ts, genuine, "ko", label="genuine probes (LP)")
    for i, (label, v) in enumerate(curves.items()):
        ax.plot(ts, v, "s--", color=f"C{i}", ms=4, label=label)
    ax.set_ylim(-0.05, 1.05)
    ax.set_xlabel("iteration t")
    ax.set_ylabel("separable fraction of trials")
    ax.legend(fontsize=7)
    return ax

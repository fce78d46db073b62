"""Figures across runs: paper Fig. 4 (label-noise phase transition) and sample-size sweeps."""

from __future__ import annotations

from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

__all__ = [
    "plot_metric_curves",
    "plot_final_metric",
    "plot_tail_indices",
    "plot_margin_noise_slopes",
    "plot_ratio_level",
]


def _errorbars(ax, xs, v, lohi, color) -> None:
    """Error bars from (G, 2) interval ends around the values ``v`` (NaN ends skipped)."""
    v = np.asarray(v, dtype=float)
    lohi = np.asarray(lohi, dtype=float).reshape(-1, 2)
    ok = np.all(np.isfinite(lohi), axis=1) & np.isfinite(v)
    if ok.any():
        err = np.stack([v[ok] - lohi[ok, 0], lohi[ok, 1] - v[ok]]).clip(min=0)
        ax.errorbar(np.asarray(xs)[ok], v[ok], yerr=err, fmt="none", ecolor=color, capsize=2,
                    lw=0.9)  # fmt: skip


def _ax(ax):
    if ax is not None:
        return ax
    return plt.figure(figsize=(5, 4)).add_subplot()


def plot_metric_curves(
    curves: dict[float, tuple[Any, Any]],
    *,
    ylabel: str,
    initial: float | None = None,
    ax=None,
):
    """Paper Fig. 4(a)/(b): a validation metric over time, one curve per p_err.

    Args:
        curves: p_err -> (checkpoint steps (C,), trial-mean metric (C,)).
        ylabel: the metric's name.
        initial: value at initialisation (dashed line, as in paper Fig. 4a).
    """
    ax = _ax(ax)
    cmap = plt.get_cmap("viridis")
    keys = sorted(curves)
    for i, p in enumerate(keys):
        steps, v = curves[p]
        ax.plot(steps, v, color=cmap(i / max(1, len(keys) - 1)), label=f"p_err={p:.2f}")
    if initial is not None:
        ax.axhline(initial, color="k", ls="--", lw=1, label="at initialisation")
    ax.set_xlabel("iteration t")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=6, ncol=2)
    return ax


def plot_final_metric(
    x: Any,
    mean: Any,
    sd: Any,
    *,
    xlabel: str = "p_err",
    ylabel: str,
    threshold: float | None = 2 / 3,
    chance: float | None = None,
    ax=None,
):
    """A final metric (mean ± sd over trials) against the swept parameter.

    Args:
        x: (G,) parameter values (p_err, or n per class).
        mean, sd: (G,) mean and standard deviation over trials.
        threshold: vertical dashed line (p_err* = (K−1)/K), or None.
        chance: horizontal dotted line (e.g. 1/K accuracy), or None.
    """
    ax = _ax(ax)
    x, m, s = (np.asarray(v, dtype=float) for v in (x, mean, sd))
    ax.errorbar(x, m, yerr=s, fmt="o-", color="tab:blue", capsize=3)
    if threshold is not None:
        ax.axvline(threshold, color="k", ls="--", lw=1, label=f"p_err* = {threshold:.3f}")
    if chance is not None:
        ax.axhline(chance, color="0.5", ls=":", lw=1, label="chance")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if threshold is not None or chance is not None:
        ax.legend(fontsize=7)
    return ax


def plot_tail_indices(
    x: Any,
    r_alpha: Any,
    r_beta: Any,
    r_gamma: Any,
    *,
    xlabel: str = "p_err",
    threshold: float | None = 2 / 3,
    extra: dict[str, Any] | None = None,
    ci: dict[str, Any] | None = None,
    ax=None,
):
    """Paper Fig. 4(c): tail indices r̂_α, r̂_β, r̂_γ vs p_err with the r = 1 line.

    ``extra`` maps a label to a further (G,) series (dashed), e.g. the other H model's r̂_γ.
    ``ci`` maps "r_alpha", "r_beta", "r_gamma" or a label of ``extra`` to (G, 2) interval
    ends, drawn as error bars (NaN ends are skipped).

    The regions r < 1 (separable, Theorem 3.1) and r > 1 (not separable) are shaded
    green and red as in the paper.
    """
    ax = _ax(ax)
    x = np.asarray(x, dtype=float)
    ci = ci or {}
    step = 0.004 * (np.ptp(x) if x.size > 1 else 1.0)  # side by side, error bars apart

    def draw(name, v, fmt, color, label, k):
        v = np.asarray(v, dtype=float)
        xs = x + k * step
        ax.plot(xs, v, fmt, color=color, label=label)
        if name in ci:
            _errorbars(ax, xs, v, ci[name], color)

    draw("r_alpha", r_alpha, "o-", "tab:blue", "r̂_α", -1)
    draw("r_beta", r_beta, "s-", "tab:red", "r̂_β", 1)
    draw("r_gamma", r_gamma, "^-", "k", "r̂_γ (95 % bootstrap)" if "r_gamma" in ci else "r̂_γ", 0)
    for i, (label, v) in enumerate((extra or {}).items()):
        draw(label, v, "v--", ("0.45", "tab:purple", "tab:olive")[i % 3], label, 2 + i)
    ax.axhline(1.0, color="k", lw=1)
    # noisy short runs can give wild indices; keep the r = 1 line readable
    lo, hi = ax.get_ylim()
    lo, hi = max(min(lo, 0.0), -1.0), min(max(hi, 1.5), 3.0)
    ax.axhspan(lo, 1.0, color="tab:green", alpha=0.08, label="separable (r < 1)")
    ax.axhspan(1.0, hi, color="tab:red", alpha=0.08, label="not separable (r > 1)")
    ax.set_ylim(lo, hi)
    if threshold is not None:
        ax.axvline(threshold, color="k", ls="--", lw=1)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("tail index")
    ax.legend(fontsize=7)
    return ax


def plot_margin_noise_slopes(
    x: Any,
    slopes: dict[str, Any],
    cis: dict[str, Any],
    *,
    xlabel: str = "p_err",
    threshold: float | None = 2 / 3,
    ax=None,
):
    """The margin-to-noise exponent d log ρ / d log t against the swept parameter.

    Above 0 the class margin outgrows the accumulated noise (separation); below, the
    noise wins (`lesde.estimate.diffusion`).

    Args:
        x: (G,) parameter values.
        slopes: label -> (G,) exponents.
        cis: label -> (G, 2) bootstrap intervals.
    """
    ax = _ax(ax)
    x = np.asarray(x, dtype=float)
    step = 0.004 * (np.ptp(x) if x.size > 1 else 1.0)
    for i, (label, v) in enumerate(slopes.items()):
        v = np.asarray(v, dtype=float)
        xs = x + (i - 0.5) * step
        ax.plot(xs, v, "o-", color=f"C{i}", label=label)
        _errorbars(ax, xs, v, cis.get(label, np.full((x.size, 2), np.nan)), f"C{i}")
    ax.axhline(0.0, color="k", lw=1)
    lo, hi = ax.get_ylim()
    ax.axhspan(0.0, max(hi, 0.05), color="tab:green", alpha=0.08, label="margin wins")
    ax.axhspan(min(lo, -0.05), 0.0, color="tab:red", alpha=0.08, label="noise wins")
    ax.set_ylim(min(lo, -0.05), max(hi, 0.05))
    if threshold is not None:
        ax.axvline(threshold, color="k", ls="--", lw=1)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("margin-to-noise exponent")
    ax.legend(fontsize=7)
    return ax


def plot_ratio_level(
    x: Any,
    median: Any,
    ci: Any,
    rho_star: Any,
    separable: Any,
    *,
    xlabel: str = "p_err",
    threshold: float | None = 2 / 3,
    ax=None,
):
    """The measured margin-to-noise ratio at the end against ρ*, with the genuine
    separable fraction on a second axis (`lesde.estimate.diffusion.ratio_level`).

    Args:
        x: (G,) parameter values.
        median: (G,) median over trials of gap/sd. ci: (G, 2) bootstrap intervals.
        rho_star: (G,) ρ* of each point. separable: (G,) fraction of separable trials.
    """
    ax = _ax(ax)
    x, m = np.asarray(x, dtype=float), np.asarray(median, dtype=float)
    lohi = np.asarray(ci, dtype=float).reshape(-1, 2)
    ax.plot(x, m, "o-", color="tab:blue", label="gap / sd (median of trials)")
    _errorbars(ax, x, m, lohi, "tab:blue")
    ax.plot(x, rho_star, "--", color="k", lw=1, label="ρ*: clouds separate half the time")
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("margin-to-noise ratio at the end")
    if threshold is not None:
        ax.axvline(threshold, color="k", ls=":", lw=1)
    ax2 = ax.twinx()
    ax2.plot(x, separable, "s:", color="tab:green", ms=4, label="separable trials (LP)")
    ax2.set_ylim(-0.03, 1.03)
    ax2.set_ylabel("fraction of separable trials", color="tab:green")
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, fontsize=7, loc="lower left")
    return ax

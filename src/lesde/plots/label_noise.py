"""Figures across runs: paper Fig. 4 (label-noise phase transition) and sample-size sweeps."""

from __future__ import annotations

from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

__all__ = ["plot_metric_curves", "plot_final_metric", "plot_tail_indices"]


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
    ax=None,
):
    """Paper Fig. 4(c): tail indices r̂_α, r̂_β, r̂_γ vs p_err with the r = 1 line.

    ``extra`` maps a label to a further (G,) series (dashed), e.g. the other H model's r̂_γ.

    The regions r < 1 (separable, Theorem 3.1) and r > 1 (not separable) are shaded
    green and red as in the paper.
    """
    ax = _ax(ax)
    x = np.asarray(x, dtype=float)
    ax.plot(x, r_alpha, "o-", color="tab:blue", label="r̂_α")
    ax.plot(x, r_beta, "s-", color="tab:red", label="r̂_β")
    ax.plot(x, r_gamma, "^-", color="k", label="r̂_γ")
    for i, (label, v) in enumerate((extra or {}).items()):
        ax.plot(x, v, "v--", color=("0.45", "tab:purple", "tab:olive")[i % 3], label=label)
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

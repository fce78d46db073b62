"""Figures of the separation phase transition and of neural collapse."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402

__all__ = [
    "plot_separation",
    "plot_estimator_check",
    "plot_margin_noise_check",
    "plot_collapse",
    "separation_figure",
    "collapse_figure",
]


def _fmt_horizon(T: float) -> str:
    k = np.log10(T)
    return f"$10^{{{k:.0f}}}$" if T > 0 and abs(k - round(k)) < 1e-9 else f"{T:g}"


def plot_separation(
    part: Mapping[str, Any],
    *,
    ax: Axes | None = None,
    title: str | None = None,
) -> Axes:
    """Fraction of separable runs against the swept parameter, with 95% Wilson bands.

    One curve per time horizon, each with its band; the asymptotic threshold dashed and,
    where given, the finite-horizon crossover estimates dotted in the curve's colour.

    Args:
        part: one sweep of the `lesde.experiments.separation.run` table: keys ``x``,
            ``threshold``, ``x_name``, ``n_runs`` and ``curves``, a list of dicts with
            ``horizon``, ``fraction``, ``lo``, ``hi`` and optionally
            ``finite_time_crossover``.
        ax: axes to draw on (a new figure when None).
        title: axes title.

    Returns:
        The axes.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.6))
    x = np.asarray(part["x"], dtype=float)
    for i, curve in enumerate(part["curves"]):
        color = f"C{i}"
        ax.fill_between(x, curve["lo"], curve["hi"], color=color, alpha=0.25, lw=0)
        ax.plot(x, curve["fraction"], "o-", color=color, ms=4,
                label=f"T = {_fmt_horizon(curve['horizon'])}")  # fmt: skip
        if "finite_time_crossover" in curve:
            ax.axvline(curve["finite_time_crossover"], color=color, ls=":", lw=1)
    thr = part["threshold"]
    ax.axvline(thr, color="k", ls="--", lw=1.2, label=f"threshold {thr:g}")
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel(part["x_name"])
    ax.set_ylabel("P(separable at time T)")
    if title:
        ax.set_title(title, fontsize=10)
    ax.legend(
        fontsize=7,
        loc="center right" if thr == 1.0 else "center left",
        title=f"{part['n_runs']} runs/point, 95% Wilson bands",
        title_fontsize=7,
    )
    ax.grid(alpha=0.3)
    return ax


def plot_estimator_check(
    part: Mapping[str, Any], *, ax: Axes | None = None, title: str | None = None
) -> Axes:
    """Estimated r̂_γ (bootstrap 95 % interval) against the true s, per H model.

    Filled markers: runs whose particles were separable at the horizon (fraction ≥ ½);
    open: not separable. Theorem 3.1 puts the filled ones left of s = 1, and a working
    estimator puts them below r̂ = 1 (the dotted line) and on the diagonal.

    Args:
        part: the ``"c"`` entry of the separation table (``rows`` with ``model``, ``s``,
            ``s_hat``, ``lo``, ``hi``, ``fraction``).
        ax: axes to draw on (a new figure when None).
        title: axes title.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.6))
    rows = part["rows"]
    models = sorted({r["model"] for r in rows})
    xs = [r["s"] for r in rows]
    lo_x, hi_x = min(xs) - 0.1, max(xs) + 0.1
    ax.plot([lo_x, hi_x], [lo_x, hi_x], color="0.6", lw=1, label="r̂ = s")
    for i, H in enumerate(models):
        mine = [r for r in rows if r["model"] == H]
        off = (i - (len(models) - 1) / 2) * 0.012  # side by side
        for r in mine:
            x = r["s"] + off
            yerr = [[max(0.0, r["s_hat"] - r["lo"])], [max(0.0, r["hi"] - r["s_hat"])]]
            sep = r["fraction"] >= 0.5
            ax.errorbar([x], [r["s_hat"]], yerr=yerr, fmt="o", color=f"C{i}", ms=5,
                        mfc=f"C{i}" if sep else "white", capsize=2, lw=1)  # fmt: skip
        ax.plot([], [], "o", color=f"C{i}", label=f"{H}-model")
    ax.plot([], [], "o", color="k", mfc="k", label="separable at T")
    ax.plot([], [], "o", color="k", mfc="white", label="not separable at T")
    ax.axvline(1.0, color="k", ls="--", lw=1)
    ax.axhline(1.0, color="k", ls=":", lw=1)
    ax.set_xlim(lo_x, hi_x)
    ax.set_xlabel("true s in γ(t) = c(1+t)^(-s)")
    ax.set_ylabel("estimated r̂_γ (95 % bootstrap)")
    if title:
        ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="upper left")
    ax.grid(alpha=0.3)
    return ax


def plot_margin_noise_check(
    part: Mapping[str, Any], *, ax: Axes | None = None, title: str | None = None
) -> Axes:
    """Estimated margin-to-noise exponent (95 % bootstrap) against its true value.

    One point per (c/K, q); filled: separable at the horizon. A working estimator puts
    the points on the diagonal and the filled ones right of 0.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.6))
    rows = part["rows"]
    ex = [r["expected"] for r in rows]
    lo_x, hi_x = min(ex) - 0.1, max(ex) + 0.1
    ax.plot([lo_x, hi_x], [lo_x, hi_x], color="0.6", lw=1, label="estimate = truth")
    for r in rows:
        color = "C0" if r["q"] == 0 else "C1"
        sep = r["fraction"] >= 0.5
        yerr = [[max(0.0, r["slope"] - r["lo"])], [max(0.0, r["hi"] - r["slope"])]]
        ax.errorbar([r["expected"]], [r["slope"]], yerr=yerr, fmt="o", color=color, ms=5,
                    mfc=color if sep else "white", capsize=2)  # fmt: skip
        ax.annotate(f"c/K={r['c_over_k']:g}", (r["expected"], r["slope"]), fontsize=6,
                    xytext=(4, -8), textcoords="offset points")  # fmt: skip
    ax.plot([], [], "o", color="C0", label="constant σ")
    ax.plot([], [], "o", color="C1", label="σ(t) = (1+t)^(-1/4)")
    ax.plot([], [], "o", color="k", mfc="white", label="open: not separable at T")
    ax.axvline(0.0, color="k", ls="--", lw=1)
    ax.axhline(0.0, color="k", ls=":", lw=1)
    ax.set_xlim(lo_x, hi_x)
    ax.set_xlabel("true exponent c/K − (1/2 − q)")
    ax.set_ylabel("estimated d log ρ / d log t")
    if title:
        ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="upper left")
    ax.grid(alpha=0.3)
    return ax


def plot_collapse(
    ts: Sequence[float],
    curves: Mapping[str, Sequence[float]],
    *,
    ax: Axes | None = None,
    title: str | None = None,
) -> Axes:
    """ETF deviation (and other collapse metrics) against time, log-log.

    Args:
        ts: (T,) times (iterations); t = 0 is dropped on the log axis.
        curves: label -> (T,) values (e.g. closed form and SDE ETF deviations).
        ax: axes to draw on (a new figure when None).
        title: axes title.

    Returns:
        The axes.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.6))
    t = np.asarray(ts, dtype=float)
    keep = t > 0
    for label, v in curves.items():
        ax.loglog(t[keep], np.asarray(v, dtype=float)[keep], label=label)
    ax.set_xlabel("t (iterations)")
    ax.set_ylabel("deviation from a simplex ETF")
    if title:
        ax.set_title(title)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, which="both")
    return ax


def separation_figure(table: Mapping[str, Any], path: str | os.PathLike) -> None:
    """Write the figure of `lesde.experiments.separation.run` to ``path`` (two panels,
    three with the estimator check)."""
    has_c = bool(table.get("c", {}).get("rows"))
    has_d = bool(table.get("d", {}).get("rows"))
    n = 2 + has_c + has_d
    fig, axes = plt.subplots(1, n, figsize=(5.4 * n, 4))
    plot_separation(table["a"], ax=axes[0], title="(a) Theorem 2.1: K=2, p=1, constant α, β")
    plot_separation(table["b"], ax=axes[1], title="(b) Theorem 3.1: K=3, p=3, γ(t) = c(1+t)^(-s)")
    axes[0].set_xlabel("α − β  (dotted: finite-T crossover estimates)")
    axes[1].set_xlabel("decay exponent s")
    if has_c:
        T = _fmt_horizon(table["c"]["horizon"])
        plot_estimator_check(table["c"], ax=axes[2], title=f"(c) estimated r̂_γ vs true s (T = {T})")
    if has_d:
        T = _fmt_horizon(table["d"]["horizon"])
        plot_margin_noise_check(
            table["d"], ax=axes[-1], title=f"(d) γ = c/(1+t): margin-to-noise exponent (T = {T})"
        )
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def collapse_figure(result: Mapping[str, Any], path: str | os.PathLike) -> None:
    """Write the neural-collapse figure of `lesde.experiments.collapse.run` to ``path``."""
    fig, ax = plt.subplots(figsize=(6, 4))
    plot_collapse(result["ts"], result["curves"], ax=ax, title=result.get("title"))
    nc1 = result.get("nc1")
    if nc1:
        t = np.asarray(nc1["ts"], dtype=float)
        keep = t > 0
        ax.loglog(t[keep], np.asarray(nc1["median"])[keep], "s--", color="C3", ms=4,
                  label="NC1 of the particles (LE-SDE median)")  # fmt: skip
        ax.set_ylabel("ETF deviation / NC1")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)

"""Figures of one run's dynamics: paper Figs. 1, 3, 5, the RD plot and the new ones.

Every function draws on ``ax`` (a new figure's axes when None) and returns the axes; no
computation beyond projections and means, no ``plt.show()``.
"""

from __future__ import annotations

from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

__all__ = [
    "CLASS_COLORS",
    "plot_trajectories_3d",
    "plot_projection",
    "plot_ab",
    "plot_rates",
    "plot_simulated_vs_genuine",
    "plot_rd",
    "plot_le_matrix",
    "plot_direct_vs_inverted",
    "plot_etf",
]

CLASS_COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown")
COORD_STYLES = ("-", "--", ":", "-.")


def _ax(ax, projection: str | None = None):
    if ax is not None:
        return ax
    fig = plt.figure(figsize=(5, 4))
    return fig.add_subplot(projection=projection)


def _color(k: int) -> str:
    return CLASS_COLORS[k % len(CLASS_COLORS)]


def _names(class_names, K: int) -> list[str]:
    return list(class_names) if class_names is not None else [f"class {k}" for k in range(K)]


def plot_trajectories_3d(xbar: Any, *, class_names=None, ax=None):
    """Paper Fig. 1(a): class-mean logit trajectories X̄^k(t) in R^3.

    Args:
        xbar: (T, K, 3) class means.
        class_names: K labels for the legend.
        ax: a 3-D axes (``projection="3d"``) or None.
    """
    x = np.asarray(xbar)
    ax = _ax(ax, "3d")
    names = _names(class_names, x.shape[1])
    for k in range(x.shape[1]):
        ax.plot(x[:, k, 0], x[:, k, 1], x[:, k, 2], color=_color(k), label=names[k])
        ax.scatter(*x[0, k, :3], color=_color(k), marker="o", s=15)
        ax.scatter(*x[-1, k, :3], color=_color(k), marker="*", s=60)
    ax.set_xlabel("logit 1")
    ax.set_ylabel("logit 2")
    ax.set_zlabel("logit 3")
    # look down the 1-vector: the direction the softmax ignores is hidden and the K = 3
    # margin directions d_l appear 120° apart
    ax.view_init(elev=35.26, azim=45)
    ax.set_title("class-mean logits X̄ᵏ(t) (o start, * end)")
    ax.legend(fontsize=7, loc="upper left")
    return ax


def plot_projection(
    ts: Any,
    proj_mean: Any,
    *,
    sample_t: Any = None,
    sample_proj: Any = None,
    sample_label: Any = None,
    sim_proj: Any = None,
    class_names=None,
    ax=None,
):
    """Paper Fig. 1(b): logits projected on ν = X̄^k(T) − X̄^l(T), with per-sample scatter.

    Args:
        ts: (T,) times of the class means.
        proj_mean: (T, K) ⟨ν, X̄^k(t)⟩.
        sample_t, sample_proj, sample_label: (N,) time, projection and label of recorded
            per-sample logits (scatter, transparent).
        sim_proj: (T, K) projection of the simulated class means (dashed), or None.
        class_names: K labels.
    """
    ax = _ax(ax)
    pm = np.asarray(proj_mean)
    K = pm.shape[1]
    names = _names(class_names, K)
    if sample_proj is not None:
        lab = np.asarray(sample_label)
        for k in range(K):
            sel = lab == k
            ax.scatter(
                np.asarray(sample_t)[sel], np.asarray(sample_proj)[sel], s=2, alpha=0.15,
                color=_color(k), linewidths=0, rasterized=True,
            )  # fmt: skip
    for k in range(K):
        ax.plot(ts, pm[:, k], color=_color(k), lw=2, label=f"{names[k]} (genuine mean)")
        if sim_proj is not None:
            ax.plot(ts, np.asarray(sim_proj)[:, k], color="k", ls="--", lw=1)
    if sim_proj is not None:
        ax.plot([], [], color="k", ls="--", lw=1, label="simulated (L-model)")
    ax.set_xlabel("iteration t")
    ax.set_ylabel("⟨ν, logit⟩")
    ax.set_title("1-D projection and per-sample logits")
    ax.legend(fontsize=7)
    return ax


def plot_ab(ts: Any, A: Any, B: Any, *, title: str = "", ax=None):
    """Paper Fig. 3 (rows 1, 3): Â(t) and B̂(t)."""
    ax = _ax(ax)
    ax.plot(ts, A, label="Â(t)", color="tab:blue")
    ax.plot(ts, B, label="B̂(t)", color="tab:red")
    ax.axhline(0, color="0.6", lw=0.8)
    ax.set_xlabel("iteration t")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return ax


def plot_rates(ts: Any, alpha: Any, beta: Any, *, title: str = "", ax=None):
    """Paper Fig. 3 (rows 2, 4): α̂(t) and β̂(t) (Savitzky–Golay derivatives)."""
    ax = _ax(ax)
    ax.plot(ts, alpha, label="α̂(t)", color="tab:blue")
    ax.plot(ts, beta, label="β̂(t)", color="tab:red")
    ax.axhline(0, color="0.6", lw=0.8)
    ax.set_xlabel("iteration t")
    ax.set_ylabel("per iteration")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return ax


def plot_simulated_vs_genuine(
    ts: Any, mean: Any, sd: Any, xbar: Any, k: int, *, title: str = "", ax=None
):
    """Paper Fig. 5: simulated X̂^k(t) (mean ± sd over paths) over the genuine X̄^k(t).

    Args:
        ts: (T,) times.
        mean, sd: (T, K, p) over simulated paths.
        xbar: (T, K, p) genuine class means.
        k: the class shown; one line per logit coordinate.
    """
    ax = _ax(ax)
    m, s, x = np.asarray(mean), np.asarray(sd), np.asarray(xbar)
    for j in range(x.shape[2]):
        c = _color(j)
        ax.scatter(ts, x[:, k, j], s=4, alpha=0.25, color=c, linewidths=0, rasterized=True)
        ax.plot(ts, m[:, k, j], color=c, lw=1.5, label=f"logit {j + 1}")
        ax.fill_between(ts, m[:, k, j] - s[:, k, j], m[:, k, j] + s[:, k, j], color=c, alpha=0.2)
    ax.set_xlabel("iteration t")
    ax.set_title(title)
    ax.legend(fontsize=7, title="line: simulated, dots: genuine", title_fontsize=7)
    return ax


def plot_rd(ts: Any, rd: dict[str, Any], *, late_from: float | None = None, ax=None):
    """Relative difference RD(t) (mean over classes) of simulations against genuine X̄.

    Args:
        ts: (T,) times.
        rd: label -> (T, K) RD_k(t).
        late_from: time from which "late training" is averaged (shaded).
    """
    ax = _ax(ax)
    for i, (label, v) in enumerate(rd.items()):
        v = np.asarray(v)
        ax.plot(ts, v.mean(axis=1), label=label, color=CLASS_COLORS[i % 6])
    if late_from is not None:
        ax.axvspan(late_from, np.asarray(ts)[-1], color="0.9", zorder=0, label="late training")
    ax.set_xlabel("iteration t")
    ax.set_ylabel("RD (mean over classes)")
    ax.set_ylim(bottom=0)
    ax.set_title("relative difference, simulated vs genuine")
    ax.legend(fontsize=7)
    return ax


def plot_le_matrix(ts: Any, E: Any, lo: Any, hi: Any, *, ax=None):
    """Ê_kl(t) of the full LE matrix with bootstrap intervals (diagonal solid, off dashed)."""
    ax = _ax(ax)
    E, lo, hi = np.asarray(E), np.asarray(lo), np.asarray(hi)
    K = E.shape[1]
    for k in range(K):
        for l in range(K):
            ls = "-" if k == l else "--"
            c = _color(k) if k == l else _color(l)
            lw = 1.8 if k == l else 1.0
            ax.plot(ts, E[:, k, l], ls=ls, color=c, lw=lw, marker=".", ms=3)
            ax.fill_between(ts, lo[:, k, l], hi[:, k, l], color=c, alpha=0.12)
    ax.plot([], [], "k-", label="Ê_kk (intra-class)")
    ax.plot([], [], "k--", label="Ê_kl, k≠l (inter-class)")
    ax.axhline(0, color="0.6", lw=0.8)
    ax.set_xlabel("iteration t")
    ax.set_ylabel("per iteration")
    ax.set_title("full LE matrix Ê(t), 95% bootstrap bands")
    ax.legend(fontsize=7)
    return ax


def plot_direct_vs_inverted(
    steps: Any, alpha_d: Any, beta_d: Any, ts: Any, alpha_inv: Any, beta_inv: Any, *, ax=None
):
    """Direct (step-level) α̂, β̂ (median and quartiles over trials) against the inverted rates.

    Single-step ratios have heavy tails (a trained sample with a near-zero margin gives a
    huge ratio), hence the median.

    Args:
        steps: (M,) steps of the direct measurements.
        alpha_d, beta_d: (R, M) per-trial direct estimates.
        ts: (T,) grid of the inverted rates.
        alpha_inv, beta_inv: (T,) α̂(t), β̂(t) from the L-model inversion.
    """
    ax = _ax(ax)
    for name, d, inv, c, shift in (
        ("α̂", alpha_d, alpha_inv, "tab:blue", 0.93),
        ("β̂", beta_d, beta_inv, "tab:red", 1.07),  # side by side on the log axis
    ):
        d = np.asarray(d, dtype=float)
        med = np.nanmedian(d, axis=0)
        q1, q3 = np.nanpercentile(d, [25, 75], axis=0)
        ax.errorbar(np.asarray(steps) * shift, med, yerr=[med - q1, q3 - med], fmt="o", ms=3,
                    color=c, capsize=2,
                    label=f"{name} direct (median, quartiles)")  # fmt: skip
        pos = np.asarray(ts) > 0
        ax.plot(np.asarray(ts)[pos], np.asarray(inv)[pos], color=c, lw=1.2,
                label=f"{name} inverted (L-model)")  # fmt: skip
    ax.axhline(0, color="0.6", lw=0.8)
    ax.set_xlabel("iteration t")
    ax.set_ylabel("per iteration")
    ax.set_xscale("log")  # the measured steps are log-spaced from step 1
    ax.set_title("direct vs inverted local elasticity")
    ax.legend(fontsize=7)
    return ax


def plot_etf(ts: Any, etf_trials: Any, *, etf_mean_path: Any = None, ax=None):
    """ETF deviation of the class means over time (median and quartiles over trials)."""
    ax = _ax(ax)
    e = np.asarray(etf_trials, dtype=float)
    med = np.nanmedian(e, axis=0)
    q1, q3 = np.nanpercentile(e, [25, 75], axis=0)
    ax.plot(ts, med, color="tab:purple", label="per trial: median")
    ax.fill_between(ts, q1, q3, color="tab:purple", alpha=0.2, label="quartiles")
    if etf_mean_path is not None:
        ax.plot(ts, etf_mean_path, color="k", ls="--", lw=1, label="trial-averaged means")
    ax.set_xlabel("iteration t")
    ax.set_ylabel("max |cos + 1/(K−1)|")
    ax.set_ylim(bottom=0)
    ax.set_title("ETF deviation of class-mean logits")
    ax.legend(fontsize=7)
    return ax

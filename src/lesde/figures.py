"""Draw every figure of a run directory to ``figures/<name>.png`` and ``.pdf``.

A single-training run (geomnist, digits, cifar, and each point of a sweep) gets the
paper's Fig. 1 (trajectories and 1-D projection), Fig. 3 (Â, B̂, α̂, β̂ under both H
models), Fig. 5 (simulated vs genuine X̄(t)), the RD plot, and the new ones: the full
Ê(t) with bootstrap bands, direct vs inverted α̂/β̂ (when the trainer recorded them) and
the ETF deviation over time. A multi-point run (label-noise, sample-size) gets paper
Fig. 4 (validation loss and accuracy vs p_err, tail indices vs p_err with r = 1).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from lesde.experiments.outputs import Analysis, Estimates, Forecasts, Simulation  # noqa: E402
from lesde.experiments.stages import projection_direction  # noqa: E402
from lesde.experiments.summary import RunSummary, read_summary  # noqa: E402
from lesde.plots import dynamics as dyn  # noqa: E402
from lesde.plots import forecast as fcp  # noqa: E402
from lesde.plots import label_noise as ln  # noqa: E402
from lesde.rundir import load_npz  # noqa: E402

__all__ = ["draw_figures", "FIGURE_TITLES"]

FIGURE_TITLES = {
    "fig1_trajectories": "Fig. 1: class-mean logit trajectories and their 1-D projection",
    "fig3_estimates": "Fig. 3: Â, B̂ and α̂, β̂ under the I-model and the L-model",
    "fig5_simulated": "Fig. 5: LE-ODE (L-model) driven by the estimates vs genuine X̄(t)",
    "rd": "Relative difference RD(t) of the simulations",
    "le_matrix": "Full LE matrix Ê(t) with bootstrap-over-trials intervals",
    "direct_vs_inverted": "Direct (step-level) vs inverted α̂, β̂",
    "etf": "ETF deviation of class-mean logits over time (neural collapse)",
    "margin_noise": "Margin-to-noise ratio ρ(t) and the diffusion Σ̂(t) from the probes' spread",
    "forecast": "Out-of-sample forecast: fitted on t ≤ f·T, the LE-ODE's class means after the "
    "cut against the genuine ones and two baselines (one panel per f)",
    "sde_clouds": "The LE-SDE with its estimated noise Σ̂(t): within-class spread and "
    "separable fraction of the simulated clouds vs the genuine probes",
    "fig4_label_noise": "Fig. 4: phase transition of separability vs p_err",
    "sample_size": "Final metrics and tail indices vs samples per class",
    "separation": "Separation phase transition (Theorems 2.1, 3.1), 95% Wilson bands",
    "collapse": "ETF deviation of normalised class means (Proposition 3.4)",
}


def _save(fig, out: Path, name: str, written: list[Path]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    for ext in ("png", "pdf"):
        p = out / f"{name}.{ext}"
        fig.savefig(p, dpi=110 if ext == "png" else None)
        written.append(p)
    plt.close(fig)


def _class_names(summary: RunSummary, K: int) -> list[str]:
    names = summary.class_names
    return list(names) if names and len(names) == K else [f"class {k}" for k in range(K)]


def _single_run(run_dir: Path, summary: RunSummary, out: Path) -> list[Path]:
    """Every figure of one training run, from its stage files and numbers."""
    written: list[Path] = []
    est = Estimates.from_arrays(load_npz(run_dir / "estimates.npz"))
    sim = Simulation.from_arrays(load_npz(run_dir / "simulate.npz"))
    ana = Analysis.from_arrays(load_npz(run_dir / "analysis.npz"))
    names = _class_names(summary, est.xbar.shape[1])
    nu = _fig1(est, sim, ana, names, out, written)
    _fig3(est, out, written)
    _fig5(sim, names, out, written)
    _rd(sim, summary.numbers.get("simulate", {}).get("late_fraction", 0.25), out, written)
    if ana.le_matrix:
        fig, ax = plt.subplots(figsize=(6, 4))
        le = ana.le_matrix
        dyn.plot_le_matrix(le["E_ts"], le["E"], le["E_lo"], le["E_hi"], ax=ax)
        _save(fig, out, "le_matrix", written)
    if ana.direct:
        fig, ax = plt.subplots(figsize=(6, 4))
        dd = ana.direct
        dyn.plot_direct_vs_inverted(
            dd["le_steps"], dd["le_alpha"], dd["le_beta"], est.ts, est.models["L"].alpha,
            est.models["L"].beta, ax=ax,
        )  # fmt: skip
        _save(fig, out, "direct_vs_inverted", written)
    if ana.diffusion:
        _margin_noise(ana, summary.numbers.get("analyse", {}).get("margin_noise", {}), out,
                      written)  # fmt: skip
    fig, ax = plt.subplots(figsize=(6, 4))
    dyn.plot_etf(ana.checkpoint_step, ana.etf_trials, etf_mean_path=ana.etf_mean_path, ax=ax)
    _save(fig, out, "etf", written)
    _forecast_figures(run_dir, summary, out, sim, est, nu, names, written)
    return written


def _fig1(est: Estimates, sim: Simulation, ana: Analysis, names: list[str], out: Path,
          written: list[Path]) -> np.ndarray:  # fmt: skip
    """Fig. 1: trajectories and the projection on ν = X̄^k(T) − X̄^l(T), the pair farthest
    apart (ν and the sampled trained-sample logits were chosen by the analyse stage).

    Returns:
        ν.
    """
    ts, xbar = est.ts, est.xbar
    K = xbar.shape[1]
    fig = plt.figure(figsize=(11, 4.2))
    if xbar.shape[2] >= 3:
        dyn.plot_trajectories_3d(
            xbar, class_names=names, ax=fig.add_subplot(1, 2, 1, projection="3d")
        )
    if ana.fig1:
        nu, (k, l) = ana.fig1["nu"], (int(v) for v in ana.fig1["pair"])
        sample_t, sample_proj = ana.fig1["sample_t"], ana.fig1["sample_proj"]
        sample_label = ana.fig1["sample_label"]
    else:  # a run directory written before the analyse stage stored them
        nu, (k, l) = projection_direction(xbar[-1])
        sample_t = sample_proj = sample_label = None
    ax = dyn.plot_projection(
        ts, xbar @ nu, sample_t=sample_t, sample_proj=sample_proj, sample_label=sample_label,
        class_names=names, ax=fig.add_subplot(1, 2, 2),
    )  # fmt: skip
    sim_proj = sim.own["L"].mean @ nu  # (T', K)
    for c in range(K):
        ax.plot(sim.ts, sim_proj[:, c], color="k", ls="--", lw=1,
                label="simulated (L-model, from t₀)" if c == 0 else None)  # fmt: skip
    ax.legend(fontsize=7)
    fig.axes[-1].set_title(f"projection on ν ∝ X̄(T) of {names[k]} − X̄(T) of {names[l]}")
    _save(fig, out, "fig1_trajectories", written)
    return nu


def _fig3(est: Estimates, out: Path, written: list[Path]) -> None:
    """Fig. 3: Â, B̂ and α̂, β̂ under both H models."""
    fig, axes = plt.subplots(2, 2, figsize=(10, 7))
    for i, H in enumerate(("I", "L")):
        m = est.models[H]
        dyn.plot_ab(est.ts, m.A, m.B, title=f"{H}-model: Â, B̂", ax=axes[i, 0])
        dyn.plot_rates(est.ts, m.alpha, m.beta, title=f"{H}-model: α̂, β̂", ax=axes[i, 1])
    _save(fig, out, "fig3_estimates", written)


def _fig5(sim: Simulation, names: list[str], out: Path, written: list[Path]) -> None:
    """Fig. 5: the L-model driven by I- and L-estimates (paper), one column per class."""
    K = sim.xbar.shape[1]
    fig, axes = plt.subplots(2, K, figsize=(3.6 * K, 6.4), squeeze=False)
    for i, H in enumerate(("I", "L")):
        for c in range(K):
            dyn.plot_simulated_vs_genuine(
                sim.ts, sim.paper[H].mean, sim.paper[H].sd, sim.xbar, c,
                title=f"{names[c]}: rates from {H}-model", ax=axes[i, c],
            )  # fmt: skip
    _save(fig, out, "fig5_simulated", written)


def _rd(sim: Simulation, late_fraction: float, out: Path, written: list[Path]) -> None:
    """RD(t) of the simulations, the late window shaded."""
    fig, ax = plt.subplots(figsize=(6, 4))
    late_from = sim.ts[-max(1, int(round(late_fraction * sim.ts.size)))]
    dyn.plot_rd(
        sim.ts,
        {
            "I-model (own rates)": sim.own["I"].rd,
            "L-model (own rates)": sim.own["L"].rd,
            "L-model, I-rates (paper Fig. 5a)": sim.paper["I"].rd,
        },
        late_from=late_from,
        ax=ax,
    )
    _save(fig, out, "rd", written)


def _margin_noise(ana: Analysis, mn: dict, out: Path, written: list[Path]) -> None:
    """ρ(t) under both H models beside the measured ratio and ρ*; V(t) and σ̂²(t)."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    ax = axes[0]
    for i, H in enumerate(("I", "L")):
        if H in ana.ratio:
            ax.loglog(*ana.ratio[H], color=f"C{i}",
                      label=f"ρ(t), {H}-model margin e^((Â−B̂)/K)·gap(t₀)")  # fmt: skip
    cts = ana.diffusion["ts"]
    keep = cts > 0
    ax.loglog(cts[keep], ana.diffusion["ratio_direct"][keep], "k.--", lw=1,
              label="measured: class-mean gap / spread (median of trials)")  # fmt: skip
    rho_star = mn.get("level", {}).get("threshold")
    if rho_star:
        label = f"ρ* = {rho_star:.2g}: Gaussian clouds separate half the time"
        ax.axhline(rho_star, color="tab:red", ls=":", lw=1.2, label=label)
    t_range = mn.get("L", {}).get("t_range")
    if t_range:
        ax.axvspan(*t_range, color="0.9", zorder=0, label="window of the trend")
    ax.set_xlabel("iteration t")
    ax.set_ylabel("margin-to-noise ratio ρ")
    ax.set_title("margin vs √(accumulated Σ̂): growing → separation")
    ax.legend(fontsize=7)
    ax = axes[1]
    ax.loglog(cts[keep], ana.diffusion["V"][keep], color="C2", label="within-class variance V(t)")
    pos = keep & (ana.diffusion["sigma2"] > 0)
    ax.loglog(cts[pos], ana.diffusion["sigma2"][pos], ".", color="C3",
              label="σ̂²(t) = dV/dt")  # fmt: skip
    ax.set_xlabel("iteration t")
    ax.set_title("diffusion estimated from the train probes' spread")
    ax.legend(fontsize=7)
    _save(fig, out, "margin_noise", written)


def _forecast_figures(run_dir, summary, out, sim, est, nu, names, written) -> None:
    """The forecast panels (one per fit fraction, a row per H model) and the LE-SDE clouds."""
    if (run_dir / "forecast.npz").exists():
        fcs = Forecasts.from_arrays(load_npz(run_dir / "forecast.npz"))
        rows = summary.numbers.get("forecast", {})
        n = max((len(v) for v in fcs.runs.values()), default=0)
        if n:
            fig, axes = plt.subplots(2, n, figsize=(4.2 * n, 7.4), squeeze=False)
            for i, H in enumerate(("I", "L")):
                for j, r in enumerate(fcs.runs.get(H, [])):
                    sc = rows.get(H, [{}] * n)[j] if j < len(rows.get(H, [])) else {}
                    before = est.ts <= r.t_cut
                    title = (f"{H}-model, fit on f = {r.fit_fraction:g}: RD "
                             f"{sc.get('rd', np.nan):.2f} (persistence "
                             f"{sc.get('rd_persistence', np.nan):.2f}, skill "
                             f"{sc.get('skill', np.nan):+.2f})")  # fmt: skip
                    fcp.plot_forecast(
                        r.ts, r.mean, r.lo, r.hi, r.genuine, r.persistence, r.trend, nu, r.t_cut,
                        fit_ts=est.ts[before], fit_genuine=est.xbar[before], class_names=names,
                        title=title, ax=axes[i, j],
                    )  # fmt: skip
            _save(fig, out, "forecast", written)
    if sim.clouds:
        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
        any_c = next(iter(sim.clouds.values()))
        fcp.plot_cloud_spread(
            any_c["ts"], {f"LE-SDE, {H}-model (α̂, β̂, Σ̂ in sample)": c["spread_sim"]
                          for H, c in sim.clouds.items()},
            genuine=any_c["spread_gen"], ax=axes[0],
        )  # fmt: skip
        axes[0].set_title("within-class spread: simulated clouds vs genuine")
        fcp.plot_cloud_separability(
            any_c["sep_ts"], {f"LE-SDE, {H}-model": c["sep_sim"] for H, c in sim.clouds.items()},
            genuine=any_c["sep_gen"], ax=axes[1],
        )  # fmt: skip
        axes[1].set_title("separable fraction of trials over time")
        _save(fig, out, "sde_clouds", written)


def _points(run_dir: Path, summary: RunSummary) -> list[tuple[float, list[Path], list[RunSummary]]]:
    """Completed points grouped by parameter value (several seeds share a value)."""
    groups: dict[float, tuple[list[Path], list[RunSummary]]] = {}
    for p in summary.points:
        d = run_dir / p["dir"]
        s = read_summary(d)
        if s.stages.get("analyse", {}).get("done"):
            dirs, sums = groups.setdefault(float(p["value"]), ([], []))
            dirs.append(d)
            sums.append(s)
    return [(v, *groups[v]) for v in sorted(groups)]


def _mean(values: list[Any]) -> float:
    v = np.asarray([np.nan if x is None else x for x in values], dtype=float)
    return float(np.nanmean(v)) if np.isfinite(v).any() else float("nan")


def _multi_run(run_dir: Path, summary: RunSummary, out: Path) -> list[Path]:
    written: list[Path] = []
    pts = _points(run_dir, summary)
    if not pts:
        return written
    param = summary.other.get("parameter", "p_err")
    K = int(summary.other.get("n_classes", 3))
    H = summary.other.get("tail_model", "L")
    x = [v for v, _, _ in pts]

    def avg(f) -> list[float]:
        return [_mean([f(s) for s in ss]) for _, _, ss in pts]

    r_a = avg(lambda s: s["estimate"][H]["r_alpha"])
    r_b = avg(lambda s: s["estimate"][H]["r_beta"])
    r_g = avg(lambda s: s["estimate"][H]["r_gamma"])

    def ci(f) -> list[list[float]]:  # one seed per value: its interval; several: none
        return [f(ss[0]) if len(ss) == 1 else [np.nan, np.nan] for _, _, ss in pts]

    def est_ci(h: str, name: str):
        return ci(lambda s: s["estimate"][h].get(f"{name}_ci", [np.nan, np.nan]))

    def mn_ci(h: str):
        return ci(lambda s: s["analyse"].get("margin_noise", {}).get(h, {})
                  .get("slope_ci", [np.nan, np.nan]))  # fmt: skip

    acc_m = avg(lambda s: s["analyse"]["val_acc_final"])
    # spread over trials (one seed) or over seeds' means (several)
    acc_s = [
        ss[0]["analyse"]["val_acc_final_sd"]
        if len(ss) == 1
        else float(np.std([s["analyse"]["val_acc_final"] for s in ss]))
        for _, _, ss in pts
    ]
    curves_loss, curves_acc = {}, {}
    for v, dirs, _ in pts:
        a = Analysis.from_arrays(load_npz(dirs[0] / "analysis.npz"))
        curves_loss[v] = (a.checkpoint_step, np.nanmean(a.val_loss, axis=0))
        curves_acc[v] = (a.checkpoint_step, np.nanmean(a.val_acc, axis=0))
    init_loss = _mean([s["analyse"]["val_loss_initial"] for _, _, ss in pts for s in ss])
    if param == "p_err":
        thr = (K - 1) / K
        fig, axes = plt.subplots(2, 3, figsize=(17, 8.4))
        axes = axes.ravel()
        ln.plot_metric_curves(curves_loss, ylabel="validation loss", initial=init_loss, ax=axes[0])
        axes[0].set_title("(a) validation loss")
        ln.plot_metric_curves(curves_acc, ylabel="validation accuracy", ax=axes[1])
        axes[1].set_title("(b) validation accuracy")
        ln.plot_final_metric(
            x, acc_m, acc_s, ylabel="final validation accuracy", threshold=thr, chance=1 / K,
            ax=axes[2],
        )  # fmt: skip
        axes[2].set_title("final validation accuracy vs p_err")
        other = "I" if H == "L" else "L"
        r_g_other = avg(lambda s: s["estimate"][other]["r_gamma"])
        lab_other = f"r̂_γ ({other}-model)"
        ln.plot_tail_indices(
            x, r_a, r_b, r_g, threshold=thr, ax=axes[3], extra={lab_other: r_g_other},
            ci={"r_alpha": est_ci(H, "r_alpha"), "r_beta": est_ci(H, "r_beta"),
                "r_gamma": est_ci(H, "r_gamma"), lab_other: est_ci(other, "r_gamma")},
        )  # fmt: skip
        axes[3].set_title(f"(c) tail indices ({H}-model; r̂_γ from Â − B̂)")
        slopes = {f"{h}-model": avg(lambda s, h=h: s["analyse"].get("margin_noise", {})
                                    .get(h, {}).get("slope")) for h in ("I", "L")}  # fmt: skip
        ln.plot_margin_noise_slopes(x, slopes, {f"{h}-model": mn_ci(h) for h in ("I", "L")},
                                    threshold=thr, ax=axes[4])  # fmt: skip
        axes[4].set_title("(d) margin-to-noise exponent (95 % bootstrap)")
        lv = [ss[0]["analyse"].get("margin_noise", {}).get("level", {}) for _, _, ss in pts]
        ln.plot_ratio_level(
            x, [v.get("median", np.nan) for v in lv], [v.get("ci", [np.nan] * 2) for v in lv],
            [v.get("threshold", np.nan) for v in lv],
            avg(lambda s: s["analyse"]["separable_fraction_final"]), threshold=thr, ax=axes[5],
        )  # fmt: skip
        axes[5].set_title("(e) measured margin-to-noise ratio at the end vs ρ*")
        _save(fig, out, "fig4_label_noise", written)
    else:
        fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
        ln.plot_metric_curves(curves_acc, ylabel="validation accuracy", ax=axes[0])
        for line, v in zip(axes[0].get_lines(), sorted(curves_acc), strict=False):
            line.set_label(f"{param}={v:g}")
        axes[0].legend(fontsize=6)
        ln.plot_final_metric(
            x, acc_m, acc_s, xlabel=param, ylabel="final validation accuracy", threshold=None,
            chance=1 / K, ax=axes[1],
        )  # fmt: skip
        axes[1].set_xscale("log")
        ln.plot_tail_indices(x, r_a, r_b, r_g, xlabel=param, threshold=None, ax=axes[2])
        axes[2].set_xscale("log")
        _save(fig, out, "sample_size", written)
    return written


def draw_figures(
    run_dir: Path | str, *, out: Path | str | None = None, summary: RunSummary | None = None
) -> list[Path]:
    """Draw every figure a run supports; return the paths written (PNG and PDF).

    Args:
        run_dir: a run directory written by ``lesde run`` or ``lesde analyse``.
        out: where to write; default ``run_dir/figures``.
        summary: the run's summary when the caller holds it (default: read it).

    Raises:
        FileNotFoundError: when ``run_dir`` holds no ``summary.json`` (a training record
            is named as one: `lesde analyse` turns it into a run directory).
    """
    run_dir = Path(run_dir)
    if not (run_dir / "summary.json").exists():
        if (run_dir / "meta.json").exists() or (run_dir / "record.zarr").exists():
            raise FileNotFoundError(
                f"{run_dir} is a training record, not a run directory: `lesde analyse "
                f"{run_dir} --out DIR` estimates, simulates and draws its figures in DIR"
            )
        raise FileNotFoundError(
            f"{run_dir} is not a run directory (no summary.json); create one with `lesde run`"
        )
    if summary is None:
        summary = read_summary(run_dir)
    out = Path(out) if out is not None else run_dir / "figures"
    if summary.points:
        return _multi_run(run_dir, summary, out)
    if not summary.stages.get("analyse", {}).get("done"):
        raise FileNotFoundError(
            f"{run_dir}: the run is not complete; resume it with the command that wrote it "
            "(`lesde run` or `lesde analyse`)"
        )
    return _single_run(run_dir, summary, out)


def figure_list(run_dir: Path | str) -> list[dict[str, Any]]:
    """The PNG figures of a run with their titles, in a stable order (for the report)."""
    fig_dir = Path(run_dir) / "figures"
    items = []
    for name, title in FIGURE_TITLES.items():
        p = fig_dir / f"{name}.png"
        if p.exists():
            items.append({"name": name, "title": title, "path": p})
    return items

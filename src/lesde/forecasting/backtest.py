"""Out-of-sample forecast (backtest) of a training record by the fitted LE-ODE/SDE.

For a fit fraction f the record is cut at t_cut = f·T (T its last step). Everything the
forecast uses is computed from the part with t ≤ t_cut only, by the same estimators as
the in-sample stages: the binned class means X̄(t) (bins that end after the cut are not
formed), the reference t₀ and the tail window (fractions of the pre-cut grid), Â and B̂
(`estimate_ab`), the power-law tails of Â, B̂ and of the within-class variance V
(`lesde.forecasting.extrapolate`), and the probes' clouds at the last checkpoint before the
cut. From the genuine state at the cut it then predicts, to T:

(a) the class means X̄(t): the LE-ODE driven by the extrapolated α̃(t), β̃(t) (forward
    Euler on the genuine grid, refined so that no step moves the state by more than 2 %),
    with a band from a bootstrap over trials (the fit redone on resampled trials, every
    path started from the genuine state);
(b) the per-sample clouds of every trial: the LE-SDE with α̃, β̃ and the extrapolated
    diffusion σ̃²(t) (`lesde.simulate.clouds`), started from that trial's probes.

Only then are the genuine data after the cut read, to score the prediction:

- ``rd``: RD of the class means (paper §4.2), averaged over classes and the grid points
  in (t_cut, T]; ``rd_end`` at T;
- the same for two model-free baselines: *persistence* (X̄ held at its value at the cut)
  and a *log-time trend* (X̄ at the cut plus the least-squares slope of X̄ against
  log(1+t) on the fit window, continued: the growth of logits under cross-entropy is
  close to logarithmic once the data are fitted); ``skill`` = 1 − rd / rd_persistence
  (> 0: the LE-ODE beats holding the state);
- the margin-to-noise ratio at T (each trial's smallest class-mean gap over its
  within-class sd, median over trials) and the separable fraction at T (linear programs
  on the simulated clouds vs on the genuine probes).

``predicted_*`` values are model predictions; ``genuine_*`` and the baselines are
measurements of the record.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lesde.analysis.fit import relative_difference
from lesde.analysis.separation import is_separable
from lesde.estimate.ab import estimate_ab
from lesde.estimate.class_means import class_means_from_sums, class_sums_from_samples
from lesde.estimate.diffusion import within_class_variance
from lesde.forecasting.extrapolate import TailRate, fit_tail_rates
from lesde.model import LEModel
from lesde.simulate.clouds import euler_means, refine_grid, simulate_clouds

__all__ = ["Forecast", "backtest", "class_grid", "min_gap_ratio"]

# the fewest pre-cut grid points a forecast is made from (estimate_ab needs t₀ and a few
# points after it; the tail fit needs 4 in its window)
MIN_GRID = 8


@dataclass(frozen=True)
class Forecast:
    """One backtest: the predictions from t ≤ t_cut and their scores after it.

    Attributes:
        model: "I" or "L". fit_fraction: f. t_cut: f·T.
        ts: (F,) the forecast grid, from the last pre-cut grid point to T.
        mean: (F, K, p) the predicted class means (LE-ODE).
        lo, hi: (F, K, p) the 2.5 % / 97.5 % bootstrap band (NaN without a bootstrap).
        genuine: (F, K, p) the genuine class means there (a measurement).
        persistence, trend: (F, K, p) the two baselines.
        cloud_ts: (C',) checkpoint times from the last checkpoint ≤ t_cut to the end.
        spread_predicted, spread_genuine: (C',) within-class variance V (mean over trials).
        ratio_predicted, ratio_genuine: (C',) the margin-to-noise ratio (median over trials).
        clouds_end: (R, P, p) the simulated probe clouds at T; labels: (P,).
        rates: {"alpha", "beta", "sigma2"} the extrapolated rates (`TailRate`).
        scores: the JSON-able numbers (see the module docstring).
    """

    model: str
    fit_fraction: float
    t_cut: float
    ts: np.ndarray
    mean: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    genuine: np.ndarray
    persistence: np.ndarray
    trend: np.ndarray
    cloud_ts: np.ndarray
    spread_predicted: np.ndarray
    spread_genuine: np.ndarray
    ratio_predicted: np.ndarray
    ratio_genuine: np.ndarray
    clouds_end: np.ndarray
    labels: np.ndarray
    rates: dict[str, TailRate] = field(default_factory=dict)
    scores: dict[str, Any] = field(default_factory=dict)


def class_grid(rec: dict, n_steps: int, *, xbar_source: str, bin_width: int):
    """Per-trial class sums on the grid, from the first ``n_steps`` recorded steps only.

    Returns:
        ``ts`` (T,), ``xbar`` (T, K, p), ``sums`` (R, T, K, p), ``counts`` (R, T, K); for
        ``xbar_source="probe"`` the checkpoints with step ≤ the last kept step.
    """
    K = rec["K"]
    steps = np.asarray(rec["step"], dtype=float)
    if xbar_source == "samples":
        n = int(n_steps)
        nb = n // bin_width
        if nb < 1:
            return np.array([]), np.zeros((0, K, K)), None, None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # dropped bins: the in-sample stage warns
            sums, counts = class_sums_from_samples(
                rec["sample_logits"][:, :n], rec["sample_label"][:, :n], K, bin_width=bin_width
            )
            tb = steps[: nb * bin_width].reshape(nb, bin_width).mean(axis=1)
            ts, xbar, ok = class_means_from_sums(tb, sums, counts)
        return ts, xbar, sums[:, ok], counts[:, ok]
    last = steps[int(n_steps) - 1] if n_steps >= 1 else -np.inf
    keep = np.asarray(rec["checkpoint_step"], dtype=float) <= last
    means = rec["probe_means"][:, keep]  # (R, C', K, p)
    return (np.asarray(rec["checkpoint_step"], dtype=float)[keep], means.mean(axis=0), means,
            np.ones(means.shape[:3]))  # fmt: skip


def min_gap_ratio(Z: np.ndarray, labels: np.ndarray, K: int) -> np.ndarray:
    """Each trial's smallest class-mean gap over its within-class sd: (R,) from (R, P, p)."""
    means = np.stack([Z[:, labels == k].mean(axis=1) for k in range(K)], axis=1)  # (R, K, p)
    gaps = np.min([np.linalg.norm(means[:, k] - means[:, m], axis=-1)
                   for k in range(K) for m in range(k)], axis=0)  # (R,)  # fmt: skip
    V = within_class_variance(Z, labels, K)  # (R,)
    with np.errstate(divide="ignore", invalid="ignore"):
        return gaps / np.sqrt(V)


def _window(ts: np.ndarray, tail_fraction: float) -> tuple[float, float]:
    return float(ts[-1] - tail_fraction * (ts[-1] - ts[0])), float(ts[-1])


def _rd(sim: np.ndarray, real: np.ndarray, after: np.ndarray) -> tuple[float, float]:
    rd = relative_difference(sim, real)  # (F, K)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(np.nanmean(rd[after])), float(np.nanmean(rd[-1]))


def _drift_parts(K: int, p: int, model: str) -> tuple[np.ndarray, np.ndarray]:
    Ma = LEModel(K, p, alpha=1.0, beta=0.0, H=model).drift(0.0)
    Mb = LEModel(K, p, alpha=0.0, beta=1.0, H=model).drift(0.0)
    return Ma, Mb


def _rate_paths(rates: list[tuple[TailRate, TailRate]], fine: np.ndarray):
    a = np.stack([ra(fine) for ra, _ in rates])  # (P, F)
    b = np.stack([rb(fine) for _, rb in rates])
    return a, b


def backtest(
    rec: dict,
    *,
    fit_fraction: float,
    model: str = "L",
    xbar_source: str = "samples",
    bin_width: int = 10,
    t0_fraction: float = 0.05,
    tail_fraction: float = 0.5,
    n_boot: int = 50,
    seed: int = 0,
) -> Forecast:
    """Fit on t ≤ f·T, forecast to T, score against the genuine record (module docstring).

    Args:
        rec: the record's arrays: ``K``, ``sample_logits`` (R, S, K), ``sample_label``
            (R, S), ``step`` (S,), ``probe_logits`` (R, C, P, K) of the training probes,
            ``probe_label`` (P,), ``checkpoint_step`` (C,) and, for
            ``xbar_source="probe"``, ``probe_means`` (R, C, K, K).
        fit_fraction: f in (0, 1).
        model: "L" or "I": the H model inverted and simulated.
        xbar_source, bin_width, t0_fraction, tail_fraction: as `PipelineConfig`, applied
            to the pre-cut record.
        n_boot: bootstrap resamples of trials for the band (0: none).
        seed: seed of the bootstrap and the SDE noise.

    Returns:
        A `Forecast`.

    Raises:
        ValueError: on a bad option, or a cut that leaves too little data before it.
    """
    if not (isinstance(fit_fraction, float | int) and 0 < fit_fraction < 1):
        raise ValueError(f"`fit_fraction` must be in (0, 1), got {fit_fraction!r}")
    if model not in ("I", "L"):
        raise ValueError(f"`model` must be 'I' or 'L', got {model!r}")
    if not 0 < tail_fraction <= 1:
        raise ValueError(f"`tail_fraction` must be in (0, 1], got {tail_fraction!r}")
    K = rec["K"]
    steps = np.asarray(rec["step"], dtype=float)
    T_end = float(steps[-1])
    t_cut = float(fit_fraction) * T_end
    n_cut = int(np.searchsorted(steps, t_cut, side="right"))  # steps ≤ t_cut

    # ---- everything below, until "scoring", reads the record up to the cut only ----
    ts_c, xbar_c, sums_c, counts_c = class_grid(rec, n_cut, xbar_source=xbar_source,
                                                bin_width=bin_width)  # fmt: skip
    if ts_c.size < MIN_GRID:
        raise ValueError(
            f"`fit_fraction`={fit_fraction:g} leaves {ts_c.size} grid points before the cut "
            f"t={t_cut:g}; need >= {MIN_GRID} (a larger fraction or a smaller bin width)"
        )
    i0 = int(round(t0_fraction * (ts_c.size - 1)))
    span = _window(ts_c, tail_fraction)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sign/NaN notes: the in-sample stage reports them
        ab = estimate_ab(xbar_c, ts_c, model=model, t0_index=i0)
    ra, rb = fit_tail_rates(ts_c, np.stack([ab.A, ab.B]), span)
    rates = [(ra, rb)]
    if n_boot and sums_c.shape[0] >= 2:
        rng = np.random.default_rng(np.random.SeedSequence([seed, 0xF0CA57]))
        R = sums_c.shape[0]
        w = rng.multinomial(R, np.full(R, 1.0 / R), size=n_boot).astype(float)  # (B, R)
        num = np.einsum("br,rtkj->btkj", w, sums_c)
        den = np.einsum("br,rtk->btk", w, counts_c)
        As, Bs = [], []
        with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
            warnings.simplefilter("ignore")
            for xb in num / den[..., None]:
                e = estimate_ab(xb, ts_c, model=model, t0_index=i0)
                As.append(e.A)
                Bs.append(e.B)
        fa = fit_tail_rates(ts_c, np.stack(As), span)
        fb = fit_tail_rates(ts_c, np.stack(Bs), span)
        rates += list(zip(fa, fb, strict=True))

    # the forecast grid: the bins' (or checkpoints') times from the last pre-cut point to T;
    # times only, so that no value after the cut can shape it
    if xbar_source == "samples":
        nb = steps.size // bin_width
        grid = steps[: nb * bin_width].reshape(nb, bin_width).mean(axis=1)
    else:
        grid = np.asarray(rec["checkpoint_step"], dtype=float)
    ts_f = grid[grid >= ts_c[-1]]
    x_cut = xbar_c[-1]  # (K, p) the genuine state at the cut
    p = x_cut.shape[-1]
    Ma, Mb = _drift_parts(K, p, model)
    a_out, b_out = _rate_paths(rates, ts_f)
    bound = np.max(np.abs(a_out) + (K - 1) * np.abs(b_out), axis=0)
    fine, idx = refine_grid(ts_f, np.maximum(bound[:-1], bound[1:]))
    a_f, b_f = _rate_paths(rates, fine)
    x0 = np.repeat(x_cut.reshape(1, K * p), len(rates), axis=0)
    with np.errstate(over="ignore", invalid="ignore"):
        paths = euler_means(fine, a_f, b_f, x0, Ma, Mb, idx).reshape(ts_f.size, len(rates), K, p)
    mean = paths[:, 0]
    if len(rates) > 1:
        boot = paths[:, 1:]
        pct = np.percentile if np.isfinite(boot).all() else np.nanpercentile  # nan…: ~10x slower
        lo, hi = pct(boot, [2.5, 97.5], axis=1)
    else:
        lo = hi = np.full_like(mean, np.nan)
    # baselines from the pre-cut data
    persistence = np.broadcast_to(x_cut, mean.shape).copy()
    win = (ts_c >= span[0]) & (ts_c <= span[1])
    L = np.log1p(ts_c[win])
    Y = xbar_c[win].reshape(win.sum(), -1)  # (n, K·p)
    Lc = L - L.mean()
    slope = (Lc @ (Y - Y.mean(axis=0))) / max(float(Lc @ Lc), 1e-300)  # (K·p,)
    trend = x_cut + (np.log1p(ts_f) - np.log1p(ts_c[-1]))[:, None, None] * slope.reshape(K, p)

    # clouds: the training probes at the last checkpoint ≤ t_cut, the noise from V(t)
    Z = np.asarray(rec["probe_logits"], dtype=float)  # (R, C, P, p)
    lab = np.asarray(rec["probe_label"])
    cts = np.asarray(rec["checkpoint_step"], dtype=float)
    c_cut = int(np.searchsorted(cts, t_cut, side="right")) - 1
    V_pre = within_class_variance(Z[:, : c_cut + 1], lab, K).mean(axis=0)  # (c_cut+1,)
    vspan = _window(cts[: c_cut + 1], tail_fraction) if c_cut >= 1 else (cts[0], cts[0] + 1)
    if np.count_nonzero(cts[: c_cut + 1] >= vspan[0]) < 4:
        vspan = (float(cts[0]), float(cts[c_cut]))
    (rv,) = fit_tail_rates(cts[: c_cut + 1], V_pre[None], vspan)

    def sigma2(t):  # V (ddof = 1) grows by ∫σ² (`lesde.estimate.diffusion`)
        return np.maximum(rv(t), 0.0)

    cloud_ts = cts[c_cut:]
    noise_seed = int(np.random.SeedSequence([seed, 0xC10D]).generate_state(1)[0])
    sim = simulate_clouds(cloud_ts, ra, rb, sigma2, Z[:, c_cut], lab, model=model, seed=noise_seed)
    # a forecast whose drift diverges (inf or NaN) is scored as such: NaN, "diverged"
    diverged = not (np.isfinite(sim.clouds).all() and np.isfinite(mean).all())
    with np.errstate(invalid="ignore", over="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        spread_pred = within_class_variance(sim.clouds, lab, K).mean(axis=1)  # (C',)
        ratio_pred = np.array([np.nanmedian(min_gap_ratio(c, lab, K)) for c in sim.clouds])
    end = sim.clouds[-1]
    sep_pred = (float(np.mean([is_separable(c, lab) for c in end]))
                if np.isfinite(end).all() else float("nan"))  # fmt: skip
    forecast_rates = {"alpha": ra, "beta": rb, "sigma2": rv}

    # ---- scoring: the genuine record after the cut is read from here on ----
    ts_all, xbar_all, _, _ = class_grid(rec, steps.size, xbar_source=xbar_source,
                                        bin_width=bin_width)  # fmt: skip
    genuine = np.full(mean.shape, np.nan)  # a bin lacking some class stays NaN (not scored)
    at = np.searchsorted(ts_f, ts_all)
    hit = (at < ts_f.size) & (ts_f[np.minimum(at, ts_f.size - 1)] == ts_all)
    genuine[at[hit]] = xbar_all[hit]
    after = ts_f > t_cut
    rd, rd_end = _rd(mean, genuine, after)
    rd_p, rd_p_end = _rd(persistence, genuine, after)
    rd_t, rd_t_end = _rd(trend, genuine, after)
    rd_boot = [(_rd(paths[:, j], genuine, after)[0]) for j in range(1, len(rates))]
    Zg = Z[:, c_cut:]
    spread_gen = within_class_variance(Zg, lab, K).mean(axis=0)
    ratio_gen = np.array(
        [np.nanmedian(min_gap_ratio(Zg[:, j], lab, K)) for j in range(Zg.shape[1])]
    )
    sep_gen = float(np.mean([is_separable(z, lab) for z in Z[:, -1]]))
    with np.errstate(divide="ignore", invalid="ignore"):
        skill = float(1.0 - rd / rd_p) if rd_p > 0 else float("nan")
    scores = {
        "fit_fraction": float(fit_fraction),
        "t_cut": t_cut,
        "t_end": T_end,
        "n_grid_fit": int(ts_c.size),
        "rd": rd,
        "rd_end": rd_end,
        "rd_ci": (
            [float(v) for v in np.nanpercentile(rd_boot, [2.5, 97.5])]
            if rd_boot
            else [float("nan")] * 2
        ),  # fmt: skip
        "rd_persistence": rd_p,
        "rd_persistence_end": rd_p_end,
        "rd_trend": rd_t,
        "rd_trend_end": rd_t_end,
        "skill": skill,
        "skill_vs_trend": float(1.0 - rd / rd_t) if rd_t > 0 else float("nan"),
        "sep_fraction_predicted": sep_pred,
        "sep_fraction_genuine": sep_gen,
        "ratio_predicted_end": float(ratio_pred[-1]),
        "ratio_genuine_end": float(ratio_gen[-1]),
        "spread_predicted_end": float(spread_pred[-1]),
        "spread_genuine_end": float(spread_gen[-1]),
        "predicted_end": mean[-1].tolist(),
        "rates": {k: v.to_json() for k, v in forecast_rates.items()},
        "n_boot": len(rates) - 1,
        "diverged": diverged,
    }
    return Forecast(
        model=model, fit_fraction=float(fit_fraction), t_cut=t_cut, ts=ts_f, mean=mean, lo=lo,
        hi=hi, genuine=genuine, persistence=persistence, trend=trend, cloud_ts=cloud_ts,
        spread_predicted=spread_pred, spread_genuine=spread_gen, ratio_predicted=ratio_pred,
        ratio_genuine=ratio_gen, clouds_end=sim.clouds[-1], labels=lab, rates=forecast_rates,
        scores=scores,
    )  # fmt: skip

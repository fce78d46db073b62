"""Speed of the estimation chain and of simulate_from_estimates (issue 4).

1. Estimation chain on the paper's record format: R = 100 trials × T = 10^5 iterations,
   each record the class y of the trained sample and its K = 3 logits (paper §4.1 data).
   Timed: class means by (iteration, class) group-by over trials, both A/B estimators
   (I- and L-model), Savitzky–Golay rates (window 191, the paper's), tail indices of
   α, β and γ for both. Reference: the same chain with the paper's pandas group-by.
2. simulate_from_estimates, 500 paths × 10^4 steps, K = 3 L-model (paper Fig. 5), against
   a plain numpy loop over steps vectorised over paths, same outputs (mean and sd).
3. The bootstrap over trials of r̂_α, r̂_β, r̂_γ (both H models, 200 resamples) on the
   default GeoMNIST run's size (50 trials × 2·10^4 steps, bins of 20): what it adds to
   the estimate stage, against a straightforward bootstrap (per resample: class means
   from the raw logits, the inversions, one `tail_fit` per series) on the same input.

Timings are noisy on a shared machine: ratios are measured in the same run, and the load
average is printed beside them. Writes bench/results/estimate.json.

Usage: python bench/bench_estimate.py [--T 100000] [--trials 100] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import warnings
from pathlib import Path

import numpy as np

import lesde
from lesde import LEModel, estimate_ab, estimate_rates, solve_ode, tail_index

K = 3
WINDOW = 191  # the paper's SG window for GeoMNIST rate plots


def class_means_from_records(y: np.ndarray, logits: np.ndarray, n_classes: int) -> np.ndarray:
    """Per-iteration class means over trials: the paper's groupby(['itr', 'y']).mean().

    Args:
        y: (R, T) integer class of the sample trained at each iteration of each trial.
        logits: (R, T, p) its logits.

    Returns:
        (T, K, p) class means (NaN where no trial trained on class k at that iteration).
    """
    T, p = y.shape[1], logits.shape[2]
    out = np.empty((T, n_classes, p))
    for k in range(n_classes):
        mask = (y == k).astype(logits.dtype)  # (R, T)
        count = mask.sum(axis=0)  # (T,)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[:, k, :] = np.einsum("rt,rtj->tj", mask, logits) / count[:, None]
    return out


def estimators(ts: np.ndarray, xbar: np.ndarray) -> dict:
    """Both A/B estimators, SG rates and the tail indices r_α, r_β, r_γ of each."""
    out = {}
    for model in ("I", "L"):
        with warnings.catch_warnings():
            # the synthetic data follow the L-model, so the I-model inversion meets
            # negative ratios (~25%) and says so; the timing is what matters here
            warnings.simplefilter("ignore", UserWarning)
            ab = estimate_ab(xbar, ts, model=model)
        a_hat, b_hat = estimate_rates(ts, ab.A, ab.B, window=WINDOW)
        out[model] = {
            "alpha_hat": a_hat,
            "beta_hat": b_hat,
            "r_alpha": tail_index(ts, ab.A),
            "r_beta": tail_index(ts, ab.B),
            "r_gamma": tail_index(ts, ab.A - ab.B),
        }
    return out


def make_records(R: int, T: int, seed: int = 0):
    """Synthetic records: L-model class means with power-law rates, plus logit noise."""
    ts = np.arange(T, dtype=float)
    m = LEModel(
        K,
        K,
        alpha=lambda t: 0.03 * (1 + t / 100) ** -0.6,
        beta=lambda t: -0.01 * (1 + t / 100) ** -0.8,
        H="L",
    )
    rng = np.random.default_rng(seed)
    x0 = rng.normal(size=(K, K))
    xbar = solve_ode(m, x0, ts, rtol=1e-10)  # (T, K, K)
    y = rng.integers(0, K, size=(R, T))  # (R, T) class trained at each iteration
    logits = xbar[np.arange(T)[None, :], y] + 0.05 * rng.normal(size=(R, T, K))  # (R, T, K)
    return ts, y, logits


def best_of(fn, repeat: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def bench_chain(R: int, T: int, repeat: int) -> dict:
    import pandas as pd

    ts, y, logits = make_records(R, T)
    df = pd.DataFrame(
        {
            "trial": np.repeat(np.arange(R), T),
            "itr": np.tile(np.arange(T), R),
            "y": y.ravel(),
            **{f"y_logit{j}": logits[..., j].ravel() for j in range(K)},
        }
    )

    def pandas_groupby():
        g = df.groupby(["itr", "y"]).mean()  # the paper's data_analyzer.get_ABab
        cols = [f"y_logit{j}" for j in range(K)]
        return g[cols].to_numpy().reshape(T, K, K)

    t_ours_gb, xbar = best_of(lambda: class_means_from_records(y, logits, K), repeat)
    t_pd_gb, xbar_pd = best_of(pandas_groupby, repeat)
    np.testing.assert_allclose(xbar, xbar_pd, rtol=1e-12, atol=1e-12)
    t_est, res = best_of(lambda: estimators(ts, xbar), repeat)
    t_ours = t_ours_gb + t_est
    t_ref = t_pd_gb + t_est
    return {
        "R": R,
        "T": T,
        "K": K,
        "rows": R * T,
        "groupby_ours_s": t_ours_gb,
        "groupby_pandas_s": t_pd_gb,
        "groupby_speedup": t_pd_gb / t_ours_gb,
        "estimators_s": t_est,
        "chain_ours_s": t_ours,
        "chain_pandas_s": t_ref,
        "chain_speedup": t_ref / t_ours,
        "tail_indices": {
            m: {k: float(v) for k, v in d.items() if k.startswith("r_")} for m, d in res.items()
        },
    }


def numpy_loop_reference(ts, a, b, x0_paths, model):
    """Plain numpy per-step Euler, vectorised over paths; mean and sd stored per step."""
    N, Kc, p = x0_paths.shape
    Ma = LEModel(Kc, p, alpha=1.0, beta=0.0, H=model).drift(0.0)
    Mb = LEModel(Kc, p, alpha=0.0, beta=1.0, H=model).drift(0.0)
    X = x0_paths.reshape(N, -1).copy()
    T = ts.size
    mean, sd = np.empty((T, Kc * p)), np.empty((T, Kc * p))
    for m in range(T - 1):
        mean[m], sd[m] = X.mean(axis=0), X.std(axis=0, ddof=1)
        X = X + (ts[m + 1] - ts[m]) * X @ (a[m] * Ma + b[m] * Mb).T
    mean[-1], sd[-1] = X.mean(axis=0), X.std(axis=0, ddof=1)
    return mean.reshape(T, Kc, p), sd.reshape(T, Kc, p)


def python_loop_reference(ts, a, b, x0_paths):
    """The paper code's way: python loops over paths, steps and classes (L-model)."""
    N, Kc, _ = x0_paths.shape
    dh = lesde.margin_directions(Kc)
    proj = [np.outer(d, d) for d in dh]  # H_kl = d̂_l d̂_lᵀ
    paths = np.empty((N, ts.size, Kc, Kc))
    for r in range(N):
        paths[r, 0] = x0_paths[r]
        for m in range(ts.size - 1):
            prev = paths[r, m]
            hx = [proj[l] @ prev[l] for l in range(Kc)]
            for k in range(Kc):
                drift = a[m] * hx[k] + b[m] * sum(hx[l] for l in range(Kc) if l != k)
                paths[r, m + 1, k] = prev[k] + (ts[m + 1] - ts[m]) * drift / Kc
    return paths


def bench_simulation(n_paths: int, n_steps: int, repeat: int) -> dict:
    ts = np.arange(n_steps + 1, dtype=float)
    a = 0.03 * (1 + ts / 100) ** -0.6
    b = -0.01 * (1 + ts / 100) ** -0.8
    x0 = np.random.default_rng(1).normal(size=(K, K))
    kw = {"model": "L", "n_paths": n_paths, "seed": 2}
    t_ode, r = best_of(lambda: lesde.simulate_from_estimates(ts, a, b, x0, **kw), repeat)
    t_ref, (mean, sd) = best_of(lambda: numpy_loop_reference(ts, a, b, r.x0_paths, "L"), repeat)
    scale = np.abs(mean).max()
    err = max(np.abs(r.mean - mean).max(), np.abs(r.sd - sd).max()) / scale
    t_sde, _ = best_of(
        lambda: lesde.simulate_from_estimates(ts, a, b, x0, sigma=1e-3, **kw), max(1, repeat - 1)
    )
    # the per-path python loop is too slow for the full size: 4 paths x 2000 steps
    n_py, s_py = 4, min(2000, n_steps)
    t_py, p_py = best_of(lambda: python_loop_reference(ts[: s_py + 1], a, b, r.x0_paths[:n_py]), 1)
    r_py = lesde.simulate_from_estimates(
        ts[: s_py + 1], a[: s_py + 1], b[: s_py + 1], x0, save_at=[s_py], **kw
    )
    err_py = np.abs(r_py.paths[0, :n_py] - p_py[:, -1]).max() / np.abs(p_py).max()
    ts_ = n_paths * n_steps  # trial-steps
    return {
        "n_paths": n_paths,
        "n_steps": n_steps,
        "ode_s": t_ode,
        "ode_trial_steps_per_s": ts_ / t_ode,
        "numpy_loop_s": t_ref,
        "numpy_loop_trial_steps_per_s": ts_ / t_ref,
        "ode_speedup": t_ref / t_ode,
        "ode_max_rel_diff_vs_loop": float(err),
        "python_loop_trial_steps_per_s": n_py * s_py / t_py,
        "python_loop_max_rel_diff": float(err_py),
        "sde_s": t_sde,
        "sde_trial_steps_per_s": ts_ / t_sde,
        "sde_vs_numpy_loop_ode": t_ref / t_sde,
    }


def bench_bootstrap(R: int, S: int, bin_width: int, n_boot: int, repeat: int) -> dict:
    from lesde.estimate.bootstrap import bootstrap_tail_indices, class_sums_from_samples
    from lesde.estimate.tail import tail_fit
    from lesde.experiments.pipeline import class_means_from_samples

    ts_all, y, logits = make_records(R, S, seed=3)
    steps = ts_all + 1
    t_grid, xbar = class_means_from_samples(logits, y, steps, K, bin_width=bin_width)
    i0 = int(round(0.05 * (t_grid.size - 1)))
    span = (t_grid[-1] - 0.5 * (t_grid[-1] - t_grid[0]), t_grid[-1])

    def ours():
        sums, counts = class_sums_from_samples(logits, y, K, bin_width=bin_width)
        return bootstrap_tail_indices(sums, counts, t_grid, t0_index=i0, t_range=span,
                                      n_boot=n_boot, seed=0)  # fmt: skip

    n_ref = max(10, n_boot // 10)  # the reference is slow: a tenth of the resamples, scaled

    def reference():
        rng = np.random.default_rng(0)
        out = []
        for _ in range(n_ref):
            pick = rng.integers(0, R, R)
            _, xb = class_means_from_samples(logits[pick], y[pick], steps, K,
                                             bin_width=bin_width)  # fmt: skip
            for model in ("I", "L"):
                ab = estimate_ab(xb, t_grid, model=model, t0_index=i0)
                out.append([tail_fit(t_grid, v, t_range=span).s for v in (ab.A, ab.B, ab.A - ab.B)])
        return out

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        t_ours, res = best_of(ours, repeat)
        t_ref, _ = best_of(reference, 1)
        t_point, _ = best_of(lambda: estimators(t_grid, xbar), repeat)
    t_ref_full = t_ref * n_boot / n_ref
    return {
        "R": R, "steps": S, "bin_width": bin_width, "grid": int(t_grid.size), "n_boot": n_boot,
        "bootstrap_s": t_ours, "reference_s_scaled": t_ref_full, "reference_resamples": n_ref,
        "speedup": t_ref_full / t_ours, "estimate_without_bootstrap_s": t_point,
        "r_gamma_ci": {m: res[m]["r_gamma_ci"] for m in res},
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--T", type=int, default=100_000)
    ap.add_argument("--trials", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--paths", type=int, default=500)
    ap.add_argument("--steps", type=int, default=10_000)
    args = ap.parse_args()

    load0 = os.getloadavg()
    chain = bench_chain(args.trials, args.T, args.repeat)
    chain_1e4 = bench_chain(args.trials, 10_000, args.repeat)  # the paper's T, for scale
    sim = bench_simulation(args.paths, args.steps, args.repeat)
    boot = bench_bootstrap(50, 20_000, 20, 200, args.repeat)
    load1 = os.getloadavg()

    print(f"load average before {load0}, after {load1}")
    print(f"\nEstimation chain, {args.trials} trials, K = {K} (best of {args.repeat}):")
    print(f"{'T':>8} {'stage':<28} {'lesde [s]':>10} {'pandas ref [s]':>15} {'ratio':>7}")
    for c in (chain_1e4, chain):
        print(
            f"{c['T']:>8} {'group-by (class means)':<28} {c['groupby_ours_s']:>10.3f} "
            f"{c['groupby_pandas_s']:>15.3f} {c['groupby_speedup']:>7.1f}"
        )
        print(f"{c['T']:>8} {'A/B (I, L), rates, tails':<28} {c['estimators_s']:>10.3f}")
        print(
            f"{c['T']:>8} {'whole chain':<28} {c['chain_ours_s']:>10.3f} "
            f"{c['chain_pandas_s']:>15.3f} {c['chain_speedup']:>7.1f}"
        )
    print(f"\nsimulate_from_estimates, {args.paths} paths x {args.steps} steps, L-model K = {K}:")
    print(f"{'variant':<36} {'time [s]':>9} {'trial-steps/s':>14}")
    rows = [
        ("lesde, sigma = 0 (shared propagator)", "ode_s", "ode_trial_steps_per_s"),
        ("numpy loop over steps (reference)", "numpy_loop_s", "numpy_loop_trial_steps_per_s"),
        ("lesde, sigma > 0 (Euler-Maruyama)", "sde_s", "sde_trial_steps_per_s"),
        ("python loop, paper style (4 x 2000)", None, "python_loop_trial_steps_per_s"),
    ]
    for name, t, r in rows:
        t_s = f"{sim[t]:>9.3f}" if t else f"{'-':>9}"
        print(f"{name:<36} {t_s} {sim[r]:>14.3g}")
    print(
        f"speed-up sigma = 0 vs loop: {sim['ode_speedup']:.1f}x "
        f"(max rel. difference {sim['ode_max_rel_diff_vs_loop']:.1e}; "
        f"vs the python loop {sim['python_loop_max_rel_diff']:.1e})"
    )

    print(
        f"\nBootstrap of the tail indices ({boot['R']} trials x {boot['steps']} steps, "
        f"{boot['grid']} grid points, {boot['n_boot']} resamples, I and L):"
    )
    print(f"{'variant':<44} {'time [s]':>9}")
    print(f"{'estimate stage maths without the bootstrap':<44} "
          f"{boot['estimate_without_bootstrap_s']:>9.3f}")  # fmt: skip
    print(f"{'lesde bootstrap (added to the stage)':<44} {boot['bootstrap_s']:>9.3f}")
    ref_name = f"straightforward bootstrap (scaled from {boot['reference_resamples']})"
    print(f"{ref_name:<44} {boot['reference_s_scaled']:>9.3f}")
    print(f"speed-up: {boot['speedup']:.1f}x")

    out = Path(__file__).parent / "results"
    out.mkdir(parents=True, exist_ok=True)
    payload = {
        "machine": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "loadavg_before": load0,
        "loadavg_after": load1,
        "chain": chain,
        "chain_T1e4": chain_1e4,
        "simulate_from_estimates": sim,
        "bootstrap": boot,
    }
    tmp = out / "estimate.json.tmp"
    tmp.write_text(json.dumps(payload, indent=2))
    os.replace(tmp, out / "estimate.json")
    print(f"\nwrote {out / 'estimate.json'}")


if __name__ == "__main__":
    main()

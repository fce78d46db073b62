"""simulate_from_estimates: forward Euler / Euler–Maruyama driven by α̂, β̂ (paper §4.2)."""

from __future__ import annotations

import numpy as np
import pytest

import lesde
from lesde import LEModel, simulate_from_estimates, solve_ode
from lesde.closed_form import closed_form


def _x0(K, p, seed=0):
    return np.random.default_rng(seed).normal(size=(K, p)) + 1.0


def _euler_error(model, H, K, p, n_steps, t_end=5.0):
    ts = np.linspace(0.0, t_end, n_steps + 1)
    x0 = _x0(K, p)
    a, b = model.rates(ts)
    sim = simulate_from_estimates(ts, a, b, x0, model=H, n_paths=1, init_noise=0.0)
    if callable(model.alpha):
        exact = solve_ode(model, x0, ts, rtol=1e-12)
    else:
        exact = closed_form(model, x0, ts)
    return np.abs(sim.mean - exact).max() / np.abs(exact).max()


@pytest.mark.parametrize(("H", "K", "p"), [("L", 3, 3), ("I", 4, 2)])
def test_constant_rates_match_closed_form_to_first_order(H, K, p):
    alpha, beta = 0.9, -0.3
    m = LEModel(K, p, alpha=alpha, beta=beta, H=H)
    e1 = _euler_error(m, H, K, p, 500)
    e2 = _euler_error(m, H, K, p, 1000)
    # Forward Euler is first order: halving Δt halves the error (order in [0.9, 1.1])
    assert 0.9 < np.log2(e1 / e2) < 1.1
    # size: for x' = λx, (1 + λh)^n vs e^{λt} differ by ≈ λ²ht/2 relative; the fastest
    # mode here has λ = (α + (K−1)|β|)/K ≤ 0.6, t = 5, h = 0.01: 4.5e-3, margin 2
    assert e1 < 2 * 0.6**2 * 0.01 * 5 / 2


def test_time_varying_rates_match_solve_ode_to_first_order():
    m = LEModel(3, 3, alpha=lambda t: 1.0 / (1 + t), beta=lambda t: 0.3 - 0.1 * t, H="L")
    e1 = _euler_error(m, "L", 3, 3, 400)
    e2 = _euler_error(m, "L", 3, 3, 800)
    assert 0.9 < np.log2(e1 / e2) < 1.1
    assert e1 < 1e-2


@pytest.mark.parametrize(("H", "K", "p"), [("L", 3, 3), ("I", 3, 5)])
@pytest.mark.parametrize("init_noise", [1.0, "paper"])
def test_propagator_equals_per_path_loop(H, K, p, init_noise):
    # the shared-propagator summary must equal advancing every path one by one
    ts = np.cumsum(np.r_[0.0, np.random.default_rng(1).uniform(0.5, 1.5, 300)])  # non-uniform
    a = 0.02 * (1 + ts) ** -0.3
    b = -0.01 * np.cos(ts / 50)
    x0 = _x0(K, p)
    res = simulate_from_estimates(
        ts, a, b, x0, model=H, n_paths=40, init_noise=init_noise, seed=2, save_at=[0, 150, -1]
    )
    lm = LEModel(K, p, alpha=1.0, beta=0.0, H=H)
    Ma = lm.drift(0.0)
    Mb = LEModel(K, p, alpha=0.0, beta=1.0, H=H).drift(0.0)
    X = res.x0_paths.reshape(40, K * p).copy()
    means, sds, kept = [], [], {}
    for m in range(ts.size):
        means.append(X.mean(axis=0))
        sds.append(X.std(axis=0, ddof=1))
        if m in (0, 150, ts.size - 1):
            kept[m] = X.copy()
        if m < ts.size - 1:
            X = X + (ts[m + 1] - ts[m]) * X @ (a[m] * Ma + b[m] * Mb).T
    scale = np.abs(np.array(means)).max()
    np.testing.assert_allclose(res.mean.reshape(ts.size, -1), means, rtol=0, atol=1e-12 * scale)
    np.testing.assert_allclose(res.sd.reshape(ts.size, -1), sds, rtol=1e-10, atol=1e-12 * scale)
    for j, m in enumerate((0, 150, ts.size - 1)):
        np.testing.assert_allclose(res.paths[j].reshape(40, -1), kept[m], rtol=1e-11, atol=1e-12)
    np.testing.assert_array_equal(res.paths_ts, ts[[0, 150, -1]])


def test_initial_points():
    K, N = 3, 4000
    x0 = _x0(K, K)
    scale = np.linalg.norm(x0, axis=1) / np.sqrt(K)  # paper: N(0, ‖X̄^k(0)‖²/K)
    ts = np.arange(3.0)
    for noise, centre in ((1.0, x0), ("paper", np.zeros_like(x0))):
        r = simulate_from_estimates(ts, 0.0, 0.0, x0, n_paths=N, init_noise=noise, seed=0)
        se = scale[:, None] / np.sqrt(N)  # standard error of the sample mean
        assert np.all(np.abs(r.x0_paths.mean(axis=0) - centre) < 5 * se)
        # sample sd: standard error ≈ sd/√(2N)
        assert np.all(np.abs(r.sd[0] - scale[:, None]) < 5 * scale[:, None] / np.sqrt(2 * N))
    r0 = simulate_from_estimates(ts, 0.0, 0.0, x0, n_paths=5, init_noise=0.0)
    np.testing.assert_array_equal(r0.x0_paths, np.broadcast_to(x0, (5, K, K)))
    np.testing.assert_array_equal(r0.sd, 0.0)


def test_euler_maruyama_spread_and_mean():
    # α = β = 0: X(t) = X(0) + σ W(t), so the sd over paths is σ√t exactly in law
    K, N, sigma = 2, 2000, 0.3
    ts = np.linspace(0.0, 4.0, 201)
    x0 = _x0(K, K)
    r = simulate_from_estimates(ts, 0.0, 0.0, x0, model="I", n_paths=N, init_noise=0.0,
                                sigma=sigma, seed=5)  # fmt: skip
    sd_true = sigma * np.sqrt(ts)[:, None, None]
    # sample sd: standard error ≈ sd/√(2N); 5 standard errors
    assert np.all(np.abs(r.sd - sd_true) <= 5 * sd_true / np.sqrt(2 * N) + 1e-12)
    assert np.all(np.abs(r.mean - x0) <= 5 * sd_true / np.sqrt(N) + 1e-12)
    # with drift, the mean over paths follows the ODE (the SDE is linear) within 5 SE
    a, b = 0.4, -0.2
    rd = simulate_from_estimates(ts, a, b, x0, model="L", n_paths=N, init_noise=0.0,
                                 sigma=sigma, seed=6)  # fmt: skip
    ode = simulate_from_estimates(ts, a, b, x0, model="L", n_paths=1, init_noise=0.0)
    assert np.all(np.abs(rd.mean - ode.mean) <= 5 * rd.sd / np.sqrt(N) + 1e-12)
    # the kept paths are the ones summarised
    np.testing.assert_array_equal(rd.paths[0], rd.x0_paths)
    np.testing.assert_allclose(rd.paths[-1].mean(axis=0), rd.mean[-1], rtol=1e-12)
    np.testing.assert_allclose(rd.paths[-1].std(axis=0, ddof=1), rd.sd[-1], rtol=1e-12)
    # same seed, same numbers
    again = simulate_from_estimates(ts, a, b, x0, model="L", n_paths=N, init_noise=0.0,
                                    sigma=sigma, seed=6)  # fmt: skip
    np.testing.assert_array_equal(again.mean, rd.mean)


def test_euler_maruyama_across_chunks_and_prefetched_draws():
    # K = 3, 500 paths: 466 steps per chunk, so 3000 steps cross six chunk boundaries, and
    # each chunk's normals (2.1e6 numbers) are drawn on the thread pool while the previous
    # chunk steps. Every summary must line up with its time and with the kept paths.
    K, N, sigma = 3, 500, 1e-6
    ts = np.linspace(0.0, 3.0, 3001)
    x0 = _x0(K, K)
    a, b = 0.4, -0.2  # strong drift: a state one step off moves by ~1e-3 ≫ σ√t/√N ~ 1e-7
    save = [0, 465, 466, 467, 1000, 3000]
    kw = dict(model="L", n_paths=N, init_noise=0.0, sigma=sigma, seed=3, save_at=save)
    r = simulate_from_estimates(ts, a, b, x0, **kw)
    ode = simulate_from_estimates(ts, a, b, x0, model="L", n_paths=1, init_noise=0.0)
    assert np.all(np.abs(r.mean - ode.mean) <= 5 * r.sd / np.sqrt(N) + 1e-12)
    for j, m in enumerate(save):
        np.testing.assert_allclose(r.paths[j].mean(axis=0), r.mean[m], rtol=1e-12, atol=1e-15)
        # atol: at t = 0 the sd is 0 up to rounding of O(1) states (~1e-14); later sds are
        # ≥ 7e-7, where 1e-13 is a 1e-7 relative check
        np.testing.assert_allclose(r.paths[j].std(axis=0, ddof=1), r.sd[m], rtol=1e-9, atol=1e-13)
    again = simulate_from_estimates(ts, a, b, x0, **kw)
    np.testing.assert_array_equal(again.mean, r.mean)
    np.testing.assert_array_equal(again.sd, r.sd)
    # without drift the spread is σ√t in law at every step, chunk boundaries included
    # (sample sd: standard error ≈ sd/√(2N); 5 standard errors)
    z = simulate_from_estimates(ts, 0.0, 0.0, x0, **{**kw, "sigma": 0.3})
    sd_true = 0.3 * np.sqrt(ts)[:, None, None]
    assert np.all(np.abs(z.sd - sd_true) <= 5 * sd_true / np.sqrt(2 * N) + 1e-12)


@pytest.mark.parametrize(
    ("args", "kw", "match"),
    [
        ((np.ones(4), np.ones(4), np.ones((3, 3))), {}, "strictly increasing"),
        ((np.ones(3), np.ones(4), np.ones((3, 3))), {}, "`alpha_hat` must be"),
        ((np.ones(4), np.r_[np.nan, 1, 1, 1], np.ones((3, 3))), {}, "`beta_hat` must be finite"),
        ((np.ones(4), np.ones(4), np.ones(3)), {}, "`x0` must be"),
        ((np.ones(4), np.ones(4), np.ones((3, 2))), {}, "n_features == n_classes"),
        ((np.ones(4), np.ones(4), np.ones((3, 3))), {"model": "X"}, "`model` must be"),
        ((np.ones(4), np.ones(4), np.ones((3, 3))), {"n_paths": 0}, "`n_paths` must be"),
        ((np.ones(4), np.ones(4), np.ones((3, 3))), {"init_noise": "x"}, "`init_noise` must"),
        ((np.ones(4), np.ones(4), np.ones((3, 3))), {"init_noise": -1.0}, "`init_noise` must"),
        ((np.ones(4), np.ones(4), np.ones((3, 3))), {"sigma": -1.0}, "`sigma` must be"),
        ((np.ones(4), np.ones(4), np.ones((3, 3))), {"save_at": [7]}, "`save_at` must"),
    ],
)
def test_invalid_input(args, kw, match):
    ts = np.array([0.0, 0.0, 1.0, 2.0]) if match == "strictly increasing" else np.arange(4.0)
    with pytest.raises(ValueError, match=match):
        simulate_from_estimates(ts, *args, **kw)


def test_export():
    assert lesde.simulate_from_estimates is simulate_from_estimates


@pytest.mark.parametrize("H", ["L", "I"])
def test_fig5_pipeline_reproduces_genuine_dynamics(H):
    # paper Fig. 5 end to end: genuine class means -> Â, B̂ -> α̂, β̂ (SG window 21, the
    # paper's) -> forward Euler from X̄(0) -> RD against the genuine means
    K = 3
    ts = np.arange(0.0, 2001.0)  # iterations, Δt = 1 as in the paper
    m = LEModel(
        K, K, alpha=lambda t: 0.02 * (1 + t / 50) ** -0.5, beta=lambda t: -0.004 + 0 * t, H=H
    )
    x0 = _x0(K, K, seed=3)
    real = solve_ode(m, x0, ts, rtol=1e-10)
    ab = lesde.estimate_ab(real, ts, model=H)
    a_hat, b_hat = lesde.estimate_rates(ts, ab.A, ab.B, window=21)
    sim = simulate_from_estimates(ts, a_hat, b_hat, x0, model=H, n_paths=1, init_noise=0.0)
    rd = lesde.relative_difference(sim.mean, real)
    # Euler with Δt = 1: each step multiplies a mode by 1 + λΔt instead of e^{λΔt}, a log
    # error λ²Δt²/2; summed, Δt/2·∫λ² dt for the fastest mode λ = max|c(α − β)|, ...
    a, b = m.rates(ts)
    c = 1.0 / K
    modes = [c * (a - b), c * (a + (K - 1) * b) if H == "I" else c * (a + b / (K - 1))]
    lam2 = np.max(np.square(modes), axis=0)
    bound = 0.5 * np.sum(lam2[:-1] * np.diff(ts) ** 2)  # ≈ 0.011 here
    assert rd.max() < 1.5 * bound  # 1.5: RD is ~ the log error while it is small
    assert rd.max() > bound / 3  # the Euler error is what is left: the bound is tight
    # and the estimates drive it: the true rates give the same RD to 1e-3 (same scheme)
    sim_true = simulate_from_estimates(ts, a, b, x0, model=H, n_paths=1, init_noise=0.0)
    assert np.abs(rd - lesde.relative_difference(sim_true.mean, real)).max() < 1e-3

"""Σ̂(t) from the within-class spread, and the margin-to-noise verdict, on LE-SDE runs.

The setting of paper §3.2.1 (after eq. 7): K = 3, p = 3, I-model, γ(t) = α(t) = c/(1+t),
β = 0, so the tail index of γ is exactly 1 (the boundary of Theorem 3.1) and what
decides separation is the margin, growing like t^{c/K}, against the noise, growing like
t^{1/2 − q} for σ(t) = (1+t)^{−q}. The ratio's exponent is c/K − (1/2 − q).
"""

import warnings

import numpy as np
import pytest

import lesde
from lesde.analysis.separation import is_separable
from lesde.estimate.diffusion import (
    estimate_diffusion,
    margin_to_noise,
    within_class_variance,
)

K = P = 3
N_PER_CLASS = 50
N_TRIALS = 20
T_END = 1e6


def _simulate(c_over_k, q, seed=0):
    c = c_over_k * K
    model = lesde.LEModel(K, P, alpha=lambda t: c / (1 + np.asarray(t)), beta=0.0, H="I")
    ts = np.expm1(np.linspace(0, np.log1p(T_END), 2001))  # geometric: the rates decay in t
    save = ts[::50]  # 41 checkpoints
    sigma = (lambda t: (1 + np.asarray(t)) ** (-q)) if q else 1.0
    res = lesde.simulate_sde(
        model, ts, n_per_class=N_PER_CLASS, sigma=sigma, n_paths=N_TRIALS,
        x0=3.0 * (np.eye(K) - 1 / K), seed=seed, save_ts=save, init_spread=0.1,
    )  # fmt: skip
    X = res.particles  # (R, C, K, n, p)
    R, C = X.shape[:2]
    return save, X.reshape(R, C, K * N_PER_CLASS, P), np.repeat(np.arange(K), N_PER_CLASS)


def test_within_class_variance_known_answer():
    # two classes, two samples each: variances (ddof=1) of (0, 2) and (1, 5) per coordinate
    z = np.array([[0.0, 0.0], [2.0, 2.0], [1.0, 1.0], [5.0, 5.0]])
    assert within_class_variance(z, np.array([0, 0, 1, 1]), 2) == pytest.approx((2 + 8) / 2)
    with pytest.raises(ValueError, match=">= 2 samples of every class"):
        within_class_variance(z, np.array([0, 1, 1, 1]), 2)


@pytest.mark.parametrize("q", [0.0, 0.25])
def test_diffusion_recovers_sigma(q):
    ts, X, y = _simulate(0.5, q)
    d = estimate_diffusion(ts, X, y, K)
    # accumulated within-class sample variance (ddof = 1) = ∫σ² (the drift only moves class
    # means; the n − 1 removes the class mean's share of the noise exactly).
    # ∫₀ᵗ (1+u)^(−2q) du in closed form; the Euler sum on the geometric grid differs by
    # < 1 % (left-point rule, dt/(1+t) = 7e-3 per step).
    t = ts
    expected = t if q == 0 else ((1 + t) ** (1 - 2 * q) - 1) / (1 - 2 * q)
    # sd of the variance estimate: √(2/dof) with dof = R·K·p·(n−1) = 8820 → 1.5 %; the last
    # 10 checkpoints share most of their noise (a random walk), so their mean is within
    # 3 SE = 4.5 % + the 1 % quadrature error: 5.5 %. The factor n/(n − 1) this stage once
    # applied (2 % at n = 50) is then no longer hidden by the tolerance.
    acc, exp = d.accumulated[-10:], expected[-10:] - expected[0]
    assert abs(acc.mean() / exp.mean() - 1) < 0.055, acc.mean() / exp.mean()
    np.testing.assert_allclose(acc, exp, rtol=0.06)
    late = t > 1e4
    np.testing.assert_allclose(d.sigma2[late], (1 + t[late]) ** (-2 * q), rtol=0.25)


@pytest.mark.parametrize(
    ("c_over_k", "q", "expected"),
    [
        (0.7, 0.0, "separable"),  # margin t^0.7 beats noise t^0.5
        (0.3, 0.0, "not separable"),
        (0.4, 0.0, "not separable"),  # below c/K = 1/2 with constant Σ ...
        (0.4, 0.25, "separable"),  # ... but separable when the noise decays like t^(−1/4)
    ],
)
def test_margin_to_noise_verdict_matches_simulated_separability(c_over_k, q, expected):
    ts, X, y = _simulate(c_over_k, q)
    xbar = X.reshape(N_TRIALS, ts.size, K, N_PER_CLASS, P).mean(axis=3).mean(axis=0)
    i0 = 4
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ab = lesde.estimate_ab(xbar, ts, model="I", t0_index=i0)
    gap0 = min(np.linalg.norm(xbar[i0, k] - xbar[i0, m]) for k in range(K) for m in range(k))
    d = estimate_diffusion(ts, X, y, K)
    mn = margin_to_noise(ts, d.V_trials, gap0, ab.A - ab.B, K, t_range=(1e3, T_END))
    # the ratio's exponent c/K − (1/2 − q): measured within 0.025 of it in every case
    assert mn.slope == pytest.approx(c_over_k - (0.5 - q), abs=0.04)
    assert mn.slope_ci[0] <= mn.slope <= mn.slope_ci[1]
    assert mn.verdict == expected
    # the genuine separability of the particle clouds at the final time agrees
    frac = np.mean([is_separable(X[r, -1], y) for r in range(N_TRIALS)])
    assert frac == (1.0 if expected == "separable" else 0.0)
    # the finite-time level: the trials' gap/sd at the end against ρ* agrees as well
    from lesde.analysis.margin import ratio_level, separation_threshold

    means = X.reshape(N_TRIALS, ts.size, K, N_PER_CLASS, P).mean(axis=3)[:, -1]  # (R, K, p)
    gaps = np.min([np.linalg.norm(means[:, k] - means[:, m], axis=-1)
                   for k in range(K) for m in range(k)], axis=0)  # fmt: skip
    lv = ratio_level(gaps, d.V_trials[:, -1], separation_threshold(N_PER_CLASS, P, K))
    assert lv["verdict"] == expected
    # while the tail index of γ sits on the boundary and cannot tell these apart
    fit = lesde.tail_fit(ts, ab.A - ab.B, t_range=(1e3, T_END))
    assert fit.s == pytest.approx(1.0, abs=0.05)


def test_margin_to_noise_errors_and_undetermined():
    ts = np.linspace(0, 100, 11)
    with pytest.raises(ValueError, match="`gap0` must be"):
        margin_to_noise(ts, np.ones((2, 11)), 0.0, np.zeros(11), 3)
    with pytest.raises(ValueError, match="must match `ts`"):
        margin_to_noise(ts, np.ones((2, 10)), 1.0, np.zeros(11), 3)
    # a flat ratio with trial noise: the slope interval straddles 0
    rng = np.random.default_rng(0)
    V = 1 + 0.05 * rng.standard_normal((10, 11))
    mn = margin_to_noise(ts, V, 1.0, np.zeros(11), 3)
    assert mn.verdict == "undetermined" and mn.slope_ci[0] < 0 < mn.slope_ci[1]


def test_separation_threshold_is_where_clouds_separate_half_the_time():
    # ρ* for K = 3 clouds of 50 points in 3-D, then an independent check at ρ* ± 1.5:
    # clearly above, most draws separable; clearly below, few (60 draws each).
    from lesde.analysis.margin import separation_threshold

    r = separation_threshold(50, 3, 3)
    assert 2.0 < r < 8.0
    rng = np.random.default_rng(11)
    centres = np.eye(3) / np.sqrt(2)  # pairwise distance 1
    y = np.repeat(np.arange(3), 50)

    def frac(g):
        Z = rng.standard_normal((60, 3, 50, 3)) + g * centres[None, :, None, :]
        return np.mean([is_separable(Z[i].reshape(150, 3), y) for i in range(60)])

    assert frac(r + 1.5) > 0.8 and frac(r - 1.5) < 0.2
    # more points per class need a wider gap
    assert separation_threshold(200, 3, 3) > separation_threshold(20, 3, 3)


def test_ratio_level_verdicts():
    from lesde.analysis.margin import ratio_level

    rng = np.random.default_rng(0)
    V = np.ones(30)
    assert ratio_level(8 + 0.3 * rng.standard_normal(30), V, 4.0)["verdict"] == "separable"
    assert ratio_level(1 + 0.3 * rng.standard_normal(30), V, 4.0)["verdict"] == "not separable"
    mixed = ratio_level(4 + 3 * rng.standard_normal(30), V, 4.0)
    assert mixed["verdict"] == "undetermined" and mixed["ci"][0] < 4 < mixed["ci"][1]

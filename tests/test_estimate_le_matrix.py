"""estimate_le_matrix: the full K×K matrix E(t) by windowed least squares (MATH.md §4)."""

from __future__ import annotations

import numpy as np
import pytest

import lesde
from lesde import LEModel, estimate_ab, estimate_le_matrix, estimate_rates, solve_ode

K = 3
T_END = 10.0
TS = np.linspace(0.0, T_END, 501)  # h = 0.02
# A non-two-parameter E: distinct diagonals and off-diagonals, slowly varying in time
E0 = np.array([[0.6, -0.1, 0.2], [0.05, 0.5, -0.2], [0.15, -0.05, 0.4]])
E1 = np.array([[-0.2, 0.1, 0.0], [0.1, 0.1, 0.1], [0.0, 0.05, -0.1]])


def E_true(t):
    return E0 + E1 * np.asarray(t, dtype=float)[..., None, None] / T_END


def _trials(model, n_trials, seed):
    rng = np.random.default_rng(seed)
    # different x0 per trial make the K regressors of every row linearly independent
    return np.stack(
        [solve_ode(model, rng.normal(size=(K, K)), TS, rtol=1e-10) for _ in range(n_trials)]
    )  # (R, T, K, p)


@pytest.fixture(scope="module", params=["I", "L"])
def trials(request):
    return request.param, _trials(LEModel(K, K, E=E_true, H=request.param), 30, seed=1)


def test_noise_free_recovery_is_precise(trials):
    H, X = trials
    res = estimate_le_matrix(X, TS, H=H, window=51, n_boot=0)
    assert res.E.shape == (TS.size // 51, K, K) and res.ts.shape == (TS.size // 51,)
    # error sources: SG derivative bias h²(3M²+3M−1)/30·|X'''|/|X'| ≈ 1e-5 for the 5-point
    # filter (M = 2, rates ≲ 0.3), and the window's second-order term E''=0 here: 1e-4
    # leaves a margin of ~10
    np.testing.assert_allclose(res.E, E_true(res.ts), rtol=0, atol=1e-4)
    assert np.isnan(res.lo).all()  # no bootstrap asked


def test_noisy_trials_entries_within_bootstrap_intervals(trials):
    H, X = trials
    rng = np.random.default_rng(2)
    Xn = X + 1e-3 * rng.normal(size=X.shape)  # measurement noise on every class mean
    res = estimate_le_matrix(Xn, TS, H=H, window=51, n_boot=200, level=0.95, seed=3)
    Et = E_true(res.ts)
    covered = (res.lo <= Et) & (Et <= res.hi)  # (T', K, K)
    # 9 windows × 9 entries; a calibrated 95% interval misses ~4 of 81, and percentile
    # bootstraps over R = 30 trials undercover slightly: require ≥ 80% overall and every
    # entry covered in most windows
    assert covered.mean() >= 0.8
    assert (covered.mean(axis=0) >= 0.6).all()
    # the intervals are informative: narrow compared with the spread of E's entries
    assert np.median(res.hi - res.lo) < 0.02 * np.ptp(E0)
    assert np.all(res.lo <= res.E) and np.all(res.E <= res.hi)


def test_constant_fit_without_trend_is_biased(trials):
    # E varies linearly and the regressors grow across a window: a constant fit weights
    # late times more and misses E(t_c) by ~Ė·(a fraction of the half-width)
    H, X = trials
    with_trend = estimate_le_matrix(X, TS, H=H, window=51, n_boot=0)
    constant = estimate_le_matrix(X, TS, H=H, window=51, n_boot=0, trend=False)
    err_t = np.abs(with_trend.E - E_true(with_trend.ts)).max()
    err_c = np.abs(constant.E - E_true(constant.ts)).max()
    assert err_c > 5 * err_t


@pytest.mark.parametrize("H", ["I", "L"])
def test_two_parameter_E_agrees_with_ab_route(H):
    alpha = lambda t: 0.5 * (1 + t) ** -0.5  # noqa: E731
    beta = lambda t: 0.2 - 0.04 * t  # noqa: E731 (changes sign at t = 5)
    m = LEModel(K, K, alpha=alpha, beta=beta, H=H)
    X = _trials(m, 12, seed=4)
    res = estimate_le_matrix(X, TS, H=H, window=25, n_boot=0)
    diag = np.einsum("tkk->tk", res.E).mean(axis=1)
    off = (res.E.sum(axis=(1, 2)) - np.einsum("tkk->t", res.E)) / (K * (K - 1))
    ab = estimate_ab(X.mean(axis=0), TS, model=H)
    a_hat, b_hat = estimate_rates(TS, ab.A, ab.B, window=25)
    idx = np.searchsorted(TS, res.ts)
    # both routes carry SG bias ≲ h²(3M²+3M−1)/30·|α''| ≈ 3e-4 (window 25, M = 12, h = 0.02,
    # |α''| ≤ 0.375 at t = 0) plus the window's curvature term of the LS route: 1e-3
    np.testing.assert_allclose(diag, a_hat[idx], rtol=0, atol=1e-3)
    np.testing.assert_allclose(off, b_hat[idx], rtol=0, atol=1e-3)
    # against the truth, the LS route's local-linear fit also misses the curvature term
    # α''(t_c)(t − t_c)²/2, at most |α''(t_c)|·hw²/2 with hw = 12h the half-width
    hw = 12 * (TS[1] - TS[0])
    alpha_dd = 0.375 * (1 + res.ts) ** -2.5
    assert np.all(np.abs(diag - alpha(res.ts)) <= 1e-3 + alpha_dd * hw**2 / 2)
    # and the two-parameter structure is found: the off-diagonals agree with each other
    offs = res.E[:, ~np.eye(K, dtype=bool)]  # (T', K(K−1))
    assert np.ptp(offs, axis=1).max() < 1e-3


def test_general_W_and_bootstrap_reproducible():
    W = np.array([[0.5, 0.3, 0.2], [0.1, 0.6, 0.3], [0.2, 0.2, 0.6]])
    m = LEModel(K, K, E=E_true, H="I", W=W)
    X = _trials(m, 10, seed=5)
    Xn = X + 1e-3 * np.random.default_rng(6).normal(size=X.shape)
    r1 = estimate_le_matrix(Xn, TS, H="I", W=W, window=101, n_boot=50, seed=7)
    r2 = estimate_le_matrix(Xn, TS, H="I", W=W, window=101, n_boot=50, seed=7)
    np.testing.assert_array_equal(r1.lo, r2.lo)
    np.testing.assert_allclose(r1.E, E_true(r1.ts), rtol=0, atol=0.02)
    # ignoring W (the default 1/K) misreads every entry by the factor W_kl·K
    r0 = estimate_le_matrix(X, TS, H="I", window=101, n_boot=0)
    np.testing.assert_allclose(r0.E, E_true(r0.ts) * W * K, rtol=0, atol=1e-3)


def test_single_trial_from_one_start_is_unidentifiable():
    # one trial, I-model, all classes starting on a common line: the class means stay in a
    # 2-d span and the 3 regressors of each row are collinear -> NaN and a warning
    m = LEModel(K, 1, alpha=0.3, beta=0.1, H="I")
    X = solve_ode(m, np.array([[1.0], [2.0], [3.0]]), TS)[None]  # (1, T, 3, 1)
    with pytest.warns(UserWarning, match="ill-conditioned"):
        res = estimate_le_matrix(X, TS, H="I", window=51, n_boot=0)
    assert np.isnan(res.E).all()


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"window": 50}, "`window` must be odd"),
        ({"window": 1}, "`window` must be >= 3"),
        ({"window": 11, "step": 0}, "`step` must be"),
        ({"window": 11, "level": 1.5}, "`level` must be"),
        ({"window": 11, "n_boot": -1}, "`n_boot` must be"),
        ({"window": 11, "H": "Q"}, "`H` must be"),
        ({"window": 11, "W": np.ones(3)}, "`W` must be"),
        ({"window": 11, "deriv_window": 4}, "`deriv_window` must be odd"),
    ],
)
def test_invalid_options(kw, match):
    X = np.random.default_rng(0).normal(size=(2, 40, 3, 3))
    with pytest.raises(ValueError, match=match):
        estimate_le_matrix(X, np.arange(40.0), **kw)


def test_invalid_shapes_and_export():
    with pytest.raises(ValueError, match="`xbar_trials` must be"):
        estimate_le_matrix(np.ones((40, 3, 3)), np.arange(40.0), window=11)
    with pytest.raises(ValueError, match="`ts` must have shape"):
        estimate_le_matrix(np.ones((2, 40, 3, 3)), np.arange(41.0), window=11)
    assert lesde.estimate_le_matrix is estimate_le_matrix


def test_non_uniform_grid_and_overlapping_windows():
    # geometric grid: derivatives by explicit local fits, trend in actual time
    ts = np.r_[0.0, np.geomspace(0.02, T_END, 400)]
    m = LEModel(K, K, E=E_true, H="I")
    rng = np.random.default_rng(8)
    X = np.stack([solve_ode(m, rng.normal(size=(K, K)), ts, rtol=1e-10) for _ in range(10)])
    res = estimate_le_matrix(X, ts, H="I", window=21, step=5, n_boot=0)
    assert res.ts.shape == ((ts.size - 21) // 5 + 1,)
    np.testing.assert_array_equal(res.ts, ts[np.arange(0, ts.size - 20, 5) + 10])
    # spacing grows to ~1.7% of t, the 5-point derivative's bias stays ~1e-4 of the rates
    np.testing.assert_allclose(res.E, E_true(res.ts), rtol=0, atol=1e-3)

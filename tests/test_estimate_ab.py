"""estimate_ab: inverting the I-model and L-model closed forms (MATH.md §4)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import lesde
from lesde import LEModel, estimate_ab, estimate_rates, integrated_rates, solve_ode

TAU = 10.0  # time scale of the rates


def alpha(t):
    """α(t) = 0.5 (1 + t/τ)^{-0.4}: a power law."""
    return 0.5 * (1 + np.asarray(t) / TAU) ** -0.4


def beta(t):
    """β(t) = 0.2 (1 + t/τ)^{-0.7} (1 − t/100): another exponent, one sign change at t = 100."""
    t = np.asarray(t)
    return 0.2 * (1 + t / TAU) ** -0.7 * (1 - t / 100.0)


TS = np.linspace(0.0, 200.0, 801)


def _trajectory(H, K, p, seed, ts=TS, W=None):
    m = LEModel(K, p, alpha=alpha, beta=beta, H=H, W=W)
    x0 = np.random.default_rng(seed).normal(size=(K, p))
    # rtol 1e-12: the solver error enters log-ratios as ~1e-12 relative, six orders
    # below the 1e-6 the estimator is asked for
    return m, solve_ode(m, x0, ts, rtol=1e-12)


def _assert_close(est, true, rtol=1e-6):
    # relative to the series' scale: A, B are 0 at t₀ (and B crosses 0), so a pointwise
    # relative error is undefined there
    np.testing.assert_allclose(est, true, rtol=0, atol=rtol * np.abs(true).max())


@pytest.mark.parametrize("K", [2, 3, 5])
@pytest.mark.parametrize("p_kind", ["K", 7])
def test_round_trip_I_model(K, p_kind):
    p = K if p_kind == "K" else p_kind
    m, X = _trajectory("I", K, p, seed=K * 10 + p)
    A, B = integrated_rates(m, TS)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # clean dynamics: no warning
        res = estimate_ab(X, TS, model="I")
    assert res.A.shape == res.B.shape == (TS.size,)
    _assert_close(res.A, A)
    _assert_close(res.B, B)
    _assert_close(res.a, A - B)
    _assert_close(res.b, A + (K - 1) * B)
    assert res.n_nan == 0 and res.negative_fraction == 0.0


@pytest.mark.parametrize("K", [2, 3, 4, 6])
def test_round_trip_L_model(K):
    m, X = _trajectory("L", K, K, seed=K)
    A, B = integrated_rates(m, TS)
    res = estimate_ab(X, TS, model="L")
    _assert_close(res.A, A)
    _assert_close(res.B, B)
    _assert_close(res.a, A - B)
    _assert_close(res.b, A + B / (K - 1))


@pytest.mark.parametrize("H", ["I", "L"])
def test_reference_index_and_uniform_weight(H):
    # W = c·11ᵀ with c ≠ 1/K (an extension): passing the same c inverts exactly
    K, c, i0 = 3, 0.2, 100
    m, X = _trajectory(H, K, K, seed=7, W=np.full((K, K), c))
    A, B = integrated_rates(m, TS)
    res = estimate_ab(X, TS, model=H, t0_index=i0, W=c)
    _assert_close(res.A, A - A[i0])
    _assert_close(res.B, B - B[i0])
    assert res.A[i0] == 0.0 and res.t0_index == i0
    # the default c = 1/K is then wrong by the factor K·c
    wrong = estimate_ab(X, TS, model=H, t0_index=i0)
    _assert_close(wrong.A, (A - A[i0]) * K * c)


def test_I_model_equals_paper_formula_on_noisy_input():
    # The paper's code averages, per element (k, j), log|grand ratio| − log|deviation
    # ratio| for B and log|grand ratio| + (K−1)·log|deviation ratio| for A; MATH.md §4
    # says that the lesde estimator equals it to rounding when every ratio is usable.
    K, p, T = 3, 3, 200
    rng = np.random.default_rng(3)
    X = 5.0 + rng.normal(size=(T, K, p))  # noisy logits, all ratios finite and non-zero
    ts = np.arange(T, dtype=float)
    xg = X.mean(axis=1)
    dev = X - xg[:, None]
    lg = np.log(np.abs(xg / xg[0]))[:, None, :]  # (T, 1, p)
    ld = np.log(np.abs(dev / dev[0]))  # (T, K, p)
    B_paper = (lg - ld).mean(axis=(1, 2))
    A_paper = (lg + (K - 1) * ld).mean(axis=(1, 2))
    with pytest.warns(UserWarning, match="negative"):  # noise makes some ratios negative
        res = estimate_ab(X, ts, model="I")
    np.testing.assert_allclose(res.A, A_paper, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(res.B, B_paper, rtol=1e-12, atol=1e-12)
    assert 0 < res.negative_fraction < 1


def test_zero_ratios_give_nan_and_one_warning():
    m, X = _trajectory("I", 2, 1, seed=1)
    X = X.copy()
    X[5] = X[5].mean(axis=0)  # classes coincide: every deviation ratio is 0 at t_5
    X[9, 0, 0] = np.inf  # a non-finite element at t_9 poisons both modes there
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        res = estimate_ab(X, TS, model="I")
    assert len(rec) == 1
    assert "2 of 801" in str(rec[0].message)
    assert rec[0].filename == __file__  # stacklevel=2 points at the caller
    assert np.isnan(res.A[[5, 9]]).all() and np.isnan(res.B[[5, 9]]).all()
    assert np.isfinite(np.delete(res.A, [5, 9])).all()
    assert res.n_nan == 2


def test_negative_ratios_are_kept_and_counted():
    m, X = _trajectory("L", 3, 3, seed=2)
    A, _ = integrated_rates(m, TS)
    X = X.copy()
    X[10:20] = -X[10:20]  # flips S and u: both ratios negative on 10 of 801 points
    with pytest.warns(UserWarning, match=r"0 of 801 .* 0\.6%"):
        res = estimate_ab(X, TS, model="L")
    # |·| keeps the flipped points exactly on the curve, as in the paper
    _assert_close(res.A, A)
    # S gives 10 negative ratios, ‖u‖ none: 10 of 2·801 used ratios
    assert res.negative_fraction == pytest.approx(10 / (2 * 801))


def test_public_export():
    _, X = _trajectory("I", 2, 2, seed=0, ts=TS[:5])
    assert lesde.estimate_ab is estimate_ab
    assert isinstance(estimate_ab(X, TS[:5]), lesde.ABResult)


@pytest.mark.parametrize(
    ("xbar", "ts", "kw", "match"),
    [
        (np.ones((4, 3)), np.arange(4.0), {}, "`xbar` must be"),
        (np.ones((4, 1, 3)), np.arange(4.0), {}, "K >= 2"),
        (np.ones((4, 3, 3)), np.arange(5.0), {}, "`ts` must have shape"),
        (np.ones((4, 3, 3)), np.arange(4.0), {"model": "X"}, "`model` must be"),
        (np.ones((4, 3, 2)), np.arange(4.0), {"model": "L"}, "p == K"),
        (np.ones((4, 3, 3)), np.arange(4.0), {"t0_index": 4}, "`t0_index` must be in"),
        (np.ones((4, 3, 3)), np.arange(4.0), {"W": np.eye(3)}, "`W` must be uniform"),
        (np.ones((4, 3, 3)), np.arange(4.0), {"W": -1.0}, "`W` must be a positive"),
        (np.ones((4, 3, 3)), np.array([0.0, 2, 1, 3]), {}, "strictly increasing"),
    ],
)
def test_invalid_input(xbar, ts, kw, match):
    with pytest.raises(ValueError, match=match):
        estimate_ab(xbar, ts, **kw)


def test_type_errors():
    with pytest.raises(TypeError, match="`t0_index` must be an int"):
        estimate_ab(np.ones((4, 3, 3)), np.arange(4.0), t0_index=1.0)
    with pytest.raises(TypeError, match="`W` must be a number"):
        estimate_ab(np.ones((4, 3, 3)), np.arange(4.0), W="uniform")


@pytest.mark.parametrize("H", ["I", "L"])
def test_estimates_converge_as_particles_grow(H):
    # LE-SDE class means of n particles carry noise ~ σ√t/√n, so the errors of Â, B̂ (and
    # of α̂) must fall like n^{-1/2}. Reference: the same Euler–Maruyama scheme at σ = 0,
    # which removes the O(Δt) Euler bias from the comparison.
    K, ts = 3, np.linspace(0.0, 50.0, 2001)
    m = LEModel(K, K, alpha=alpha, beta=beta, H=H)
    x0 = np.random.default_rng(0).normal(size=(K, K))
    kw = {"x0": x0, "save_ts": [ts[-1]]}
    clean = lesde.simulate_sde(m, ts, n_per_class=1, sigma=0.0, seed=0, **kw).means[0]
    ref = estimate_ab(clean, ts, model=H)
    ns = np.array([10, 100, 1000, 10000])
    err_ab, err_alpha = [], []
    for n in ns:
        # 8 independent paths per n: the RMS error of one path varies by ~±50%
        res = lesde.simulate_sde(m, ts, n_per_class=int(n), sigma=0.1, n_paths=8, seed=int(n), **kw)
        e1, e2 = [], []
        for xbar in res.means:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # noisy early ratios flip sign
                est = estimate_ab(xbar, ts, model=H)
            e1.append(np.sqrt(np.mean((est.A - ref.A) ** 2 + (est.B - ref.B) ** 2)))
            a_hat, _ = estimate_rates(ts, est.A, est.B, window=101)
            e2.append(np.sqrt(np.mean((a_hat - alpha(ts)) ** 2)))
        err_ab.append(np.mean(e1))
        err_alpha.append(np.mean(e2))
    err_ab = np.array(err_ab)
    assert np.all(np.diff(err_ab) < 0)
    slope = np.polyfit(np.log(ns), np.log(err_ab), 1)[0]
    assert -0.75 < slope < -0.3  # n^{-1/2}, with room for the 8-path average's scatter
    # α̂ also carries the SG and Euler biases (a floor ~1e-3 of α ≈ 0.3): a factor 10
    assert err_alpha[-1] < err_alpha[0] / 10

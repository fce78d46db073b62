"""estimate_rates (Savitzky–Golay α̂, β̂) and tail_index (MATH.md §4)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.ndimage import maximum_filter1d
from scipy.signal import savgol_filter

import lesde
from lesde import LEModel, estimate_ab, estimate_rates, integrated_rates, solve_ode, tail_index
from lesde.estimate._savgol import _local_poly_derivative, savgol_derivative

TAU, C0 = 10.0, 100.0  # time scale of the rates; β changes sign at t = C0


def alpha(t):
    return 0.5 * (1 + np.asarray(t) / TAU) ** -0.4


def beta(t):
    t = np.asarray(t)
    return 0.2 * (1 + t / TAU) ** -0.7 * (1 - t / C0)


def alpha_dd(t):
    """α''(t) for α = a₀ g_q, g_q = (1 + t/τ)^{-q}: g_q'' = q(q+1)/τ² (1 + t/τ)^{-q-2}."""
    return 0.5 * 0.4 * 1.4 / TAU**2 * (1 + np.asarray(t) / TAU) ** -2.4


def beta_dd(t):
    """β'' = b₀ [g_r''(1 − t/c) − 2 g_r'/c] with g_r' = −(r/τ)(1 + t/τ)^{-r-1}."""
    t = np.asarray(t)
    r, u = 0.7, 1 + t / TAU
    return 0.2 * (
        r * (r + 1) / TAU**2 * u ** (-r - 2) * (1 - t / C0) + 2 * r / TAU / C0 * u ** (-r - 1)
    )


def _bias_factor(ts, window):
    """Leading SG-derivative error per unit of f''' at every grid point.

    A degree-2 local fit reproduces quadratics, so on f the error at t_i is
    f'''·e_i + O(f''''), with e_i the error on the cubic (t − t_i)³/6 — and every cubic
    with unit third derivative gives the same e_i, so e = SG'(t³/6) − t²/2.
    """
    tc = ts - ts.mean()  # centred: less cancellation in t³
    return savgol_derivative(tc, tc**3 / 6, window=window) - tc**2 / 2


def test_bias_factor_matches_derivation():
    # Symmetric window of 2M+1 points, spacing h: the fitted slope is Σ i f_i / (h Σ i²),
    # whose cubic term gives f''' h² Σi⁴ / (6 Σi²) = f''' h² (3M² + 3M − 1)/30.
    h, M = 0.25, 10
    ts = np.arange(200) * h
    e = _bias_factor(ts, 2 * M + 1)
    np.testing.assert_allclose(e[M:-M], h**2 * (3 * M**2 + 3 * M - 1) / 30, rtol=1e-9)


@pytest.mark.parametrize(("H", "K"), [("I", 3), ("L", 4)])
@pytest.mark.parametrize("window", [21, 51])
def test_rates_within_filter_bias(H, K, window):
    ts = np.linspace(0.0, 200.0, 801)  # h = 0.25
    m = LEModel(K, K, alpha=alpha, beta=beta, H=H)
    X = solve_ode(m, np.random.default_rng(K).normal(size=(K, K)), ts, rtol=1e-12)
    res = estimate_ab(X, ts, model=H)
    a_hat, b_hat = estimate_rates(ts, res.A, res.B, window=window)
    e = np.abs(_bias_factor(ts, window))  # (T,)
    for est, true, dd in ((a_hat, alpha, alpha_dd), (b_hat, beta, beta_dd)):
        # f''' = α'' (resp. β''), bounded by its maximum over the points a fit can touch
        dd_max = maximum_filter1d(np.abs(dd(ts)), size=2 * window + 1)
        # 1.5: room for the next Taylor term; 1e-8: the ~1e-10 error of Â, B̂ amplified by
        # the filter's derivative weights (Σ|w| ≲ 10/(h·window) here)
        tol = 1.5 * e * dd_max + 1e-8
        err = np.abs(est - true(ts))
        assert np.all(err <= tol), (err / tol).max()
        # and the bound is not vacuous: within a factor of 5 of the realised error (the
        # max of |f'''| over a 2·window span overstates f''' at the first points)
        assert err.max() > tol.max() / 5


def test_uniform_grid_is_scipy_savgol():
    ts = 3.0 + 0.5 * np.arange(300)
    y = np.sin(ts / 7) + 0.01 * np.random.default_rng(0).normal(size=ts.size)
    a_hat, _ = estimate_rates(ts, y, y, window=31)
    ref = savgol_filter(y, 31, 2, deriv=1, delta=0.5)
    np.testing.assert_allclose(a_hat, ref, rtol=0, atol=1e-12)
    # the explicit local fits used on non-uniform grids give the same numbers
    local = _local_poly_derivative(ts, y[:, None], 31, 2)[:, 0]
    np.testing.assert_allclose(local, ref, rtol=0, atol=1e-10)


def test_non_uniform_grid_is_not_treated_as_uniform():
    ts = np.sort(np.random.default_rng(1).uniform(0, 50, 400))
    A = 0.3 * ts**2 - 2 * ts + 1  # quadratic: a degree-2 local fit is exact
    B = -0.1 * ts**2 + 5
    a_hat, b_hat = estimate_rates(ts, A, B, window=15)
    np.testing.assert_allclose(a_hat, 0.6 * ts - 2, rtol=0, atol=1e-8)
    np.testing.assert_allclose(b_hat, -0.2 * ts, rtol=0, atol=1e-8)
    # scipy's uniform filter with the mean spacing would be visibly wrong here
    h = (ts[-1] - ts[0]) / (ts.size - 1)
    wrong = savgol_filter(A, 15, 2, deriv=1, delta=h)
    assert np.abs(wrong - (0.6 * ts - 2)).max() > 1.0


def test_non_uniform_round_trip_from_ode():
    # geometric grid (denser early), as a training log with growing checkpoint spacing
    ts = np.concatenate([[0.0], np.geomspace(0.05, 200.0, 600)])
    m = LEModel(3, 3, alpha=alpha, beta=beta, H="I")
    X = solve_ode(m, np.random.default_rng(5).normal(size=(3, 3)), ts, rtol=1e-12)
    A, B = integrated_rates(m, ts)
    res = estimate_ab(X, ts, model="I")
    a_hat, b_hat = estimate_rates(ts, res.A, res.B, window=11)
    # relative spacing is ~1.4%; 11 points span ~15% of t, the local quadratic error is
    # then ~|f'''|·(0.15 t)² ≲ 1e-3 of the rate scale 0.5 (checked per point below)
    np.testing.assert_allclose(a_hat, alpha(ts), rtol=0, atol=2e-3)
    np.testing.assert_allclose(b_hat, beta(ts), rtol=0, atol=2e-3)
    np.testing.assert_allclose(res.A, A, rtol=0, atol=1e-6 * np.abs(A).max())


def test_nan_points_are_interpolated_around_and_reported():
    ts = np.arange(200.0)
    A = 0.01 * ts**2
    B = np.sin(ts / 30)
    A[[0, 1, 50, 51, 199]] = np.nan  # leading, interior and trailing gaps
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        a_hat, b_hat = estimate_rates(ts, A, B, window=11)
    assert len(rec) == 1 and "5 of 200" in str(rec[0].message)
    assert np.isnan(a_hat[[0, 1, 50, 51, 199]]).all() and np.isnan(b_hat[[50, 199]]).all()
    ok = np.ones(200, bool)
    ok[[0, 1, 50, 51, 199]] = False
    # quadratic A: exact away from the gap; next to it the linear fill perturbs the fit
    far = ok & (np.abs(ts - 50.5) > 7)
    np.testing.assert_allclose(a_hat[far], 0.02 * ts[far], rtol=0, atol=1e-10)
    assert np.isfinite(a_hat[ok]).all()


@pytest.mark.parametrize(
    ("kw", "exc", "match"),
    [
        ({"window": 10}, ValueError, "odd"),
        ({"window": 3, "polyorder": 3}, ValueError, "> polyorder"),
        ({"window": 301}, ValueError, "<= the number"),
        ({"window": 11, "polyorder": 0}, ValueError, "`polyorder` must be >= 1"),
        ({"window": 11.0}, TypeError, "`window` must be an int"),
    ],
)
def test_invalid_window(kw, exc, match):
    ts = np.arange(100.0)
    with pytest.raises(exc, match=match):
        estimate_rates(ts, ts, ts, **kw)


def test_invalid_shapes():
    with pytest.raises(ValueError, match="`A` and `B` must each have shape"):
        estimate_rates(np.arange(10.0), np.ones(10), np.ones(9), window=5)
    with pytest.raises(ValueError, match="no point where both are finite"):
        estimate_rates(np.arange(10.0), np.full(10, np.nan), np.ones(10), window=5)


# ------------------------------------------------------------------ tail index
T_TAIL = 20_000


def _A_power(s, ts):
    """A(t) = ∫₀ᵗ (1+τ)^{-s} dτ = ((1+t)^{1−s} − 1)/(1 − s), exactly."""
    return np.expm1((1 - s) * np.log1p(ts)) / (1 - s)


@pytest.mark.parametrize("method", ["slope", "fit"])
@pytest.mark.parametrize("s", [0.3, 0.7])
def test_tail_index_slope_recovers_s(s, method):
    ts = np.arange(T_TAIL + 1, dtype=float)
    assert abs(tail_index(ts, _A_power(s, ts), method=method) - s) < 0.05
    # a mostly negative series (e.g. B̂ when β < 0) gives the same answer
    assert tail_index(ts, -_A_power(s, ts), method=method) == pytest.approx(
        tail_index(ts, _A_power(s, ts), method=method)
    )


def test_tail_index_converging_integral():
    ts = np.arange(T_TAIL + 1, dtype=float)
    A = _A_power(1.2, ts)  # converges to 5: the rate is integrable
    r_slope = tail_index(ts, A, method="slope")
    assert r_slope >= 0.95  # saturated: s = 1.2 reads as "just below 1"
    # the paper form tends to 1 only as log C / log t: log 4.3 / log 2e4 ≈ 0.15 short here
    r_paper = tail_index(ts, A, method="paper")
    assert r_paper == pytest.approx(1 - np.log(A[-1]) / np.log1p(ts[-1]), abs=1e-3)
    assert r_paper < r_slope


def test_tail_index_paper_formula_and_its_bias():
    ts = np.arange(T_TAIL + 1, dtype=float)
    A = _A_power(0.3, ts)
    win = ts >= ts[-1] - 1000  # the default window: last 1000 iterations (< 10% of 2e4)
    formula = 1 - np.mean(np.log(np.abs(A[win])) / np.log1p(ts[win]))
    assert tail_index(ts, A, method="paper") == pytest.approx(formula, rel=1e-14)
    # the paper form is biased by log C / log t (C = 1/0.7 here): slope is closer to s
    assert abs(tail_index(ts, A, method="slope") - 0.3) < abs(formula - 0.3)


def test_tail_index_default_window_short_grid():
    # 10% of a 2000-iteration run (200) is shorter than 1000 iterations: it is used
    ts = np.arange(2001.0)
    A = _A_power(0.5, ts)
    A_broken = A.copy()
    A_broken[:1800] = 1.0  # anything before the last 10% must not matter
    assert tail_index(ts, A_broken, method="paper") == tail_index(ts, A, method="paper")
    assert tail_index(ts, A, t_range=(1000, 2000), method="slope") != tail_index(
        ts, A, method="slope"
    )


def test_tail_index_errors_and_empty_window():
    ts = np.arange(100.0)
    with pytest.raises(ValueError, match="`method` must be"):
        tail_index(ts, ts, method="mean")
    with pytest.raises(ValueError, match="`t_range` must have T1 < T2"):
        tail_index(ts, ts, t_range=(50, 10))
    with pytest.raises(ValueError, match="`series` must have shape"):
        tail_index(ts, ts[:-1])
    with pytest.warns(UserWarning, match="fewer than two usable points"):
        assert np.isnan(tail_index(ts, ts, t_range=(500, 600), method="slope"))
    with pytest.warns(UserWarning, match="fewer than 4 usable points"):
        assert np.isnan(tail_index(ts, ts, t_range=(500, 600)))


def test_public_exports():
    assert lesde.estimate_rates is estimate_rates and lesde.tail_index is tail_index

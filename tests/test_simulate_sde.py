"""simulate_sde: contract, reproducibility, and statistics against the LE-ODE."""

import warnings

import numpy as np
import pytest

import lesde
from lesde.closed_form import closed_form


def _model():
    return lesde.LEModel(3, 3, alpha=lambda t: 0.3 / (1 + np.asarray(t)) ** 0.5, beta=-0.05,
                         H="L")  # fmt: skip


X0 = np.array([[1.0, -0.5, 0.2], [0.3, 0.8, -1.0], [-0.4, 0.1, 0.9]])


def _euler_means(model, x0, ts):
    """E[X̄(t_j)] of the Euler–Maruyama scheme, exactly: ∏ (I + dt M(t_j)) X̄(0)."""
    Ms = model.drift(ts[:-1])
    x = x0.ravel()
    out = [x]
    for j, dt in enumerate(np.diff(ts)):
        x = x + dt * (Ms[j] @ x)
        out.append(x)
    return np.array(out).reshape(ts.size, *x0.shape)


@pytest.mark.parametrize("method", ["split", "particles"])
def test_shapes_and_default_saves(method):
    ts = np.linspace(0, 1, 11)
    r = lesde.simulate_sde(_model(), ts, n_per_class=4, sigma=0.1, n_paths=2, x0=X0, seed=0,
                           method=method)  # fmt: skip
    assert r.means.shape == (2, 11, 3, 3)
    assert r.particles.shape == (2, 11, 3, 4, 3)
    np.testing.assert_array_equal(r.save_index, np.arange(11))
    np.testing.assert_array_equal(r.ts, ts)
    # the class means are the particle averages
    np.testing.assert_allclose(r.particles.mean(axis=3), r.means, atol=1e-12)


def test_over_budget_saves_final_only_with_warning():
    ts = np.linspace(0, 1, 11)
    with pytest.warns(UserWarning, match="final"):
        r = lesde.simulate_sde(_model(), ts, n_per_class=4, sigma=0.1, x0=X0, seed=0,
                               max_save_bytes=1000)  # fmt: skip
    assert r.particles.shape == (1, 1, 3, 4, 3)
    assert r.save_ts.tolist() == [1.0]


def test_save_ts_selects_points():
    ts = np.linspace(0, 1, 11)
    r = lesde.simulate_sde(_model(), ts, n_per_class=4, sigma=0.1, x0=X0, seed=0,
                           save_ts=[0.0, 0.5, 1.0])  # fmt: skip
    assert r.save_index.tolist() == [0, 5, 10]
    with pytest.raises(ValueError, match="save_ts"):
        lesde.simulate_sde(_model(), ts, n_per_class=4, sigma=0.1, x0=X0, seed=0, save_ts=[0.55])


@pytest.mark.parametrize("method, dtype", [("split", "float64"), ("particles", "float64"),
                                           ("particles", "float32")])  # fmt: skip
def test_same_seed_bitwise_identical(method, dtype):
    kw = dict(n_per_class=5, sigma=0.3, n_paths=3, x0=X0, init_spread=0.2, method=method,
              dtype=dtype)  # fmt: skip
    ts = np.linspace(0, 2, 21)
    a = lesde.simulate_sde(_model(), ts, seed=7, **kw)
    b = lesde.simulate_sde(_model(), ts, seed=7, **kw)
    c = lesde.simulate_sde(_model(), ts, seed=8, **kw)
    assert a.means.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(a.particles, b.particles)
    np.testing.assert_array_equal(a.means, b.means)
    assert not np.array_equal(a.particles, c.particles)


def _general_model():
    """Full E(t), custom H and non-uniform W: no closed form, only the drift M(t)."""
    H = np.random.default_rng(0).normal(size=(9, 9)) * 0.3
    W = np.array([[0.5, 0.2, 0.1], [0.1, 0.6, 0.2], [0.3, 0.1, 0.4]])
    E0 = np.array([[1.0, 0.2, -0.1], [0.0, 0.8, 0.3], [0.2, -0.2, 0.5]])
    return lesde.LEModel(3, 3, E=lambda t: E0 / (1 + np.asarray(t))[..., None, None], H=H, W=W)


@pytest.mark.parametrize("method", ["split", "particles"])
@pytest.mark.parametrize("make", [_model, _general_model])
def test_no_noise_is_the_euler_scheme(method, make):
    ts = np.linspace(0, 3, 31)
    m = make()
    r = lesde.simulate_sde(m, ts, n_per_class=3, sigma=0.0, x0=X0, seed=0, method=method)
    np.testing.assert_allclose(r.means[0], _euler_means(m, X0, ts), rtol=1e-13)
    # and every particle sits on its class mean
    np.testing.assert_allclose(r.particles[0], np.repeat(r.means[0][:, :, None], 3, 2), rtol=1e-13)


@pytest.mark.parametrize("method", ["split", "particles"])
def test_mean_tracks_ode_within_5_standard_errors(method):
    model, R, n, sigma = _model(), 400, 10, 0.5
    ts = np.linspace(0, 5, 501)  # dt = 0.01
    r = lesde.simulate_sde(model, ts, n_per_class=n, sigma=sigma, n_paths=R, x0=X0, seed=1,
                           init_spread=0.3, method=method, save_ts=[5.0])  # fmt: skip
    ode = lesde.solve_ode(model, X0, ts, rtol=1e-10)
    # Euler bias at dt = 0.01 is O(dt·|M|²·t) ~ 1e-4 here, < 2% of the standard error
    # (~0.04): checked, so that the 5-SE tolerance below is purely statistical.
    bias = np.abs(_euler_means(model, X0, ts) - ode).max()
    est = r.means.mean(axis=0)  # (T, K, p)
    se = r.means.std(axis=0, ddof=1) / np.sqrt(R)
    assert bias < 0.05 * se[1:].min()
    # 5 SE on each of the checked points: a false alarm has probability < 1e-5 per point.
    idx = [100, 250, 500]
    np.testing.assert_array_less(np.abs(est[idx] - ode[idx]), 5 * se[idx])


@pytest.mark.parametrize("method", ["split", "particles"])
def test_particle_spread_matches_brownian_law(method):
    # X_i − X̄ = (initial deviation) + Σ^{1/2}(W_i − W̄): covariance (s0² I + T ΣΣᵀ)(1 − 1/n)
    # whatever the drift. Σ^{1/2} is a full matrix to check it is applied as a matrix.
    S = np.array([[0.5, 0.0, 0.0], [0.2, 0.3, 0.0], [0.0, -0.1, 0.4]])
    n, R, s0, T = 8, 300, 0.2, 2.0
    ts = np.linspace(0, T, 41)
    r = lesde.simulate_sde(_model(), ts, n_per_class=n, sigma=S, n_paths=R, x0=X0, seed=2,
                           init_spread=s0, method=method, save_ts=[T])  # fmt: skip
    dev = r.particles[:, -1] - r.particles[:, -1].mean(axis=2, keepdims=True)  # (R, K, n, p)
    d = dev.reshape(-1, 3)
    cov = d.T @ d / d.shape[0] / (1 - 1 / n)
    want = s0**2 * np.eye(3) + T * S @ S.T
    # Each entry is an average of R·K·n = 7200 (correlated within a class only through
    # the 1/n centring) products; its SE is ≤ sqrt((want_ii want_jj + want_ij²)/N_eff)
    # with N_eff = R·K·(n−1).
    n_eff = R * 3 * (n - 1)
    se = np.sqrt((np.outer(np.diag(want), np.diag(want)) + want**2) / n_eff)
    np.testing.assert_array_less(np.abs(cov - want), 5 * se)


def test_split_and_particles_have_the_same_mean_variance():
    # Var X̄^k(T) from both samplers: two independent estimates of the same variance;
    # their log-ratio has SE ≈ sqrt(2/(R−1)) each, so 5·sqrt(2·2/(R−1)) is the bound.
    model, R = _model(), 400
    ts = np.linspace(0, 2, 101)
    kw = dict(n_per_class=5, sigma=0.4, n_paths=R, x0=X0, save_ts=[2.0], init_spread=0.1)
    v = [lesde.simulate_sde(model, ts, seed=3 + i, method=m, **kw).means[:, -1].var(0, ddof=1)
         for i, m in enumerate(["split", "particles"])]  # fmt: skip
    np.testing.assert_array_less(np.abs(np.log(v[0] / v[1])), 5 * np.sqrt(4 / (R - 1)))


def test_weak_convergence_order_one():
    # Nested grids share Brownian increments (summed from the finest grid), so the
    # Monte-Carlo noise of E[X̄(T)] is almost common to all grids and cancels in the
    # differences between successive grids: D_h = Ê[X̄_h(T)] − Ê[X̄_{h/2}(T)] ~ C·h for
    # a weak order-1 scheme, so |D_h| / |D_{h/2}| → 2. Also the error against the exact
    # ODE falls with h at order 1.
    model = lesde.LEModel(2, 2, alpha=lambda t: 1.0 + 0.5 * np.sin(t), beta=-0.4)
    x0 = np.array([[1.0, 0.5], [-0.5, 1.0]])
    R, n, T, base = 200, 4, 2.0, 8
    levels = [base * 2**i for i in range(5)]  # 8 .. 128 steps
    fine = levels[-1]
    rng = np.random.default_rng(0)
    dW_fine = rng.normal(size=(R, fine, 2, 2)) * np.sqrt(T / fine)
    exact = closed_form(model, x0, [0.0, T])[-1]
    means, errs = [], []
    for m in levels:
        ts = np.linspace(0, T, m + 1)
        dW = dW_fine.reshape(R, m, fine // m, 2, 2).sum(axis=2)
        r = lesde.simulate_sde(model, ts, n_per_class=n, sigma=0.3, n_paths=R, x0=x0, seed=0,
                               save_ts=[T], dW=dW)  # fmt: skip
        means.append(r.means[:, -1].mean(axis=0))
        errs.append(np.abs(means[-1] - exact).max())
    D = [np.abs(means[i] - means[i + 1]).max() for i in range(len(levels) - 1)]
    ratios = np.array(D[:-1]) / np.array(D[1:])
    # order 1 -> ratio 2; the band [1.6, 2.5] allows the O(h²) term at the coarsest level.
    assert np.all((ratios > 1.6) & (ratios < 2.5)), ratios
    slope = np.polyfit(np.log(levels[:3]), np.log(errs[:3]), 1)[0]
    assert -1.3 < slope < -0.7, (slope, errs)


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(n_per_class=0), ValueError, "n_per_class"),
        (dict(n_per_class=2.5), TypeError, "n_per_class"),
        (dict(n_paths=0), ValueError, "n_paths"),
        (dict(sigma=-1.0), ValueError, "sigma"),
        (dict(sigma=np.eye(2)), ValueError, "sigma"),
        (dict(x0=np.zeros((2, 3))), ValueError, "x0"),
        (dict(init_spread=-0.1), ValueError, "init_spread"),
        (dict(method="milstein"), ValueError, "method"),
        (dict(dtype="float16"), ValueError, "dtype"),
        (dict(dW=np.zeros((1, 3, 3, 3))), ValueError, "dW"),
        (dict(dW=np.zeros((1, 10, 3, 3)), method="particles"), ValueError, "dW"),
        (dict(model="not a model"), TypeError, "model"),
        (dict(seed=-1), ValueError, "seed"),
        (dict(seed=1.5), TypeError, "seed"),
    ],
)
def test_bad_inputs_name_the_argument(kwargs, exc, match):
    args = dict(model=_model(), ts=np.linspace(0, 1, 11), n_per_class=3, sigma=0.1, x0=X0, seed=0)
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        lesde.simulate_sde(**args)


def test_bad_ts():
    with pytest.raises(ValueError, match="ts"):
        lesde.simulate_sde(_model(), [0.0, 0.0, 1.0], n_per_class=3, sigma=0.1, x0=X0, seed=0)


def test_no_warning_in_normal_use():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lesde.simulate_sde(_model(), np.linspace(0, 1, 5), n_per_class=3, sigma=0.1, x0=X0, seed=0)


def test_threaded_gaussian_source_is_deterministic_and_standard():
    from lesde.simulate.sde import NormalSource

    n = 2**21  # above the size at which float64 fills are split over 4 threaded streams
    a = NormalSource(3, "float64").normal((n,))
    b = NormalSource(3, "float64").normal((n,))
    c = NormalSource(4, "float64").normal((n,))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    # mean 0 (SE 1/sqrt(n)) and variance 1 (SE sqrt(2/n)), 5 SE each
    assert abs(a.mean()) < 5 / np.sqrt(n)
    assert abs(a.var() - 1) < 5 * np.sqrt(2 / n)
    # an asynchronous fill gives the same numbers as a synchronous one
    src = NormalSource(3, "float64")
    wait = src.fill_async(np.empty(n))
    np.testing.assert_array_equal(wait(), a)
    # the four streams are different streams (no repeated block)
    q = n // 4
    assert not np.array_equal(a[:q], a[q : 2 * q])


@pytest.mark.parametrize("n", [1, 2, 7, 100])
def test_particle_sum_by_halving(n):
    from lesde.simulate.sde import _sum_particles

    Z = np.random.default_rng(n).normal(size=(2, 3, 4, n, 3))
    np.testing.assert_allclose(_sum_particles(Z), Z.sum(axis=3), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("method", ["split", "particles"])
def test_propagator_blocks_do_not_change_the_result(method, monkeypatch):
    import lesde.simulate.sde as sde

    kw = dict(n_per_class=3, sigma=0.2, n_paths=2, x0=X0, seed=5, method=method)
    ts = np.linspace(0, 2, 41)
    ref = lesde.simulate_sde(_model(), ts, **kw)
    monkeypatch.setattr(sde, "_PROP_BLOCK_BYTES", 3 * 81 * 8)  # blocks of 3 steps
    small = lesde.simulate_sde(_model(), ts, **kw)
    np.testing.assert_array_equal(ref.means, small.means)
    np.testing.assert_array_equal(ref.particles, small.particles)


@pytest.mark.parametrize("method", ["split", "particles"])
def test_time_varying_sigma(method):
    # σ(t) = 0.5(1+t)^(−1/4), no drift: the within-class variance per coordinate is
    # (1 − 1/n) Σ_j σ(t_j)² dt_j (Euler–Maruyama rule). Sample variance of n·K·p·paths
    # = 2000·3·3·2 Gaussians: relative sd √(2/36000) = 0.75 %; 5 SE = 3.7 %.
    model = lesde.LEModel(3, 3, alpha=0.0, beta=0.0)
    ts = np.linspace(0, 100, 1001)
    sig = lambda t: 0.5 * (1 + np.asarray(t)) ** -0.25  # noqa: E731
    res = lesde.simulate_sde(model, ts, n_per_class=2000, sigma=sig, x0=np.zeros((3, 3)), seed=0,
                       save_ts=[100.0], n_paths=2, method=method)  # fmt: skip
    expected = (1 - 1 / 2000) * np.sum(sig(ts[:-1]) ** 2 * np.diff(ts))
    got = res.particles[:, -1].var(axis=2, ddof=1).mean()
    assert got == pytest.approx(expected, rel=0.037)
    # a scalar-only callable is evaluated point by point; bad values are refused
    scalar_only = lambda t: 0.5 + 0.0 * float(t)  # noqa: E731  (float() of an array raises)
    res2 = lesde.simulate_sde(model, ts, n_per_class=10, sigma=scalar_only, x0=np.zeros((3, 3)),
                              seed=0, save_ts=[100.0], method=method)  # fmt: skip
    assert np.isfinite(res2.particles).all()
    with pytest.raises(ValueError, match="sigma"):
        lesde.simulate_sde(model, ts, n_per_class=10, sigma=lambda t: -np.ones_like(t),
                     x0=np.zeros((3, 3)), seed=0, method=method)  # fmt: skip

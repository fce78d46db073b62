"""simulate_particles (paper eq. 4): contract, reproducibility, statistics."""

import numpy as np
import pytest

import lesde
from lesde.simulate.particles import sampling_marginal

X0 = np.array([[1.0, -0.5, 0.2], [0.3, 0.8, -1.0], [-0.4, 0.1, 0.9]])


def _model(**kw):
    return lesde.LEModel(3, 3, alpha=lambda t: 0.05 / (1 + np.asarray(t)) ** 0.3, beta=-0.01,
                         H="L", **kw)  # fmt: skip


def _euler_means(model, x0, n_steps, h):
    """E[X̄(m)] of eq. (4), exactly: ∏ (I + h M(t_{m−1})) X̄(0) (module docstring)."""
    Ms = model.drift(h * np.arange(n_steps)) if n_steps else []
    x = x0.ravel()
    out = [x]
    for M in Ms:
        x = x + h * (M @ x)
        out.append(x)
    return np.array(out).reshape(n_steps + 1, *x0.shape)


@pytest.mark.parametrize("method", ["lazy", "direct"])
def test_shapes_and_seeds(method):
    kw = dict(n_per_class=4, h=1.0, sigma=0.2, x0=X0, n_paths=2, init_spread=0.1, method=method)
    a = lesde.simulate_particles(_model(), 10, seed=1, **kw)
    b = lesde.simulate_particles(_model(), 10, seed=1, **kw)
    c = lesde.simulate_particles(_model(), 10, seed=2, **kw)
    assert a.particles.shape == (2, 11, 3, 4, 3)
    assert a.means.shape == (2, 11, 3, 3)
    assert a.classes.shape == a.samples.shape == (2, 10)
    np.testing.assert_array_equal(a.steps, np.arange(11))
    np.testing.assert_array_equal(a.particles, b.particles)
    assert not np.array_equal(a.particles, c.particles)
    assert a.classes.min() >= 0 and a.classes.max() < 3 and a.samples.max() < 4


@pytest.mark.parametrize("method", ["lazy", "direct"])
def test_noise_free_single_step_is_eq4(method):
    # One step by hand: X_i^k(1) = X_i^k(0) + h E_{k,L} H_{k,L} X_J^L(0) (w = 1 for W = 1/K).
    m = _model()
    r = lesde.simulate_particles(m, 1, n_per_class=3, h=0.5, sigma=0.0, x0=X0, seed=4,
                                 init_spread=1.0, method=method)  # fmt: skip
    L, J = r.classes[0, 0], r.samples[0, 0]
    X0p = r.particles[0, 0]  # (K, n, p)
    E = m.le_matrix(0.0)
    want = (
        X0p + np.stack([0.5 * E[k, L] * m.H_blocks[k, L] @ X0p[L, J] for k in range(3)])[:, None, :]
    )
    np.testing.assert_allclose(r.particles[0, 1], want, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("method", ["lazy", "direct"])
def test_mean_tracks_euler_and_ode_within_5_standard_errors(method):
    model, R, N = _model(), 1000, 200
    r = lesde.simulate_particles(model, N, n_per_class=10, h=1.0, sigma=0.3, x0=X0, seed=5,
                                 n_paths=R, init_spread=0.2, method=method,
                                 save_steps=[0, 50, 200])  # fmt: skip
    exact = _euler_means(model, X0, N, 1.0)[r.steps]
    est = r.means.mean(axis=0)
    se = r.means.std(axis=0, ddof=1) / np.sqrt(R)
    # 5 SE per checked entry: false-alarm probability < 1e-5 each.
    np.testing.assert_array_less(np.abs(est - exact)[1:], 5 * se[1:])
    # The same expectation is the Euler scheme of the LE-ODE; with h·|M| ≤ 0.02 its
    # distance to the ODE (~2e-3 here) is well inside the statistical tolerance.
    ode = lesde.solve_ode(model, X0, r.ts)
    np.testing.assert_array_less(np.abs(est - ode)[1:], 5 * se[1:] + np.abs(exact - ode)[1:])


@pytest.mark.parametrize("method", ["lazy", "direct"])
def test_deviation_variance_is_brownian(method):
    # The drift is common to a class, so X_i − X̄ has per-coordinate variance
    # (s0² + σ² h m)(1 − 1/n) whatever L, J did; chi-square SE of a variance estimate
    # from N_eff = R·K·(n−1) values is var·sqrt(2/N_eff).
    R, n, m, s0, sig, h = 200, 6, 40, 0.3, 0.2, 0.5
    r = lesde.simulate_particles(_model(), m, n_per_class=n, h=h, sigma=sig, x0=X0, seed=6,
                                 n_paths=R, init_spread=s0, method=method,
                                 save_steps=[m])  # fmt: skip
    dev = r.particles[:, -1] - r.particles[:, -1].mean(axis=2, keepdims=True)
    v = (dev**2).sum(axis=2).mean() / (n - 1)
    want = s0**2 + sig**2 * h * m
    assert abs(v - want) < 5 * want * np.sqrt(2 / (R * 3 * 3 * (n - 1)))


def test_lazy_and_direct_agree_in_law():
    # Var X̄^k(m) from both samplers (independent): |log ratio| < 5·sqrt(4/(R−1)).
    R = 600
    kw = dict(n_per_class=5, h=1.0, sigma=0.3, x0=X0, n_paths=R, save_steps=[100])
    v = [lesde.simulate_particles(_model(), 100, seed=10 + i, method=m, **kw).means[:, -1]
         .var(axis=0, ddof=1) for i, m in enumerate(["lazy", "direct"])]  # fmt: skip
    np.testing.assert_array_less(np.abs(np.log(v[0] / v[1])), 5 * np.sqrt(4 / (R - 1)))


def test_sampling_marginal():
    pi, w = sampling_marginal(np.full((3, 3), 1 / 3))
    np.testing.assert_allclose(pi, 1 / 3)
    np.testing.assert_allclose(w, 1.0)
    # imbalanced classes, W_kl = n_l / N: π_l = n_l/N and w = 1
    W = np.tile([0.5, 0.3, 0.2], (3, 1))
    pi, w = sampling_marginal(W)
    np.testing.assert_allclose(pi, [0.5, 0.3, 0.2])
    np.testing.assert_allclose(w, 1.0)
    # general W: the weighted expectation Σ_l π_l w_kl = Σ_l W_kl
    W = np.array([[0.5, 0.1, 0.0], [0.2, 0.3, 0.1], [0.1, 0.1, 0.6]])
    pi, w = sampling_marginal(W)
    np.testing.assert_allclose((pi[None] * w), W)


def test_general_W_is_unbiased():
    # With a non-uniform, non-product W the particle mean still follows the Euler scheme.
    W = np.array([[0.5, 0.1, 0.0], [0.2, 0.3, 0.1], [0.1, 0.1, 0.6]])
    model, R, N = _model(W=W), 1000, 100
    r = lesde.simulate_particles(model, N, n_per_class=5, h=1.0, sigma=0.2, x0=X0, seed=7,
                                 n_paths=R, save_steps=[N])  # fmt: skip
    exact = _euler_means(model, X0, N, 1.0)[-1]
    est = r.means[:, -1].mean(axis=0)
    se = r.means[:, -1].std(axis=0, ddof=1) / np.sqrt(R)
    np.testing.assert_array_less(np.abs(est - exact), 5 * se)


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(n_steps=-1), ValueError, "n_steps"),
        (dict(n_steps=2.0), TypeError, "n_steps"),
        (dict(h=0.0), ValueError, "h"),
        (dict(h="1"), TypeError, "h"),
        (dict(sigma=np.ones((2, 2))), ValueError, "sigma"),
        (dict(n_per_class=0), ValueError, "n_per_class"),
        (dict(save_steps=[5, 3]), ValueError, "save_steps"),
        (dict(save_steps=[0, 11]), ValueError, "save_steps"),
        (dict(method="fast"), ValueError, "method"),
        (dict(x0=np.zeros(3)), ValueError, "x0"),
        (dict(seed=-1), ValueError, "seed"),
        (dict(seed=1.5), TypeError, "seed"),
    ],
)
def test_bad_inputs_name_the_argument(kwargs, exc, match):
    args = dict(model=_model(), n_steps=10, n_per_class=3, h=1.0, sigma=0.1, x0=X0, seed=0)
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        lesde.simulate_particles(**args)


def test_sampled_classes_follow_the_W_marginal():
    # Imbalanced classes W_kl = n_l / N: L_m ~ π = (0.5, 0.3, 0.2), J_m ~ Unif[n].
    # Frequencies from N = 20000 draws within 5 binomial SEs sqrt(π(1−π)/N).
    W = np.tile([0.5, 0.3, 0.2], (3, 1))
    r = lesde.simulate_particles(_model(W=W), 2000, n_per_class=4, h=1.0, sigma=0.1, x0=X0,
                                 seed=8, n_paths=10, save_steps=[2000])  # fmt: skip
    N = r.classes.size
    for values, probs in ((r.classes, [0.5, 0.3, 0.2]), (r.samples, [0.25] * 4)):
        freq = np.bincount(values.ravel(), minlength=len(probs)) / N
        probs = np.array(probs)
        np.testing.assert_array_less(np.abs(freq - probs), 5 * np.sqrt(probs * (1 - probs) / N))


def test_three_levels_agree():
    # MATH.md §2: particle process (eq. 4, h = 1) and LE-SDE (Euler–Maruyama, dt = 1) have
    # the same expected class means, the Euler scheme of the LE-ODE, which is within
    # 0.5% of the ODE here. Two independent ensembles of R runs: their difference has
    # SE sqrt(se₁² + se₂²); 5 of those bound it.
    model, R, N, n = _model(), 800, 100, 10
    par = lesde.simulate_particles(model, N, n_per_class=n, h=1.0, sigma=0.2, x0=X0, seed=11,
                                   n_paths=R, save_steps=[N]).means[:, -1]  # fmt: skip
    ts = np.arange(N + 1, dtype=float)
    sde = lesde.simulate_sde(model, ts, n_per_class=n, sigma=0.2, n_paths=R, x0=X0, seed=12,
                             save_ts=[ts[-1]]).means[:, -1]  # fmt: skip
    se = np.sqrt(par.var(0, ddof=1) / R + sde.var(0, ddof=1) / R)
    np.testing.assert_array_less(np.abs(par.mean(0) - sde.mean(0)), 5 * se)
    ode = lesde.solve_ode(model, X0, ts)[-1]
    bias = np.abs(_euler_means(model, X0, N, 1.0)[-1] - ode)  # Euler at h·|M| ≤ 0.02
    assert bias.max() < 0.01
    np.testing.assert_array_less(np.abs(sde.mean(0) - ode), 5 * se + bias)
    np.testing.assert_array_less(np.abs(par.mean(0) - ode), 5 * se + bias)

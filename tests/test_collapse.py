"""Neural-collapse metrics on exact and perturbed simplex ETFs."""

import numpy as np
import pytest

import lesde
from lesde.analysis.collapse import norm_spread


def _simplex(K, p, rng=None):
    """A simplex ETF of K vectors in R^p (p >= K), randomly rotated when rng is given."""
    M = np.zeros((K, p))
    M[:, :K] = np.eye(K) - 1.0 / K
    if rng is not None:
        Q, _ = np.linalg.qr(rng.normal(size=(p, p)))
        M = M @ Q
    return M


@pytest.mark.parametrize("K, p", [(2, 2), (3, 3), (4, 6), (10, 10)])
def test_exact_simplex_has_zero_deviation_any_scale_rotation_translation(K, p):
    rng = np.random.default_rng(K)
    M = 3.7 * _simplex(K, p, rng) + rng.normal(size=p)
    assert lesde.etf_deviation(M) < 1e-12
    assert norm_spread(M) < 1e-12


def test_perturbed_simplex_deviation_grows_with_perturbation():
    rng = np.random.default_rng(0)
    M = _simplex(4, 4)
    noise = rng.normal(size=M.shape)
    devs = [lesde.etf_deviation(M + eps * noise) for eps in (1e-4, 1e-3, 1e-2, 1e-1)]
    assert all(d > 0 for d in devs)
    # first-order in eps: ×10 per step within a factor 2
    ratios = np.array(devs[1:]) / np.array(devs[:-1])
    assert np.all((ratios > 5) & (ratios < 20)), ratios


def test_known_values():
    # Orthonormal basis vectors (uncentred) have cosine 0: deviation 1/(K−1).
    assert lesde.etf_deviation(np.eye(3), center=False) == pytest.approx(0.5)
    # Centred, e_k − 1/K is the simplex itself.
    assert lesde.etf_deviation(np.eye(3)) == pytest.approx(0.0, abs=1e-15)
    # Unit simplex directions u_k (u_k·u_l = −1/2) scaled by 1, 1, 2. Their mean is u₃/3,
    # so the centred norms are a = ‖u₁ − u₃/3‖ = √(1 + 1/9 + 1/3) = √13/3 (twice) and
    # b = ‖2u₃ − u₃/3‖ = 5/3; std/mean (population std) = √2(b − a)/(2a + b) ≈ 0.16150.
    S = _simplex(3, 3)
    S = S / np.linalg.norm(S, axis=1, keepdims=True)
    stretched = S * np.array([[1.0], [1.0], [2.0]])
    a, b = np.sqrt(13) / 3, 5 / 3
    assert norm_spread(stretched) == pytest.approx(np.sqrt(2) * (b - a) / (2 * a + b), rel=1e-12)
    assert norm_spread(stretched) == pytest.approx(0.16150, abs=1e-5)


def test_batched_means():
    M = np.stack([_simplex(3, 3)] * 3)  # (3, K, p)
    M[1] += 0.1  # translating all class means keeps the ETF
    M[2, 0] += 0.1 * np.eye(3)[0]  # moving one class mean breaks it
    out = lesde.etf_deviation(M)
    assert out.shape == (3,)
    assert out[0] < 1e-12 and out[1] < 1e-12
    assert out[2] > 1e-3


def test_neural_collapse_nc1_known_value():
    # K = 2, p = 1: class means ±1, points ±eps around them: Σ_W = eps², Σ_B = 1,
    # NC1 = tr(Σ_W Σ_B^†)/K = eps²/2.
    eps = 0.1
    X = np.array([[1 - eps], [1 + eps], [-1 - eps], [-1 + eps]])
    y = np.array([0, 0, 1, 1])
    nc1, etf, spread = lesde.neural_collapse(X, y)
    assert nc1 == pytest.approx(eps**2 / 2)
    assert etf == pytest.approx(0.0, abs=1e-15)
    assert spread == pytest.approx(0.0, abs=1e-15)


def test_neural_collapse_collapsed_features():
    rng = np.random.default_rng(2)
    mu = 5 * _simplex(3, 4, rng)
    y = np.repeat(np.arange(3), 20)
    X = mu[y]
    res = lesde.neural_collapse(X, y)
    assert res.nc1 < 1e-20 and res.etf_deviation < 1e-12
    noisy = lesde.neural_collapse(X + rng.normal(size=X.shape), y)
    assert noisy.nc1 > 1e-3


@pytest.mark.parametrize(
    "means, match",
    [
        (np.zeros(3), "means"),
        (np.zeros((1, 3)), "means"),
        (np.full((3, 3), np.inf), "means"),
    ],  # fmt: skip
)
def test_bad_means(means, match):
    with pytest.raises(ValueError, match=match):
        lesde.etf_deviation(means)


def test_bad_features():
    with pytest.raises(ValueError, match="`y`"):
        lesde.neural_collapse(np.zeros((4, 2)), np.zeros(3))
    with pytest.raises(ValueError, match="2 classes"):
        lesde.neural_collapse(np.zeros((4, 2)), np.zeros(4))
    with pytest.raises(ValueError, match="`X`"):
        lesde.neural_collapse(np.zeros(4), np.zeros(4))

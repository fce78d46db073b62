"""LEModel: the contract of the public constructor and of M(t) = W ∘ E(t) ∘ H."""

import numpy as np
import pytest

import lesde


def test_two_parameter_le_matrix_and_drift_shapes():
    m = lesde.LEModel(3, 2, alpha=lambda t: 1.0 + t, beta=0.5)
    E = m.le_matrix(2.0)
    assert E.shape == (3, 3)
    np.testing.assert_allclose(np.diag(E), 3.0)
    np.testing.assert_allclose(E[~np.eye(3, dtype=bool)], 0.5)
    assert m.le_matrix(np.array([0.0, 1.0, 2.0])).shape == (3, 3, 3)
    M = m.drift(2.0)
    assert M.shape == (6, 6)
    assert m.drift(np.linspace(0, 1, 4)).shape == (4, 6, 6)


def test_scalar_only_callables_are_evaluated_point_by_point():
    # math.exp and float() raise TypeError on arrays; the model must fall back to calling
    # them once per time point and give exactly the vectorised answer.
    import math

    ts = np.array([0.0, 0.5, 2.0])
    m = lesde.LEModel(2, 2, alpha=lambda t: math.exp(-t), beta=lambda t: -0.1 * float(t))
    a, b = m.rates(ts)
    np.testing.assert_array_equal(a, np.exp(-ts))
    np.testing.assert_array_equal(b, -0.1 * ts)

    def E(t):
        t = float(t)  # TypeError for arrays of more than one element
        return np.array([[1.0 + t, -t], [0.5, 2.0]])

    m = lesde.LEModel(2, 2, E=E)
    got = m.le_matrix(ts)
    assert got.shape == (3, 2, 2)
    for i, t in enumerate(ts):
        np.testing.assert_array_equal(got[i], E(t))


def test_drift_blocks_are_W_E_H():
    # I-model: block (k, l) = W_kl E_kl I_p with W = 1/K by default.
    m = lesde.LEModel(2, 3, alpha=2.0, beta=-1.0)
    M = m.drift(0.0).reshape(2, 3, 2, 3)
    np.testing.assert_allclose(M[0, :, 0, :], 0.5 * 2.0 * np.eye(3))
    np.testing.assert_allclose(M[0, :, 1, :], 0.5 * -1.0 * np.eye(3))
    W = np.array([[0.7, 0.1], [0.2, 0.4]])
    M = lesde.LEModel(2, 3, alpha=2.0, beta=-1.0, W=W).drift(0.0).reshape(2, 3, 2, 3)
    np.testing.assert_allclose(M[1, :, 0, :], 0.2 * -1.0 * np.eye(3))


def test_H_L_structure():
    K = 4
    m = lesde.LEModel(K, K, alpha=1.0, beta=0.0, H="L")
    dh = lesde.margin_directions(K)
    np.testing.assert_allclose(np.linalg.norm(dh, axis=1), 1.0)
    np.testing.assert_allclose(dh.sum(axis=0), 0.0, atol=1e-15)
    # d̂_kᵀ d̂_l = −1/(K−1) for k ≠ l (MATH.md §3)
    G = dh @ dh.T
    np.testing.assert_allclose(G[~np.eye(K, dtype=bool)], -1 / (K - 1))
    # H_kl = d̂_l d̂_lᵀ: a rank-one projector onto d̂_l, for every k
    for k in range(K):
        for l in range(K):
            np.testing.assert_allclose(m.H_blocks[k, l], np.outer(dh[l], dh[l]), atol=1e-15)
    M = m.drift(0.0).reshape(K, K, K, K)  # (k, i, l, j)
    np.testing.assert_allclose(M[0, :, 0, :], np.outer(dh[0], dh[0]) / K, atol=1e-15)
    np.testing.assert_allclose(M[0, :, 1, :], 0.0, atol=1e-15)  # beta = 0


def test_custom_H_and_E_callable():
    K, p = 2, 2
    H = np.arange(16.0).reshape(4, 4)
    m = lesde.LEModel(K, p, E=lambda t: np.array([[1.0, 2.0], [3.0, 4.0]]) * (1 + t), H=H)
    M = m.drift(1.0)
    expected = (np.kron(0.5 * 2 * np.array([[1.0, 2.0], [3.0, 4.0]]), np.ones((2, 2)))) * H
    np.testing.assert_allclose(M, expected)
    assert m.le_matrix(np.array([0.0, 1.0])).shape == (2, 2, 2)


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(n_classes=1, n_features=2, alpha=1.0, beta=0.0), ValueError, "n_classes"),
        (dict(n_classes=2.0, n_features=2, alpha=1.0, beta=0.0), TypeError, "n_classes"),
        (dict(n_classes=2, n_features=0, alpha=1.0, beta=0.0), ValueError, "n_features"),
        (dict(n_classes=2, n_features=2, alpha="a", beta=0.0), TypeError, "alpha"),
        (dict(n_classes=2, n_features=2, alpha=np.inf, beta=0.0), ValueError, "alpha"),
        (dict(n_classes=2, n_features=2, alpha=1.0), ValueError, "beta"),
        (dict(n_classes=3, n_features=2, alpha=1.0, beta=0.0, H="L"), ValueError, "H"),
        (dict(n_classes=2, n_features=2, alpha=1.0, beta=0.0, H="X"), ValueError, "H"),
        (dict(n_classes=2, n_features=2, alpha=1.0, beta=0.0, H=np.eye(3)), ValueError, "H"),
        (dict(n_classes=2, n_features=2, alpha=1.0, beta=0.0, W=np.ones(2)), ValueError, "W"),
        (
            dict(n_classes=2, n_features=2, alpha=1.0, beta=0.0, W=-np.ones((2, 2))),
            ValueError,
            "W",
        ),  # fmt: skip
        (dict(n_classes=2, n_features=2, E=lambda t: np.eye(3)), ValueError, "E"),
        (dict(n_classes=2, n_features=2, E=np.eye(2)), TypeError, "E"),
    ],
)
def test_bad_inputs_name_the_argument(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        lesde.LEModel(**kwargs)


def test_check_x0_names_argument():
    m = lesde.LEModel(2, 3, alpha=1.0, beta=0.0)
    with pytest.raises(ValueError, match="x0"):
        m.check_x0(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="x0"):
        m.check_x0(np.full((2, 3), np.nan))

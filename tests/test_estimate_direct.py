"""Direct (step-level) local elasticity: known answers from the model's own update rule."""

import numpy as np
import pytest

from lesde import direct_local_elasticity
from lesde.estimate.direct import direct_from_record


def _setup(K=3, p=3, n=4, lead=(5,), seed=0):
    rng = np.random.default_rng(seed)
    label = np.repeat(np.arange(K), n)
    before = rng.normal(size=(*lead, K * n, p))
    xj = rng.normal(size=(*lead, p))
    L = rng.integers(0, K, size=lead)
    col = rng.normal(size=(*lead, K))  # true E_{k,L}
    return rng, label, before, xj, L, col


def test_recovers_E_exactly_under_the_I_model():
    # eq. 4 without noise: dX_i^k = E_{k,L} X_J (H = I)
    _, label, before, xj, L, col = _setup()
    after = before + col[:, label, None] * xj[:, None, :]
    res = direct_local_elasticity(before, after, label, xj, L)
    for b in range(5):
        np.testing.assert_allclose(res.E[b, :, L[b]], col[b], rtol=1e-12)
        others = np.delete(np.arange(3), L[b])
        assert np.isnan(res.E[b][:, others]).all()
        assert res.alpha[b] == pytest.approx(col[b, L[b]], rel=1e-12)
        assert res.beta[b] == pytest.approx(col[b, others].mean(), rel=1e-12)


def test_noise_orthogonal_to_HX_is_ignored_and_mean_zero_noise_averages():
    rng, label, before, xj, L, col = _setup(lead=(), n=2000, seed=1)
    # noise along a direction orthogonal to X_J leaves Ê unchanged exactly
    q = rng.normal(size=3)
    q -= q @ xj / (xj @ xj) * xj
    after = before + col[label, None] * xj + rng.normal(size=(label.size, 1)) * q
    res = direct_local_elasticity(before, after, label, xj, L)
    np.testing.assert_allclose(res.E[:, L], col, rtol=1e-10)
    # isotropic N(0, s^2) noise: Ê_kL has sd s / (|X_J| sqrt(n)); tolerance 5 sd
    s = 0.1
    after = before + col[label, None] * xj + s * rng.normal(size=before.shape)
    res = direct_local_elasticity(before, after, label, xj, L)
    tol = 5 * s / (np.linalg.norm(xj) * np.sqrt(2000))
    np.testing.assert_allclose(res.E[:, L], col, atol=tol)


def test_L_model_uses_the_margin_direction():
    K = 3
    _, label, before, xj, L, col = _setup(K=K, lead=(4,))
    d = np.eye(K) - 1 / K
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    hx = d[L] * np.sum(d[L] * xj, axis=-1, keepdims=True)  # H_kL X_J = d̂_L d̂_Lᵀ X_J
    after = before + col[:, label, None] * hx[:, None, :]
    res = direct_local_elasticity(before, after, label, xj, L, H="L")
    np.testing.assert_allclose(
        np.take_along_axis(res.E, L[:, None, None], -1)[..., 0], col, rtol=1e-10
    )
    # the I-model reading of the same move differs (X_J is not along d̂_L)
    res_i = direct_local_elasticity(before, after, label, xj, L, H="I")
    assert not np.allclose(res_i.alpha, res.alpha)


def test_features_of_any_dimension_and_missing_class():
    _, label, before, xj, L, col = _setup(p=7, lead=(2, 3))
    after = before + col[..., label, None] * xj[..., None, :]
    res = direct_local_elasticity(before, after, label, xj, L, n_classes=4)
    assert res.E.shape == (2, 3, 4, 4) and res.alpha.shape == (2, 3)
    assert np.isnan(np.take_along_axis(res.E, L[..., None, None], -1)[..., 3, 0]).all()


@pytest.mark.parametrize(
    "change, match",
    [
        ({"after": np.zeros((5, 12, 2))}, "before"),
        ({"probe_label": np.zeros(11, dtype=int)}, "probe_label"),
        ({"sample_features": np.zeros((5, 2))}, "sample_features"),
        ({"sample_label": np.zeros(4, dtype=int)}, "sample_label"),
        ({"H": "X"}, "H"),
    ],
)
def test_validation(change, match):
    _, label, before, xj, L, _ = _setup()
    kw = dict(before=before, after=before, probe_label=label, sample_features=xj, sample_label=L)
    kw.update(change)
    with pytest.raises(ValueError, match=match):
        direct_local_elasticity(**kw)


def test_L_model_needs_logits():
    _, label, before, xj, L, _ = _setup(p=5)
    with pytest.raises(ValueError, match="p = K"):
        direct_local_elasticity(before, before, label, xj, L, H="L")


def test_direct_from_record():
    import xarray as xr

    ds = xr.Dataset(
        {
            "le_alpha": (("trial", "le_step"), np.ones((2, 3))),
            "le_beta": (("trial", "le_step"), np.zeros((2, 3))),
        },
        coords={"le_step": [1, 10, 100]},
    )
    steps, a, b = direct_from_record(ds)
    assert list(steps) == [1, 10, 100] and a.shape == (2, 3) and (b == 0).all()
    with pytest.raises(ValueError, match="no direct"):
        direct_from_record(xr.Dataset())

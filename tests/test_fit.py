"""relative_difference RD_k(t) (paper §4.2, MATH.md §5)."""

from __future__ import annotations

import numpy as np
import pytest

import lesde
from lesde import relative_difference


def _pair(seed=0, shape=(50, 3, 4)):
    rng = np.random.default_rng(seed)
    return rng.normal(size=shape), rng.normal(size=shape)


def test_zero_on_identical_and_shape():
    a, _ = _pair()
    rd = relative_difference(a, a)
    assert rd.shape == (50, 3)
    np.testing.assert_array_equal(rd, 0.0)


def test_symmetric_scale_invariant_bounded():
    a, b = _pair()
    rd = relative_difference(a, b)
    np.testing.assert_array_equal(rd, relative_difference(b, a))
    for c in (1e-3, 7.0, -2.5):
        np.testing.assert_allclose(relative_difference(c * a, c * b), rd, rtol=1e-13)
    assert np.all((rd >= 0) & (rd <= 2))
    assert np.all(rd > 0)  # different random arrays


def test_known_values():
    # orthogonal unit vectors: ‖a − b‖ = √2, mean norm 1
    a = np.array([[[1.0, 0.0]]])
    b = np.array([[[0.0, 1.0]]])
    assert relative_difference(a, b)[0, 0] == pytest.approx(np.sqrt(2))
    # opposite vectors reach the bound 2; twice the truth gives 1/(3/2) = 2/3
    assert relative_difference(a, -a)[0, 0] == pytest.approx(2.0)
    assert relative_difference(2 * a, a)[0, 0] == pytest.approx(2 / 3)
    # both zero: defined as 0
    assert relative_difference(0 * a, 0 * a)[0, 0] == 0.0


def test_rescaled_variant_only_behind_flag():
    _, b = _pair(1)
    sim = 3.0 * b  # right shape, wrong scale
    assert np.allclose(relative_difference(sim, b), 1.0)  # |3 − 1| / 2
    np.testing.assert_allclose(relative_difference(sim, b, rescale=True), 0.0, atol=1e-14)
    # per-class factor from the first coordinate at the last time, the paper's rescaling
    sim2 = b * np.array([2.0, 0.5, -1.0])[None, :, None]
    np.testing.assert_allclose(relative_difference(sim2, b, rescale=True), 0.0, atol=1e-14)
    bad = sim.copy()
    bad[-1, 1, 0] = 0.0
    with pytest.raises(ValueError, match="`rescale` needs"):
        relative_difference(bad, b, rescale=True)


def test_invalid():
    a, b = _pair()
    with pytest.raises(ValueError, match="`sim` must be"):
        relative_difference(a[0], b[0])
    with pytest.raises(ValueError, match="`real` must have the shape"):
        relative_difference(a, b[:, :2])
    with pytest.raises(TypeError, match="`rescale` must be a bool"):
        relative_difference(a, b, rescale=1)
    assert lesde.relative_difference is relative_difference

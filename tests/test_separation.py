"""Linear separability on hand-made sets with known answers."""

import numpy as np
import pytest

import lesde
from lesde.analysis.separation import separable_pair


def _xy(*groups):
    X = np.concatenate([np.asarray(g, dtype=float) for g in groups])
    y = np.concatenate([np.full(len(g), k) for k, g in enumerate(groups)])
    return X, y


def test_p1_min_max():
    X, y = _xy([[0.0], [1.0]], [[2.0], [3.0]])
    assert lesde.is_separable(X, y)
    X, y = _xy([[0.0], [2.5]], [[2.0], [3.0]])  # interleaved
    assert not lesde.is_separable(X, y)
    X, y = _xy([[0.0], [2.0]], [[2.0], [3.0]])  # touching at 2
    assert not lesde.is_separable(X, y)
    X, y = _xy([5.0, 6.0], [-1.0, 4.9])  # (N,) input, reversed order
    assert lesde.is_separable(X, y)


def test_2d_xor_and_touching_and_separable():
    xor = _xy([[0, 0], [1, 1]], [[0, 1], [1, 0]])
    assert not lesde.is_separable(*xor)
    touching = _xy([[0, 0], [1, 1], [2, 0]], [[1, 1], [1, 3]])  # share the point (1, 1)
    assert not lesde.is_separable(*touching)
    # a triangle's vertex touching the other set's segment is not separable either
    edge = _xy([[0, 0], [2, 0], [1, 2]], [[1, 0], [1, -1]])
    assert not lesde.is_separable(*edge)
    # separable, but not along the difference of the means (needs the LP)
    P = [[0, 0], [100, 0]]
    Q = [[0, 1], [1, 1]]  # the line y = 1/2 separates them
    d = np.mean(P, 0) - np.mean(Q, 0)
    assert not np.min(np.asarray(P) @ d) > np.max(np.asarray(Q) @ d)  # the shortcut fails
    assert lesde.is_separable(*_xy(P, Q))


def test_separable_with_tiny_margin_and_huge_scale():
    # Separability is affine invariant; the LP works on the centred, rescaled pair.
    # P's top vertex is (1, 1); Q lies above, down to 1e-6 above y = 1 at x = 2, so the
    # only separating lines pass within ~5e-7 of both sets (relative to a size of ~3).
    P = np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 0.0]])
    Q = np.array([[0.0, 1.0 + 1e-3], [2.0, 1.0 + 1e-6], [1.0, 3.0]])
    for scale, shift in [(1.0, 0.0), (1e9, 0.0), (1e-6, 1e3)]:
        assert separable_pair(P * scale + shift, Q * scale + shift)
        assert separable_pair(Q * scale + shift, P * scale + shift)


def test_pairwise_matrix_three_classes():
    A = [[0, 0], [0, 1]]
    B = [[5, 0], [5, 1]]
    C = [[0, 0.5], [-1, 0.5]]  # overlaps A's segment at (0, 0.5)
    X, y = _xy(A, B, C)
    S = lesde.pairwise_separable(X, y)
    want = np.array([[1, 1, 0], [1, 1, 1], [0, 1, 1]], dtype=bool)
    np.testing.assert_array_equal(S, want)
    assert not lesde.is_separable(X, y)
    # labels need not be 0..K-1
    np.testing.assert_array_equal(lesde.pairwise_separable(X, y * 10 + 3), want)


def test_few_points_in_general_position_always_separable():
    # Cover's theorem: p + 1 points in general position in R^p are separable under
    # every labelling; 200 random labellings of 4 random points in R^3.
    rng = np.random.default_rng(0)
    for _ in range(200):
        X = rng.normal(size=(4, 3))
        y = rng.permutation([0, 0, 1, 1])
        assert lesde.is_separable(X, y)


def test_identical_clouds_not_separable():
    X = np.random.default_rng(1).normal(size=(20, 3))
    assert not lesde.is_separable(np.concatenate([X, X]), np.repeat([0, 1], 20))


@pytest.mark.parametrize(
    "X, y, match",
    [
        (np.zeros((3, 2)), np.zeros(3), "2 classes"),
        (np.zeros((3, 2)), np.zeros(4), "`y`"),
        (np.zeros((2, 2, 2)), np.zeros(2), "`X`"),
        (np.array([[np.nan, 0], [1, 1]]), np.array([0, 1]), "`X`"),
    ],
)
def test_bad_inputs(X, y, match):
    with pytest.raises(ValueError, match=match):
        lesde.pairwise_separable(X, y)
    with pytest.raises(ValueError, match=match):
        lesde.is_separable(X, y)

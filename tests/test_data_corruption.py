"""Label corruption (MATH.md §7): exact per-class counts, equal shares, uniform choice."""

from __future__ import annotations

import numpy as np
import pytest

from lesde.data import corrupt_labels
from lesde.data.corruption import n_corrupted


def _confusion(y, y_new, K):
    M = np.zeros((K, K), dtype=int)
    np.add.at(M, (y, y_new), 1)
    return M


def test_exact_counts_and_equal_shares():
    sizes = (10, 7, 13, 25)
    y = np.repeat(np.arange(4), sizes)
    y = y[np.random.default_rng(0).permutation(y.size)]  # order must not matter
    p = 0.3
    y_new, changed = corrupt_labels(y, p, seed=1)
    assert y_new.dtype == np.int64 and changed.dtype == bool and y_new.shape == y.shape
    np.testing.assert_array_equal(changed, y_new != y)
    # round half up: 3.0 -> 3, 2.1 -> 2, 3.9 -> 4, 7.5 -> 8
    expect = [3, 2, 4, 8]
    assert [n_corrupted(n, p) for n in sizes] == expect
    M = _confusion(y, y_new, 4)
    for k in range(4):
        assert sizes[k] - M[k, k] == expect[k]
        off = np.delete(M[k], k)  # shares of the 3 other classes
        assert off.sum() == expect[k] and off.max() - off.min() <= 1


def test_rounding_is_half_up_not_bankers():
    y = np.repeat([0, 1], 5)
    _, changed = corrupt_labels(y, 0.5, seed=0)  # 2.5 per class -> 3 (round() would give 2)
    assert changed[:5].sum() == 3 and changed[5:].sum() == 3


def test_extremes():
    y = np.repeat(np.arange(3), 9)
    y0, c0 = corrupt_labels(y, 0.0, seed=0)
    np.testing.assert_array_equal(y0, y)
    assert not c0.any()
    y1, c1 = corrupt_labels(y, 1.0, seed=0)
    assert c1.all()
    M = _confusion(y, y1, 3)
    # 9 per class to 2 others: shares 4 and 5 (which gets 5 is random)
    assert np.diag(M).sum() == 0 and all(sorted(np.delete(M[k], k)) == [4, 5] for k in range(3))


def test_labels_uninformative_at_p_star():
    # p* = (K − 1)/K with n_k = K·q: every row of the confusion matrix is q everywhere
    K, q = 4, 6
    y = np.repeat(np.arange(K), K * q)
    y_new, _ = corrupt_labels(y, (K - 1) / K, seed=3)
    np.testing.assert_array_equal(_confusion(y, y_new, K), np.full((K, K), q))


def test_which_samples_and_remainders_are_uniform():
    # each of n = 10 samples is chosen with probability m/n = 3/10, and the one
    # remainder label (m = 3, K − 1 = 2) goes to either other class with probability
    # 1/2. Over S = 2000 seeds the frequencies have standard error ≤ sqrt(.25/S) ≈ 0.011:
    # tolerance 5 SE.
    S, y = 2000, np.repeat([0, 1, 2], 10)
    hits = np.zeros(30)
    to_2 = 0
    for s in range(S):
        y_new, changed = corrupt_labels(y, 0.3, seed=s)
        hits += changed
        to_2 += int((y_new[:10] == 2).sum() == 2)  # class 0 gave its remainder to class 2
    tol = 5 * np.sqrt(0.25 / S)
    np.testing.assert_allclose(hits / S, 0.3, atol=tol)
    assert abs(to_2 / S - 0.5) < tol


def test_seeded():
    y = np.repeat(np.arange(3), 20)
    a, b, c = (corrupt_labels(y, 0.4, seed=s)[0] for s in (7, 7, 8))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_n_classes_given_covers_absent_classes():
    y = np.repeat([0, 1], 8)  # class 2 has no samples but exists
    y_new, _ = corrupt_labels(y, 1.0, seed=0, n_classes=3)
    M = _confusion(y, y_new, 3)
    np.testing.assert_array_equal(M[:2], [[0, 4, 4], [4, 0, 4]])
    y_inf, _ = corrupt_labels(y, 1.0, seed=0)  # K inferred as 2: all swap
    np.testing.assert_array_equal(y_inf, 1 - y)


@pytest.mark.parametrize(
    ("y", "p", "kw", "err", "match"),
    [
        ([0, 1], -0.1, {}, ValueError, "p_err"),
        ([0, 1], 1.5, {}, ValueError, "p_err"),
        ([0, 1], float("nan"), {}, ValueError, "p_err"),
        ([0, 1], "0.1", {}, TypeError, "p_err"),
        ([[0, 1]], 0.1, {}, ValueError, "1-D"),
        ([0.0, 1.0], 0.1, {}, TypeError, "integer"),
        ([0, 3], 0.1, {"n_classes": 3}, ValueError, r"\[0, 3\)"),
        ([0, -1], 0.1, {}, ValueError, "labels"),
        ([0, 0], 0.5, {}, ValueError, "2 classes"),
    ],
)
def test_invalid_arguments(y, p, kw, err, match):
    with pytest.raises(err, match=match):
        corrupt_labels(np.asarray(y), p, seed=0, **kw)

"""Goodness-of-fit checks of the tail-index power law (`lesde.estimate.tail_check`).

Each check is tested on a series whose answer is known: true power laws (s from 0.5 to
3, past the separation threshold s = 1 on both sides) must pass, a relaxation
Γ = 1 − e^{−t/τ} (no tail index at all) and a fit pinned at the search bound must fail,
naming the series and the window.
"""

from __future__ import annotations

import numpy as np
import pytest

from lesde.estimate.bootstrap import TAIL_VERDICTS, tail_verdict
from lesde.estimate.tail import S_BOUNDS
from lesde.estimate.tail_check import CHECKS, check_tail_fit, check_tail_fit_many

T = np.linspace(0.0, 1e5, 2001)


def _power(s: float) -> np.ndarray:
    return ((1 + T) ** (1 - s) - 1) / (1 - s)


@pytest.mark.parametrize("s", [0.5, 0.9, 1.1, 1.4, 2.0, 3.0])
def test_true_power_laws_pass(s):
    # i.i.d. noise at 10⁻³ of the series' rise over the main window (the last 75 %): a
    # fast decay (s = 3) rises by ~10⁻¹⁰ there, so noise sized to its level would hide the
    # tail and rightly be refused "at search bound"; five seeds each
    A = _power(s)
    rise = A[-1] - A[T.size // 4]
    for seed in range(5):
        y = A + 1e-3 * rise * np.random.default_rng(seed).standard_normal(T.size)
        c = check_tail_fit(T, y, name="Â")
        assert c.fits, (s, seed, c.why)
        assert c.failed == () and c.why == ""
        # and the fit it vouches for is the truth (profile grid step 0.01, noise ~0.01)
        assert c.details["s"] == pytest.approx(s, abs=0.1 * max(1.0, s))


@pytest.mark.parametrize("tau", [0.1, 0.2])
def test_relaxation_is_not_a_power_law(tau):
    # Γ = 1 − e^{−t/τ}: the log-log slope of its rate bends; noise 10⁻³ of the level
    y = 1 - np.exp(-T / (tau * 1e5)) + 1e-3 * np.random.default_rng(1).standard_normal(T.size)
    c = check_tail_fit(T, y, name="Â − B̂")
    assert not c.fits
    assert set(c.failed) <= set(CHECKS) and c.failed
    assert "Â − B̂" in c.why and "t ∈ [" in c.why  # names the series and the window


def test_windows_that_exclude_each_other_fail():
    # a rate whose exponent jumps from 0.3 to 2 at t = 7·10⁴: the last 25 % sees 2, the
    # last 50 and 75 % mixtures (measured ŝ 1.98 / 1.23 / 0.58); the intervals are disjoint
    t_b = 7e4
    a = np.where(T < t_b, (1 + T) ** -0.3, (1 + t_b) ** -0.3 * ((1 + T) / (1 + t_b)) ** -2.0)
    A = np.concatenate([[0.0], np.cumsum(0.5 * (a[1:] + a[:-1]) * np.diff(T))])
    rise = A[-1] - A[T.size // 4]
    y = A + 1e-3 * rise * np.random.default_rng(2).standard_normal(T.size)
    c = check_tail_fit(T, y, name="B̂")
    assert "windows disagree" in c.failed
    assert c.details["windows_disjoint_pairs"]
    assert "B̂ on t ∈ [" in c.why


def test_fit_at_the_search_bound_fails():
    # a decay faster than the search range (s = 8 > 5): the minimum is the bound itself
    A = _power(8.0)
    y = A + 1e-6 * np.random.default_rng(3).standard_normal(T.size)
    c = check_tail_fit(T, y, name="Â")
    assert "at search bound" in c.failed
    assert c.details["s"] == pytest.approx(S_BOUNDS[1], abs=0.02)
    # and bootstrap values at a bound alone trip it, even when the point estimate is fine
    good = _power(0.5) + 1e-3 * np.random.default_rng(4).standard_normal(T.size)
    boot = np.r_[np.full(10, S_BOUNDS[0]), np.full(40, 0.5)]  # 20 % at the bound > 5 %
    c2 = check_tail_fit(T, good, name="Â", boot_samples=boot)
    assert c2.failed == ("at search bound",)
    assert "20% of 50 bootstrap" in c2.why


def test_many_matches_one_by_one():
    Y = np.stack([_power(0.6), 1 - np.exp(-T / 2e4)])
    Y = Y + 1e-3 * np.random.default_rng(5).standard_normal(Y.shape)
    many = check_tail_fit_many(T, Y, name="Γ")
    one = [check_tail_fit(T, y, name="Γ") for y in Y]
    assert [c.fits for c in many] == [c.fits for c in one] == [True, False]
    assert many[1].why == one[1].why


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="`series`"):
        check_tail_fit(T, T[:-1])
    with pytest.raises(ValueError, match="`level`"):
        check_tail_fit(T, _power(0.5), level=1.5)
    with pytest.raises(ValueError, match="`windows`"):
        check_tail_fit(T, _power(0.5), windows=(0.0,))
    with pytest.raises(ValueError, match="`boot_samples`"):
        check_tail_fit(T, _power(0.5), boot_samples=np.zeros((2, 2)))


def test_tail_verdict_withholds_when_the_fit_or_premise_fails():
    fits = check_tail_fit(T, _power(0.5))
    misfit = check_tail_fit(T, 1 - np.exp(-T / 2e4))
    ok, gone = {"holds": True, "why": ""}, {"holds": False, "why": "Σ̂ vanished"}
    assert tail_verdict(0.3, 0.7, fit_check=fits, premise=ok)[0] == "separable"
    assert tail_verdict(1.2, 1.6, fit_check=fits, premise=ok)[0] == "not separable"
    assert tail_verdict(0.7, 1.3, fit_check=fits, premise=ok)[0] == "undetermined"
    value, why = tail_verdict(0.3, 0.7, fit_check=misfit, premise=ok)
    assert value == "power law does not fit" and why
    value, why = tail_verdict(0.3, 0.7, fit_check=fits, premise=gone)
    assert value == "not applicable" and "Σ̂ vanished" in why
    assert {"separable", "not separable", "undetermined", "power law does not fit",
            "not applicable"} == set(TAIL_VERDICTS)  # fmt: skip

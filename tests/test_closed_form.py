"""closed_form against the numerical LE-ODE (solve_ode) and against hand-derived cases."""

import numpy as np
import pytest

import lesde

# The functions come from their module; `lesde.closed_form` is the same function (see
# test_package_attribute_is_the_function below).
from lesde.closed_form import class_margins, closed_form, integrated_rates

# solve_ode at rtol=1e-12 (DOP853) is accurate to ~1e-11 relative on these smooth, short
# problems; the closed form is exact up to quadrature at 1e-13, so 1e-8 is a safe gap of
# three decades that still catches any wrong exponent or coefficient (those are O(1)).
RTOL = 1e-8


def _rates(kind):
    if kind == "constant":
        return 0.7, -0.2
    if kind == "decaying":
        return (lambda t: 0.9 * (1 + np.asarray(t)) ** -0.6), (lambda t: -0.3 / (1 + np.asarray(t)))
    return (lambda t: 0.5 + 0.3 * np.sin(np.asarray(t))), (
        lambda t: 0.2 * np.cos(2 * np.asarray(t))
    )


def _compare(model, rng):
    K, p = model.n_classes, model.n_features
    x0 = rng.normal(size=(K, p))
    ts = np.linspace(0.0, 4.0, 41)
    exact = closed_form(model, x0, ts)
    num = lesde.solve_ode(model, x0, ts, rtol=1e-12)
    assert exact.shape == (ts.size, K, p)
    scale = np.abs(num).max(axis=(1, 2), keepdims=True)  # per-time scale
    np.testing.assert_array_less(np.abs(exact - num) / scale, RTOL)


@pytest.mark.parametrize("K, p", [(2, 1), (2, 3), (3, 1), (3, 4), (5, 2), (5, 7)])
@pytest.mark.parametrize("kind", ["constant", "decaying", "oscillating"])
def test_I_model_matches_ode(K, p, kind):
    a, b = _rates(kind)
    _compare(lesde.LEModel(K, p, alpha=a, beta=b), np.random.default_rng(K * 10 + p))


@pytest.mark.parametrize("K", [2, 3, 4])
@pytest.mark.parametrize("kind", ["constant", "decaying", "oscillating"])
def test_L_model_matches_ode(K, kind):
    a, b = _rates(kind)
    _compare(lesde.LEModel(K, K, alpha=a, beta=b, H="L"), np.random.default_rng(K))


def test_L_model_margins_exact_exponentials():
    # MATH.md §3: S(t) = S(0) e^{(A−B)/K}, u(t) = u(0) e^{(A + B/(K−1))/K} (W = 1/K).
    K, a, b = 3, 0.4, -0.1
    m = lesde.LEModel(K, K, alpha=a, beta=b, H="L")
    x0 = np.random.default_rng(1).normal(size=(K, K))
    ts = np.linspace(0, 5, 6)
    s = class_margins(closed_form(m, x0, ts))  # (T, K)
    S, u = s.sum(1), s - s.mean(1, keepdims=True)
    np.testing.assert_allclose(S, S[0] * np.exp((a - b) * ts / K), rtol=1e-12)
    np.testing.assert_allclose(u, u[0] * np.exp((a + b / (K - 1)) * ts / K)[:, None], rtol=1e-12)


def test_binary_paper_solution():
    # Paper §2.2: X̄¹ = (c1−c2)/2 e^{(α−β)t/2} + (c1+c2)/2 e^{(α+β)t/2}.
    a, b, c1, c2 = 0.3, 0.1, 2.0, -1.0
    ts = np.linspace(0, 3, 7)
    x = closed_form(lesde.LEModel(2, 1, alpha=a, beta=b), np.array([[c1], [c2]]), ts)
    want = (c1 - c2) / 2 * np.exp((a - b) * ts / 2) + (c1 + c2) / 2 * np.exp((a + b) * ts / 2)
    np.testing.assert_allclose(x[:, 0, 0], want, rtol=1e-13)


def test_integrated_rates():
    m = lesde.LEModel(2, 1, alpha=lambda t: 2 * np.asarray(t), beta=3.0)
    A, B = integrated_rates(m, [0.0, 1.0, 2.0])
    np.testing.assert_allclose(A, [0.0, 1.0, 4.0], rtol=1e-12)
    np.testing.assert_allclose(B, [0.0, 3.0, 6.0])


@pytest.mark.parametrize(
    "model",
    [
        lesde.LEModel(2, 2, E=lambda t: np.eye(2)),
        lesde.LEModel(2, 2, alpha=1.0, beta=0.0, W=np.array([[0.9, 0.1], [0.1, 0.9]])),
        lesde.LEModel(2, 1, alpha=1.0, beta=0.0, H=np.ones((2, 2))),
    ],
    ids=["E-matrix", "non-uniform-W", "custom-H"],
)
def test_closed_form_raises_for_uncovered_models(model):
    with pytest.raises(ValueError, match="closed_form"):
        closed_form(model, np.ones((2, model.n_features)), [0.0, 1.0])


def test_closed_form_bad_inputs():
    m = lesde.LEModel(2, 2, alpha=1.0, beta=0.0)
    with pytest.raises(ValueError, match="x0"):
        closed_form(m, np.ones((3, 2)), [0.0, 1.0])
    with pytest.raises(ValueError, match="ts"):
        closed_form(m, np.ones((2, 2)), [1.0, 0.0])


def test_package_attribute_is_the_function():
    import importlib

    importlib.import_module("lesde.closed_form")
    assert callable(lesde.closed_form)
    assert lesde.closed_form is closed_form

"""Closed-form solutions of the LE-ODE X̄' = M(t) X̄ (docs/math.md §3).

Valid for two-parameter E (any time dependence of α, β) and uniform W = c·11ᵀ
(c = 1/K for balanced SGD): then the I-model and L-model drifts commute over time and the
solution is an exponential of A(t) = ∫α, B(t) = ∫β.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.integrate import quad, solve_ivp

from lesde.model import LEModel, check_ts, margin_directions

__all__ = ["closed_form", "integrated_rates", "class_margins"]

# quad tolerances: the integrands are smooth user rates; 1e-13 relative keeps the
# closed form two orders below the 1e-8 agreement the tests ask of it.
_QUAD_TOL = 1e-13


def integrated_rates(model: LEModel, ts: Any) -> tuple[np.ndarray, np.ndarray]:
    """A(t) = ∫_{t₀}^t α, B(t) = ∫_{t₀}^t β on the grid ``ts`` (t₀ = ts[0]).

    Exact for constant rates; adaptive quadrature between grid points otherwise.

    Returns:
        (A, B), each (T,).
    """
    t = check_ts(ts)
    out = []
    for rate in (model.alpha, model.beta):
        if not callable(rate):
            out.append(float(rate) * (t - t[0]))
            continue
        pieces = [
            quad(lambda s, f=rate: float(f(s)), a, b, epsabs=0.0, epsrel=_QUAD_TOL, limit=200)[0]
            for a, b in zip(t[:-1], t[1:], strict=True)
        ]
        out.append(np.concatenate([[0.0], np.cumsum(pieces)]))
    return out[0], out[1]


def _coverage_check(model: LEModel) -> float:
    if not model.is_two_parameter:
        raise ValueError("closed_form covers two-parameter E (alpha, beta) only; use solve_ode")
    if not model.has_uniform_W:
        raise ValueError("closed_form needs uniform `W` (all entries equal); use solve_ode")
    if model.H_kind == "custom":
        raise ValueError("closed_form covers H='I' and H='L' only; use solve_ode")
    return float(model.W[0, 0])


def class_margins(xbar: np.ndarray) -> np.ndarray:
    """Class margins s_k = d̂_kᵀ X̄^k (docs/math.md §3).

    Args:
        xbar: (..., K, K) class means with p = K.

    Returns:
        (..., K) margins.
    """
    K = xbar.shape[-1]
    return np.einsum("...kj,kj->...k", xbar, margin_directions(K))


def _phi(lam: float, t: np.ndarray) -> np.ndarray:
    """∫₀ᵗ exp(λτ) dτ = expm1(λt)/λ, = t at λ = 0."""
    if lam == 0.0:
        return t.copy()
    return np.expm1(lam * t) / lam


def closed_form(model: LEModel, x0: Any, ts: Any) -> np.ndarray:
    """Exact LE-ODE solution X̄(t) for the I-model (any p) and the L-model (p = K).

    I-model: X̄^k(t) = X̄_g(0)·exp(c(A+(K−1)B)) + (X̄^k(0) − X̄_g(0))·exp(c(A−B)).
    L-model: margins S = Σs_k ∝ exp(c(A−B)), u = s − S/K ∝ exp(c(A + B/(K−1))), and
    X̄^k(t) = X̄^k(0) + ∫ c Σ_l E_kl s_l d̂_l dτ (closed for constant rates, adaptive
    quadrature of the four scalar integrals otherwise). Here W = c·11ᵀ.

    Args:
        model: a two-parameter `LEModel` with uniform W and H "I" or "L".
        x0: (K, p) class means at ts[0].
        ts: (T,) increasing times.

    Returns:
        (T, K, p) class means.

    Raises:
        ValueError: for models the closed form does not cover.
    """
    c = _coverage_check(model)
    x0 = model.check_x0(x0)
    t = check_ts(ts)
    K = model.n_classes
    A, B = integrated_rates(model, t)  # (T,), (T,)

    if model.H_kind == "I":
        xg = x0.mean(axis=0)  # (p,)
        grow_g = np.exp(c * (A + (K - 1) * B))  # (T,)
        grow_d = np.exp(c * (A - B))  # (T,)
        return xg[None, None, :] * grow_g[:, None, None] + (x0 - xg)[None] * grow_d[:, None, None]

    # L-model
    dh = margin_directions(K)  # (K, K), row l = d̂_l
    s0 = class_margins(x0)  # (K,)
    S0 = s0.sum()
    u0 = s0 - S0 / K  # (K,)
    lam1, lam2 = c, c  # growth factors per unit of (A−B), (A + B/(K−1))
    tau = t - t[0]
    if not callable(model.alpha) and not callable(model.beta):
        a, b = float(model.alpha), float(model.beta)
        l1 = lam1 * (a - b)
        l2 = lam2 * (a + b / (K - 1))
        f1 = _phi(l1, tau)  # ∫ exp(l1 τ)
        f2 = _phi(l2, tau)
        Ia1, Ib1, Ia2, Ib2 = c * a * f1, c * b * f1, c * a * f2, c * b * f2
    else:
        Ia1, Ib1, Ia2, Ib2 = _weighted_integrals(model, t, c)
    # ∫ c α s_k = S0/K·Iα1 + u_k(0)·Iα2 ; ∫ c β s_l = S0/K·Iβ1 + u_l(0)·Iβ2
    int_a = S0 / K * Ia1[:, None] + u0[None] * Ia2[:, None]  # (T, K)
    int_b = S0 / K * Ib1[:, None] + u0[None] * Ib2[:, None]  # (T, K)
    # X̄^k(t) = X̄^k(0) + int_a[k] d̂_k + Σ_{l≠k} int_b[l] d̂_l
    all_b = int_b @ dh  # (T, K): Σ_l int_b[l] d̂_l
    own = (int_a - int_b)[:, :, None] * dh[None]  # (T, K, K): (int_a[k] − int_b[k]) d̂_k
    return x0[None] + all_b[:, None, :] + own


def _weighted_integrals(model: LEModel, t: np.ndarray, c: float):
    """∫ cα f1, ∫ cβ f1, ∫ cα f2, ∫ cβ f2 with f1 = e^{c(A−B)}, f2 = e^{c(A+B/(K−1))}.

    One augmented scalar ODE (A, B and the four integrals), DOP853 at rtol 1e-13.
    """
    K = model.n_classes

    def rhs(s, y):
        a, b = model.rates(s)
        f1 = np.exp(c * (y[0] - y[1]))
        f2 = np.exp(c * (y[0] + y[1] / (K - 1)))
        return [a, b, c * a * f1, c * b * f1, c * a * f2, c * b * f2]

    if t.size == 1:
        return tuple(np.zeros(1) for _ in range(4))
    sol = solve_ivp(
        rhs, (t[0], t[-1]), np.zeros(6), method="DOP853", t_eval=t, rtol=1e-13, atol=1e-15
    )
    if not sol.success:  # pragma: no cover - DOP853 on a smooth scalar system
        raise RuntimeError(f"quadrature of the L-model integrals failed: {sol.message}")
    return sol.y[2], sol.y[3], sol.y[4], sol.y[5]

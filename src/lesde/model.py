"""The LE-SDE model: K classes, p features, local elasticity E(t), similarity H, weights W.

Symbol table (used by every docstring in `lesde`; see ``docs/math.md`` §1):

=========  =======================================================  ============
symbol     meaning                                                  shape
=========  =======================================================  ============
K          number of classes (``n_classes``)
n          samples (particles) per class (``n_per_class``)
p          feature dimension (``n_features``; logits: p = K)
X_i^k(t)   feature of sample i of class k                           (p,)
X̄^k(t)     class-k mean feature                                     (p,)
X̄(t)       the K class means stacked                                (K, p)
E(t)       LE matrix, E_kl = effect of training on l upon k         (K, K)
α, β       two-parameter LE: E_kk = α, E_kl = β (k ≠ l)             scalars
γ(t)       min{α − β, α + (K−1)β}
A, B       ∫₀ᵗ α, ∫₀ᵗ β
H          similarity matrix, K×K blocks H_kl of p×p                 (Kp, Kp)
W          sampling weights, W_kl = weight of a step on l upon k    (K, K)
M(t)       drift: block (k, l) = W_kl · E_kl(t) · H_kl              (Kp, Kp)
d_l        e_l − 1_K/K, margin direction of class l; d̂_l = d_l/‖d_l‖  (K,)
=========  =======================================================  ============

Time t is measured in SGD iterations, so α, β are per-iteration coefficients.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["LEModel", "margin_directions"]

Rate = float | Callable[[Any], Any]


def margin_directions(n_classes: int) -> np.ndarray:
    """Unit margin directions d̂_l = d_l / ‖d_l‖ with d_l = e_l − 1_K/K.

    Returns:
        (K, K) array whose row l is d̂_l.
    """
    K = n_classes
    d = np.eye(K) - 1.0 / K  # (K, K), row l = d_l
    return d / np.linalg.norm(d, axis=1, keepdims=True)


def _check_rate(name: str, value: Rate | None) -> Rate | None:
    if value is None or callable(value):
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise TypeError(f"`{name}` must be a float or a callable of t, got {type(value).__name__}")
    if not np.isfinite(value):
        raise ValueError(f"`{name}` must be finite, got {value}")
    return float(value)


def _eval_rate(rate: Rate, t: np.ndarray) -> np.ndarray:
    if callable(rate):
        try:
            out = np.asarray(rate(t), dtype=float)
        except (TypeError, ValueError):
            if t.ndim == 0:
                raise
            # a scalar-only callable (math.exp, an `if t < ...` branch): point by point
            out = np.array([float(rate(float(s))) for s in t.ravel()]).reshape(t.shape)
        if out.shape != t.shape:
            out = np.broadcast_to(out, t.shape).astype(float)
        return out
    return np.full(t.shape, float(rate))


class LEModel:
    """A locally elastic model: the drift M(t) of the LE-ODE X̄' = M(t) X̄ (paper eq. 6).

    Args:
        n_classes: K ≥ 2.
        n_features: p ≥ 1 (p = K for logits and required by the L-model).
        alpha: α(t), the within-class elasticity, a float or a callable of t that is
            vectorised over arrays of t (in iterations).
        beta: β(t), the cross-class elasticity, same form as ``alpha``.
        E: instead of ``alpha``/``beta``, a callable t -> (K, K) LE matrix; for an array of
            t of shape (T,) it may return (T, K, K) or it is called point by point.
        H: "I" (H_kl = I_p), "L" (H_kl = d̂_l d̂_lᵀ, requires p = K) or a (Kp, Kp) array.
        W: (K, K) sampling weights; default 1/K everywhere (balanced single-sample SGD).

    Raises:
        ValueError: on a bad shape or value, naming the argument.
        TypeError: on a wrong type.
    """

    def __init__(
        self,
        n_classes: int,
        n_features: int,
        *,
        alpha: Rate | None = None,
        beta: Rate | None = None,
        E: Callable[[Any], Any] | None = None,
        H: str | np.ndarray = "I",
        W: np.ndarray | None = None,
    ) -> None:
        for name, v, lo in (("n_classes", n_classes, 2), ("n_features", n_features, 1)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                raise TypeError(f"`{name}` must be an int, got {type(v).__name__}")
            if v < lo:
                raise ValueError(f"`{name}` must be >= {lo}, got {v}")
        K, p = int(n_classes), int(n_features)
        self.n_classes, self.n_features = K, p

        self.alpha = _check_rate("alpha", alpha)
        self.beta = _check_rate("beta", beta)
        if E is not None:
            if not callable(E):
                raise TypeError(f"`E` must be a callable t -> (K, K), got {type(E).__name__}")
            if alpha is not None or beta is not None:
                raise ValueError("give either `alpha` and `beta` or `E`, not both")
            probe = np.asarray(E(0.0), dtype=float)
            if probe.shape != (K, K):
                raise ValueError(f"`E(t)` must return ({K}, {K}), got {probe.shape}")
        elif alpha is None or beta is None:
            raise ValueError("`alpha` and `beta` are required when `E` is not given")
        self.E = E

        if isinstance(H, str):
            if H not in ("I", "L"):
                raise ValueError(f"`H` must be 'I', 'L' or a ({K * p}, {K * p}) array, got {H!r}")
            if H == "L" and p != K:
                raise ValueError(
                    f"`H`='L' requires n_features == n_classes, got n_features={p}, n_classes={K}"
                )
            self.H_kind = H
            if H == "I":
                blocks = np.broadcast_to(np.eye(p), (K, K, p, p))
            else:
                dh = margin_directions(K)  # (K, K), row l = d̂_l
                outer = np.einsum("li,lj->lij", dh, dh)  # (K, p, p), d̂_l d̂_lᵀ
                blocks = np.broadcast_to(outer[None], (K, K, p, p))
        else:
            Harr = np.asarray(H, dtype=float)
            if Harr.shape != (K * p, K * p):
                raise ValueError(f"`H` must be ({K * p}, {K * p}), got {Harr.shape}")
            if not np.all(np.isfinite(Harr)):
                raise ValueError("`H` must be finite")
            self.H_kind = "custom"
            blocks = Harr.reshape(K, p, K, p).transpose(0, 2, 1, 3)  # (K, K, p, p)
        self.H_blocks = np.ascontiguousarray(blocks)  # (K, K, p, p), H_kl

        if W is None:
            Warr = np.full((K, K), 1.0 / K)
        else:
            Warr = np.asarray(W, dtype=float)
            if Warr.shape != (K, K):
                raise ValueError(f"`W` must be ({K}, {K}), got {Warr.shape}")
            if not np.all(np.isfinite(Warr)) or np.any(Warr < 0):
                raise ValueError("`W` must be finite and non-negative")
        self.W = Warr

    # ------------------------------------------------------------------ rates
    @property
    def is_two_parameter(self) -> bool:
        """True when E is given by α(t), β(t)."""
        return self.E is None

    @property
    def has_uniform_W(self) -> bool:
        """True when all W_kl are equal (the closed forms need this)."""
        return bool(np.allclose(self.W, self.W[0, 0], rtol=1e-14, atol=0.0))

    def rates(self, t: Any) -> tuple[np.ndarray, np.ndarray]:
        """α(t), β(t) evaluated on ``t`` (scalar or array); two-parameter models only."""
        if not self.is_two_parameter:
            raise ValueError("`rates` needs a two-parameter model (alpha, beta), got one with `E`")
        tt = np.asarray(t, dtype=float)
        return _eval_rate(self.alpha, tt), _eval_rate(self.beta, tt)

    def gamma(self, t: Any) -> np.ndarray:
        """γ(t) = min{α − β, α + (K−1)β}."""
        a, b = self.rates(t)
        return np.minimum(a - b, a + (self.n_classes - 1) * b)

    def le_matrix(self, t: Any) -> np.ndarray:
        """The LE matrix E(t): (K, K) for scalar t, (T, K, K) for t of shape (T,)."""
        tt = np.asarray(t, dtype=float)
        K = self.n_classes
        if self.is_two_parameter:
            a, b = self.rates(tt)
            eye = np.eye(K)
            return a[..., None, None] * eye + b[..., None, None] * (1.0 - eye)
        if tt.ndim == 0:
            return np.asarray(self.E(float(tt)), dtype=float)
        try:
            out = np.asarray(self.E(tt), dtype=float)
        except (TypeError, ValueError):
            out = None  # a scalar-only callable: evaluated point by point below
        if out is not None and out.shape == tt.shape + (K, K):
            return out
        return np.stack([np.asarray(self.E(float(s)), dtype=float) for s in tt.ravel()]).reshape(
            tt.shape + (K, K)
        )

    def drift(self, t: Any) -> np.ndarray:
        """M(t), block (k, l) = W_kl E_kl(t) H_kl: (Kp, Kp), or (T, Kp, Kp) for t of shape (T,)."""
        E = self.le_matrix(t)  # (..., K, K)
        WE = self.W * E  # (..., K, K)
        K, p = self.n_classes, self.n_features
        M = np.einsum("...kl,klij->...kilj", WE, self.H_blocks)  # (..., K, p, K, p)
        return M.reshape(E.shape[:-2] + (K * p, K * p))

    def check_x0(self, x0: Any, name: str = "x0") -> np.ndarray:
        """Validate class means ``x0`` of shape (K, p) and return them as float64."""
        K, p = self.n_classes, self.n_features
        x = np.asarray(x0, dtype=float)
        if x.shape != (K, p):
            raise ValueError(f"`{name}` must be ({K}, {p}) class means, got {x.shape}")
        if not np.all(np.isfinite(x)):
            raise ValueError(f"`{name}` must be finite")
        return x

    def __repr__(self) -> str:
        if self.E is not None:
            rates = "E=<callable>"
        else:
            rates = f"alpha={self.alpha!r}, beta={self.beta!r}"
        return (
            f"LEModel(n_classes={self.n_classes}, n_features={self.n_features}, {rates}, "
            f"H={self.H_kind!r})"
        )


def check_ts(ts: Any, name: str = "ts") -> np.ndarray:
    """Validate a time grid: 1-D, finite, strictly increasing, at least one point."""
    t = np.asarray(ts, dtype=float)
    if t.ndim != 1 or t.size < 1:
        raise ValueError(f"`{name}` must be a 1-D array of times, got shape {t.shape}")
    if not np.all(np.isfinite(t)):
        raise ValueError(f"`{name}` must be finite")
    if t.size > 1 and np.any(np.diff(t) <= 0):
        raise ValueError(f"`{name}` must be strictly increasing")
    return t

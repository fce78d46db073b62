"""Simulate the LE-ODE/SDE driven by estimated rates α̂(t), β̂(t) (paper §4.2, Fig. 5).

Forward Euler (σ = 0) or Euler–Maruyama (σ > 0) on the grid ``ts``:
X(t_{m+1}) = X(t_m) + Δt_m · M(t_m) X(t_m) [+ σ √Δt_m ξ_m], with
M(t) = α̂(t) M_α + β̂(t) M_β (block (k, l) = W_kl E_kl H_kl, docs/math.md §1).

Speed. Without noise the recursion is linear, so every path is P(t) X(0) with the one
propagator P(t) = Π_m (I + Δt_m M(t_m)). The mean over paths is P(t) X̄₀ and the spread
is diag(P(t) C₀ P(t)ᵀ)^{1/2} for the sample covariance C₀ of the initial points, so only
a (Kp × Kp) recursion runs sequentially and the cost does not grow with ``n_paths``;
individual paths are formed only at the few requested times. With noise, paths are
advanced together, vectorised over paths; drawing the normals is the bound.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from lesde.model import LEModel, check_ts

__all__ = ["FromEstimatesResult", "simulate_from_estimates"]

# Step matrices are formed this many steps at a time: bounded memory for any T and Kp.
_CHUNK = 2048


@dataclass(frozen=True)
class FromEstimatesResult:
    """Summary of simulated paths (what a user plots: mean and spread over paths).

    Attributes:
        ts: (T,) times.
        mean: (T, K, p) mean of X̂^k(t) over the paths.
        sd: (T, K, p) standard deviation over the paths (ddof = 1; 0 for one path).
        paths_ts: (S,) times at which the individual paths are kept.
        paths: (S, n_paths, K, p) the paths at ``paths_ts``.
        x0_paths: (n_paths, K, p) the initial points.
    """

    ts: np.ndarray
    mean: np.ndarray
    sd: np.ndarray
    paths_ts: np.ndarray
    paths: np.ndarray
    x0_paths: np.ndarray


def _check_rate(name: str, v: Any, T: int) -> np.ndarray:
    a = np.asarray(v, dtype=float)
    if a.ndim == 0:
        a = np.full(T, float(a))
    if a.shape != (T,):
        raise ValueError(f"`{name}` must be a scalar or have shape ({T},), got {a.shape}")
    if not np.all(np.isfinite(a[:-1])):
        # the last value is never used by forward Euler; NaN elsewhere would spread
        raise ValueError(f"`{name}` must be finite on ts[:-1] (drop or fill NaN rates first)")
    return a


def _initial_points(
    x0: np.ndarray, n_paths: int, init_noise: Any, rng: np.random.Generator
) -> np.ndarray:
    K, p = x0.shape
    scale = np.linalg.norm(x0, axis=1) / np.sqrt(K)  # (K,) the paper's ‖X̄^k(0)‖/√K
    z = rng.standard_normal((n_paths, K, p))
    if isinstance(init_noise, str):
        # The paper's code draws N(0, ‖X̄^k(0)‖²/K) per coordinate around zero: its mean
        # path is then ≈ 0 by linearity, and only the rescaled shape is compared.
        return scale[None, :, None] * z
    return x0[None] + float(init_noise) * scale[None, :, None] * z


def simulate_from_estimates(
    ts: Any,
    alpha_hat: Any,
    beta_hat: Any,
    x0: Any,
    *,
    model: str = "L",
    n_paths: int = 500,
    init_noise: float | str = 1.0,
    sigma: float = 0.0,
    seed: int | None = None,
    W: Any = None,
    save_at: Any = None,
) -> FromEstimatesResult:
    """Forward Euler / Euler–Maruyama of the LE-ODE/SDE driven by α̂(t), β̂(t) (paper §4.2).

    The rates at the left end of each step are used (standard forward Euler); the paper's
    code uses the rate at the right end, a difference of O(Δt·α̂'), below the O(Δt)
    error of the scheme itself.

    Args:
        ts: (T,) strictly increasing times; the step is Δt_m = ts[m+1] − ts[m] (1 for
            per-iteration rates on an iteration grid).
        alpha_hat: (T,) α̂(t) (or a scalar); only values on ts[:-1] are used.
        beta_hat: (T,) β̂(t) (or a scalar).
        x0: (K, p) genuine class means X̄(0); p = K for the L-model.
        model: "L" (H_kl = d̂_l d̂_lᵀ, the paper's Fig. 5) or "I" (H_kl = I_p).
        n_paths: number of simulated paths (paper: 500).
        init_noise: spread of the initial points. A float τ ≥ 0 draws
            X^k(0) = X̄^k(0) + τ·N(0, ‖X̄^k(0)‖²/K · I_p) per class (τ = 1: the paper's
            spread, centred at the genuine start as docs/math.md §5 states; τ = 0: every path
            starts at X̄(0)). The string "paper" reproduces the paper's code, which
            centres the draws at 0 (its mean path is then ≈ 0; use only to reproduce).
        sigma: diffusion scale σ of each path (isotropic, per coordinate); 0 gives the ODE.
            A path is a (K, p) class-mean state, so for class means of n particles with
            per-particle noise σ₀ use σ = σ₀/√n.
        seed: seed of the initial points and the noise.
        W: (K, K) sampling weights; default 1/K (balanced SGD).
        save_at: indices into ``ts`` at which to keep every path; default the first and
            the last. Pass an empty list to keep none.

    Returns:
        A `FromEstimatesResult` with ``mean`` and ``sd`` over paths at every time, shape
        (T, K, p), and the paths at ``save_at``.

    Raises:
        ValueError: on bad shapes or options, naming the argument.
    """
    t = check_ts(ts)
    T = t.size
    a = _check_rate("alpha_hat", alpha_hat, T)
    b = _check_rate("beta_hat", beta_hat, T)
    x0a = np.asarray(x0, dtype=float)
    if x0a.ndim != 2:
        raise ValueError(f"`x0` must be (K, p) class means, got shape {x0a.shape}")
    K, p = x0a.shape
    if model not in ("I", "L"):
        raise ValueError(f"`model` must be 'I' or 'L', got {model!r}")
    lm = LEModel(K, p, alpha=1.0, beta=0.0, H=model, W=W)  # validates K, p (p = K for L), W
    x0a = lm.check_x0(x0a)
    if isinstance(n_paths, bool) or not isinstance(n_paths, int | np.integer) or n_paths < 1:
        raise ValueError(f"`n_paths` must be a positive int, got {n_paths!r}")
    if isinstance(init_noise, str):
        if init_noise != "paper":
            raise ValueError(f"`init_noise` must be a float >= 0 or 'paper', got {init_noise!r}")
    elif not (isinstance(init_noise, float | int) and np.isfinite(init_noise) and init_noise >= 0):
        raise ValueError(f"`init_noise` must be a float >= 0 or 'paper', got {init_noise!r}")
    if not (isinstance(sigma, float | int) and np.isfinite(sigma) and sigma >= 0):
        raise ValueError(f"`sigma` must be a float >= 0, got {sigma!r}")
    save_idx = np.array([0, T - 1] if save_at is None else save_at, dtype=int).reshape(-1)
    if save_idx.size and (save_idx.min() < -T or save_idx.max() >= T):
        raise ValueError(f"`save_at` must index `ts` (length {T}), got {save_at!r}")
    save_idx = np.unique(save_idx % T)

    n = K * p
    M_a = lm.drift(0.0)  # (n, n) M for α = 1, β = 0
    M_b = LEModel(K, p, alpha=0.0, beta=1.0, H=model, W=lm.W).drift(0.0)  # α = 0, β = 1
    rng = np.random.default_rng(seed)
    X0 = _initial_points(x0a, n_paths, init_noise, rng).reshape(n_paths, n)  # (N, n)
    dt = np.diff(t)  # (T-1,)

    mean = np.empty((T, n))
    sd = np.empty((T, n))
    paths = np.empty((save_idx.size, n_paths, n))
    save_pos = {int(i): j for j, i in enumerate(save_idx)}

    def step_matrices(lo: int, hi: int) -> np.ndarray:
        """Transposed Euler steps (I + Δt M(t_m))ᵀ for m in [lo, hi): (hi − lo, n, n)."""
        Mm = a[lo:hi, None, None] * M_a + b[lo:hi, None, None] * M_b  # (c, n, n)
        S = dt[lo:hi, None, None] * Mm
        S += np.eye(n)
        return np.ascontiguousarray(np.swapaxes(S, 1, 2))

    if sigma == 0.0:
        # Row-vector form: Y(t) = Y(0) P(t)ᵀ with the rows of Y(0) = [I; x̄₀ᵀ; L₀ᵀ]
        # (C₀ = L₀L₀ᵀ): one ((2n + 1) × n) @ (n × n) product per step carries P, the mean
        # and the spread; the variance of coordinate i is Σ_j (P l_j)_i².
        x_mean0 = X0.mean(axis=0)  # (n,)
        if n_paths > 1:
            # C₀ = DᵀD/(N − 1) for the centred initial points D (N, n); the thin QR
            # D/√(N − 1) = QR gives a factor L₀ = Rᵀ with L₀L₀ᵀ = C₀ of at most n columns
            D = (X0 - x_mean0) / np.sqrt(n_paths - 1)  # (N, n)
            L0 = np.linalg.qr(D, mode="r").T  # (n, min(N, n))
        else:
            L0 = np.zeros((n, n))
        Y = np.concatenate([np.eye(n), x_mean0[None], L0.T], axis=0)  # (rows, n)
        for lo in range(0, T - 1, _CHUNK):
            hi = min(lo + _CHUNK, T - 1)
            St = step_matrices(lo, hi)
            buf = np.empty((hi - lo,) + Y[n:].shape)  # states [x̄ | L] at t_lo .. t_{hi-1}
            for m in range(lo, hi):
                buf[m - lo] = Y[n:]
                if m in save_pos:
                    paths[save_pos[m]] = X0 @ Y[:n]  # rows (P x_r(0))ᵀ
                Y = Y @ St[m - lo]
            mean[lo:hi] = buf[:, 0]
            sd[lo:hi] = np.sqrt(np.einsum("mij,mij->mj", buf[:, 1:], buf[:, 1:]))
        mean[T - 1] = Y[n]
        sd[T - 1] = np.sqrt(np.einsum("ij,ij->j", Y[n + 1 :], Y[n + 1 :]))
        if T - 1 in save_pos:
            paths[save_pos[T - 1]] = X0 @ Y[:n]
    else:
        from lesde.simulate.sde import NormalSource

        # the normals bound this loop: drawn on fixed streams filled by a thread pool
        # (~2x on 2 cores, see NormalSource), seeded from `rng` after the initial points
        normals = NormalSource(int(rng.integers(2**63)), "float64")
        X = X0.copy()  # (N, n)
        sq = np.sqrt(dt) * sigma  # (T-1,)
        ddof = 1 if n_paths > 1 else 0
        # states and noise of a chunk are buffered (≤ 2²¹ numbers each) so that the mean,
        # spread and normals are computed in a few large calls, not one per step
        chunk = max(1, min(_CHUNK, 2**21 // (n_paths * n)))
        ones = np.full(n_paths, 1.0 / n_paths)  # mean over paths as a GEMV: ~5x np.mean here
        starts = list(range(0, T - 1, chunk))
        pool = [np.empty((chunk, n_paths, n)), np.empty((chunk, n_paths, n))]

        def draw(k: int) -> Callable[[], np.ndarray]:
            c = min(starts[k] + chunk, T - 1) - starts[k]
            return normals.fill_async(pool[k % 2][:c])  # a C-contiguous leading slice

        pending = draw(0)
        for k, lo in enumerate(starts):
            hi = min(lo + chunk, T - 1)
            noise = pending()  # (c, N, n)
            # the next chunk's normals are drawn on the pool while this chunk steps
            pending = draw(k + 1) if k + 1 < len(starts) else None
            noise *= sq[lo:hi, None, None]
            St = step_matrices(lo, hi)
            buf = np.empty((hi - lo + 1, n_paths, n))  # states at t_lo .. t_hi
            buf[0] = X
            for i, m in enumerate(range(lo, hi)):
                if m in save_pos:
                    paths[save_pos[m]] = buf[i]
                np.matmul(buf[i], St[i], out=buf[i + 1])  # no temporaries in the step
                buf[i + 1] += noise[i]
            X = buf[-1].copy()
            states = buf[:-1]  # (c, N, n) at t_lo .. t_{hi-1}
            mu = np.matmul(ones, states)  # (c, n)
            states -= mu[:, None]  # centred in place: einsum is ~1.4x faster than std here
            mean[lo:hi] = mu
            sd[lo:hi] = np.sqrt(np.einsum("cni,cni->ci", states, states) / max(n_paths - ddof, 1))
        mean[T - 1] = X.mean(axis=0)
        sd[T - 1] = X.std(axis=0, ddof=ddof)
        if T - 1 in save_pos:
            paths[save_pos[T - 1]] = X

    return FromEstimatesResult(
        ts=t,
        mean=mean.reshape(T, K, p),
        sd=sd.reshape(T, K, p),
        paths_ts=t[save_idx],
        paths=paths.reshape(save_idx.size, n_paths, K, p),
        x0_paths=X0.reshape(n_paths, K, p),
    )

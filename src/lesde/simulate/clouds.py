"""Per-sample clouds of the LE-SDE from a given state, with time-varying α(t), β(t), σ²(t).

The LE-SDE (paper eq. 5) moves every particle of class k by the same drift, a function
of the class means only, plus its own noise:

    dX_i^k = Σ_l W_kl E_kl(t) H_kl X̄^l(t) dt + σ(t) dW_i^k        (Σ = σ² I).

Write X_i^k = X̄^k + D_i^k. Averaging over the n particles of class k gives the class-mean
SDE dX̄ = M(t) X̄ dt + (σ/√n) dW̄, and the deviations are drift-free:
dD_i^k = σ (dW_i^k − dW̄^k). For Gaussian increments the class mean of the increments is
independent of their deviations from it, so this split is exact in distribution: the
class means are advanced by Euler–Maruyama (R trials × K × p numbers per step, cheap on a
fine grid), and the deviations receive, between output times, the exact Gaussian
increment N(0, ∫σ² · I) made mean-free within each class. Every particle of the system is
then simulated without ever advancing K·n·p numbers per step.

The grid is refined so that no step moves the state by more than `MAX_STEP` in relative
terms (|α|Δt + (K−1)|β|Δt ≤ 0.02: the relative error of forward Euler per unit of
exponent is then about 1 %).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from lesde.model import LEModel, check_ts

__all__ = ["CloudResult", "simulate_clouds", "euler_means", "refine_grid", "MAX_STEP"]

# largest exponent change per Euler step (see the module docstring)
MAX_STEP = 0.02
# at most this many sub-steps per output interval (bounded work for absurd rates)
_MAX_SUB = 2000


@dataclass(frozen=True)
class CloudResult:
    """Simulated per-sample clouds of the LE-SDE.

    Attributes:
        ts: (S,) output times.
        means: (S, R, K, p) class means of each path (trial) at ``ts``.
        clouds: (S, R, P, p) the particles (samples) of each path at ``ts``.
        labels: (P,) class of each particle.
    """

    ts: np.ndarray
    means: np.ndarray
    clouds: np.ndarray
    labels: np.ndarray


def refine_grid(ts: np.ndarray, rate_bound: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A fine grid containing ``ts`` with |rate|·Δt ≤ `MAX_STEP` on every step.

    Args:
        ts: (S,) output times, strictly increasing.
        rate_bound: (S − 1,) an upper bound of |α| + (K−1)|β| on each interval.

    Returns:
        The fine grid (F,) and the (S,) indices of ``ts`` in it.
    """
    dt = np.diff(ts)
    with np.errstate(invalid="ignore"):
        n_sub = np.ceil(np.nan_to_num(rate_bound, nan=0.0) * dt / MAX_STEP)
    n_sub = np.clip(n_sub, 1, _MAX_SUB).astype(int)
    pieces = [ts[:1]]
    for i in range(dt.size):
        pieces.append(np.linspace(ts[i], ts[i + 1], n_sub[i] + 1)[1:])
    fine = np.concatenate(pieces)
    idx = np.concatenate([[0], np.cumsum(n_sub)])
    fine[idx] = ts  # exact output times (linspace rounding)
    return fine, idx


def euler_means(
    fine: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    x0: np.ndarray,
    Ma: np.ndarray,
    Mb: np.ndarray,
    out_idx: np.ndarray,
    *,
    noise_sd: np.ndarray | None = None,
    coord_scale: np.ndarray | None = None,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Forward Euler (Euler–Maruyama with ``noise_sd``) of X̄' = (a M_α + b M_β) X̄, vectorised
    over paths, with one rate for all paths (a, b of shape (F,)) or one per path ((P, F)).

    Args:
        fine: (F,) grid. a, b: (F,) or (P, F) rates on it (left ends used).
        x0: (P, n) start states. Ma, Mb: (n, n) the drift for α = 1, β = 0 and α = 0, β = 1.
        out_idx: (S,) indices of ``fine`` to return.
        noise_sd: (F − 1,) sd per coordinate of each step's noise (None: the ODE).
        coord_scale: (n,) factor of the noise sd per coordinate (default 1).
        rng: the noise's generator.

    Returns:
        (S, P, n) the states at ``fine[out_idx]``.
    """
    P, n = x0.shape
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    per_path = a.ndim == 2
    dt = np.diff(fine)
    da = a[..., :-1] * dt  # (F-1,) or (P, F-1)
    db = b[..., :-1] * dt
    if per_path:
        da, db = np.ascontiguousarray(da.T[:, :, None]), np.ascontiguousarray(db.T[:, :, None])
    X = np.array(x0, dtype=float)
    out = np.empty((out_idx.size, P, n))
    pos = {int(i): j for j, i in enumerate(out_idx)}
    MaT, MbT = Ma.T.copy(), Mb.T.copy()
    scale = np.ones(n) if coord_scale is None else np.asarray(coord_scale, dtype=float)
    for m in range(fine.size - 1):
        if m in pos:
            out[pos[m]] = X
        X = X + da[m] * (X @ MaT) + db[m] * (X @ MbT)
        if noise_sd is not None and noise_sd[m] > 0:
            X += (noise_sd[m] * scale) * rng.standard_normal(X.shape)
    last = fine.size - 1
    if last in pos:
        out[pos[last]] = X
    return out


def simulate_clouds(
    ts: Any,
    alpha: Any,
    beta: Any,
    sigma2: Any,
    particles0: Any,
    labels: Any,
    *,
    model: str = "L",
    W: Any = None,
    seed: int | None = 0,
) -> CloudResult:
    """Per-sample LE-SDE clouds from given particles, with rates and noise on a grid.

    Args:
        ts: (S,) output times, strictly increasing; the clouds start at ``ts[0]``.
        alpha, beta: callables of t (arrays in, arrays out) giving α(t), β(t) per
            iteration, the same for every path.
        sigma2: callable of t giving σ²(t) ≥ 0 (negative values are taken as 0: a
            diffusion cannot shrink a cloud).
        particles0: (R, P, p) the particles of R independent paths (trials) at ``ts[0]``.
        labels: (P,) class of each particle in 0..K−1, every class with ≥ 2 particles.
        model: "L" or "I" (H of the drift).
        W: (K, K) sampling weights; default 1/K.
        seed: seed of the noise.

    Returns:
        A `CloudResult`.

    Raises:
        ValueError: on bad shapes, labels or model, naming the argument.
    """
    t = check_ts(ts)
    Z = np.asarray(particles0, dtype=float)
    lab = np.asarray(labels)
    if Z.ndim != 3 or lab.shape != (Z.shape[1],):
        raise ValueError(
            f"`particles0` must be (R, P, p) with P = len(labels) = {lab.size}, got {Z.shape}"
        )
    if model not in ("I", "L"):
        raise ValueError(f"`model` must be 'I' or 'L', got {model!r}")
    K = int(lab.max()) + 1 if lab.size else 0
    counts = np.bincount(lab.astype(int), minlength=K) if lab.size else np.array([])
    if K < 2 or counts.min() < 2:
        raise ValueError(f"`labels` must hold >= 2 particles of each of >= 2 classes, got {counts}")
    R, P, p = Z.shape
    lm = LEModel(K, p, alpha=1.0, beta=0.0, H=model, W=W)
    Ma = lm.drift(0.0)
    Mb = LEModel(K, p, alpha=0.0, beta=1.0, H=model, W=lm.W).drift(0.0)
    onehot = (lab[:, None] == np.arange(K)).astype(float)  # (P, K)
    means0 = np.einsum("pk,rpj->rkj", onehot / counts, Z)  # (R, K, p)
    dev = Z - means0[:, lab]  # (R, P, p)

    def rates(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        def ev(f):
            return np.broadcast_to(np.asarray(f(x), dtype=float), x.shape)

        return ev(alpha), ev(beta), np.maximum(ev(sigma2), 0.0)

    a_t, b_t, _ = rates(t)
    bound = np.abs(a_t) + (K - 1) * np.abs(b_t)
    fine, idx = refine_grid(t, np.maximum(bound[:-1], bound[1:]))
    a_f, b_f, s2_f = rates(fine)
    rng = np.random.default_rng(seed)
    var_step = s2_f[:-1] * np.diff(fine)  # ∫σ² over each step (left end)
    # the class mean of n_k particles carries noise of variance σ²Δt/n_k per coordinate
    scale = np.repeat(1.0 / np.sqrt(counts), p)  # (K·p,)
    with np.errstate(over="ignore", invalid="ignore"):  # a diverging drift gives inf, not a warning
        means = euler_means(fine, a_f, b_f, means0.reshape(R, K * p), Ma, Mb, idx,
                            noise_sd=np.sqrt(var_step), coord_scale=scale, rng=rng)  # fmt: skip
    means = means.reshape(t.size, R, K, p)
    # deviations: exact increments between output times, made mean-free per class
    clouds = np.empty((t.size, R, P, p))
    acc = np.concatenate([[0.0], np.cumsum(var_step)])[idx]  # ∫σ² up to each output time
    D = dev.copy()
    for j in range(t.size):
        if j > 0:
            inc = np.sqrt(max(acc[j] - acc[j - 1], 0.0)) * rng.standard_normal((R, P, p))
            inc -= np.einsum("pk,rpj->rkj", onehot / counts, inc)[:, lab]
            D += inc
        with np.errstate(invalid="ignore"):
            clouds[j] = means[j][:, lab] + D
    return CloudResult(ts=t, means=means, clouds=clouds, labels=lab)

"""The discrete particle process of paper eq. (4) (docs/math.md §2.1), vectorised over paths.

At step m = 1, 2, … (time t_{m−1} = t0 + (m−1)·h) each path draws a class L_m and a
sample J_m ~ Unif[n], and every particle i of every class k moves:

    X_i^k(m) = X_i^k(m−1) + h·w_{k,L}·E_{k,L}(t_{m−1})·H_{k,L}·X_J^L(m−1) + √h·Σ^{1/2} ζ_i^k,

with ζ i.i.d. N(0, I_p).

**The W-marginal.** L_m is drawn from π_l = Σ_k W_kl / Σ_{k,l} W_kl (the column sums of
W, normalised) and the update of class k carries the importance weight
w_{k,l} = W_kl / π_l. Then the expected update of class k is h Σ_l W_kl E_kl H_kl X̄^l,
i.e. E[X̄(m)] = (I + h M(t_{m−1})) E[X̄(m−1)]: the particle process is unbiased for the
Euler scheme of the LE-ODE for any W. For the default W = 1/K, π is uniform and w = 1
(eq. 4 exactly); for imbalanced classes W_kl = n_l/N, π_l = n_l/N and w = 1 again.

**Two exact-in-law samplers.** ``method="direct"`` draws every ζ_i^k(m) (K·n·p draws per
step). ``method="lazy"`` (default) uses that the drift of step m is the same for all
particles of a class, so particle i's position is X_i(0) + (class drift sum) + √h Σ^{1/2}
S_i with S_i a Gaussian random walk that is only *read* when i is the sampled J_m or at
a saved step; S_i is advanced at those reads by N(0, (steps since its last read)·I_p)
— the same law, with p draws per path per step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from lesde.model import LEModel
from lesde.simulate.sde import (
    DEFAULT_SAVE_BYTES,
    NormalSource,
    check_common,
    initial_particles,
    resolve_saves,
)

__all__ = ["simulate_particles", "ParticleResult"]


@dataclass(frozen=True)
class ParticleResult:
    """Output of `simulate_particles`.

    Attributes:
        steps: (T_saved,) saved step indices m (0 = initial state).
        ts: (T_saved,) their times t0 + m·h.
        particles: (n_paths, T_saved, K, n, p) particles X_i^k(m).
        means: (n_paths, T_saved, K, p) class means X̄^k(m) (averages of ``particles``).
        classes: (n_paths, n_steps) sampled classes L_m.
        samples: (n_paths, n_steps) sampled sample indices J_m.
    """

    steps: np.ndarray
    ts: np.ndarray
    particles: np.ndarray
    means: np.ndarray
    classes: np.ndarray
    samples: np.ndarray


def sampling_marginal(W: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """π (K,) from the column sums of W and the importance weights w = W/π (K, K)."""
    col = W.sum(axis=0)
    pi = col / col.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        w = np.where(pi[None, :] > 0, W / pi[None, :], 0.0)
    return pi, w


def simulate_particles(
    model: LEModel,
    n_steps: int,
    *,
    n_per_class: int,
    h: float,
    sigma: float | np.ndarray,
    x0: Any,
    seed: int | None,
    n_paths: int = 1,
    t0: float = 0.0,
    init_spread: float = 0.0,
    save_steps: Any = None,
    method: str = "lazy",
    max_save_bytes: int = DEFAULT_SAVE_BYTES,
) -> ParticleResult:
    """Run the discrete locally elastic particle process of paper eq. (4).

    Args:
        model: the `LEModel` giving E(t), H and W (see the module docstring for W).
        n_steps: number of SGD steps m = 1..n_steps.
        n_per_class: n, samples per class.
        h: step size; step m uses E(t0 + (m−1)h) and moves the particles by h·E·H·X_J.
            With t in iterations (the `lesde` convention) h = 1.
        sigma: Σ^{1/2}, scalar or (p, p); the noise of one step is √h Σ^{1/2} ζ.
        x0: (K, p) class centres; X_i^k(0) = x0[k] + init_spread·ξ_i^k.
        seed: seed of all randomness (same seed -> bitwise-identical result).
        n_paths: independent runs, simulated together.
        t0: time of step 0.
        init_spread: standard deviation of the initial particles around ``x0``.
        save_steps: increasing step indices in [0, n_steps] to return; None: every step
            when that fits ``max_save_bytes``, else the final step only (with a warning).
        method: "lazy" (default) or "direct"; both exact in law (module docstring).
        max_save_bytes: memory budget for the default ``save_steps`` rule.

    Returns:
        `ParticleResult`.

    Raises:
        ValueError, TypeError: on bad arguments, naming them.
    """
    n, n_paths, S, spread = check_common(
        model,
        n_per_class=n_per_class,
        sigma=sigma,
        n_paths=n_paths,
        init_spread=init_spread,
        dtype="float64",
        method=method,
        methods=("lazy", "direct"),
    )
    if isinstance(n_steps, bool) or not isinstance(n_steps, int | np.integer):
        raise TypeError(f"`n_steps` must be an int, got {type(n_steps).__name__}")
    if n_steps < 0:
        raise ValueError(f"`n_steps` must be >= 0, got {n_steps}")
    for name, v in (("h", h), ("t0", t0)):
        if isinstance(v, bool) or not isinstance(v, int | float | np.floating):
            raise TypeError(f"`{name}` must be a float, got {type(v).__name__}")
    if not (np.isfinite(h) and h > 0):
        raise ValueError(f"`h` must be finite and > 0, got {h!r}")
    if not np.isfinite(t0):
        raise ValueError(f"`t0` must be finite, got {t0!r}")
    x0 = model.check_x0(x0)
    K, p = model.n_classes, model.n_features
    n_steps = int(n_steps)
    saves = resolve_saves(save_steps, n_steps + 1, n_paths * K * n * p * 8, max_save_bytes, "steps")
    if saves is None:
        saves = np.atleast_1d(np.asarray(save_steps))
        if saves.ndim != 1 or saves.size == 0 or not np.issubdtype(saves.dtype, np.integer):
            raise ValueError(f"`save_steps` must be a 1-D array of ints, got {save_steps!r}")
        if saves[0] < 0 or saves[-1] > n_steps or np.any(np.diff(saves) <= 0):
            raise ValueError(
                f"`save_steps` must be strictly increasing in [0, {n_steps}], got {saves.tolist()}"
            )
    saves = saves.astype(np.int64)

    pi, w = sampling_marginal(model.W)
    ts_steps = t0 + h * np.arange(n_steps)  # time of the drift of step m = index + 1
    E = model.le_matrix(ts_steps) if n_steps else np.zeros((0, K, K))  # (n_steps, K, K)
    coef = h * w[None] * E  # (n_steps, K, K): h · w_kl · E_kl(t_m); H_kl applied per step

    src = NormalSource(seed, "float64")
    # (L_m, J_m) of all paths come from a stream independent of the noise streams.
    rng = src.aux_generator()
    L = rng.choice(K, size=(n_paths, n_steps), p=pi)
    J = rng.integers(n, size=(n_paths, n_steps))

    X0 = initial_particles(src, x0, n_paths, n, spread)  # (n_paths, K, n, p)
    particles = np.empty((n_paths, saves.size, K, n, p))
    run = _run_lazy if method == "lazy" else _run_direct
    run(src, coef, model.H_blocks, L, J, X0, S.T * np.sqrt(h), particles, saves)
    return ParticleResult(
        steps=saves,
        ts=t0 + h * saves,
        particles=particles,
        means=particles.mean(axis=3),
        classes=L,
        samples=J,
    )


def _drift(coef_m, H_blocks, Lm, src_x):
    """h w_{k,L} E_{k,L} H_{k,L} X_J^L for every path b and class k: (n_paths, K, p)."""
    HX = np.einsum("kbij,bj->bki", H_blocks[:, Lm], src_x)  # (n_paths, K, p)
    return coef_m[:, Lm].T[:, :, None] * HX


def _run_direct(src, coef, H_blocks, L, J, X0, ST, particles, saves):
    n_paths, K, n, p = X0.shape
    X = X0.copy()
    b = np.arange(n_paths)
    save_at = dict(zip(saves.tolist(), range(saves.size), strict=True))
    if 0 in save_at:
        particles[:, save_at[0]] = X
    Z = np.empty_like(X)
    iso = np.allclose(ST, ST[0, 0] * np.eye(p), rtol=0.0, atol=0.0)  # scalar σ: skip matmul
    for m in range(coef.shape[0]):
        Lm = L[:, m]
        src_x = X[b, Lm, J[:, m]]  # (n_paths, p), X_J^L(m−1)
        drift = _drift(coef[m], H_blocks, Lm, src_x)  # (n_paths, K, p)
        src.fill(Z)
        X += drift[:, :, None, :]
        if iso:
            Z *= ST[0, 0]
            X += Z
        else:
            X += Z @ ST
        if m + 1 in save_at:
            particles[:, save_at[m + 1]] = X


def _run_lazy(src, coef, H_blocks, L, J, X0, ST, particles, saves):
    n_paths, K, n, p = X0.shape
    b = np.arange(n_paths)
    Dsum = np.zeros((n_paths, K, p))  # Σ drifts so far, shared by all particles of a class
    Swalk = np.zeros((n_paths, K, n, p))  # S_i at its last read
    last = np.zeros((n_paths, K, n))  # step count at the last read of S_i
    save_at = dict(zip(saves.tolist(), range(saves.size), strict=True))
    if 0 in save_at:
        particles[:, save_at[0]] = X0
    for m in range(coef.shape[0]):
        Lm, Jm = L[:, m], J[:, m]
        # Read S_J at step m−1 (m increments have index 0..m−1; m of them counted by m).
        gap = m - last[b, Lm, Jm]  # (n_paths,)
        inc = src.normal((n_paths, p)) * np.sqrt(gap)[:, None]
        Swalk[b, Lm, Jm] += inc
        last[b, Lm, Jm] = m
        src_x = X0[b, Lm, Jm] + Dsum[b, Lm] + Swalk[b, Lm, Jm] @ ST  # (n_paths, p)
        Dsum += _drift(coef[m], H_blocks, Lm, src_x)
        if m + 1 in save_at:
            gap_all = (m + 1) - last  # (n_paths, K, n)
            Swalk += src.normal((n_paths, K, n, p)) * np.sqrt(gap_all)[..., None]
            last[:] = m + 1
            particles[:, save_at[m + 1]] = X0 + Dsum[:, :, None, :] + Swalk @ ST

"""Euler–Maruyama for the particle LE-SDE (paper eq. 5, docs/math.md §2.2).

Every particle i of class k obeys

    dX_i^k = (M(t) X̄(t))_k dt + Σ^{1/2} dW_i^k,

so the particles interact only through the class means X̄. Two exact-in-law ways to
run the Euler–Maruyama scheme follow from that:

* ``method="split"`` (default). The class means obey their own Euler–Maruyama
  recursion X̄_{j+1} = (I + dt_j M(t_j)) X̄_j + Σ^{1/2} ΔW̄_j with ΔW̄_j ~ N(0, dt_j/n),
  and the deviations X_i^k − X̄^k are Brownian motions projected to zero mean over i,
  independent of ΔW̄ (for Gaussians, the sample mean and the deviations from it are
  independent). So the means need K·p draws per step and the particles are drawn only
  at the saved times. This is the same joint law of (means at every t, particles at
  ``save_ts``) as the per-particle scheme, with ~n times fewer Gaussian draws.
* ``method="particles"``. The textbook scheme: every particle's increment ΔW_i^k is
  drawn at every step (K·n·p draws per step); the means are the particle averages.
  It is bound by the speed of the Gaussian generator (see ``bench/bench_simulate.py``).

Gaussian source, chosen by measurement on this project's 2-core CPU
(``bench/bench_simulate.py``): float64 draws come from numpy's
``Generator.standard_normal`` (~1.1e8/s per thread, ~2.1e8/s on 4 fixed streams filled
by 2 threads; torch's float64 ``randn`` gives ~0.6e8/s), float32 draws from torch's
``randn`` into a preallocated buffer (~3.6e8/s; numpy's float32 path ~1.2e8/s). float64
is the default (accurate); ``dtype="float32"`` is the fast path for
``method="particles"``. At K = p = 3, n = 100, 100 paths, 10^4 steps (9e8
particle-coordinate-steps) the per-particle scheme runs at ~1.3e8 (float64) and ~3e8
(float32) coordinate-steps/s, 1.6x and 1.2x the time needed just to draw its Gaussians;
"split" delivers the same law at ~2e9-4e9 effective coordinate-steps/s.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from lesde.model import LEModel, check_ts

__all__ = ["simulate_sde", "SDEResult"]

# Default memory budget for the saved particles (bytes); beyond it only the final time
# is kept unless `save_ts` says otherwise.
DEFAULT_SAVE_BYTES = 512 * 2**20
# Gaussian buffer of the per-particle scheme: big enough to amortise per-call overhead,
# small enough to stay in the last-level cache region of a laptop-class CPU.
_CHUNK_BYTES = 16 * 2**20
# Propagators I + dt M(t_j) are evaluated in blocks of at most this many bytes.
_PROP_BLOCK_BYTES = 64 * 2**20


@dataclass(frozen=True)
class SDEResult:
    """Output of `simulate_sde`.

    Attributes:
        ts: (T,) the time grid.
        means: (n_paths, T, K, p) class means X̄^k(t) of each path.
        particles: (n_paths, T_saved, K, n, p) particles X_i^k at ``save_ts``.
        save_ts: (T_saved,) the saved times (points of ``ts``).
        save_index: (T_saved,) their indices into ``ts``.
    """

    ts: np.ndarray
    means: np.ndarray
    particles: np.ndarray
    save_ts: np.ndarray
    save_index: np.ndarray


# ---------------------------------------------------------------- shared helpers
# float64 draws: a fixed number of PCG64 streams (so results do not depend on the core
# count) filled by a thread pool; numpy releases the GIL while filling, so 2 cores give
# ~2x (measured 1.05e8 -> 2.1e8 draws/s).
_STREAMS = 4
_PARALLEL_MIN = 2**20  # smaller fills use stream 0 only (thread overhead)
_POOL = None


def _pool():
    global _POOL
    if _POOL is None:
        from concurrent.futures import ThreadPoolExecutor

        _POOL = ThreadPoolExecutor(max(1, min(_STREAMS, os.cpu_count() or 1)))
    return _POOL


class NormalSource:
    """Seeded standard-normal draws in float64 (numpy) or float32 (torch), filled in place.

    Deterministic: the same seed and the same sequence of fill shapes give the same
    numbers on any machine (float64 fills of >= 2^20 numbers are split over 4 fixed
    streams, whatever the number of threads).
    """

    def __init__(self, seed: int | None, dtype: str) -> None:
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int | np.integer)):
            raise TypeError(f"`seed` must be an int or None, got {type(seed).__name__}")
        if seed is not None and seed < 0:
            raise ValueError(f"`seed` must be >= 0, got {seed}")
        # two independent children: the Gaussian noise, and `aux` for other draws
        ss, self._aux = np.random.SeedSequence(seed).spawn(2)
        self.dtype = np.dtype(dtype)
        if self.dtype == np.float64:
            self._rngs = [np.random.Generator(np.random.PCG64(c)) for c in ss.spawn(_STREAMS)]
            self._torch = None
        else:
            import torch

            self._torch = torch
            self._gen = torch.Generator().manual_seed(int(ss.generate_state(1, np.uint64)[0] >> 1))

    def aux_generator(self) -> np.random.Generator:
        """A numpy Generator independent of the Gaussian streams (e.g. for L_m, J_m)."""
        return np.random.Generator(np.random.PCG64(self._aux))

    def normal(self, shape: tuple[int, ...]) -> np.ndarray:
        """A new array of i.i.d. N(0, 1) of ``shape`` and the source's dtype."""
        out = np.empty(shape, dtype=self.dtype)
        self.fill(out)
        return out

    def fill(self, out: np.ndarray) -> np.ndarray:
        """Fill a C-contiguous array of the source's dtype with N(0, 1) in place."""
        return self.fill_async(out)()

    def fill_async(self, out: np.ndarray) -> Callable[[], np.ndarray]:
        """Start filling ``out`` as `fill` does; returns a function that waits and gives it.

        Large float64 fills run on the thread pool, so the caller can compute meanwhile.
        Call the returned function before the next fill: the streams are then used in the
        same order, and the numbers are those of `fill`.
        """
        assert out.flags.c_contiguous and out.dtype == self.dtype
        if self._torch is None:
            flat = out.reshape(-1)  # a view: `out` is C-contiguous
            if flat.size < _PARALLEL_MIN:
                self._rngs[0].standard_normal(out=flat)
            else:
                parts = np.array_split(flat, _STREAMS)
                jobs = [
                    _pool().submit(g.standard_normal, out=a)
                    for g, a in zip(self._rngs, parts, strict=True)
                ]

                def wait() -> np.ndarray:
                    for j in jobs:
                        j.result()
                    return out

                return wait
        else:
            t = self._torch.from_numpy(out)  # shares memory, no copy
            self._torch.randn(t.shape, out=t, generator=self._gen, dtype=t.dtype)
        return lambda: out


def check_common(
    model: Any,
    *,
    n_per_class: Any,
    sigma: Any,
    n_paths: Any,
    init_spread: Any,
    dtype: Any,
    method: Any,
    methods: tuple[str, ...],
) -> tuple[int, int, np.ndarray, float]:
    """Validate the arguments both simulators share; returns (n, n_paths, Σ^{1/2}, spread)."""
    if not isinstance(model, LEModel):
        raise TypeError(f"`model` must be an LEModel, got {type(model).__name__}")
    for name, v in (("n_per_class", n_per_class), ("n_paths", n_paths)):
        if isinstance(v, bool) or not isinstance(v, int | np.integer):
            raise TypeError(f"`{name}` must be an int, got {type(v).__name__}")
        if v < 1:
            raise ValueError(f"`{name}` must be >= 1, got {v}")
    p = model.n_features
    S = np.asarray(sigma, dtype=float)
    if S.ndim == 0:
        if not np.isfinite(S) or S < 0:
            raise ValueError(f"`sigma` must be a finite scalar >= 0, got {sigma!r}")
        S = float(S) * np.eye(p)
    elif S.shape != (p, p):
        raise ValueError(f"`sigma` must be a scalar or a ({p}, {p}) matrix Σ^(1/2), got {S.shape}")
    elif not np.all(np.isfinite(S)):
        raise ValueError("`sigma` must be finite")
    if isinstance(init_spread, bool) or not isinstance(init_spread, int | float | np.floating):
        raise TypeError(f"`init_spread` must be a float, got {type(init_spread).__name__}")
    if not (np.isfinite(init_spread) and init_spread >= 0):
        raise ValueError(f"`init_spread` must be finite and >= 0, got {init_spread!r}")
    if dtype not in ("float64", "float32"):
        raise ValueError(f"`dtype` must be 'float64' or 'float32', got {dtype!r}")
    if method not in methods:
        raise ValueError(f"`method` must be one of {methods}, got {method!r}")
    return int(n_per_class), int(n_paths), S, float(init_spread)


def initial_particles(
    src: NormalSource, x0: np.ndarray, n_paths: int, n: int, spread: float
) -> np.ndarray:
    """X_i^k(0) = x0[k] + spread·ξ_i^k, ξ ~ N(0, I_p) i.i.d.: (n_paths, K, n, p)."""
    K, p = x0.shape
    X = np.broadcast_to(x0[None, :, None, :], (n_paths, K, n, p)).astype(src.dtype)
    if spread > 0:
        X += spread * src.normal((n_paths, K, n, p))
    return X


def resolve_saves(
    requested: Any, n_points: int, bytes_per_point: int, budget: int, what: str
) -> np.ndarray | None:
    """Default save rule: every point when it fits ``budget``, else the last one (warning)."""
    if requested is not None:
        return None
    if n_points * bytes_per_point <= budget:
        return np.arange(n_points)
    warnings.warn(
        f"saving particles at all {n_points} {what} needs "
        f"{n_points * bytes_per_point / 2**20:.0f} MiB > budget {budget / 2**20:.0f} MiB; "
        f"keeping the final {what[:-1]} only (pass `save_{what}` to choose)",
        stacklevel=3,
    )
    return np.array([n_points - 1])


# ---------------------------------------------------------------- the simulator
def simulate_sde(
    model: LEModel,
    ts: Any,
    *,
    n_per_class: int,
    sigma: float | np.ndarray | Callable,
    n_paths: int = 1,
    x0: Any,
    seed: int | None,
    save_ts: Any = None,
    init_spread: float = 0.0,
    method: str = "split",
    dtype: str = "float64",
    max_save_bytes: int = DEFAULT_SAVE_BYTES,
    dW: Any = None,
) -> SDEResult:
    """Euler–Maruyama of the particle LE-SDE dX_i^k = (M X̄)_k dt + Σ^{1/2} dW_i^k (eq. 5).

    M(t) is evaluated once per step at the left end t_j (vectorised over all steps),
    so E[X̄(t_j)] follows the Euler recursion ∏(I + dt M(t_j)) X̄(0) exactly.

    Args:
        model: the `LEModel` giving M(t).
        ts: (T,) increasing time grid (iterations); step j goes from ts[j] to ts[j+1].
        n_per_class: n, particles per class.
        sigma: Σ^{1/2}, a scalar (isotropic) or a (p, p) matrix applied to each particle;
            or a callable σ(t) of the time grid giving an isotropic, time-varying scale
            (evaluated at the left end t_j of each step: the increment has variance
            σ(t_j)²·dt_j, the Euler–Maruyama rule).
        n_paths: independent runs, simulated together.
        x0: (K, p) class centres at ts[0]; particle i of class k starts at
            x0[k] + init_spread·ξ_i^k, ξ ~ N(0, I_p), so E X̄(0) = x0.
        seed: seed of all randomness (same seed, same machine -> bitwise-identical result).
        save_ts: times (points of ``ts``) at which particles are returned; None: every
            point of ``ts`` when that fits ``max_save_bytes``, else the final time only
            (with a warning).
        init_spread: standard deviation of the initial particles around ``x0``.
        method: "split" (class means and deviations drawn separately; K·p draws per step)
            or "particles" (every particle's increment drawn; K·n·p draws per step).
            Both are exact in law for the Euler–Maruyama scheme; see the module docstring.
        dtype: "float64" (default, numpy generator) or "float32" (torch generator, ~3×
            faster draws, ~1e-7 relative rounding; for large ``method="particles"`` runs).
        max_save_bytes: memory budget for the default ``save_ts`` rule.
        dW: optional (n_paths, T−1, K, p) increments of standard Brownian motions on
            ``ts`` (variance dt_j each) that drive the class means (``method="split"``
            only): X̄ gets Σ^{1/2} dW/√n per step. Summing increments of a fine grid gives
            those of a coarser one, which couples runs on nested grids (convergence
            tests). None: drawn from ``seed``.

    Returns:
        `SDEResult` with ``means`` (n_paths, T, K, p) and ``particles``
        (n_paths, T_saved, K, n, p).

    Raises:
        ValueError, TypeError: on bad arguments, naming them.
    """
    sigma_t = None
    if callable(sigma):
        sigma_t, sigma = sigma, 1.0
    n, n_paths, S, spread = check_common(
        model,
        n_per_class=n_per_class,
        sigma=sigma,
        n_paths=n_paths,
        init_spread=init_spread,
        dtype=dtype,
        method=method,
        methods=("split", "particles"),
    )
    x0 = model.check_x0(x0)
    t = check_ts(ts)
    K, p = model.n_classes, model.n_features
    T = t.size
    item = np.dtype(dtype).itemsize
    save_index = resolve_saves(save_ts, T, n_paths * K * n * p * item, max_save_bytes, "ts")
    if save_index is None:
        save_index = _match_times(save_ts, t)

    if dW is not None:
        if method != "split":
            raise ValueError(f"`dW` is supported by method='split' only, got {method!r}")
        dW = np.asarray(dW, dtype=float)
        if dW.shape != (n_paths, T - 1, K, p):
            raise ValueError(f"`dW` must be ({n_paths}, {T - 1}, {K}, {p}), got {dW.shape}")
        if not np.all(np.isfinite(dW)):
            raise ValueError("`dW` must be finite")
    src = NormalSource(seed, dtype)
    dts = np.diff(t)  # (T-1,)
    # Propagators P_j = I + dt_j M(t_j), transposed for row-vector paths: (T-1, Kp, Kp)
    PT = _Propagators(model, t, dtype)
    if sigma_t is not None:
        # a scalar σ(t) is a change of the noise's clock: increments of variance σ_j²·dt_j
        sig = _eval_sigma(sigma_t, t[:-1])  # (T-1,)
        if dW is not None:
            dW = dW * sig[None, :, None, None]
        dts = dts * sig**2
    ST = S.T.astype(dtype)  # noise row-vectors times Σ^{1/2}ᵀ

    X0 = initial_particles(src, x0, n_paths, n, spread)  # (n_paths, K, n, p)
    means = np.empty((n_paths, T, K, p), dtype=dtype)
    means[:, 0] = X0.mean(axis=2)
    particles = np.empty((n_paths, save_index.size, K, n, p), dtype=dtype)
    if method == "split":
        _run_split(src, PT, ST, dts, n, X0, means, particles, save_index, dW)
    else:
        _run_particles(src, PT, ST, dts, X0, means, particles, save_index)
    return SDEResult(
        ts=t, means=means, particles=particles, save_ts=t[save_index], save_index=save_index
    )


def _eval_sigma(fn: Callable, t: np.ndarray) -> np.ndarray:
    """σ(t_j) of a callable, vectorised or point by point: (T-1,) finite values >= 0."""
    try:
        v = np.broadcast_to(np.asarray(fn(t), dtype=float), t.shape).copy()
    except (TypeError, ValueError):
        v = np.array([float(fn(float(x))) for x in t])
    if not np.all(np.isfinite(v)) or np.any(v < 0):
        raise ValueError("`sigma(t)` must be finite and >= 0 on the grid")
    return v


def _match_times(save_ts: Any, t: np.ndarray) -> np.ndarray:
    s = np.atleast_1d(np.asarray(save_ts, dtype=float))
    if s.ndim != 1 or s.size == 0:
        raise ValueError(f"`save_ts` must be a non-empty 1-D array of times, got shape {s.shape}")
    idx = np.searchsorted(t, s)
    idx = np.clip(idx, 0, t.size - 1)
    # also accept the left neighbour: the time must be a grid point up to rounding
    left = np.clip(idx - 1, 0, t.size - 1)
    idx = np.where(np.abs(t[left] - s) < np.abs(t[idx] - s), left, idx)
    tol = 1e-9 * max(1.0, float(np.abs(t).max()))
    bad = np.abs(t[idx] - s) > tol
    if np.any(bad):
        raise ValueError(f"`save_ts` must be points of `ts`, got {s[bad][:3].tolist()} not in it")
    if np.any(np.diff(idx) <= 0):
        raise ValueError("`save_ts` must be strictly increasing")
    return idx


class _Propagators:
    """P_jᵀ = (I + dt_j M(t_j))ᵀ by index j, evaluated vectorised in blocks of steps.

    Blocks hold <= 64 MiB, so memory stays bounded for large K·p and long grids while
    M(t) is still computed with one vectorised `LEModel.drift` call per block.
    """

    def __init__(self, model: LEModel, t: np.ndarray, dtype: str) -> None:
        self.model, self.t, self.dtype = model, t, dtype
        d = model.n_classes * model.n_features
        self.block = max(1, _PROP_BLOCK_BYTES // (d * d * 8))
        self.lo = self.hi = 0
        self.data = None

    def __getitem__(self, j: int) -> np.ndarray:
        if not self.lo <= j < self.hi:
            self.lo, self.hi = j, min(j + self.block, self.t.size - 1)
            ts = self.t[self.lo : self.hi]
            dts = self.t[self.lo + 1 : self.hi + 1] - ts
            Ms = self.model.drift(ts)  # (block, Kp, Kp), M(t_j)
            eye = np.eye(Ms.shape[-1])
            self.data = (eye + dts[:, None, None] * Ms).transpose(0, 2, 1).astype(self.dtype)
        return self.data[j - self.lo]


def _mean_recursion(PT, ST, noise, means, j0):
    """means[:, j+1] = means[:, j] @ P_jᵀ + noise_j @ Σ^{1/2}ᵀ for the steps of ``noise``."""
    n_paths, n_steps, K, p = noise.shape
    xi = noise @ ST  # (n_paths, steps, K, p)
    flat = means.reshape(n_paths, means.shape[1], K * p)  # view, (n_paths, T, Kp)
    xi = xi.reshape(n_paths, n_steps, K * p)
    for j in range(n_steps):
        np.matmul(flat[:, j0 + j], PT[j0 + j], out=flat[:, j0 + j + 1])
        flat[:, j0 + j + 1] += xi[:, j]


def _run_split(src, PT, ST, dts, n, X0, means, particles, save_index, dW=None):
    n_paths, K, _, p = X0.shape
    T = dts.size + 1
    # Mean increments ΔW̄_j ~ N(0, dt_j / n): (n_paths, T-1, K, p)
    if dW is None:
        noise = src.normal((n_paths, T - 1, K, p))
        noise *= np.sqrt(dts / n).astype(noise.dtype)[None, :, None, None]
    else:
        noise = (dW / math.sqrt(n)).astype(src.dtype)
    _mean_recursion(PT, ST, noise, means, 0)
    # Deviations D_i = X_i − X̄: start at X0 − X̄(0), then Σ^{1/2}·(projected Brownian).
    D = X0 - means[:, 0][:, :, None, :]  # (n_paths, K, n, p)
    t_cum = np.concatenate([[0.0], np.cumsum(dts)])
    last = 0
    for s, j in enumerate(save_index):
        if j > last:
            G = src.normal((n_paths, K, n, p))
            G -= G.mean(axis=2, keepdims=True)  # project out the mean: cov (I − 11ᵀ/n)
            G *= math.sqrt(t_cum[j] - t_cum[last])
            D += G @ ST
            last = j
        particles[:, s] = means[:, j][:, :, None, :] + D


def _sum_particles(Z: np.ndarray) -> np.ndarray:
    """Sum over the particle axis of (..., n, p) by pairwise halving.

    ``Z.sum(axis=-2)`` walks rows of length p (= 3) and runs at ~4 ns per number;
    halving adds contiguous runs of length n·p/2 at ~0.3 ns. torch's sum is fast too, but
    its OpenMP workers spin after each call and slow the threaded numpy generator, so it
    is used only on the float32 path (whose generator is torch's).
    """
    if Z.dtype == np.float32:  # the float32 path draws with torch already: use its mean
        import torch

        return torch.from_numpy(Z).sum(dim=-2).numpy()
    while Z.shape[-2] > 1:
        n = Z.shape[-2]
        h = n // 2
        S = Z[..., :h, :] + Z[..., h : 2 * h, :]
        if n % 2:
            S[..., 0, :] += Z[..., 2 * h, :]
        Z = S
    return Z[..., 0, :]


def _run_particles(src, PT, ST, dts, X0, means, particles, save_index):
    n_paths, K, n, p = X0.shape
    T = dts.size + 1
    per_step = n_paths * K * n * p
    chunk = max(1, _CHUNK_BYTES // (per_step * src.dtype.itemsize))
    buf = np.empty((n_paths, chunk, K, n, p), dtype=src.dtype)
    sq = np.sqrt(dts).astype(src.dtype)
    R = np.zeros((n_paths, K, n, p), dtype=src.dtype)  # Σ_j sqrt(dt_j) ζ_j so far
    # Particle = X0 + (drift sums, the same for all particles of a class) + R Σ^{1/2}ᵀ;
    # drift sums = X̄(t) − X̄(0) − mean_i(R) Σ^{1/2}ᵀ, so the means carry them.
    saves = dict(zip(save_index.tolist(), range(save_index.size), strict=True))

    def save(j):
        s = saves.get(j)
        if s is not None:
            Rc = R - R.mean(axis=2, keepdims=True)
            dev0 = X0 - means[:, 0][:, :, None, :]
            particles[:, s] = means[:, j][:, :, None, :] + dev0 + Rc @ ST

    save(0)
    j = 0
    stops = sorted(set(save_index.tolist()) | {T - 1})
    for stop in stops:
        while j < stop:
            m = min(chunk, stop - j)
            Z = src.fill(buf[:, :m]) if m == chunk else src.fill(np.empty_like(buf[:, :m]))
            w = sq[j : j + m]
            if np.all(w == w[0]):  # uniform steps: scale the (smaller) reductions instead
                R += w[0] * Z.sum(axis=1)
                zbar = (w[0] / n) * _sum_particles(Z)  # (n_paths, m, K, p)
            else:
                Z *= w[None, :, None, None, None]
                R += Z.sum(axis=1)
                zbar = _sum_particles(Z) / n
            _mean_recursion(PT, ST, zbar, means, j)
            j += m
        save(j)

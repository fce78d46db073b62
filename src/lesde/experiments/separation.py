"""The separation phase transition of Theorems 2.1 and 3.1 as a finite-time experiment.

Why this file is long: four parts (a–d) of one experiment share the config, the seeds
and the resumable JSON table; each part is a short function.

Two sweeps, each a fraction of independent LE-SDE runs whose particles are (pairwise)
linearly separable at the final time, with 95% Wilson intervals:

(a) Theorem 2.1: K = 2, p = 1, constant α, β, swept over δ = α − β (threshold 0).
(b) Theorem 3.1: K = 3, p ≥ K (default 3), I-model, α(t) = c(1+t)^{−s}, β = 0 (so
    γ = α), swept over the decay exponent s (threshold 1).
(c) The theorem as a check of the estimator: on LE-SDE runs of (b)'s setting (K = 3,
    I- and L-model), the estimation chain a user applies to a training record
    (class means over runs → `estimate_ab` → `lesde.estimate.tail` with a bootstrap over
    runs) gives r̂_γ with its interval against the true s, and its three-valued verdict
    against the simulated separability of the same runs.
(d) The boundary r_γ = 1, where trained networks sit: γ(t) = c/(1+t) for several c/K
    and a constant or decaying noise σ(t) = (1+t)^(−q). The tail index is 1 in every
    case; the margin-to-noise exponent (`lesde.estimate.diffusion`), estimated from the
    runs' class means and spreads, against its true value c/K − (1/2 − q), and its verdict
    against the simulated separability.

The theorems are statements as t → ∞; at a finite horizon T the crossover sits where the
class-mean gap (closed form, docs/math.md §3) equals the Brownian width of the clouds
(~σ√T times the range of n Gaussians). The defaults put that crossover close to the
asymptotic threshold; each choice is explained beside it in `Config`. The expensive
parts are cheap here: `simulate_sde(method="split")` draws K·p Gaussians per step and the
particles only at the final time.

Results are written incrementally (one grid point at a time, atomically) to
``separation.json``; a re-run with the same config skips the points already there.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lesde._validation import check_int, check_positive_float, check_seed
from lesde.analysis.separation import is_separable
from lesde.model import LEModel
from lesde.simulate.sde import simulate_sde

__all__ = ["Config", "run", "wilson_interval", "separation_fraction", "finite_time_crossover"]


def _default_deltas() -> tuple[float, ...]:
    # Dense around the threshold 0 and the finite-T crossovers (0.0006-0.017, see Config).
    return (-0.02, -0.01, -0.005, 0.0, 0.001, 0.002, 0.003, 0.004, 0.005, 0.0075, 0.01,
            0.015, 0.02, 0.03)  # fmt: skip


def _default_exponents() -> tuple[float, ...]:
    return (0.6, 0.7, 0.8, 0.9, 0.95, 0.97, 0.99, 1.0, 1.01, 1.03, 1.05, 1.1, 1.2, 1.3, 1.4)


@dataclass(frozen=True)
class Config:
    """Settings of the two sweeps; every default is explained.

    Part (a), Theorem 2.1 (K = 2, p = 1, W = 1/2):
        deltas_a: the values of α − β. α = δ/2, β = −δ/2, so α + β = 0 and the grand mean
            stays put: only the class gap (c₁ − c₂)·exp(δt/2) moves (paper §2.2).
        horizons_a: T ∈ {1e2, 1e3, 1e4} iterations, one curve each. The finite-T
            crossover is δ_T = (2/T)·log(width/gap₀) ≈ 0.017, 0.004, 0.0006: it moves to
            the threshold 0 like log(T)/T, which is what the three curves show.
        dt_a: Euler–Maruyama step (iterations); dt·|α| ≤ 0.01 on the grid.
        centres_a: class centres (c₁, c₂) = (1, −1): gap₀ = 2.
        sigma_a: σ = 0.1, so the clouds' Brownian std at T = 1e3 is σ√T ≈ 3.2: they
            overlap for δ ≤ 0 (gap ≤ 2) and the crossover gap is ≈ 15.
    Part (b), Theorem 3.1 (K = 3, I-model, W = 1/3):
        n_features_b: p ≥ K; the class centres span a (K−1)-plane, the noise fills all p
            dimensions (larger p makes Gaussian clouds easier to separate, so the s = 1
            crossover shifts slightly upwards at finite n).
        exponents_b: the values of s in γ(t) = c(1+t)^{−s}.
        c_b: c = K/2 makes s = 1 the marginal case at every horizon: the centred class
            means grow as exp(A(t)/K) = (1+t)^{c/K} = √(1+t), the same rate as the
            Brownian spread, so the finite-T crossover sits at s = 1 rather than drifting
            towards it like 1/log T (for another c it sits near s = 1 + 2c/(K log T) − …).
        horizons_b: T ∈ {1e3, 1e6}, one curve each: the transition sharpens with T. At
            T = 1e6 and s = 1 ± 0.05 the gap-to-width ratio is already ×20 and ×0.15 of
            its value at s = 1; s ≥ 0.6 keeps exp(A/K) < 1e140 (float64).
        n_steps_b: steps on a geometric grid (dt ∝ 1 + t, rates decay in t): α·dt ≤ 0.16
            at T = 1e6 (where the crossover is, α·dt ≈ c·log(1+T)/n_steps ≈ 0.005).
        radius_b: class centres r·(e_k − 1/K); their distance r√2 ≈ 4.2 Brownian stds
            (σ√(1+t)) at s = 1, between "overlapping" and "apart" for n = 100.
        sigma_b: σ (the scale cancels with radius_b; kept for clarity).
    Part (c), the estimator against the truth (c_b, radius_b, sigma_b as in (b)):
        exponents_c: true s on both sides of 1.
        models_c: H models simulated and inverted ("I", "L").
        horizon_c: T = 1e4. The class means over runs carry noise σ√(t/(n·runs)); a
            deviation that converges (s > 1) sinks into it at long horizons: at 1e4 it
            is still ≥ 20× the noise for s ≤ 1.4 (at 1e6 only ~2× for s = 1.4).
        n_steps_c: geometric grid (every 10th point is a checkpoint of the estimate).
        n_runs_c: runs ("trials") whose mean is X̄ and which the bootstrap resamples.
        n_boot_c: bootstrap resamples. The tail window is t ∈ [10, T], uniform in log t
            on this grid.
    Part (d), the margin-to-noise ratio at the boundary (radius_b as in (b), p = 3):
        cases_d: (c/K, q) pairs: γ = c/(1+t), σ(t) = (1+t)^(−q). The ratio's exponent is
            c/K − (1/2 − q): (0.3, 0), (0.4, 0), (0.15, 0.25) below 0, (0.6, 0), (0.7, 0),
            (0.4, 0.25) above it, so c/K = 0.4 appears on both sides, decided by the noise.
        horizon_d: T = 1e6 on a geometric grid of 2000 steps, 41 checkpoints; the trend
            is fitted on t ∈ [1e3, T].
        n_runs_d: runs ("trials") with n_per_class particles each.
    All:
        n_runs: independent LE-SDE runs per grid point (200: Wilson 95% half-width ≤ 0.07).
        n_per_class: n particles per class.
        init_spread: std of the initial particles around their class centre.
        seed: root seed; grid point i uses SeedSequence(seed).spawn(...)[i].
    """

    deltas_a: tuple[float, ...] = field(default_factory=_default_deltas)
    horizons_a: tuple[float, ...] = (1e2, 1e3, 1e4)
    dt_a: float = 1.0
    centres_a: tuple[float, float] = (1.0, -1.0)
    sigma_a: float = 0.1
    exponents_b: tuple[float, ...] = field(default_factory=_default_exponents)
    c_b: float = 1.5
    horizons_b: tuple[float, ...] = (1e3, 1e6)
    n_steps_b: int = 4000
    radius_b: float = 3.0
    n_features_b: int = 3
    sigma_b: float = 1.0
    exponents_c: tuple[float, ...] = (0.6, 0.8, 0.9, 1.1, 1.2, 1.4)
    models_c: tuple[str, ...] = ("I", "L")
    horizon_c: float = 1e4
    n_steps_c: int = 2000
    n_runs_c: int = 100
    n_boot_c: int = 200
    cases_d: tuple[tuple[float, float], ...] = (
        (0.3, 0.0), (0.4, 0.0), (0.6, 0.0), (0.7, 0.0), (0.15, 0.25), (0.4, 0.25),
    )  # fmt: skip
    horizon_d: float = 1e6
    n_runs_d: int = 20
    n_runs: int = 200
    n_per_class: int = 100
    init_spread: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("deltas_a", "exponents_b", "centres_a", "horizons_a", "horizons_b"):
            v = tuple(float(x) for x in getattr(self, name))
            object.__setattr__(self, name, v)
            if len(v) == 0 or not all(math.isfinite(x) for x in v):
                raise ValueError(f"`{name}` must be a non-empty tuple of finite floats")
        if any(s <= 0 for s in self.exponents_b):
            raise ValueError(f"`exponents_b` must be > 0, got {self.exponents_b}")
        for name in ("dt_a", "sigma_a", "sigma_b", "c_b", "radius_b"):
            check_positive_float(name, getattr(self, name))
        for name in ("horizons_a", "horizons_b"):
            if any(h <= 0 for h in getattr(self, name)):
                raise ValueError(f"`{name}` must be > 0, got {getattr(self, name)}")
        if any(m not in ("I", "L") for m in self.models_c) or not self.models_c:
            raise ValueError(f"`models_c` must be a non-empty tuple of 'I'/'L', got "
                             f"{self.models_c!r}")  # fmt: skip
        object.__setattr__(self, "exponents_c", tuple(float(x) for x in self.exponents_c))
        if any(not (math.isfinite(x) and x > 0) for x in self.exponents_c):
            raise ValueError(f"`exponents_c` must be finite floats > 0, got {self.exponents_c}")
        if not (math.isfinite(self.horizon_c) and self.horizon_c > 10):
            raise ValueError(f"`horizon_c` must be a finite float > 10, got {self.horizon_c!r}")
        for name in ("n_steps_c", "n_runs_c", "n_boot_c"):
            check_int(name, getattr(self, name), low=10)
        for pair in self.cases_d:
            if len(pair) != 2 or not (pair[0] > 0 and pair[1] >= 0):
                raise ValueError(f"`cases_d` must be (c/K > 0, q >= 0) pairs, got {pair!r}")
        if (
            isinstance(self.n_runs_d, bool)
            or not isinstance(self.n_runs_d, int)
            or (self.n_runs_d < 2)
        ):
            raise ValueError(f"`n_runs_d` must be an int >= 2, got {self.n_runs_d!r}")
        if self.dt_a > min(self.horizons_a):
            raise ValueError(f"`dt_a` must be <= min(horizons_a), got {self.dt_a}")
        if isinstance(self.n_features_b, bool) or not isinstance(self.n_features_b, int):
            raise TypeError(f"`n_features_b` must be an int, got {self.n_features_b!r}")
        if self.n_features_b < 3:
            raise ValueError(f"`n_features_b` must be >= K = 3, got {self.n_features_b}")
        for name in ("n_steps_b", "n_runs", "n_per_class"):
            check_int(name, getattr(self, name))
        check_seed("seed", self.seed)
        if not (math.isfinite(self.init_spread) and self.init_spread >= 0):
            raise ValueError(f"`init_spread` must be >= 0, got {self.init_spread!r}")

    @classmethod
    def quick(cls, **overrides: Any) -> Config:
        """A few-second version (fewer runs, coarser grids) for tests and smoke runs."""
        base = dict(
            deltas_a=(-0.01, 0.0, 0.01, 0.02),
            horizons_a=(1e3,),
            exponents_b=(0.7, 1.0, 1.3),
            horizons_b=(1e6,),
            n_steps_b=1000,
            n_runs=30,
            n_per_class=50,
            exponents_c=(0.7, 1.3),
            models_c=("L",),
            n_runs_c=30,
            n_steps_c=1000,
            n_boot_c=100,
            cases_d=((0.3, 0.0), (0.7, 0.0)),
            n_runs_d=10,
        )
        base.update(overrides)
        return cls(**base)


# ------------------------------------------------------------------ statistics
def wilson_interval(k: Any, n: Any, z: float = 1.96) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval for a binomial proportion k/n (95% for z = 1.96).

    Returns:
        (lo, hi), arrays of the broadcast shape of k and n.
    """
    k = np.asarray(k, dtype=float)
    n = np.asarray(n, dtype=float)
    if np.any(n <= 0) or np.any(k < 0) or np.any(k > n):
        raise ValueError(f"`k` must be in [0, n] with n > 0, got k={k}, n={n}")
    ph = k / n
    den = 1 + z**2 / n
    centre = (ph + z**2 / (2 * n)) / den
    half = z * np.sqrt(ph * (1 - ph) / n + z**2 / (4 * n**2)) / den
    return np.clip(centre - half, 0, 1), np.clip(centre + half, 0, 1)


# ------------------------------------------------------------------ the sweeps
def model_a(delta: float) -> LEModel:
    """Part (a): K = 2, p = 1, α = δ/2, β = −δ/2."""
    return LEModel(2, 1, alpha=delta / 2, beta=-delta / 2)


def model_b(s: float, c: float, p: int = 3) -> LEModel:
    """Part (b): K = 3, p features, I-model, α(t) = c(1+t)^{−s}, β = 0."""
    return LEModel(3, p, alpha=lambda t: c * (1.0 + np.asarray(t)) ** (-s), beta=0.0, H="I")


def grid_a(cfg: Config, horizon: float) -> np.ndarray:
    n = max(1, round(horizon / cfg.dt_a))
    return np.linspace(0.0, horizon, n + 1)


def grid_b(cfg: Config, horizon: float) -> np.ndarray:
    # geometric in 1 + t: dt_j = (1 + t_j)(q − 1), q = (1 + T)^{1/n_steps}
    return np.expm1(np.linspace(0.0, np.log1p(horizon), cfg.n_steps_b + 1))


def centres_b(cfg: Config) -> np.ndarray:
    """Class centres r·(e_k − 1/K) in the first K coordinates: (K, p)."""
    K = 3
    x0 = np.zeros((K, cfg.n_features_b))
    x0[:, :K] = cfg.radius_b * (np.eye(K) - 1.0 / K)
    return x0


def separation_fraction(
    model: LEModel,
    ts: np.ndarray,
    x0: np.ndarray,
    *,
    sigma: float,
    n_runs: int,
    n_per_class: int,
    init_spread: float,
    seed: int,
) -> int:
    """Number of runs (of ``n_runs``) whose particles are separable at ts[-1]."""
    res = simulate_sde(
        model,
        ts,
        n_per_class=n_per_class,
        sigma=sigma,
        n_paths=n_runs,
        x0=x0,
        seed=seed,
        save_ts=[ts[-1]],
        init_spread=init_spread,
    )
    X = res.particles[:, -1]  # (n_runs, K, n, p)
    K, n, p = X.shape[1:]
    y = np.repeat(np.arange(K), n)
    return int(sum(is_separable(X[r].reshape(K * n, p), y) for r in range(n_runs)))


def finite_time_crossover(cfg: Config, horizon: float) -> float:
    """Part (a): the δ where the closed-form gap (c₁ − c₂)e^{δT/2} equals the expected
    range-based width 2·q_n·√(σ²T + spread²), q_n = Φ⁻¹(1 − 1/(n + 1)) (a rough guide,
    drawn on the plot)."""
    from scipy.stats import norm

    q = norm.ppf(1 - 1 / (cfg.n_per_class + 1))
    width = 2 * q * math.sqrt(cfg.sigma_a**2 * horizon + cfg.init_spread**2)
    gap0 = abs(cfg.centres_a[0] - cfg.centres_a[1])
    return 2.0 / horizon * math.log(width / gap0)


def model_c(s: float, c: float, H: str, p: int = 3) -> LEModel:
    """Part (c): (b)'s rates under the I- or L-model (the L-model needs p = K = 3)."""
    return LEModel(3, 3 if H == "L" else p,
                   alpha=lambda t: c * (1.0 + np.asarray(t)) ** (-s), beta=0.0, H=H)  # fmt: skip


def estimate_point(cfg: Config, s: float, H: str, seed: int) -> dict[str, Any]:
    """Part (c) at one s: simulate, estimate r̂_γ with its interval, measure separability.

    Returns:
        ``s_hat``, ``lo``, ``hi`` (bootstrap over runs, 95 %), ``profile`` [lo, hi] (the
        fit's own interval), ``verdict``, ``n_separable`` of ``n_runs``.
    """
    import warnings

    from lesde.estimate.ab import estimate_ab
    from lesde.estimate.bootstrap import bootstrap_tail_indices, verdict
    from lesde.estimate.tail import tail_fit

    K = 3
    p = 3 if H == "L" else cfg.n_features_b
    ts = np.expm1(np.linspace(0.0, np.log1p(cfg.horizon_c), cfg.n_steps_c + 1))
    x0 = np.zeros((K, p))
    x0[:, :K] = cfg.radius_b * (np.eye(K) - 1.0 / K)
    res = simulate_sde(
        model_c(s, cfg.c_b, H, p), ts, n_per_class=cfg.n_per_class, sigma=cfg.sigma_b,
        n_paths=cfg.n_runs_c, x0=x0, seed=seed, save_ts=[ts[-1]], init_spread=cfg.init_spread,
    )  # fmt: skip
    idx = np.arange(0, ts.size, 10)
    tg, M = ts[idx], res.means[:, idx]  # (C,), (runs, C, K, p)
    t_range = (10.0, float(ts[-1]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # |ratio| notes of the inversion
        ab = estimate_ab(M.mean(axis=0), tg, model=H, t0_index=0)
    fit = tail_fit(tg, ab.A - ab.B, t_range=t_range)
    boot = bootstrap_tail_indices(M, np.ones(M.shape[:3]), tg, t0_index=0, t_range=t_range,
                                  models=(H,), n_boot=cfg.n_boot_c, seed=seed)[H]  # fmt: skip
    lo, hi = boot["r_gamma_ci"]
    X = res.particles[:, -1]  # (runs, K, n, p)
    y = np.repeat(np.arange(K), cfg.n_per_class)
    n_sep = sum(is_separable(X[r].reshape(K * cfg.n_per_class, p), y) for r in range(X.shape[0]))
    return {
        "s_hat": fit.s, "lo": lo, "hi": hi, "profile": [fit.lo, fit.hi],
        "verdict": verdict(lo, hi), "n_separable": int(n_sep), "n_runs": cfg.n_runs_c,
    }  # fmt: skip


def margin_point(cfg: Config, c_over_k: float, q: float, seed: int) -> dict[str, Any]:
    """Part (d) for one (c/K, q): the margin-to-noise exponent and verdict vs the truth.

    Returns:
        ``slope``, ``lo``, ``hi``, ``expected`` (c/K − (1/2 − q)), ``verdict``,
        ``s_hat`` (the tail index of γ, ≈ 1), ``n_separable`` of ``n_runs``.
    """
    import warnings

    from lesde.estimate.ab import estimate_ab
    from lesde.estimate.diffusion import estimate_diffusion, margin_to_noise
    from lesde.estimate.tail import tail_fit

    K, p, n = 3, 3, cfg.n_per_class
    c = c_over_k * K
    model = LEModel(K, p, alpha=lambda t: c / (1.0 + np.asarray(t)), beta=0.0, H="I")
    ts = np.expm1(np.linspace(0.0, np.log1p(cfg.horizon_d), 2001))
    save = ts[::50]
    sigma = (lambda t: (1.0 + np.asarray(t)) ** (-q)) if q else 1.0
    res = simulate_sde(
        model, ts, n_per_class=n, sigma=sigma, n_paths=cfg.n_runs_d,
        x0=cfg.radius_b * (np.eye(K) - 1.0 / K), seed=seed, save_ts=save,
        init_spread=cfg.init_spread,
    )  # fmt: skip
    X = res.particles  # (R, C, K, n, p)
    R, C = X.shape[:2]
    feats = X.reshape(R, C, K * n, p)
    y = np.repeat(np.arange(K), n)
    xbar = X.mean(axis=3).mean(axis=0)  # (C, K, p)
    i0 = 4  # t ≈ 3: the means have moved off their exact start
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ab = estimate_ab(xbar, save, model="I", t0_index=i0)
    gap0 = float(min(np.linalg.norm(xbar[i0, k] - xbar[i0, m]) for k in range(K) for m in range(k)))
    d = estimate_diffusion(save, feats, y, K)
    t_range = (1e3, float(save[-1]))
    mn = margin_to_noise(save, d.V_trials, gap0, ab.A - ab.B, K, t_range=t_range, seed=seed)
    fit = tail_fit(save, ab.A - ab.B, t_range=t_range)
    n_sep = sum(is_separable(feats[r, -1], y) for r in range(R))
    return {
        "slope": mn.slope, "lo": mn.slope_ci[0], "hi": mn.slope_ci[1],
        "expected": c_over_k - (0.5 - q), "verdict": mn.verdict, "s_hat": fit.s,
        "n_separable": int(n_sep), "n_runs": R,
    }  # fmt: skip


def _points(cfg: Config) -> list[tuple[str, float, float]]:
    return (
        [("a", T, d) for T in cfg.horizons_a for d in cfg.deltas_a]
        + [("b", T, s) for T in cfg.horizons_b for s in cfg.exponents_b]
        + [(f"c{H}", cfg.horizon_c, s) for H in cfg.models_c for s in cfg.exponents_c]
        + [(f"d{q!r}", cfg.horizon_d, ck) for ck, q in cfg.cases_d]
    )


def _key(part: str, horizon: float, x: float) -> str:
    return f"{part}:{horizon!r}:{x!r}"


def _atomic_write_json(path: Path, obj: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2))
    os.replace(tmp, path)


def run(
    cfg: Config,
    out: str | os.PathLike | None = None,
    *,
    progress: Callable[[Iterable], Iterable] | None = None,
    plot: bool = True,
) -> dict:
    """Run both sweeps; write ``separation.json`` (and ``separation.png``) under ``out``.

    Args:
        cfg: the `Config`.
        out: output directory (created); None: nothing is written.
        progress: optional wrapper of the grid iterator (e.g. ``tqdm``).
        plot: also draw ``separation.png``.

    Returns:
        The JSON table as a dict: ``config``, ``a`` and ``b`` with, per grid point,
        ``x``, ``n_separable``, ``n_runs``, ``fraction``, ``lo``, ``hi``.
    """
    if not isinstance(cfg, Config):
        raise TypeError(f"`cfg` must be a separation.Config, got {type(cfg).__name__}")
    path = None
    done: dict[str, Any] = {}
    config_json = dataclasses.asdict(cfg)
    if out is not None:
        Path(out).mkdir(parents=True, exist_ok=True)
        path = Path(out) / "separation.json"
        if path.exists():
            old = json.loads(path.read_text())
            if old.get("config") == json.loads(json.dumps(config_json)):
                done = dict(old.get("_done", {}))  # resume: same config

    points = _points(cfg)
    seeds = np.random.SeedSequence(cfg.seed).spawn(len(points))
    it = list(enumerate(points))
    for i, (part, T, x) in progress(it) if progress else it:
        key = _key(part, T, x)
        if key in done:
            continue
        seed = int(seeds[i].generate_state(1)[0])
        common = dict(n_runs=cfg.n_runs, n_per_class=cfg.n_per_class, seed=seed)
        if part.startswith("c"):
            done[key] = estimate_point(cfg, x, part[1], seed)
        elif part.startswith("d"):
            done[key] = margin_point(cfg, x, float(part[1:]), seed)
        elif part == "a":
            x0 = np.array(cfg.centres_a)[:, None]  # (2, 1)
            done[key] = separation_fraction(
                model_a(x), grid_a(cfg, T), x0, sigma=cfg.sigma_a,
                init_spread=cfg.init_spread, **common,
            )  # fmt: skip
        else:
            done[key] = separation_fraction(
                model_b(x, cfg.c_b, cfg.n_features_b), grid_b(cfg, T), centres_b(cfg),
                sigma=cfg.sigma_b,
                init_spread=cfg.init_spread, **common,
            )  # fmt: skip
        if path is not None:
            _atomic_write_json(path, {"config": config_json, "_done": done})

    table = _table(cfg, done)
    table["config"] = config_json
    table["_done"] = done
    if path is not None:
        _atomic_write_json(path, table)
        if plot:
            from lesde.plots.separation import separation_figure

            separation_figure(table, Path(out) / "separation.png")
    return table


def _table(cfg: Config, done: dict[str, Any]) -> dict:
    """The separation table from the finished grid points: parts a, b (curves), c, d."""
    out: dict[str, Any] = {
        "c": {
            "x_name": "s",
            "threshold": 1.0,
            "horizon": cfg.horizon_c,
            "rows": _rows_c(cfg, done),
        },
        "d": {"horizon": cfg.horizon_d, "rows": _rows_d(cfg, done)},
    }
    for part, xs, horizons, thr, name in (
        ("a", cfg.deltas_a, cfg.horizons_a, 0.0, "alpha - beta"),
        ("b", cfg.exponents_b, cfg.horizons_b, 1.0, "s"),
    ):
        out[part] = {"x_name": name, "threshold": thr, "x": list(xs), "n_runs": cfg.n_runs,
                     "curves": [_curve(cfg, done, part, T, xs) for T in horizons]}  # fmt: skip
    return out


def _with_truth(r: dict[str, Any]) -> dict[str, Any]:
    """A row's simulated separable fraction against its verdict."""
    r["fraction"] = r["n_separable"] / r["n_runs"]
    truth = "separable" if r["fraction"] >= 0.5 else "not separable"
    r["verdict_matches"] = r["verdict"] == truth
    return r


def _rows_c(cfg: Config, done: dict[str, Any]) -> list[dict[str, Any]]:
    """Part c: the tail-index estimator on LE-SDE runs of known s, per H model."""
    return [_with_truth({**done[_key(f"c{H}", cfg.horizon_c, s)], "model": H, "s": s})
            for H in cfg.models_c for s in cfg.exponents_c]  # fmt: skip


def _rows_d(cfg: Config, done: dict[str, Any]) -> list[dict[str, Any]]:
    """Part d: the margin-to-noise exponent at the boundary, per (c/K, q)."""
    return [_with_truth({**done[_key(f"d{q!r}", cfg.horizon_d, ck)], "c_over_k": ck, "q": q})
            for ck, q in cfg.cases_d]  # fmt: skip


def _curve(cfg: Config, done: dict[str, Any], part: str, T: float, xs) -> dict[str, Any]:
    """Parts a, b: the separable fraction against x at horizon T, with Wilson bands."""
    k = np.array([done[_key(part, T, x)] for x in xs])
    lo, hi = wilson_interval(k, cfg.n_runs)
    curve = {"horizon": T, "n_separable": k.tolist(), "fraction": (k / cfg.n_runs).tolist(),
             "lo": lo.tolist(), "hi": hi.tolist()}  # fmt: skip
    if part == "a":
        curve["finite_time_crossover"] = finite_time_crossover(cfg, T)
    return curve

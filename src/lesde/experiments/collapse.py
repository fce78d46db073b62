"""Neural-collapse demo (paper Proposition 3.4, docs/math.md §6).

Under the L-model (p = K) with γ(t) > 0 and B(t) < 0 eventually, the normalised class
means {X̄^k/‖X̄^k‖} tend to a simplex ETF. Here α(t) = c(1+t)^{−s} and β(t) = −b·α(t)
with 0 < b < 1/(K−1), so γ = α·min(1 + b, 1 − (K−1)b) > 0 and B(t) = −b·A(t) < 0 for t > 0.
The demo tracks, on a geometric time grid:

* the ETF deviation of X̄^k/‖X̄^k‖ from the closed form (LE-ODE),
* its median over LE-SDE paths (class means of ``n_per_class`` noisy particles each),
* the median NC1 of the particles at a few saved times.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lesde.analysis.collapse import etf_deviation, neural_collapse
from lesde.closed_form import closed_form
from lesde.model import LEModel
from lesde.simulate.sde import simulate_sde

__all__ = ["Config", "run", "make_model", "summary"]


@dataclass(frozen=True)
class Config:
    """Settings of the collapse demo.

    Args:
        n_classes: K (p = K, the L-model's logits).
        c: scale of α(t) = c(1+t)^{−s} (per iteration). With c = 0.1, s = 0.5, T = 1e5,
            A(T) ≈ 63: the sum of the margins grows as e^{(A−B)/K} ≈ e^{29}, their
            differences as e^{(A+B/(K−1))/K}, so the differences relative to the sum (and
            the ETF deviation) fall like e^{−|B|(1+1/(K−1))/K} ≈ e^{−12.6} (docs/math.md §3).
        s: decay exponent of α; s < 1 keeps γ = ω(1/t) (separation, Theorem 3.1).
        b: β = −b·α, 0 < b < 1/(K−1): γ > 0 and B < 0. The larger b (more negative B),
            the faster the collapse; b = 0.4 keeps γ = 0.2·α > 0 for K = 3.
        horizon: T, iterations.
        n_steps: Euler–Maruyama steps on a grid geometric in 1 + t (α·dt ≤ 0.09).
        n_paths: LE-SDE paths.
        n_per_class: particles per class.
        sigma: σ, the particles' noise scale.
        seed: root seed (x0 and the paths).
    """

    n_classes: int = 3
    c: float = 0.1
    s: float = 0.5
    b: float = 0.4
    horizon: float = 1e5
    n_steps: int = 4000
    n_paths: int = 50
    n_per_class: int = 100
    sigma: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.n_classes, bool) or not isinstance(self.n_classes, int):
            raise TypeError(f"`n_classes` must be an int, got {type(self.n_classes).__name__}")
        if self.n_classes < 2:
            raise ValueError(f"`n_classes` must be >= 2, got {self.n_classes}")
        if not 0 < self.b < 1 / (self.n_classes - 1):
            raise ValueError(
                f"`b` must be in (0, {1 / (self.n_classes - 1):g}) so that γ > 0 and B < 0, "
                f"got {self.b}"
            )
        for name in ("c", "s", "horizon", "sigma"):
            v = getattr(self, name)
            if not (isinstance(v, int | float) and math.isfinite(v) and v > 0):
                raise ValueError(f"`{name}` must be a finite float > 0, got {v!r}")
        for name in ("n_steps", "n_paths", "n_per_class"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"`{name}` must be an int >= 1, got {v!r}")


def make_model(cfg: Config) -> LEModel:
    """The L-model with α = c(1+t)^{−s}, β = −b·α."""
    K = cfg.n_classes

    def alpha(t):
        return cfg.c * (1.0 + np.asarray(t)) ** (-cfg.s)

    def beta(t):
        return -cfg.b * alpha(t)

    return LEModel(K, K, alpha=alpha, beta=beta, H="L")


def run(cfg: Config, out: str | os.PathLike | None = None, *, plot: bool = True) -> dict:
    """Run the demo; write ``collapse.json`` (and ``collapse.png``) under ``out``.

    Returns:
        dict with ``ts`` (T_out,), ``curves`` (label -> (T_out,) values), ``nc1``
        (saved times and median NC1) and ``config``.
    """
    if not isinstance(cfg, Config):
        raise TypeError(f"`cfg` must be a collapse.Config, got {type(cfg).__name__}")
    K = cfg.n_classes
    model = make_model(cfg)
    ts = np.expm1(np.linspace(0.0, np.log1p(cfg.horizon), cfg.n_steps + 1))  # (T,)
    x0 = np.random.default_rng(cfg.seed).normal(size=(K, K))  # (K, p) class means at 0
    ode = closed_form(model, x0, ts)  # (T, K, p)

    def normalised(x):
        return x / np.linalg.norm(x, axis=-1, keepdims=True)

    etf_ode = etf_deviation(normalised(ode), center=False)  # (T,)
    save_idx = np.unique(np.linspace(0, cfg.n_steps, 6).round().astype(int))
    sde = simulate_sde(
        model,
        ts,
        n_per_class=cfg.n_per_class,
        sigma=cfg.sigma,
        n_paths=cfg.n_paths,
        x0=x0,
        seed=cfg.seed + 1,
        save_ts=ts[save_idx],
    )
    etf_sde = np.median(etf_deviation(normalised(sde.means), center=False), axis=0)  # (T,)
    y = np.repeat(np.arange(K), cfg.n_per_class)
    nc1 = [
        float(
            np.median(
                [
                    neural_collapse(sde.particles[r, j].reshape(-1, K), y).nc1
                    for r in range(cfg.n_paths)
                ]
            )
        )
        for j in range(save_idx.size)
    ]
    keep = np.unique(np.linspace(0, cfg.n_steps, 201).round().astype(int))
    result = {
        "config": dataclasses.asdict(cfg),
        "title": f"Neural collapse, L-model K={K}: α=c(1+t)^-{cfg.s:g}, β=-{cfg.b:g}α",
        "ts": ts[keep].tolist(),
        "curves": {
            "ETF deviation of X̄^k/|X̄^k|, LE-ODE (closed form)": etf_ode[keep].tolist(),
            f"same, LE-SDE median of {cfg.n_paths} paths": etf_sde[keep].tolist(),
        },
        "nc1": {"ts": ts[save_idx].tolist(), "median": nc1},
    }
    if out is not None:
        Path(out).mkdir(parents=True, exist_ok=True)
        path = Path(out) / "collapse.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(result, indent=2))
        os.replace(tmp, path)
        if plot:
            from lesde.plots.separation import collapse_figure

            collapse_figure(result, Path(out) / "collapse.png")
    return result


def summary(result: dict[str, Any]) -> str:
    """One line: ETF deviation early -> final (LE-ODE, LE-SDE) and NC1 early -> final."""
    curves = list(result["curves"].values())
    first = next(v for t, v in zip(result["ts"], curves[0], strict=True) if t > 0)
    return (
        f"ETF deviation (LE-ODE) {first:.2e} -> {curves[0][-1]:.2e}; "
        f"LE-SDE median {curves[1][-1]:.2e}; NC1 {result['nc1']['median'][1]:.2e} -> "
        f"{result['nc1']['median'][-1]:.2e}"
    )

"""Label noise: the p_err sweep of paper Fig. 4 (phase transition of separability).

For each p_err ∈ {0, .1, …, .6, 2/3, .7, .8} a fraction p_err of every class's training
labels is reassigned to the other classes (docs/math.md §7) and a GeoMNIST ensemble is
trained; validation loss and accuracy, and the tail indices r̂_α, r̂_β, r̂_γ of the
L-model estimates are compared across p_err. At p_err* = (K−1)/K = 2/3 the labels
carry no information; the paper finds the transition there (validation metrics) and
r̂_γ crossing 1 near 0.6 (Theorem 3.1).

Scales follow `lesde.studies.geomnist` with fewer trials per point (the sweep has
10 points): default 12 trials × 10⁴ steps per point (1.2·10⁶ trial-steps in all,
~2–3 minutes of training on two quiet cores).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from lesde._validation import check_choice, check_int, check_seed
from lesde.studies import geomnist
from lesde.studies.runner import run_points

__all__ = ["Config", "P_ERRS", "run"]

P_ERRS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 2 / 3, 0.7, 0.8)
# scale -> (trials, steps) per point; other counts as geomnist's scale
_POINT_SIZE = {"tiny": (3, 200), "default": (12, 10000), "paper": (100, 100_000)}


@dataclass(frozen=True)
class Config:
    """Options of the label-noise sweep.

    Attributes:
        scale: "tiny", "default" or "paper".
        seed: root seed (the same data and initialisations at every p_err).
        p_errs: the corruption ratios.
        n_trials, n_steps: override the scale's trials and steps per point when not None
            (the paper's length on a CPU: ``scale="paper", n_trials=20`` is 2·10⁷
            trial-steps, the scale's 100 trials per point would be 10⁸).
    """

    scale: str = "default"
    seed: int = 0
    p_errs: tuple[float, ...] = P_ERRS
    n_trials: int | None = None
    n_steps: int | None = None

    def __post_init__(self) -> None:
        check_choice("scale", self.scale, sorted(_POINT_SIZE))
        check_seed("seed", self.seed)
        if not self.p_errs or any(not 0 <= p <= 1 for p in self.p_errs):
            raise ValueError(f"`p_errs` must be values in [0, 1], got {self.p_errs!r}")
        for name in ("n_trials", "n_steps"):
            check_int(name, getattr(self, name), allow_none=True)


def run(cfg: Config, out: Path | str, *, log=print) -> dict[str, Any]:
    """Run (or resume) the sweep in ``out``; returns the parent summary."""
    trials, steps = _POINT_SIZE[cfg.scale]
    trials, steps = cfg.n_trials or trials, cfg.n_steps or steps
    base = geomnist.Config(scale=cfg.scale, seed=cfg.seed, n_trials=trials, n_steps=steps)
    points = [(p, geomnist.spec_for(replace(base, p_err=p))) for p in cfg.p_errs]
    return run_points(
        Path(out), experiment="label-noise", config=cfg, parameter="p_err", points=points,
        cfg=geomnist.pipeline_config(base), log=log,
    )  # fmt: skip

"""Sample size: GeoMNIST with several n per class (paper §4.1 varies it).

Each n gets its own ensemble; the figure shows final validation accuracy and the tail
indices against n. Default: n ∈ {30, 100, 300} with 12 trials × 10⁴ steps each.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lesde._validation import check_choice, check_seed
from lesde.studies import geomnist
from lesde.studies.runner import run_points

__all__ = ["Config", "run"]

_DEFAULT_N = {"tiny": (10, 20), "default": (30, 100, 300), "paper": (100, 300, 1000, 3000)}
_POINT_SIZE = {"tiny": (3, 200), "default": (12, 10000), "paper": (100, 100_000)}


@dataclass(frozen=True)
class Config:
    """Options of the sample-size sweep.

    Attributes:
        scale: "tiny", "default" or "paper".
        seed: root seed.
        n_per_class: the sizes; None: the scale's list.
    """

    scale: str = "default"
    seed: int = 0
    n_per_class: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        check_choice("scale", self.scale, sorted(_POINT_SIZE))
        check_seed("seed", self.seed)
        if self.n_per_class is not None and any(n < 2 for n in self.n_per_class):
            raise ValueError(f"`n_per_class` must be ints >= 2, got {self.n_per_class!r}")


def run(cfg: Config, out: Path | str, *, log=print) -> dict[str, Any]:
    """Run (or resume) the sweep in ``out``; returns the parent summary."""
    trials, steps = _POINT_SIZE[cfg.scale]
    ns = cfg.n_per_class or _DEFAULT_N[cfg.scale]
    points = []
    for n in ns:
        g = geomnist.Config(scale=cfg.scale, seed=cfg.seed, n_trials=trials, n_steps=steps,
                            n_per_class=int(n))  # fmt: skip
        points.append((float(n), geomnist.spec_for(g)))
    base = geomnist.Config(scale=cfg.scale, seed=cfg.seed)
    return run_points(
        Path(out), experiment="sample-size", config=cfg, parameter="n_per_class",
        points=points, cfg=geomnist.pipeline_config(base), log=log,
    )  # fmt: skip

"""CIFAR-10 with K ∈ {2, 3} classes from a local copy (paper §4.1, Figs. 1c–d, 3, 5).

The data must be on disk (``--cifar-root DIR`` or the ``LESDE_DATA`` environment
variable; the python or binary distribution). When it is absent the run stops before
training with the data module's message saying where it looked and how to obtain it.

Scales: ``default`` 32 trials × 6000 steps on 1000/200 images per class (a demo, far
from convergence on CIFAR); ``paper`` 100 trials × 3·10⁵ steps on 5000/1000 (§4.1).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lesde.experiments.config import PipelineConfig, TrainSpec
from lesde.studies.runner import run_single

__all__ = ["Config", "run"]

# scale -> (trials, steps, n train, n val, checkpoints, bin width)
SCALES = {
    "tiny": (3, 200, 20, 20, 5, 10),
    "default": (32, 6000, 1000, 200, 41, 10),
    "paper": (100, 300_000, 5000, 1000, 301, 100),
}


@dataclass(frozen=True)
class Config:
    """Options of the CIFAR-10 experiment.

    Attributes:
        root: directory holding ``cifar-10-batches-py/`` or ``-bin/``; None: ``LESDE_DATA``.
        classes: 2 or 3 CIFAR-10 class indices.
        scale: "tiny", "default" or "paper".
        seed: root seed.
        p_err: training-label corruption ratio.
    """

    root: str | None = None
    classes: tuple[int, ...] = (0, 1, 2)
    scale: str = "default"
    seed: int = 0
    p_err: float = 0.0

    def __post_init__(self) -> None:
        if self.scale not in SCALES:
            raise ValueError(f"`scale` must be one of {sorted(SCALES)}, got {self.scale!r}")
        if len(self.classes) not in (2, 3) or len(set(self.classes)) != len(self.classes):
            raise ValueError(f"`classes` must be 2 or 3 distinct indices, got {self.classes!r}")


def run(cfg: Config, out: Path | str, *, log=print) -> dict[str, Any]:
    """Run (or resume) the experiment in ``out``; returns the summary.

    Raises:
        FileNotFoundError: when no CIFAR-10 copy is found (message from the data module).
    """
    from lesde.data import load

    trials, steps, n_tr, n_val, ckpt, bw = SCALES[cfg.scale]
    root = cfg.root or os.environ.get("LESDE_DATA")
    opts = {"root": root, "classes": tuple(cfg.classes), "n_train_per_class": n_tr,
            "n_val_per_class": n_val, "seed": cfg.seed}  # fmt: skip
    load("cifar10", **opts)  # fail fast, before any stage runs, with the loader's message
    spec = TrainSpec(
        data="cifar10", data_options=opts, n_trials=trials, n_steps=steps, n_checkpoints=ckpt,
        probe_per_class=min(20, n_tr), p_err=cfg.p_err, seed=cfg.seed,
    )  # fmt: skip
    return run_single(
        Path(out), experiment="cifar", config=cfg, spec=spec,
        cfg=PipelineConfig(bin_width=bw, seed=cfg.seed), log=log,
    )  # fmt: skip

"""The same pipeline on real images that every machine has offline.

scikit-learn's bundled handwritten digits (8×8, upsampled to 32×32 by the data module),
K = 3 classes (0, 1, 2 by default), ~180 images per class: 120 for training, the rest
for validation. Scales as `lesde.studies.geomnist` (trials, steps, checkpoints).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lesde.studies import geomnist
from lesde.studies.runner import run_single

__all__ = ["Config", "run"]


@dataclass(frozen=True)
class Config:
    """Options of the digits experiment.

    Attributes:
        scale: "tiny", "default" or "paper".
        seed: root seed.
        classes: the digit classes (K = len(classes); the L-model needs p = K logits).
        n_train: training images per class (the rest of each class validates).
        p_err: training-label corruption ratio.
    """

    scale: str = "default"
    seed: int = 0
    classes: tuple[int, ...] = (0, 1, 2)
    n_train: int = 120
    p_err: float = 0.0

    def __post_init__(self) -> None:
        if self.scale not in geomnist.SCALES:
            raise ValueError(
                f"`scale` must be one of {sorted(geomnist.SCALES)}, got {self.scale!r}"
            )
        if len(set(self.classes)) < 2 or any(not 0 <= c <= 9 for c in self.classes):
            raise ValueError(f"`classes` must be >= 2 distinct digits 0-9, got {self.classes!r}")


def run(cfg: Config, out: Path | str, *, log=print) -> dict[str, Any]:
    """Run (or resume) the experiment in ``out``; returns the summary."""
    n_train = min(cfg.n_train, 20) if cfg.scale == "tiny" else cfg.n_train
    opts = {"classes": tuple(cfg.classes), "n_train": n_train, "seed": cfg.seed}
    spec = geomnist.spec_for(cfg, data="digits", data_options=opts)
    return run_single(
        Path(out), experiment="digits", config=cfg, spec=spec,
        cfg=geomnist.pipeline_config(cfg), log=log,
    )  # fmt: skip

"""Experiment name → module; each module has a frozen ``Config`` and ``run(cfg, out)``."""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["EXPERIMENTS", "get"]

# name -> (module, one-line description)
EXPERIMENTS: dict[str, tuple[str, str]] = {
    "geomnist": ("lesde.studies.geomnist", "GeoMNIST end to end (the main job)"),
    "label-noise": ("lesde.studies.label_noise", "p_err sweep, paper Fig. 4"),
    "sample-size": ("lesde.studies.sample_size", "GeoMNIST with several n per class"),
    "cifar": ("lesde.studies.cifar", "CIFAR-10, K = 2 or 3, from a local copy"),
    "digits": ("lesde.studies.digits", "scikit-learn digits (real, offline)"),
    "separation": ("lesde.experiments.separation", "separation theorems (2.1, 3.1)"),
    "paper": ("lesde.studies.paper", "every experiment of the paper, one report"),
}


def get(name: str) -> ModuleType:
    """The module of experiment ``name``.

    Raises:
        ValueError: for an unknown name (the message lists the known ones).
    """
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; choose one of {sorted(EXPERIMENTS)}")
    return importlib.import_module(EXPERIMENTS[name][0])

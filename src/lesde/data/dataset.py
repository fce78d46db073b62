"""The one dataset type every loader returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Dataset"]


@dataclass(frozen=True)
class Dataset:
    """Train/validation images and labels with their provenance.

    Attributes:
        x_train: (N, C, H, W) float32 images.
        y_train: (N,) int64 labels in [0, K).
        x_val: (N_val, C, H, W) float32.
        y_val: (N_val,) int64.
        class_names: K names, in label order.
        provenance: name, seed, source and checksums, for the run store (JSON-able).
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    class_names: tuple[str, ...]
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def n_channels(self) -> int:
        return int(self.x_train.shape[1])

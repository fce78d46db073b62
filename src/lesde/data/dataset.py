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

    def __post_init__(self) -> None:
        for name in ("x_train", "x_val"):
            x = np.asarray(getattr(self, name))
            if x.ndim < 2:
                raise ValueError(f"`{name}` must be (N, ...) samples, got shape {x.shape}")
            if x.size and not np.all(np.isfinite(x)):
                bad = int(np.count_nonzero(~np.isfinite(x)))
                raise ValueError(f"`{name}` holds {bad} NaN or infinite values")
        if np.asarray(self.x_train).shape[1:] != np.asarray(self.x_val).shape[1:]:
            raise ValueError(
                f"`x_train` and `x_val` samples must have one shape, got "
                f"{np.asarray(self.x_train).shape[1:]} and {np.asarray(self.x_val).shape[1:]}"
            )
        K = len(self.class_names)
        if K < 2:
            raise ValueError(f"`class_names` must name >= 2 classes, got {K}")
        for xn, yn in (("x_train", "y_train"), ("x_val", "y_val")):
            x, y = np.asarray(getattr(self, xn)), np.asarray(getattr(self, yn))
            if y.ndim != 1 or y.shape[0] != x.shape[0]:
                raise ValueError(
                    f"`{yn}` must hold one label per row of `{xn}` ({x.shape[0]}), "
                    f"got shape {y.shape}"
                )
            if y.size and (y.min() < 0 or y.max() >= K):
                raise ValueError(
                    f"`{yn}` labels must be in [0, {K}) for {K} class names, "
                    f"got {int(y.min())}..{int(y.max())}"
                )

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def n_channels(self) -> int:
        return int(self.x_train.shape[1])

"""The one dataset type every loader returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Dataset"]


@dataclass(frozen=True)
class Dataset:
    """Train/validation samples and labels with their provenance.

    Samples may have any shape (vectors, images, sequences): ``x_train`` is (N, ...);
    the paper's CNN trainer needs (N, C, H, H) images and says so otherwise.

    Attributes:
        x_train: (N, ...) float32 samples (images: (N, C, H, W)).
        y_train: (N,) int64 labels in [0, K).
        x_val: (N_val, ...) float32, the same sample shape.
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

    @classmethod
    def from_arrays(
        cls,
        x_train: Any,
        y_train: Any,
        x_val: Any,
        y_val: Any,
        class_names: Any = None,
        *,
        provenance: dict[str, Any] | None = None,
    ) -> Dataset:
        """A `Dataset` from one's own arrays (validated; see the class for shapes).

        Args:
            x_train, x_val: (N, ...) and (N_val, ...) samples, converted to float32.
            y_train, y_val: (N,) and (N_val,) integer labels in [0, K).
            class_names: K names; None: ``class 0`` … ``class K−1`` with K the largest
                label + 1.
            provenance: what to record about the data (default: ``{"name": "arrays"}``).

        Raises:
            ValueError: on lengths that disagree, labels out of range or not integers,
                NaN or infinite samples, fewer than 2 classes (the argument is named).
        """
        y_tr, y_va = np.asarray(y_train), np.asarray(y_val)
        for name, y in (("y_train", y_tr), ("y_val", y_va)):
            if y.size and y.dtype.kind not in "iu":
                raise ValueError(f"`{name}` must hold integer labels, got dtype {y.dtype}")
        if class_names is None:
            K = int(max(y_tr.max(initial=0), y_va.max(initial=0))) + 1
            class_names = tuple(f"class {k}" for k in range(K))
        return cls(
            x_train=np.asarray(x_train, dtype=np.float32),
            y_train=y_tr.astype(np.int64),
            x_val=np.asarray(x_val, dtype=np.float32),
            y_val=y_va.astype(np.int64),
            class_names=tuple(str(c) for c in class_names),
            provenance=dict(provenance or {"name": "arrays"}),
        )

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def n_channels(self) -> int:
        return int(self.x_train.shape[1])

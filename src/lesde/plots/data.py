"""Figures of datasets: a grid of samples per class (paper Fig. 2 for GeoMNIST)."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

__all__ = ["plot_samples", "sample_grid"]


def sample_grid(
    x: np.ndarray, y: np.ndarray, n_classes: int, *, n_per_class: int = 8, pad: int = 2
) -> np.ndarray:
    """Tile the first ``n_per_class`` images of each class into one image.

    Rows are classes, columns samples; each image is min-max scaled to [0, 1] on its
    own (normalised CIFAR-10 images are not in [0, 1]); empty cells and padding are 1
    (white).

    Args:
        x: (N, C, H, W) images, C ∈ {1, 3}.
        y: (N,) labels in [0, n_classes).
        n_classes: K (rows).
        n_per_class: columns.
        pad: pixels between cells.

    Returns:
        (K·(H+pad)−pad, n·(W+pad)−pad) for C = 1, or with a trailing axis of 3 for C = 3.
    """
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"`x` must be (N, 1 or 3, H, W), got {x.shape}")
    if y.shape != (x.shape[0],):
        raise ValueError(f"`y` must be ({x.shape[0]},), got {y.shape}")
    C, H, W = x.shape[1:]
    grid = np.ones((n_classes * (H + pad) - pad, n_per_class * (W + pad) - pad, C))
    for k in range(n_classes):
        for j, i in enumerate(np.flatnonzero(y == k)[:n_per_class]):
            img = x[i].transpose(1, 2, 0).astype(np.float64)  # (H, W, C)
            lo, hi = img.min(), img.max()
            img = (img - lo) / (hi - lo) if hi > lo else np.zeros_like(img)
            r, c = k * (H + pad), j * (W + pad)
            grid[r : r + H, c : c + W] = img
    return grid[..., 0] if C == 1 else grid


def plot_samples(
    x: np.ndarray,
    y: np.ndarray,
    class_names: Sequence[str],
    *,
    n_per_class: int = 8,
    title: str | None = None,
    ax=None,
):
    """A grid of samples, one row per class (the paper's Fig. 2 for GeoMNIST).

    Args:
        x: (N, C, H, W) images, C ∈ {1, 3}.
        y: (N,) labels in [0, K).
        class_names: K row labels.
        n_per_class: samples shown per class (the first of each class).
        title: axes title.
        ax: axes to draw on (a new figure when None).

    Returns:
        The matplotlib Axes.
    """
    K = len(class_names)
    grid = sample_grid(x, y, K, n_per_class=n_per_class)
    if ax is None:
        H = np.asarray(x).shape[2]
        fig = plt.figure(figsize=(1.0 + 0.6 * n_per_class, 0.4 + 0.6 * K * max(1, H // 32)))
        ax = fig.add_subplot()
    ax.imshow(grid, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    H = np.asarray(x).shape[2]
    ax.set_yticks([k * (H + 2) + H / 2 - 0.5 for k in range(K)], list(class_names))
    ax.set_xticks([])
    for side in ("top", "right", "bottom", "left"):
        ax.spines[side].set_visible(False)
    if title:
        ax.set_title(title)
    return ax

"""Shared test set-up: figures render off-screen."""

import matplotlib

matplotlib.use("Agg")


import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(scope="module")
def npz(tmp_path_factory):
    """A toy .npz dataset: 3 classes of 10 32×32 images, a bar per class (trains in seconds)."""
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 10)
    x = rng.normal(0, 0.3, (y.size, 1, 32, 32)).astype(np.float32)
    for k in range(3):
        x[y == k, :, 4 + 8 * k : 10 + 8 * k, 6:26] += 1.0
    path = tmp_path_factory.mktemp("data") / "toy.npz"
    np.savez(path, x_train=x, y_train=y, x_val=x[::2], y_val=y[::2],
             class_names=np.array(["a", "b", "c"]))  # fmt: skip
    return path

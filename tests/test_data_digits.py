"""scikit-learn digits: class subsets, seeded splits, bilinear upsampling (vs torch)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits as sk_load_digits

from lesde.data import Dataset, load_digits
from lesde.data.digits import upsample_bilinear

SK = sk_load_digits()


def test_contract_and_class_subset():
    d = load_digits(classes=(7, 2, 5), n_train_per_class=50, n_val_per_class=20, seed=0)
    assert isinstance(d, Dataset)
    assert d.x_train.shape == (150, 1, 32, 32) and d.x_train.dtype == np.float32
    assert d.x_val.shape == (60, 1, 32, 32)
    np.testing.assert_array_equal(d.y_train, np.repeat([0, 1, 2], 50))
    assert d.y_train.dtype == np.int64 and d.y_val.dtype == np.int64
    assert d.class_names == ("7", "2", "5")
    assert d.x_train.min() >= 0 and d.x_train.max() <= 1 and d.x_train.max() > 0.9
    assert d.provenance["name"] == "digits"


def test_default_validation_is_the_rest_of_each_class():
    classes = (0, 8)
    d = load_digits(classes=classes, n_train_per_class=100, seed=1)
    counts = [int((SK.target == c).sum()) for c in classes]
    np.testing.assert_array_equal(np.bincount(d.y_val), [n - 100 for n in counts])
    # train ∪ val is exactly each class's images (as multisets of upsampled images)
    for k, c in enumerate(classes):
        ours = np.concatenate([d.x_train[d.y_train == k], d.x_val[d.y_val == k]])
        ref = upsample_bilinear(SK.images[SK.target == c] / 16.0, 32)
        assert sorted(r.tobytes() for r in ours[:, 0]) == sorted(r.tobytes() for r in ref)


def test_split_is_seeded():
    a = load_digits(n_train_per_class=30, n_val_per_class=10, seed=3)
    b = load_digits(n_train_per_class=30, n_val_per_class=10, seed=3)
    c = load_digits(n_train_per_class=30, n_val_per_class=10, seed=4)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    assert not np.array_equal(a.x_train, c.x_train)


def test_upsampling_matches_torch_bilinear():
    # known answer: torch's bilinear interpolation with align_corners=False
    import torch
    import torch.nn.functional as F

    x = SK.images[:20] / 16.0
    ref = F.interpolate(
        torch.as_tensor(x)[:, None], size=(32, 32), mode="bilinear", align_corners=False
    )[:, 0].numpy()
    np.testing.assert_allclose(upsample_bilinear(x, 32), ref, atol=1e-6)  # float32 output
    const = np.full((2, 8, 8), 0.25)
    np.testing.assert_allclose(upsample_bilinear(const, 32), 0.25, atol=1e-7)


def test_real_images_are_learnable():
    from sklearn.neighbors import KNeighborsClassifier

    d = load_digits(classes=(0, 1, 2, 3), n_train_per_class=100, seed=0)
    clf = KNeighborsClassifier(1).fit(d.x_train.reshape(len(d.x_train), -1), d.y_train)
    # 1-NN on sklearn digits is ~98% accurate; 0.95 leaves room for the split
    assert clf.score(d.x_val.reshape(len(d.x_val), -1), d.y_val) > 0.95


@pytest.mark.parametrize(
    ("kwargs", "err", "match"),
    [
        ({"classes": ()}, TypeError, "classes"),
        ({"classes": (1, 1)}, ValueError, "classes"),
        ({"classes": (10,)}, ValueError, "classes"),
        ({"n_train_per_class": 0}, ValueError, "n_train_per_class"),
        ({"n_train_per_class": 170, "n_val_per_class": 10}, ValueError, "n_train_per_class"),
        ({"n_val_per_class": -1}, ValueError, "n_val_per_class"),
        ({"size": 4}, ValueError, "size"),
        ({"seed": None}, TypeError, "seed"),
    ],
)
def test_invalid_arguments(kwargs, err, match):
    kwargs = {"seed": 0, **kwargs}
    with pytest.raises(err, match=match):
        load_digits(**kwargs)

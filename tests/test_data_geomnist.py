"""GeoMNIST: contract, determinism, geometry (areas, anti-aliasing, blur) and learnability."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from lesde.data import Dataset, make_geomnist
from lesde.data.geomnist import (
    _ELLIPSE_AXES,
    _RECTANGLE,
    _TRIANGLE,
    ANGLE_RANGE_DEG,
    CLASS_NAMES,
    _class_parameters,
    render_shapes,
)

TINY_SIGMA = 1e-3  # exp(-1/(2·1e-6)) underflows to 0: the blur is the identity

# exact areas of the base shapes on a 32-pixel canvas
AREAS = {
    0: 0.5 * 20.0 * (8.0 + 8.0 * np.sqrt(3.0)),  # base 20, height 8 + 8√3
    1: 9.0 * 17.0,
    2: np.pi * 6.0 * 12.0,
}


def _hash(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def test_contract_shapes_dtypes_labels():
    d = make_geomnist(7, 3, seed=0)
    assert isinstance(d, Dataset)
    assert d.x_train.shape == (21, 1, 32, 32) and d.x_train.dtype == np.float32
    assert d.x_val.shape == (9, 1, 32, 32) and d.x_val.dtype == np.float32
    assert d.y_train.dtype == np.int64 and d.y_val.dtype == np.int64
    np.testing.assert_array_equal(d.y_train, np.repeat([0, 1, 2], 7))
    np.testing.assert_array_equal(d.y_val, np.repeat([0, 1, 2], 3))
    assert d.class_names == ("triangle", "rectangle", "ellipse") == CLASS_NAMES
    for x in (d.x_train, d.x_val):
        assert x.min() >= 0.0 and x.max() <= 1.0
        assert np.isfinite(x).all()
    # every image holds a shape: a bright centre and a dark border
    assert (d.x_train[:, 0, 14:18, 14:18].mean(axis=(1, 2)) > 0.5).all()
    assert d.provenance["name"] == "geomnist" and d.provenance["seed"] == 0


def test_same_seed_identical_bytes_other_seed_differs():
    a = make_geomnist(40, 10, seed=123)
    b = make_geomnist(40, 10, seed=123)
    c = make_geomnist(40, 10, seed=124)
    assert _hash(a.x_train, a.x_val) == _hash(b.x_train, b.x_val)
    assert _hash(a.x_train) != _hash(c.x_train)
    # train and validation images are different draws
    assert not np.any(np.all(a.x_train[:40, None] == a.x_val[None, :10], axis=(2, 3, 4)))


def test_images_do_not_depend_on_chunking():
    # 300 images span several chunks; the same parameters drawn one image at a time
    # must give the same bytes (each image's arithmetic is independent of its chunk)
    rng = np.random.default_rng(0)
    theta, scale, shift, sigma = _class_parameters(rng, 300)
    whole = render_shapes(2, theta, scale, shift, sigma)
    one = np.stack([render_shapes(2, *(p[i : i + 1] for p in (theta, scale, shift, sigma)))[0]
                    for i in (0, 137, 299)])  # fmt: skip
    np.testing.assert_array_equal(whole[[0, 137, 299]], one)


def test_angles_stratified_over_paper_range():
    m = 50
    theta, scale, shift, sigma = _class_parameters(np.random.default_rng(5), m)
    deg = np.rad2deg(theta)
    assert deg.min() >= 0 and deg.max() < ANGLE_RANGE_DEG
    # one angle in each of m equal bins of [0, 176)
    np.testing.assert_array_equal(np.sort(np.floor(deg / ANGLE_RANGE_DEG * m)), np.arange(m))
    assert 0.9 <= sigma.min() and sigma.max() <= 1.1
    assert 0.9 <= scale.min() and scale.max() <= 1.1
    assert np.abs(shift).max() <= 1.0


@pytest.mark.parametrize("kind", [0, 1, 2])
def test_total_intensity_is_shape_area(kind):
    # coverage integrates to the area, and a normalised blur keeps it (shapes away from
    # the border). Tolerance 1%: the ½ − d ramp is exact for straight edges on average
    # over positions; residuals come from corners and the ellipse's approximate distance.
    rng = np.random.default_rng(kind)
    n = 12
    theta = rng.uniform(0, np.pi, n)
    scale = rng.uniform(0.85, 0.95, n)  # smaller than the base: no clipping at the border
    shift = np.zeros((n, 2))
    for sigma in (np.full(n, TINY_SIGMA), rng.uniform(0.9, 1.1, n)):
        img = render_shapes(kind, theta, scale, shift, sigma)
        np.testing.assert_allclose(img.sum(axis=(1, 2)), AREAS[kind] * scale**2, rtol=0.01)


def _supersampled(kind: int, theta: float, scale: float, size: int = 32, ss: int = 16):
    """Exact indicator of the shape averaged over ss×ss sub-pixels: the coverage."""
    t = (np.arange(size * ss) + 0.5) / ss - size / 2  # sub-pixel centres, canvas-centred
    r, q = np.meshgrid(t, t, indexing="ij")
    c, s = np.cos(theta), np.sin(theta)
    u, v = (c * r + s * q) / scale, (-s * r + c * q) / scale  # shape frame (inverse rotation)
    if kind == 2:
        inside = (u / _ELLIPSE_AXES[0]) ** 2 + (v / _ELLIPSE_AXES[1]) ** 2 <= 1
    else:
        verts = _TRIANGLE if kind == 0 else _RECTANGLE
        signs = []
        for a, b in zip(verts, np.roll(verts, -1, axis=0), strict=True):
            signs.append((b[0] - a[0]) * (v - a[1]) - (b[1] - a[1]) * (u - a[0]))
        signs = np.stack(signs)
        inside = np.all(signs >= 0, axis=0) | np.all(signs <= 0, axis=0)
    return inside.reshape(size, ss, size, ss).mean(axis=(1, 3))


@pytest.mark.parametrize("kind", [0, 1, 2])
def test_antialiased_coverage_matches_supersampling(kind):
    # Coverage vs the exact indicator averaged over 16×16 sub-pixels. Bounds from the
    # method (see _polygon_coverage): a linear ramp in place of the exact piecewise-
    # quadratic edge profile is off by ≤ 0.125 on a 45° edge, corners by up to ~0.2
    # (measured ≤ 0.18 over 30 random angles); after the σ ≈ 1 blur the difference to
    # the blurred exact coverage shrinks below 0.04 (measured ≤ 0.025).
    for theta, scale in ((0.3, 1.0), (1.1, 0.95), (2.7, 1.05)):
        args = np.array([theta]), np.array([scale]), np.zeros((1, 2))
        sharp = render_shapes(kind, *args, np.array([TINY_SIGMA]))[0]
        ref = _supersampled(kind, theta, scale)
        err = np.abs(sharp - ref)
        assert err.max() < 0.25, (theta, err.max())
        assert err.mean() < 0.01, (theta, err.mean())
        edge = (ref > 0.1) & (ref < 0.9)
        assert ((sharp > 0) & (sharp < 1))[edge].all()  # anti-aliased, not binary
        blurred = render_shapes(kind, *args, np.array([1.0]))[0]
        ref_blurred = gaussian_filter(ref, 1.0, mode="reflect")
        assert np.abs(blurred - ref_blurred).max() < 0.04, theta


def test_blur_matches_scipy_gaussian_filter():
    # the batched G X Gᵀ equals scipy.ndimage.gaussian_filter (reflect mode, truncate 4,
    # radius 4 for σ ∈ [0.9, 1.1]) on the unblurred coverage; float32 rounding ~1e-6
    rng = np.random.default_rng(3)
    n = 5
    theta, scale = rng.uniform(0, np.pi, n), rng.uniform(0.9, 1.1, n)
    shift = rng.uniform(-1, 1, (n, 2))
    sigma = rng.uniform(0.9, 1.1, n)
    for kind in range(3):
        sharp = render_shapes(kind, theta, scale, shift, np.full(n, TINY_SIGMA))
        blurred = render_shapes(kind, theta, scale, shift, sigma)
        for i in range(n):
            ref = gaussian_filter(sharp[i].astype(np.float64), sigma[i], mode="reflect")
            np.testing.assert_allclose(blurred[i], ref, atol=2e-6)


def test_size_scales_shapes():
    d = make_geomnist(4, 0, seed=2, size=64)
    assert d.x_train.shape == (12, 1, 64, 64)
    small = make_geomnist(4, 0, seed=2, size=32)
    # same parameters, 4x the pixels: total intensity scales by 4 (to 1%, as above)
    np.testing.assert_allclose(
        d.x_train.sum(axis=(1, 2, 3)), 4 * small.x_train.sum(axis=(1, 2, 3)), rtol=0.01
    )


def test_classes_learnable_by_nearest_neighbour():
    # very distinct shapes: 1-NN on raw pixels, 200 training images per class, sees
    # every angle bin ~1° wide; anything below 97% would mean confusable classes
    from sklearn.neighbors import KNeighborsClassifier

    d = make_geomnist(200, 100, seed=7)
    clf = KNeighborsClassifier(1).fit(d.x_train.reshape(600, -1), d.y_train)
    assert clf.score(d.x_val.reshape(300, -1), d.y_val) >= 0.97


@pytest.mark.parametrize(
    ("kwargs", "err", "match"),
    [
        ({"n_train": 0, "n_val": 1, "seed": 0}, ValueError, "n_train"),
        ({"n_train": 2, "n_val": -1, "seed": 0}, ValueError, "n_val"),
        ({"n_train": 2.5, "n_val": 1, "seed": 0}, TypeError, "n_train"),
        ({"n_train": 2, "n_val": 1, "seed": 0, "size": 4}, ValueError, "size"),
        ({"n_train": 2, "n_val": 1, "seed": "a"}, TypeError, "seed"),
    ],
)
def test_invalid_arguments(kwargs, err, match):
    with pytest.raises(err, match=match):
        make_geomnist(**kwargs)

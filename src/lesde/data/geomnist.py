"""GeoMNIST: the paper's synthetic set of filled geometric shapes (§4.1, Fig. 2).

K = 3 classes on a square grayscale canvas, in label order **triangle, rectangle,
ellipse**. Every image is its class's base shape with a small size and position jitter,
rotated by an angle spread evenly over [0°, 176°) and blurred by a Gaussian of
σ ∈ [0.9, 1.1] pixels — the recipe of the paper's generator (``src/datasets.py`` of
github.com/zjiayao/le_sde, which draws each image with ``skimage.draw`` and rotates and
blurs it with ``scipy.ndimage`` one at a time, ~5,000 images/s).

Here the images are drawn a chunk of images at a time: each shape's signed distance is
evaluated at every pixel centre of every image of the chunk (numpy broadcasting, no
per-pixel or per-image python loop), turned into an anti-aliased coverage, then blurred
by ``G_b X_b G_bᵀ`` with per-image Gaussian matrices ``G_b`` (one batched matmul per
axis). Scratch arrays are allocated once per thread and reused, because on these
machines freshly mapped memory costs more than the arithmetic.

Base shapes, in units of a 32-pixel canvas, centred on the canvas (the paper's sizes):

- triangle: vertices (row, col) = (0, −8√3), (10, 8), (−10, 8) — the paper's ``rx=10,
  ry=8`` isosceles triangle;
- rectangle: half-extents 4.5 × 8.5 (the paper's 9 × 17 pixel block);
- ellipse: semi-axes 6 × 12 (the paper's ``r=6, e=2``).

Jitter (per image, independent, uniform): scale s ∈ [0.9, 1.1], shift (Δrow, Δcol)
∈ [−1, 1]² pixels (the paper shifts by ±1 pixel, and scales the ellipse by ±1/6).
"""

from __future__ import annotations

import threading

import numpy as np

from lesde.data.dataset import Dataset

__all__ = ["CLASS_NAMES", "make_geomnist", "render_shapes"]

CLASS_NAMES: tuple[str, ...] = ("triangle", "rectangle", "ellipse")

ANGLE_RANGE_DEG = 176.0  # the paper rotates over [0°, 176°) (`continue_apply(dat, 0, 176, …)`)
SIGMA_RANGE = (0.9, 1.1)  # Gaussian blur σ in pixels (`uniform_smp_apply(dat, 0.9, 1.1, …)`)
SCALE_RANGE = (0.9, 1.1)  # size jitter
SHIFT_MAX = 1.0  # position jitter, pixels (per axis)
_TRUNCATE = 4.0  # Gaussian support: radius = int(4σ + 0.5), as scipy.ndimage.gaussian_filter
# scratch arrays of a chunk hold ~128k floats (512 KiB, 128 images at 32×32): they stay
# in cache, and the small per-chunk temporaries stay under malloc's mmap threshold
_CHUNK_PIXELS = 1 << 17

# base shapes on a 32-pixel canvas, (row, col) offsets from the canvas centre
_TRIANGLE = np.array([[0.0, -8.0 * np.sqrt(3.0)], [10.0, 8.0], [-10.0, 8.0]])
_RECTANGLE = np.array([[-4.5, -8.5], [4.5, -8.5], [4.5, 8.5], [-4.5, 8.5]])
_ELLIPSE_AXES = np.array([6.0, 12.0])  # semi-axes along the shape's row and column axes

_F32 = np.float32
_local = threading.local()  # per-thread scratch arrays, see `_workspace`


def _chunk_size(size: int) -> int:
    return max(1, _CHUNK_PIXELS // (size * size))


def _workspace(chunk: int, size: int) -> list[np.ndarray]:
    """Five (chunk, size, size) float32 scratch arrays of the calling thread, reused."""
    key = (chunk, size)
    if getattr(_local, "key", None) != key:
        _local.key = key
        _local.bufs = [np.empty((chunk, size, size), dtype=_F32) for _ in range(5)]
    return _local.bufs


def _polygon_coverage(
    verts: np.ndarray, centres: np.ndarray, cov: np.ndarray, tmp: np.ndarray
) -> None:
    """Pixel coverage of convex polygons, written into ``cov``.

    Per edge e, coverage_e = clip(½ − d_e / w_e, 0, 1), with d_e the signed distance of
    the pixel centre to the edge's line (> 0 outside) and w_e = |n_row| + |n_col| the
    width of the unit pixel measured along the edge's normal: a linear ramp over exactly
    the distances at which the edge cuts the pixel, through the exact value ½ at d = 0
    (exact for edges parallel to the pixel sides, and right on average otherwise). The
    polygon's coverage is the product over its edges: the single edge's coverage along
    an edge (the others give 1), and exact at a corner whose edges are parallel to the
    pixel sides (the overlap of two strips). Measured against 32×32-supersampled
    coverage: ≤ 0.18 per pixel at corners, ≤ 0.02 after the σ ≈ 1 blur, total within
    0.2 % of the area.

    Args:
        verts: (b, V, 2) vertices (row, col) in pixels.
        centres: (size,) pixel-centre coordinates.
        cov: (b, size, size) float32 output.
        tmp: (b, size, size) float32 scratch.
    """
    edge = np.roll(verts, -1, axis=1) - verts  # (b, V, 2)
    length = np.hypot(edge[..., 0], edge[..., 1])  # (b, V)
    # a normal of each edge; its sign (outward) follows from the orientation of the polygon
    nr, nc = edge[..., 1] / length, -edge[..., 0] / length  # (b, V)
    area2 = np.sum(verts[..., 0] * np.roll(verts[..., 1], -1, 1), axis=1) - np.sum(
        verts[..., 1] * np.roll(verts[..., 0], -1, 1), axis=1
    )  # (b,) twice the signed area: > 0 when counter-clockwise in (row, col)
    flip = np.where(area2 > 0, 1.0, -1.0)[:, None]
    nr, nc = nr * flip, nc * flip
    w = np.abs(nr) + np.abs(nc)  # (b, V) pixel width along the normal, in [1, √2]
    h = nr * verts[..., 0] + nc * verts[..., 1]  # (b, V): d_v = n_v·p − h_v
    # ½ − d_v / w_v = row term (depends on the pixel's row) + column term
    row = (0.5 + (h[:, :, None] - nr[:, :, None] * centres) / w[:, :, None]).astype(_F32)
    col = (-(nc / w)[:, :, None] * centres).astype(_F32)  # (b, V, size)
    np.add(row[:, 0, :, None], col[:, 0, None, :], out=cov)  # (b, size, size)
    np.clip(cov, 0.0, 1.0, out=cov)
    for v in range(1, verts.shape[1]):
        np.add(row[:, v, :, None], col[:, v, None, :], out=tmp)
        np.clip(tmp, 0.0, 1.0, out=tmp)
        np.multiply(cov, tmp, out=cov)


def _ellipse_coverage(
    centre: np.ndarray,
    theta: np.ndarray,
    axes: np.ndarray,
    centres: np.ndarray,
    cov: np.ndarray,
    ws: list[np.ndarray],
) -> None:
    """Pixel coverage clip(½ − d / w, 0, 1) of rotated ellipses, written into ``cov``.

    Here d ≈ k0 (k0 − 1) / |g| with k0 = |(u/a, v/b)| and g = (u/a², v/b²) (u, v: the
    pixel in the ellipse's frame; g points along the level set's normal): exact on
    circles and along both axes, and within a few percent of the true distance near the
    boundary, which is where coverage is decided. w = (|g_row| + |g_col|) / |g| is the
    pixel's width along that normal in the image frame, as for polygon edges
    (`_polygon_coverage`). Measured against 32×32-supersampled coverage: ≤ 0.13 per
    pixel, ≤ 0.02 after the σ ≈ 1 blur, total within 0.4 % of the area.

    Args:
        centre: (b, 2) ellipse centres (row, col) in pixels.
        theta: (b,) rotation angles (radians).
        axes: (b, 2) semi-axes (a along the shape's rows, b along its columns) in pixels.
        centres: (size,) pixel-centre coordinates.
        cov: (b, size, size) float32 output.
        ws: four (b, size, size) float32 scratch arrays.
    """
    ua, vb, k1, t = ws
    c, s = np.cos(theta)[:, None], np.sin(theta)[:, None]  # (b, 1)
    a, b = axes[:, 0:1], axes[:, 1:2]
    dr = centres[None, :] - centre[:, 0:1]  # (b, size) row offsets from the centre
    dq = centres[None, :] - centre[:, 1:2]  # (b, size) column offsets
    # ellipse frame: u = c·dr + s·dq, v = −s·dr + c·dq; each a row term plus a column term
    np.add((c / a * dr).astype(_F32)[:, :, None], (s / a * dq).astype(_F32)[:, None, :], out=ua)
    np.add((-s / b * dr).astype(_F32)[:, :, None], (c / b * dq).astype(_F32)[:, None, :], out=vb)
    np.multiply(ua, ua, out=cov)
    np.multiply(vb, vb, out=k1)
    np.add(cov, k1, out=cov)
    k0 = np.sqrt(cov, out=cov)  # (b, size, size)
    ua *= (1.0 / a).astype(_F32)[:, :, None]  # u / a²
    vb *= (1.0 / b).astype(_F32)[:, :, None]  # v / b²
    # |g_row| + |g_col| of the gradient (u/a², v/b²) rotated back to the image frame
    c32, s32 = c.astype(_F32)[:, :, None], s.astype(_F32)[:, :, None]
    np.multiply(ua, c32, out=t)
    np.subtract(t, s32 * vb, out=t)  # g_row
    np.abs(t, out=t)
    np.multiply(ua, s32, out=k1)
    k1 += c32 * vb  # g_col
    np.abs(k1, out=k1)
    t += k1  # |g_row| + |g_col|
    # d / w = [k0 (k0 − 1) / |g|] / [(|g_row| + |g_col|) / |g|] = k0 (k0 − 1) / t; t = 0 only
    # at the exact centre, deep inside, where any negative value will do
    np.maximum(t, _F32(1e-6), out=t)
    np.subtract(k0, _F32(1.0), out=ua)
    np.multiply(ua, k0, out=ua)
    np.divide(ua, t, out=ua)  # d / w
    np.subtract(_F32(0.5), ua, out=cov)
    np.clip(cov, 0.0, 1.0, out=cov)


def _reflect_taps(size: int, radius: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Where each tap of the 1-D blur lands in the (size × size) matrix G.

    Row i of G reads input pixel i + t for taps t ∈ [−R, R], reflected at the borders
    (half-sample symmetric, as ``scipy.ndimage``'s default 'reflect' mode). Entry
    (i, j) gets the direct tap t = j − i when |j − i| ≤ R, plus at most one reflected
    tap near each border (size > 2R).

    Returns:
        ``direct`` (size·size,) tap index per entry of G (2R + 1: none, a zero weight),
        ``pos`` (M,) flat entries with a reflected tap and ``tap`` (M,) its index; the
        entries in ``pos`` are distinct; and R.
    """
    t = np.arange(-radius, radius + 1)
    i = np.arange(size)[:, None]
    diff = np.arange(size)[None, :] - i  # (size, size): j − i
    direct = np.where(np.abs(diff) <= radius, diff + radius, 2 * radius + 1).ravel()
    k = i + t[None, :]  # (size, 2R+1) source index before reflection
    refl = (k < 0) | (k >= size)
    j = np.where(k < 0, -k - 1, 2 * size - k - 1)  # reflected source index
    rows, taps = np.nonzero(refl)
    pos = rows * size + j[rows, taps]
    assert np.unique(pos).size == pos.size  # one reflected tap per entry (size > 2R)
    return direct, pos, taps, radius


def _blur_matrices(
    sigma: np.ndarray, taps: tuple[np.ndarray, np.ndarray, np.ndarray, int], out: np.ndarray
) -> None:
    """Per-image 1-D Gaussian blur as (size × size) matrices G_b, written into ``out``.

    Row i of G_b holds the normalised weights exp(−t²/2σ_b²), |t| ≤ R, at the (reflected)
    source columns, so that ``G_b X G_bᵀ`` is the separable 2-D Gaussian filter of X.
    Built by gathers, not a matmul: a (b × 9) @ (9 × size²) product is large enough for
    OpenBLAS to go multi-threaded, which crawls when other processes hold the cores.

    Args:
        sigma: (b,) standard deviations in pixels.
        taps: from `_reflect_taps`.
        out: (b, size, size) float32.
    """
    direct, pos, tap, radius = taps
    t = np.arange(-radius, radius + 1)
    w = np.exp(-0.5 * (t[None, :] / sigma[:, None]) ** 2)  # (b, 2R+1)
    w /= w.sum(axis=1, keepdims=True)
    w_ext = np.zeros((w.shape[0], w.shape[1] + 1), dtype=_F32)  # last column: no tap
    w_ext[:, :-1] = w
    flat = out.reshape(out.shape[0], -1)  # (b, size²) view
    np.take(w_ext, direct, axis=1, out=flat)
    flat[:, pos] += w_ext[:, tap]  # distinct positions: no lost updates


def _render_chunk(
    kind: int,
    theta: np.ndarray,
    scale: np.ndarray,
    shift: np.ndarray,
    sigma: np.ndarray,
    out: np.ndarray,
    taps: tuple[np.ndarray, np.ndarray, np.ndarray, int],
) -> None:
    """Draw a chunk of images into ``out`` (b, size, size); see `render_shapes`."""
    b, size = out.shape[0], out.shape[-1]
    cov, t1, t2, G, GX = (w[:b] for w in _workspace(_chunk_size(size), size))
    unit = size / 32.0
    centres = np.arange(size) + 0.5  # pixel-centre coordinates; the canvas centre is size/2
    sc = scale * unit
    centre = size / 2 + shift * unit  # (b, 2)
    if kind == 2:
        axes = sc[:, None] * _ELLIPSE_AXES
        _ellipse_coverage(centre, theta, axes, centres, cov, [t1, t2, G, GX])
    else:
        base = _TRIANGLE if kind == 0 else _RECTANGLE  # (V, 2)
        c, s = np.cos(theta)[:, None], np.sin(theta)[:, None]
        r = sc[:, None] * base[None, :, 0]  # (b, V)
        q = sc[:, None] * base[None, :, 1]
        # rotate the offsets by θ: (r, q) -> (c·r − s·q, s·r + c·q)
        verts = np.stack([c * r - s * q, s * r + c * q], axis=-1) + centre[:, None, :]
        _polygon_coverage(verts, centres, cov, t1)
    _blur_matrices(sigma * unit, taps, G)  # (b, size, size)
    np.matmul(G, cov, out=GX)
    np.matmul(GX, G.transpose(0, 2, 1), out=out)
    # a normalised non-negative kernel keeps [0, 1] up to float rounding; clip that away
    np.clip(out, 0.0, 1.0, out=out)


def _taps_for(size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    # one support for all images: scipy's int(4σ + 0.5) at the largest σ (4 pixels at 32)
    return _reflect_taps(size, min(size - 1, int(_TRUNCATE * SIGMA_RANGE[1] * size / 32 + 0.5)))


def _chunk_jobs(kind, theta, scale, shift, sigma, out, taps) -> list[tuple]:
    step = _chunk_size(out.shape[-1])
    return [
        (kind, theta[sl], scale[sl], shift[sl], sigma[sl], out[sl], taps)
        for sl in (slice(lo, lo + step) for lo in range(0, theta.shape[0], step))
    ]


def _run_jobs(jobs: list[tuple]) -> None:
    # One thread: chunks on a 2-thread pool were 5-10% slower than serial in every
    # measurement here (shared 2-core machine, load 1-3); simpler and no worse.
    for job in jobs:
        _render_chunk(*job)


def render_shapes(
    kind: int,
    theta: np.ndarray,
    scale: np.ndarray,
    shift: np.ndarray,
    sigma: np.ndarray,
    *,
    size: int = 32,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Draw one class's shapes for given parameters, all images at once.

    Anti-aliased: coverage = clip(½ − d / w, 0, 1) for the signed distance d of the
    pixel centre to the boundary and the pixel's width w along the boundary's normal
    (exact for a straight edge parallel to the pixel sides; see `_polygon_coverage`),
    then Gaussian-blurred. Deterministic for given parameters (each image's arithmetic
    does not depend on the chunk it falls in).

    Args:
        kind: class index (0 triangle, 1 rectangle, 2 ellipse).
        theta: (B,) rotation angles in radians.
        scale: (B,) size factors (1 = the base shape).
        shift: (B, 2) shift of the shape's centre (row, col) in pixels of a 32-canvas.
        sigma: (B,) blur σ in pixels of a 32-canvas.
        size: canvas side (shapes, shifts and σ scale with size / 32).
        out: optional (B, size, size) float32 array to draw into (may be a strided view).

    Returns:
        (B, size, size) float32 images with values in [0, 1] (``out`` when given).
    """
    n = theta.shape[0]
    if out is None:
        out = np.empty((n, size, size), dtype=np.float32)
    _run_jobs(_chunk_jobs(kind, theta, scale, shift, sigma, out, _taps_for(size)))
    return out


def _class_parameters(
    rng: np.random.Generator, m: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Random parameters of m images of one class: (theta, scale, shift, sigma).

    Angles are stratified — one in each of m equal bins of [0°, 176°), in random order —
    so that every set of images spreads evenly over the range, as the paper's
    evenly spaced angles do, while the train/validation split stays random.
    """
    bins = rng.permutation(m)
    theta = np.deg2rad(ANGLE_RANGE_DEG) * (bins + rng.random(m)) / m
    scale = rng.uniform(*SCALE_RANGE, size=m)
    shift = rng.uniform(-SHIFT_MAX, SHIFT_MAX, size=(m, 2))
    sigma = rng.uniform(*SIGMA_RANGE, size=m)
    return theta, scale, shift, sigma


def make_geomnist(n_train: int, n_val: int, *, seed: int, size: int = 32) -> Dataset:
    """Generate GeoMNIST (paper §4.1, Fig. 2): triangles, rectangles and ellipses.

    Each class's n_train + n_val images get independent random parameters (a stream
    of ``np.random.SeedSequence(seed)`` per class), are drawn by `render_shapes` and
    split: the first n_train (in random angle order) train, the rest validate.

    Args:
        n_train: training images per class (≥ 1).
        n_val: validation images per class (≥ 0).
        seed: random seed; the same seed gives bitwise-identical arrays.
        size: canvas side in pixels (≥ 8); 32 in the paper.

    Returns:
        `Dataset` with ``x_train`` (3·n_train, 1, size, size) float32 in [0, 1],
        ``y_train`` (3·n_train,) int64 (class-major order), ``x_val`` (3·n_val, 1, size,
        size), ``y_val``, ``class_names`` ("triangle", "rectangle", "ellipse") and
        provenance (name, seed, source, options; `lesde.data.load` adds checksums).

    Raises:
        TypeError: a count, seed or size that is not an integer.
        ValueError: n_train < 1, n_val < 0 or size < 8.
    """
    for name, value, lo in (("n_train", n_train, 1), ("n_val", n_val, 0), ("size", size, 8)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise TypeError(f"`{name}` must be an int, got {type(value).__name__} {value!r}")
        if value < lo:
            raise ValueError(f"`{name}` must be >= {lo}, got {value}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise TypeError(f"`seed` must be an int, got {type(seed).__name__} {seed!r}")
    n_train, n_val, size, m = int(n_train), int(n_val), int(size), int(n_train) + int(n_val)
    K = len(CLASS_NAMES)
    x_tr = np.empty((K * n_train, 1, size, size), dtype=np.float32)
    x_va = np.empty((K * n_val, 1, size, size), dtype=np.float32)
    taps, jobs = _taps_for(size), []
    for k, child in enumerate(np.random.SeedSequence(int(seed)).spawn(K)):
        theta, scale, shift, sigma = _class_parameters(np.random.default_rng(child), m)
        # images do not depend on how they are chunked: draw straight into the outputs
        for sl, dest, n in ((slice(0, n_train), x_tr, n_train), (slice(n_train, m), x_va, n_val)):
            view = dest[k * n : (k + 1) * n, 0]  # (n, size, size)
            jobs += _chunk_jobs(k, theta[sl], scale[sl], shift[sl], sigma[sl], view, taps)
    _run_jobs(jobs)
    y_tr = np.repeat(np.arange(K, dtype=np.int64), n_train)
    y_va = np.repeat(np.arange(K, dtype=np.int64), n_val)
    prov = {
        "name": "geomnist",
        "seed": int(seed),
        "source": "synthetic: lesde.data.geomnist.make_geomnist",
        "options": {"n_train": n_train, "n_val": n_val, "size": size},
    }
    return Dataset(x_tr, y_tr, x_va, y_va, CLASS_NAMES, prov)

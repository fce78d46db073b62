"""Speed of the GeoMNIST generator against a per-image reference (issue 3's benchmark).

The reference draws each image the way the paper's generator does (``src/datasets.py`` of
github.com/zjiayao/le_sde: ``skimage.draw`` of the base shape, then
``scipy.ndimage.rotate`` and ``scipy.ndimage.gaussian_filter`` per image): here PIL's
``ImageDraw`` (skimage is not a dependency) at the same parameters as ours, then the
same two scipy calls. Both run on the same counts in the same process; the table gives
images/s and the ratio. Ours is timed twice: the first call (fresh output memory, which
is slow to map on these VMs) and the best of 3 later calls.

Also reported: the cost of `lesde.data.load("geomnist")` (which adds SHA-256 checksums)
and the mean absolute difference between our images and the reference's at equal
parameters (they differ by design: ours are anti-aliased, the reference's are binary
shapes smoothed by spline rotation).

Run: ``python bench/bench_geomnist.py [--quick]``; writes bench/results/geomnist.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from lesde.data import load, make_geomnist
from lesde.data.geomnist import (
    _ELLIPSE_AXES,
    _RECTANGLE,
    _TRIANGLE,
    _class_parameters,
    render_shapes,
)

SIZE = 32


def reference_image(kind: int, theta: float, scale: float, shift, sigma: float) -> np.ndarray:
    """One image, the paper's way: draw (binary), rotate (spline), blur."""
    img = Image.new("L", (SIZE, SIZE), 0)
    draw = ImageDraw.Draw(img)
    c = SIZE / 2 + np.asarray(shift)  # (row, col)
    if kind == 2:
        a, b = scale * _ELLIPSE_AXES
        draw.ellipse([c[1] - b, c[0] - a, c[1] + b, c[0] + a], fill=255)
    else:
        base = _TRIANGLE if kind == 0 else _RECTANGLE
        pts = [(c[1] + scale * q, c[0] + scale * r) for r, q in base]  # PIL takes (x, y)
        draw.polygon(pts, fill=255)
    x = np.asarray(img, dtype=np.float64) / 255.0
    # rotate about the canvas centre (the shift is rotated with the shape, as in the paper)
    x = ndimage.rotate(x, np.rad2deg(theta), reshape=False)
    return np.clip(ndimage.gaussian_filter(x, sigma), 0.0, 1.0).astype(np.float32)


def reference_dataset(n_per_class: int, seed: int) -> np.ndarray:
    """(3·n, 32, 32) images, per image in a python loop."""
    out = []
    for k, child in enumerate(np.random.SeedSequence(seed).spawn(3)):
        theta, scale, shift, sigma = _class_parameters(np.random.default_rng(child), n_per_class)
        for i in range(n_per_class):
            out.append(reference_image(k, theta[i], scale[i], shift[i], sigma[i]))
    return np.stack(out)


def timed(fn, repeat: int = 3) -> tuple[float, float]:
    """(first call, best of ``repeat`` later calls) wall times."""
    t = time.perf_counter()
    fn()
    first = time.perf_counter() - t
    best = np.inf
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return first, best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller counts (CI)")
    args = parser.parse_args()
    ref_counts = (100,) if args.quick else (200, 1000)  # per class
    our_counts = (100, 1000) if args.quick else (200, 1000, 10_000)
    rows = []
    load_before = os.getloadavg()

    ours = {}
    for n in our_counts:
        first, best = timed(lambda n=n: make_geomnist(n, 0, seed=0))
        ours[n] = (first, best)
    refs = {}
    for n in ref_counts:
        t = time.perf_counter()
        reference_dataset(n, seed=0)
        refs[n] = time.perf_counter() - t
    for n in our_counts:
        first, best = ours[n]
        row = {
            "n_images": 3 * n,
            "ours_first_img_per_s": 3 * n / first,
            "ours_best_img_per_s": 3 * n / best,
        }
        if n in refs:
            row["reference_img_per_s"] = 3 * n / refs[n]
            row["ratio_best"] = refs[n] / best
            row["ratio_first"] = refs[n] / first
        rows.append(row)

    n_load = our_counts[-1]
    _, load_best = timed(lambda: load("geomnist", n_train=n_load, n_val=0, seed=0), repeat=2)

    # agreement at equal parameters (ellipse class, 200 images)
    theta, scale, shift, sigma = _class_parameters(np.random.default_rng(1), 200)
    a = render_shapes(2, theta, scale, shift, sigma)
    b = np.stack([reference_image(2, *p) for p in zip(theta, scale, shift, sigma, strict=True)])
    mad = float(np.abs(a - b).mean())
    load_after = os.getloadavg()

    print(f"GeoMNIST {SIZE}x{SIZE}, 3 classes; load average {load_before} -> {load_after}")
    print(f"{'images':>8} {'ours first/s':>13} {'ours best/s':>12} {'reference/s':>12} "
          f"{'ratio':>7}")  # fmt: skip
    for r in rows:
        ref = r.get("reference_img_per_s")
        print(
            f"{r['n_images']:>8} {r['ours_first_img_per_s']:>13,.0f} "
            f"{r['ours_best_img_per_s']:>12,.0f} "
            + (f"{ref:>12,.0f} {r['ratio_best']:>6.0f}x" if ref else f"{'-':>12} {'-':>7}")
        )
    print(f"load('geomnist') with checksums, {3 * n_load} images: {3 * n_load / load_best:,.0f}/s")
    print(f"mean |ours - reference| at equal parameters (ellipses): {mad:.4f}")

    out = Path(__file__).parent / "results" / "geomnist.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "benchmark": "geomnist",
        "size": SIZE,
        "rows": rows,
        "load_with_checksums_img_per_s": 3 * n_load / load_best,
        "mean_abs_diff_vs_reference": mad,
        "loadavg_before": load_before,
        "loadavg_after": load_after,
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform()},
        "numpy": np.__version__,
        "quick": args.quick,
    }
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2))
    os.replace(tmp, out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

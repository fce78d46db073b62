"""Speed of simulate_sde and simulate_particles (issue 2's benchmark).

Size: K = 3, p = 3, n = 100 particles per class, 100 paths, 10^4 steps, i.e.
9e8 particle-coordinate-steps per run. Reported per sampler: wall time,
coordinate-steps/s, the ratio to a plain python-loop Euler–Maruyama (written below, timed
on a few steps and scaled, as the paper's code integrates), and the ratio to the bound
"draw the same number of Gaussians" for the fastest generator of that dtype.

``method="split"`` (simulate_sde) and ``method="lazy"`` (simulate_particles) are exact in
law but draw far fewer Gaussians, so their coordinate-steps/s is an *effective* rate
(same output distribution per second) and can exceed the Gaussian bound.

Run: ``python bench/bench_simulate.py [--quick]``; writes bench/results/simulate.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import time
from pathlib import Path

import numpy as np
import torch

import lesde
from lesde.simulate.sde import NormalSource

K, P, N_PER, N_PATHS, N_STEPS = 3, 3, 100, 100, 10_000


def model() -> lesde.LEModel:
    return lesde.LEModel(K, P, alpha=lambda t: 2e-3 * (1 + np.asarray(t)) ** -0.3, beta=-5e-4,
                         H="L")  # fmt: skip


def timed(fn, repeat: int = 1) -> float:
    """Best wall time of ``repeat`` calls; calls under 1 s are repeated 3 times more."""
    best = math.inf
    for i in range(repeat + 3):
        if i >= repeat and best > 1.0:
            break
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


# ---------------------------------------------------------------- python-loop references
def python_loop_sde(n_steps: int, n_paths: int, seed: int = 0) -> None:
    """Plain python Euler–Maruyama of the particle LE-SDE, loops over everything."""
    rnd = random.Random(seed)
    m = model()
    Ms = m.drift(np.arange(n_steps, dtype=float)).tolist()  # (n_steps, Kp, Kp) as lists
    sig, dt = 0.1, 1.0
    sq = sig * math.sqrt(dt)
    for _ in range(n_paths):
        X = [[[rnd.gauss(0, 1) for _ in range(P)] for _ in range(N_PER)] for _ in range(K)]
        for j in range(n_steps):
            mean = [sum(X[k][i][c] for i in range(N_PER)) / N_PER for k in range(K) for c in
                    range(P)]  # fmt: skip
            M = Ms[j]
            drift = [sum(M[r][q] * mean[q] for q in range(K * P)) for r in range(K * P)]
            for k in range(K):
                for i in range(N_PER):
                    x = X[k][i]
                    for c in range(P):
                        x[c] += dt * drift[k * P + c] + sq * rnd.gauss(0, 1)


def python_loop_particles(n_steps: int, n_paths: int, seed: int = 0) -> None:
    """Plain python eq. (4): one sampled (class, sample) per step, loops over everything."""
    rnd = random.Random(seed)
    m = model()
    E = m.le_matrix(np.arange(n_steps, dtype=float)).tolist()
    Hb = m.H_blocks.tolist()
    sq, h = 0.1, 1.0
    for _ in range(n_paths):
        X = [[[rnd.gauss(0, 1) for _ in range(P)] for _ in range(N_PER)] for _ in range(K)]
        for j in range(n_steps):
            L, J = rnd.randrange(K), rnd.randrange(N_PER)
            src = list(X[L][J])
            for k in range(K):
                H, e = Hb[k][L], E[j][k][L]
                d = [h * e * sum(H[a][b] * src[b] for b in range(P)) for a in range(P)]
                for i in range(N_PER):
                    x = X[k][i]
                    for c in range(P):
                        x[c] += d[c] + sq * rnd.gauss(0, 1)


# ---------------------------------------------------------------- Gaussian bound
def gaussian_rates(n: int) -> dict[str, float]:
    """Draws/s of numpy and torch, float64 and float32, into preallocated buffers."""
    out = {}
    rng = np.random.default_rng(0)
    g = torch.Generator().manual_seed(0)
    for dt in ("float64", "float32"):
        a = np.empty(n, dtype=dt)
        out[f"numpy {dt}"] = n / timed(lambda a=a, dt=dt: rng.standard_normal(out=a, dtype=dt), 3)
        b = torch.empty(n, dtype=getattr(torch, dt))
        out[f"torch {dt}"] = n / timed(lambda b=b: torch.randn(b.shape, out=b, generator=g), 3)
    # what the simulators use: float64 = numpy on 4 streams filled by a thread pool
    src = NormalSource(0, "float64")
    a = np.empty(n)
    out["lesde float64 (numpy, threaded)"] = n / timed(lambda: src.fill(a), 3)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="10x fewer steps")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "simulate.json"))
    args = ap.parse_args()
    n_steps = N_STEPS // 10 if args.quick else N_STEPS
    coords = N_PATHS * K * N_PER * P
    work = coords * n_steps  # particle-coordinate-steps
    load_before = os.getloadavg()

    rates = gaussian_rates(coords * 100)
    best = {dt: max(v for k, v in rates.items() if dt in k) for dt in ("float64", "float32")}

    # python references on a few steps of one path, scaled to the full size
    ref_steps = 5
    t_ref_sde = timed(lambda: python_loop_sde(ref_steps, 1)) * (n_steps / ref_steps) * N_PATHS
    t_ref_par = timed(lambda: python_loop_particles(ref_steps, 1)) * (n_steps / ref_steps)
    t_ref_par *= N_PATHS

    m = model()
    x0 = np.random.default_rng(0).normal(size=(K, P))
    ts = np.arange(n_steps + 1, dtype=float)
    rows = []

    def add(name, seconds, ref, dtype, draws):
        rows.append({
            "sampler": name,
            "seconds": seconds,
            "coord_steps_per_s": work / seconds,
            "speedup_vs_python_loop": ref / seconds,
            "gaussians_drawn": draws,
            "time_vs_gaussian_bound": seconds / (draws / best[dtype]) if draws else None,
            "rate_vs_gaussian_bound": (work / seconds) / best[dtype],
        })  # fmt: skip

    common = dict(n_per_class=N_PER, sigma=0.1, n_paths=N_PATHS, x0=x0, seed=0,
                  save_ts=[ts[-1]], init_spread=1.0)  # fmt: skip
    for method, dtype, draws in (
        ("split", "float64", N_PATHS * n_steps * K * P + 2 * coords),
        ("particles", "float64", work + coords),
        ("particles", "float32", work + coords),
    ):
        sec = timed(lambda method=method, dtype=dtype: lesde.simulate_sde(
            m, ts, method=method, dtype=dtype, **common))  # fmt: skip
        add(f"simulate_sde {method} {dtype}", sec, t_ref_sde, dtype, draws)

    pcommon = dict(n_per_class=N_PER, h=1.0, sigma=0.1, x0=x0, seed=0, n_paths=N_PATHS,
                   save_steps=[n_steps], init_spread=1.0)  # fmt: skip
    for method, draws in (("lazy", N_PATHS * n_steps * P + 2 * coords), ("direct", work + coords)):
        sec = timed(lambda method=method: lesde.simulate_particles(
            m, n_steps, method=method, **pcommon))  # fmt: skip
        add(f"simulate_particles {method} float64", sec, t_ref_par, "float64", draws)

    load_after = os.getloadavg()
    print(f"K={K} p={P} n={N_PER} paths={N_PATHS} steps={n_steps}: {work:.2e} coordinate-steps")
    print(f"torch threads {torch.get_num_threads()}, loadavg before {load_before}, "
          f"after {load_after}")  # fmt: skip
    print("Gaussian draws/s: " + ", ".join(f"{k} {v:.3g}" for k, v in rates.items()))
    print(f"python-loop reference: LE-SDE {work / t_ref_sde:.3g} coord-steps/s "
          f"({N_PATHS * n_steps / t_ref_sde:.3g} path-steps/s); eq. (4) "
          f"{work / t_ref_par:.3g} coord-steps/s")  # fmt: skip
    hdr = (f"{'sampler':38s} {'seconds':>8s} {'coord-steps/s':>14s} {'x python':>9s} "
           f"{'draws':>9s} {'t/t_bound':>9s}")  # fmt: skip
    print(hdr)
    print("-" * len(hdr))
    for r in rows:
        tb = r["time_vs_gaussian_bound"]
        print(f"{r['sampler']:38s} {r['seconds']:8.3f} {r['coord_steps_per_s']:14.3e} "
              f"{r['speedup_vs_python_loop']:9.0f} {r['gaussians_drawn']:9.2e} "
              f"{tb:9.2f}")  # fmt: skip
    print("t/t_bound: wall time over the time the fastest generator of that dtype needs to "
          "draw the sampler's Gaussians (1.0 = bound by the generator).")  # fmt: skip

    result = {
        "size": {"K": K, "p": P, "n_per_class": N_PER, "n_paths": N_PATHS, "n_steps": n_steps},
        "coordinate_steps": work,
        "gaussian_draws_per_s": rates,
        "python_loop_seconds": {"simulate_sde": t_ref_sde, "simulate_particles": t_ref_par},
        "python_loop_reference_steps": ref_steps,
        "rows": rows,
        "loadavg_before": load_before,
        "loadavg_after": load_after,
        "torch_threads": torch.get_num_threads(),
        "machine": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2))
    os.replace(tmp, out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

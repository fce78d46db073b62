"""Validate `lesde.estimate.tail_check` on series whose answer is known.

True power laws A(t) = ((1+t)^(1−s) − 1)/(1−s) must pass; relaxations Γ = 1 − e^{−t/τ}
(no tail index) must fail. Noise: i.i.d., AR(1) with ρ = 0.9 and a random walk, each
scaled to an sd (the walk: an rms) of 10⁻³ and 10⁻² of max|A|. Writes
docs/results/tail-check/summary.json and prints the rates quoted in the module docstring.

    python examples/tail_check_validation.py [--draws 20]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from lesde.estimate.tail_check import check_tail_fit


def _noise(rng, kind: str, n: int) -> np.ndarray:
    e = rng.standard_normal(n)
    if kind == "ar1":
        out = np.empty(n)
        out[0] = e[0]
        for i in range(1, n):
            out[i] = 0.9 * out[i - 1] + np.sqrt(1 - 0.81) * e[i]
        return out
    if kind == "walk":
        w = np.cumsum(e)
        return w / np.sqrt(np.mean(w**2))
    return e


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--draws", type=int, default=20)
    ap.add_argument("--out", default="docs/results/tail-check/summary.json")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    kinds, levels = ("iid", "ar1", "walk"), (1e-3, 1e-2)
    power = {k: [0, 0] for k in kinds}  # passes, identifiable draws
    resid_rej = [0, 0]
    times = []
    for s in (0.3, 0.6, 0.9, 1.1, 1.4, 2.0):
        for n, T in ((201, 1e4), (2001, 1e5)):
            t = np.linspace(0, T, n)
            A = ((1 + t) ** (1 - s) - 1) / (1 - s)
            for kind in kinds:
                for lv in levels:
                    for _ in range(args.draws):
                        y = A + lv * np.abs(A).max() * _noise(rng, kind, n)
                        t0 = time.perf_counter()
                        c = check_tail_fit(t, y, name="Â")
                        if n == 2001:
                            times.append(time.perf_counter() - t0)
                        if not c.details["identifiable"]:
                            continue
                        power[kind][1] += 1
                        power[kind][0] += c.fits
                        resid_rej[1] += 1
                        resid_rej[0] += "systematic residuals" in c.failed
    relax = {}
    for tau in (0.05, 0.1, 0.2):
        for lv in levels:
            fails = 0
            for _ in range(args.draws):
                t = np.linspace(0, 1e5, 2001)
                y = 1 - np.exp(-t / (tau * 1e5)) + lv * rng.standard_normal(t.size)
                fails += not check_tail_fit(t, y, name="Γ").fits
            relax[f"tau={tau:g},noise={lv:g}"] = fails / args.draws
    passed = sum(v[0] for v in power.values()) / sum(v[1] for v in power.values())
    out = {
        "draws_per_case": args.draws,
        "power_law_pass_rate": passed,
        "power_law_pass_rate_by_noise": {k: v[0] / v[1] for k, v in power.items()},
        "identifiable_draws": sum(v[1] for v in power.values()),
        "residual_check_rejects_power_law": resid_rej[0] / resid_rej[1],
        "relaxation_fail_rate": relax,
        "ms_per_call_2001_points": 1e3 * float(np.median(times)),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(args.out).with_suffix(".tmp")
    tmp.write_text(json.dumps(out, indent=1))
    tmp.replace(args.out)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()

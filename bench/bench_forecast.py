"""Speed of the forecast stage (issue 18): every fit fraction under both H models.

Input: a record the size of the default GeoMNIST run (50 trials × 2·10⁴ steps, 16
checkpoints, 20 probes per class), produced by the LE particle process
(`synthetic_record`) so that the bench needs no training; with ``--run DIR`` an existing
run directory (e.g. runs/demo after ``make demo``) instead. Timed: ``stage_forecast``
(f = 0.1, 0.2, 0.3, 0.5 × I, L, 50 bootstrap resamples each: the fits, the LE-ODE paths,
the LE-SDE clouds and the LP separability of every trial at T), and, for scale, the
estimate stage on the same record in the same run. Writes bench/results/forecast.json.

Measured (one run on 2 shared cores, load 1.4, on runs/demo of `make demo`): the 8
backtests in 4.50 s (0.56 s each), the estimate stage 1.26 s; the estimate stage's own
speed figures are those of bench_estimate.py (unchanged by the forecast stage).

Usage: python bench/bench_forecast.py [--run DIR] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from lesde.experiments import pipeline as pl
from lesde.experiments.forecast import stage_forecast
from lesde.experiments.stages import record_arrays, stage_estimate


def _record(run: str | None):
    if run:
        train = Path(run) / "train" if (Path(run) / "train").is_dir() else Path(run)
        return record_arrays(pl.open_record(train), None), str(run)
    d = Path(tempfile.mkdtemp()) / "rec"
    pl.synthetic_record(d, n_trials=50, n_steps=20_000, n_checkpoints=16, seed=0)
    return record_arrays(pl.open_record(d), None), "synthetic 50 × 20000"


def _best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", default=None, help="a run directory (default: a synthetic record)")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    rec, source = _record(args.run)
    cfg = pl.PipelineConfig()
    t_fc = _best(lambda: stage_forecast(rec, cfg), args.repeat)
    t_est = _best(lambda: stage_estimate(rec, cfg), args.repeat)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, numbers = stage_forecast(rec, cfg)
    n_fc = len(numbers["I"]) + len(numbers["L"])
    rows = [
        ("forecast stage (all f, I and L)", t_fc, n_fc),
        ("estimate stage (same record)", t_est, 1),
    ]
    print(f"record: {source}; load average {os.getloadavg()[0]:.2f}")
    print(f"{'what':<36} {'seconds':>9} {'backtests':>10} {'s / backtest':>13}")
    for what, t, n in rows:
        print(f"{what:<36} {t:>9.2f} {n:>10d} {t / n:>13.3f}")
    print(f"forecast / estimate: {t_fc / t_est:.2f}")
    out = Path("bench/results/forecast.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    res = {
        "record": source, "repeat": args.repeat, "python": platform.python_version(),
        "cpus": os.cpu_count(), "load_average": os.getloadavg()[0],
        "forecast_seconds": t_fc, "estimate_seconds": t_est, "backtests": n_fc,
        "forecast_over_estimate": t_fc / t_est,
        "skills_L": [float(np.round(r["skill"], 3)) for r in numbers["L"]],
    }  # fmt: skip
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(res, indent=1))
    tmp.replace(out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

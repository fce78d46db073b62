"""Measured wall time of the paper-scale GeoMNIST run and the whole-paper estimate from it.

    lesde run geomnist --scale paper --out runs/geo-paper-v2 > runs/geo-paper-v2.log 2>&1
    make demo > runs/demo.log 2>&1                               # optional: the demo's time
    python examples/timing.py runs/geo-paper-v2 [runs/demo]      # -> docs/results/timing

Reads the run's ``summary.json`` (each stage's measured seconds), counts the trial-steps
of ``lesde run paper --scale paper`` (`lesde.studies.paper.plan`) and writes
``docs/results/timing/summary.json``: the GeoMNIST wall time, its end-to-end training rate
(recording and the 201 probe evaluations included), and the paper's training time at that
rate (an estimate: the sub-runs' evaluation schedules differ a little). README quotes it;
`tests/test_results.py` checks the quote.
"""

from __future__ import annotations

import json
import platform
import sys
from pathlib import Path

import torch

from lesde.studies.paper import plan

ROOT = Path(__file__).resolve().parents[1]


def _wall(run_dir: str) -> float | None:
    """The command's own wall time ("done in N s"), from its log beside the run directory."""
    log = Path(f"{str(run_dir).rstrip('/')}.log")
    return next((float(line.split()[2]) for line in log.read_text().splitlines()
                 if line.startswith("done in ")), None) if log.exists() else None  # fmt: skip


def main(run_dir: str, demo_dir: str | None = None) -> None:
    s = json.loads((Path(run_dir) / "summary.json").read_text())
    stages = {k: v["seconds"] for k, v in s["stages"].items()}
    cfg = s["config"]
    trial_steps = int(cfg["n_trials"] or 100) * int(cfg["n_steps"] or 100_000)
    rate = trial_steps / stages["train"]
    wall = _wall(run_dir)
    parts = plan("paper")  # CIFAR-10 only with a local copy
    total = sum(p["trial_steps"] for p in parts if p["module"] != "cifar")
    cifar = sum(p["trial_steps"] for p in parts if p["module"] == "cifar")
    out = {
        "geomnist_paper": {
            "trial_steps": trial_steps,
            "seconds": stages,
            "total_seconds": round(sum(stages.values()), 1),
            "wall_seconds": wall,
            "train_rate": round(rate),
        },  # fmt: skip
        "paper_scale": {
            "trial_steps": total,
            "trial_steps_with_cifar": total + cifar,
            "parts": {p["name"]: p["trial_steps"] for p in parts},
            "train_hours_at_that_rate": round(total / rate / 3600, 2),
            "train_hours_with_cifar": round((total + cifar) / rate / 3600, 2),
        },
        # CIFAR's 3-channel input costs more per step than GeoMNIST's: a lower bound there
        # the previous torch engine on the same run (issue 18's paper-length training):
        # runs/train_paper.log, "geo 1043.7" seconds
        "previous_engine_geomnist_train_seconds": 1043.7,
        "machine": {
            "cpus": torch.get_num_threads(),
            "torch": torch.__version__,
            "platform": platform.platform(),
        },  # fmt: skip
    }
    if demo_dir is not None:  # `make demo`: its training stage and the command's wall time
        d = json.loads((Path(demo_dir) / "summary.json").read_text())
        out["demo"] = {"train_seconds": d["stages"]["train"]["seconds"],
                       "wall_seconds": _wall(demo_dir)}  # fmt: skip
    dest = ROOT / "docs" / "results" / "timing"
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "summary.json").write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "runs/geo-paper-v2", *sys.argv[2:3])

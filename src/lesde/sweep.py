"""Experiment grids: p_err × seeds × datasets, locally or as tasks on a Ray cluster.

Every grid point is a complete run directory ``OUT/points/<dataset>_p<p_err>_s<seed>``
(the same pipeline as ``lesde run``), so a point that finished is skipped on a re-run and
a point that was interrupted resumes. The sweep then collects the points' key numbers
into ``OUT/sweep.json`` and a ``summary.json`` that `lesde.figures` and `lesde.report`
read (Fig. 4 across p_err when the grid has one dataset).

Local execution runs the points one after another in this process. ``ray`` runs each
point as a Ray task (``ray`` is an optional extra: ``pip install 'lesde[ray]'``);
``address="auto"`` joins a running cluster (``ray start --head`` on the head node), an
explicit ``ray://host:10001`` or ``host:6379`` address joins that one. If Ray is already
initialised in this process (a test, a notebook), that instance is used. The workers
must see ``OUT`` at the same path (a shared file system); each task also returns its
key numbers, so the table is complete even when they do not.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lesde.experiments.summary import write_summary
from lesde.rundir import load_summary, write_json_atomic

__all__ = ["SweepConfig", "grid", "run_point", "run_sweep", "DATASETS"]

DATASETS = ("geomnist", "digits", "cifar", "synthetic")


@dataclass(frozen=True)
class SweepConfig:
    """A grid of runs.

    Attributes:
        datasets: among "geomnist", "digits", "cifar" (needs ``cifar_root``) and
            "synthetic" (records of the LE particle process, no network: seconds per
            point, for checking a cluster).
        p_errs: label-corruption ratios.
        seeds: root seeds.
        scale: "tiny", "default" or "paper" (as ``lesde run``).
        cifar_root: CIFAR-10 directory for the "cifar" dataset.
        cpus_per_point: CPUs a Ray task reserves (and torch threads it uses).
    """

    datasets: tuple[str, ...] = ("geomnist",)
    p_errs: tuple[float, ...] = (0.0, 1 / 3, 2 / 3)
    seeds: tuple[int, ...] = (0,)
    scale: str = "default"
    cifar_root: str | None = None
    cpus_per_point: int = 1

    def __post_init__(self) -> None:
        bad = [d for d in self.datasets if d not in DATASETS]
        if not self.datasets or bad:
            raise ValueError(f"`datasets` must be among {DATASETS}, got {self.datasets!r}")
        if not self.p_errs or any(not 0 <= p <= 1 for p in self.p_errs):
            raise ValueError(f"`p_errs` must be values in [0, 1], got {self.p_errs!r}")
        if not self.seeds:
            raise ValueError("`seeds` must not be empty")
        if self.scale not in ("tiny", "default", "paper"):
            raise ValueError(f"`scale` must be tiny, default or paper, got {self.scale!r}")
        if self.cpus_per_point < 1:
            raise ValueError(f"`cpus_per_point` must be >= 1, got {self.cpus_per_point!r}")


def _point_dir(dataset: str, p_err: float, seed: int) -> str:
    return f"points/{dataset}_p{p_err:.4f}_s{seed}"


def grid(cfg: SweepConfig) -> list[dict[str, Any]]:
    """The grid points (dataset, p_err, seed, dir) in a stable order."""
    return [
        {"dataset": d, "p_err": float(p), "seed": int(s), "dir": _point_dir(d, p, s)}
        for d in cfg.datasets
        for p in cfg.p_errs
        for s in cfg.seeds
    ]


def run_point(point: dict[str, Any], out: str, scale: str, cifar_root: str | None = None,
              threads: int | None = None) -> dict[str, Any]:  # fmt: skip
    """Run (or resume) one grid point in ``out/point['dir']``; return its key numbers.

    A plain module-level function so that Ray ships it to workers by reference.
    """
    if threads:
        import torch

        torch.set_num_threads(int(threads))
    run_dir = Path(out) / point["dir"]
    ds, p_err, seed = point["dataset"], point["p_err"], point["seed"]

    def quiet(msg: str) -> None:
        pass

    if ds == "geomnist":
        from lesde.studies import geomnist

        summary = geomnist.run(geomnist.Config(scale=scale, seed=seed, p_err=p_err), run_dir,
                               log=quiet)  # fmt: skip
    elif ds == "digits":
        from lesde.studies import digits

        summary = digits.run(digits.Config(scale=scale, seed=seed, p_err=p_err), run_dir, log=quiet)
    elif ds == "cifar":
        from lesde.studies import cifar

        summary = cifar.run(
            cifar.Config(root=cifar_root, scale=scale, seed=seed, p_err=p_err), run_dir, log=quiet
        )
    else:
        summary = _run_synthetic(run_dir, p_err=p_err, seed=seed, scale=scale, log=quiet)
    return {**point, "key": summary.key.to_json(), "learned": summary.key.learned}


def _run_synthetic(run_dir: Path, *, p_err: float, seed: int, scale: str, log) -> dict:
    """A grid point on LE particle-process records (no network), a toy of label noise.

    With a fraction q = p_err·K/(K−1) of labels drawn at random, a step's push is
    attributed to a random class that often, so the rates move linearly towards their
    class average (α + (K−1)β)/K: γ = α − β shrinks by (1 − q) and vanishes at
    p_err = (K−1)/K.
    """
    import numpy as np

    from lesde.experiments.config import PipelineConfig
    from lesde.experiments.synthetic import synthetic_record
    from lesde.studies.runner import run_single

    K = 3
    q = p_err * K / (K - 1)  # 0 at clean labels, 1 at random labels
    a0, b0 = 0.03, -0.005
    a_eff = (1 - q) * a0 + q * (a0 + (K - 1) * b0) / K
    b_eff = (1 - q) * b0 + q * (a0 + (K - 1) * b0) / K
    steps = {"tiny": 400, "default": 3000, "paper": 20000}[scale]

    def train(d: Path) -> None:
        synthetic_record(
            d, n_trials=6, n_steps=steps, n_checkpoints=11, seed=seed,
            alpha=lambda t: a_eff * (1 + np.asarray(t) / 50) ** -0.5,
            beta=lambda t: b_eff * (1 + np.asarray(t) / 50) ** -0.5,
        )  # fmt: skip

    cfg = PipelineConfig(n_paths=100, seed=seed, n_boot=20)
    return run_single(run_dir, experiment="synthetic", config={"p_err": p_err, "seed": seed},
                      spec=None, cfg=cfg, train=train, log=log)  # fmt: skip


def run_sweep(
    cfg: SweepConfig,
    out: Path | str,
    *,
    ray_address: str | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run (or resume) every grid point, then collect them.

    Args:
        cfg: the grid.
        out: the sweep directory.
        ray_address: None runs locally, one point after another; "auto" or an address
            runs the points as Ray tasks (an already initialised Ray is reused).
        log: progress messages.

    Returns:
        The collected table: {"config", "rows": [{dataset, p_err, seed, dir, key}], ...}.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    points = grid(cfg)
    t0 = time.perf_counter()
    if ray_address is None:
        rows = []
        for i, p in enumerate(points):
            log(f"[{i + 1}/{len(points)}] {p['dir']}")
            rows.append(run_point(p, str(out), cfg.scale, cfg.cifar_root))
    else:
        try:
            import ray
        except ImportError as err:
            raise ImportError(
                "`--ray` needs the optional dependency ray: pip install 'lesde[ray]'"
            ) from err
        if not ray.is_initialized():
            ray.init(address=ray_address, include_dashboard=False, log_to_driver=False)
        task = ray.remote(num_cpus=cfg.cpus_per_point)(run_point)
        refs = [
            task.remote(p, str(out.resolve()), cfg.scale, cfg.cifar_root, cfg.cpus_per_point)
            for p in points
        ]
        log(f"submitted {len(refs)} points to Ray ({ray.cluster_resources().get('CPU', 0):g} CPUs)")
        rows = ray.get(refs)
    table = {
        "config": {
            "datasets": list(cfg.datasets),
            "p_errs": list(cfg.p_errs),
            "seeds": list(cfg.seeds),
            "scale": cfg.scale,
        },  # fmt: skip
        "executor": "local" if ray_address is None else f"ray:{ray_address}",
        "seconds": round(time.perf_counter() - t0, 2),
        "rows": rows,
    }
    write_json_atomic(out / "sweep.json", table)
    _write_summary(out, cfg, rows)
    return table


def _write_summary(out: Path, cfg: SweepConfig, rows: list[dict[str, Any]]) -> None:
    """``summary.json`` of the sweep so `draw_figures` and `write_report` can read it."""
    from lesde.figures import draw_figures
    from lesde.report import write_report

    summary = dict(load_summary(out))
    one = len(cfg.datasets) == 1
    summary.update(
        experiment="sweep",
        config={
            "datasets": list(cfg.datasets),
            "p_errs": list(cfg.p_errs),
            "seeds": list(cfg.seeds),
            "scale": cfg.scale,
        },  # fmt: skip
        parameter="p_err",
        n_classes=3,
        tail_model="L",
        points=[
            {"value": r["p_err"], "dir": r["dir"], "label": f"{r['dataset']} s{r['seed']}"}
            for r in rows
            if one
        ],
    )
    acc = {}
    for r in rows:
        v = r["key"].get("val_acc_final")
        if v is not None and math.isfinite(v):
            acc.setdefault((r["dataset"], r["p_err"]), []).append(v)
    summary["key"] = {
        f"val_acc {d} p_err={p:.3g}": sum(v) / len(v) for (d, p), v in sorted(acc.items())
    }
    bad = not_learned(rows)
    summary["key"]["runs that did not learn"] = f"{len(bad)} of {len(rows)}"
    summary["notes"] = [not_learned_note(rows)] if bad else []
    final = write_summary(out, summary)
    if one:
        draw_figures(out, summary=final)
    write_report(out, summary=final)


def did_not_learn(row: dict[str, Any]) -> bool:
    """Whether a grid point's networks did not learn (its row of `run_sweep`'s table)."""
    return row.get("learned", row["key"].get("learned")) is False


def not_learned(rows: list[dict[str, Any]]) -> list[str]:
    """The grid points whose networks did not learn ("geomnist p_err=0.667 seed 0")."""
    return [f"{r['dataset']} p_err={r['p_err']:.3g} seed {r['seed']}" for r in rows
            if did_not_learn(r)]  # fmt: skip


def not_learned_note(rows: list[dict[str, Any]]) -> str:
    """The warning of a sweep with runs that did not learn (console and report)."""
    bad = not_learned(rows)
    return (f"WARNING: {len(bad)} of {len(rows)} runs did not learn ({', '.join(bad)}): "
            "their verdicts describe networks near their initialisation and are not "
            "meaningful; train longer or use a larger --scale")  # fmt: skip

"""The shared chain of every training experiment: train → estimate → simulate → analyse.

A run directory holds:

- ``train/``: the trainer's run store (`lesde.open_run` reads it);
- ``estimates.npz``: X̄(t), Â, B̂, α̂, β̂ under both H models (paper §4.1, Fig. 3);
- ``simulate.npz``: LE-ODE paths driven by the estimates and their RD (paper §4.2, Fig. 5);
- ``analysis.npz``: separability, ETF deviation over time, direct local elasticity,
  the full Ê(t) (docs/math.md §4, §6);
- ``forecast.npz``: the out-of-sample backtests (`lesde.forecasting.backtest`): fitted on
  t ≤ f·T, the LE-ODE/SDE's prediction of the rest against the genuine record;
- ``summary.json``: the key numbers and, per stage, what it wrote
  (`lesde.experiments.summary`). It is rewritten atomically after every stage, so an
  interrupted ``lesde run`` resumes: a stage is skipped when ``summary.json`` marks it
  done and its output file is present.

Every array file is written to a temporary name and moved into place (``os.replace``),
so a kill leaves either the old state or the new one, never half a file. ``.npz`` files
are read with ``allow_pickle=False``.

How X̄(t) is formed (``PipelineConfig.xbar_source``):

- ``"samples"`` (the paper's way): at every step each trial records the logits of the
  sample it trains on, before the update. X̄^k on a bin of ``bin_width`` steps is the
  average of those logits over all trials and steps in the bin whose label is k (the
  paper averages over trials per step; binning in time pools a few steps so that
  fewer trials suffice). The grid is the bins' mean step.
- ``"probe"``: the class means of the fixed probe set (training probes) at the
  checkpoints, averaged over trials.

The per-trial class means of the probe set always feed the full Ê(t) and the ETF
deviation over time.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from lesde._progress import progress_bar
from lesde.estimate.class_means import class_means_from_samples, probe_class_means
from lesde.experiments.config import (
    STAGE_VERSIONS,
    STAGES,
    PipelineConfig,
    TrainSpec,
    le_steps_for,
)
from lesde.experiments.forecast import stage_forecast as _stage_forecast
from lesde.experiments.headline import headline, key_numbers, verdict_notes
from lesde.experiments.outputs import Analysis, Estimates, Simulation
from lesde.experiments.stages import learning_check
from lesde.experiments.stages import record_arrays as _record_arrays
from lesde.experiments.stages import stage_analyse as _stage_analyse
from lesde.experiments.stages import stage_estimate as _stage_estimate
from lesde.experiments.stages import stage_simulate as _stage_simulate
from lesde.experiments.summary import RunSummary, crossing, write_summary
from lesde.experiments.synthetic import synthetic_record
from lesde.rundir import SUMMARY, load_summary, mark_stage, open_record, stage_done
from lesde.store import jsonable, load_npz, save_npz_atomic, write_json_atomic
from lesde.train.premise import optimizer_caveat

__all__ = [
    "PipelineConfig",
    "TrainSpec",
    "STAGES",
    "STAGE_VERSIONS",
    "run_pipeline",
    "build_summary",
    "make_train_fn",
    "crossing",
    "load_summary",
    "write_json_atomic",
    "save_npz_atomic",
    "load_npz",
    "class_means_from_samples",
    "probe_class_means",
    "synthetic_record",
    "open_record",
    "key_numbers",
    "learning_check",
    "verdict_notes",
    "le_steps_for",
    "jsonable",
    "SUMMARY",
    "Estimates",
    "Simulation",
    "Analysis",
]


def _stage_done(run_dir: Path, summary: dict, stage: str, outputs: list[str]) -> bool:
    return stage_done(run_dir, summary, stage, outputs, STAGE_VERSIONS[stage])


def _mark(run_dir: Path, summary: dict, stage: str, outputs: list[str], seconds: float) -> None:
    mark_stage(summary, stage, outputs, seconds, STAGE_VERSIONS[stage])
    write_summary(run_dir, summary)


def build_summary(numbers: Mapping[str, Any]) -> RunSummary:
    """The typed summary of a run's stage numbers: headline, key numbers and notes built
    from them (`lesde.experiments.headline`), once."""
    base = RunSummary.from_json({k: v for k, v in numbers.items()
                                 if k not in ("headline", "key", "notes")})  # fmt: skip
    return dataclasses.replace(
        base,
        headline=tuple(headline(numbers)),
        key=key_numbers(numbers),
        notes=tuple(verdict_notes(numbers)),
    )


def run_pipeline(
    run_dir: Path,
    *,
    experiment: str,
    config: Any,
    train: Callable[[Path], None],
    cfg: PipelineConfig,
    log: Callable[[str], None] = print,
) -> RunSummary:
    """Run (or resume) train → estimate → simulate → analyse in ``run_dir``.

    Args:
        run_dir: the run directory (created).
        experiment: experiment name, stored in the summary.
        config: the experiment's config (a dataclass or dict; stored as JSON).
        train: ``train(train_dir)`` produces (or resumes) the run store in ``train_dir``;
            it is skipped once the summary marks it done.
        cfg: options of the later stages.
        log: progress messages.

    Returns:
        The summary (`RunSummary`, a mapping of what ``summary.json`` holds).
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    summary = load_summary(run_dir, broken="warn")
    summary.setdefault("experiment", experiment)
    summary["config"] = jsonable(config)
    summary["pipeline"] = jsonable(cfg)
    summary.setdefault("stages", {})
    write_summary(run_dir, summary)
    train_dir = run_dir / "train"

    if _stage_done(run_dir, summary, "train", ["train"]):
        log("train: done (skipped)")
    else:
        t = time.perf_counter()
        train(train_dir)
        _mark(run_dir, summary, "train", ["train"], time.perf_counter() - t)
        log(f"train: {time.perf_counter() - t:.1f} s")

    # the premises of the LE-SDE the record does not meet (an optimizer other than plain
    # batch-size-1 SGD): every model verdict carries them
    caveat = optimizer_caveat(train_dir)
    summary["caveats"] = [caveat] if caveat else []
    ds = None
    rec = None

    def record():
        nonlocal ds, rec
        if rec is None:
            ds = open_record(train_dir)
            rec = _record_arrays(ds, cfg.classes)
        return rec

    # a stage that runs makes every later stage stale: they read its output
    if _stage_done(run_dir, summary, "estimate", ["estimates.npz"]):
        est = Estimates.from_arrays(load_npz(run_dir / "estimates.npz"))
        stale = False
    else:
        stale = True
        t = time.perf_counter()
        est, numbers = _stage_estimate(record(), cfg)
        names = ds.attrs.get("class_names") if ds is not None else None
        if names is not None and len(names) == est.xbar.shape[1]:
            summary["class_names"] = [str(n) for n in names]
        save_npz_atomic(run_dir / "estimates.npz", **est.to_arrays())
        summary["estimate"] = numbers
        _mark(run_dir, summary, "estimate", ["estimates.npz"], time.perf_counter() - t)
        log(f"estimate: {time.perf_counter() - t:.1f} s")

    if stale or not _stage_done(run_dir, summary, "simulate", ["simulate.npz"]):
        t = time.perf_counter()
        sim, numbers = _stage_simulate(est, cfg, record())
        save_npz_atomic(run_dir / "simulate.npz", **sim.to_arrays())
        summary["simulate"] = numbers
        _mark(run_dir, summary, "simulate", ["simulate.npz"], time.perf_counter() - t)
        log(f"simulate: {time.perf_counter() - t:.1f} s")

    if stale or not _stage_done(run_dir, summary, "analyse", ["analysis.npz"]):
        t = time.perf_counter()
        rec = record()
        ana, numbers = _stage_analyse(ds, rec, est, cfg)
        save_npz_atomic(run_dir / "analysis.npz", **ana.to_arrays())
        summary["analyse"] = numbers
        _mark(run_dir, summary, "analyse", ["analysis.npz"], time.perf_counter() - t)
        log(f"analyse: {time.perf_counter() - t:.1f} s")

    if stale or not _stage_done(run_dir, summary, "forecast", ["forecast.npz"]):
        t = time.perf_counter()
        fcs, numbers = _stage_forecast(record(), cfg)
        save_npz_atomic(run_dir / "forecast.npz", **fcs.to_arrays())
        summary["forecast"] = numbers
        _mark(run_dir, summary, "forecast", ["forecast.npz"], time.perf_counter() - t)
        log(f"forecast: {time.perf_counter() - t:.1f} s")

    return write_summary(run_dir, build_summary(summary))


def make_train_fn(spec: TrainSpec, *, progress: bool = True) -> Callable[[Path], None]:
    """A ``train(train_dir)`` callable that trains ``spec`` with `lesde.train.run_training`.

    `run_training` resumes an unfinished run directory from its last complete chunk and
    returns a complete one as is, so a killed ``lesde run`` continues where it stopped.
    """

    def train(train_dir: Path) -> None:
        from lesde.train import run_training

        tcfg = spec.train_config()
        bar = None
        if progress:
            done = 0  # steps already in the store when resuming
            meta = Path(train_dir) / "meta.json"
            if meta.exists():
                done = int(json.loads(meta.read_text()).get("steps_done", 0))
            # a bar in a terminal, a line per minute and at the end in a log file
            bar = progress_bar(
                spec.n_steps * spec.n_trials, initial=done * spec.n_trials, unit="trial-step",
                desc=f"train {spec.data} ({spec.n_trials} trials)", unit_scale=True,
                mininterval=1.0,
            )  # fmt: skip
        try:
            run_training(
                Path(train_dir), tcfg, data=spec.data, data_options=dict(spec.data_options),
                progress=(lambda n: bar.update(n * spec.n_trials)) if bar else None,
            )  # fmt: skip
        finally:
            if bar is not None:
                bar.close()

    return train

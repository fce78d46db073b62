"""One floor above the figures and the report: a run end to end, and runs over a parameter.

`run_single` chains the pipeline (train → estimate → simulate → analyse) with every
figure and ``report.html``; `run_points` does it for several values of one parameter
(the label-noise and sample-size sweeps) and writes the parent's summary, figures and
report. The experiment modules call these.
"""

from __future__ import annotations

import calendar
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lesde.experiments.config import PipelineConfig, TrainSpec
from lesde.experiments.pipeline import make_train_fn, run_pipeline
from lesde.experiments.summary import (
    RunSummary,
    points_key_numbers,
    read_summary,
    write_summary,
)
from lesde.figures import draw_figures
from lesde.report import write_report
from lesde.rundir import load_summary
from lesde.store import jsonable

__all__ = ["run_single", "run_points", "run_separation"]


def run_single(
    out: Path,
    *,
    experiment: str,
    config: Any,
    spec: TrainSpec | None,
    cfg: PipelineConfig,
    train: Callable[[Path], None] | None = None,
    log: Callable[[str], None] = print,
) -> RunSummary:
    """One training run end to end: pipeline, then every figure, then ``report.html``.

    Args:
        out: the run directory.
        experiment: name stored in the summary.
        config: the experiment's config (stored).
        spec: what to train; None when ``train`` is given (giving both is an error).
        cfg: options of the later stages.
        train: a custom ``train(train_dir)`` (e.g. `synthetic_record`); default from ``spec``.
        log: progress messages.

    Returns:
        The summary.
    """
    if (spec is None) == (train is None):
        raise ValueError(
            "give `spec` (what to train) or `train` (a custom trainer), exactly one; got "
            f"spec={'None' if spec is None else type(spec).__name__}, "
            f"train={'None' if train is None else getattr(train, '__name__', 'a callable')}"
        )
    if train is None:
        train = make_train_fn(spec)
    after = run_pipeline(out, experiment=experiment, config=config, train=train, cfg=cfg, log=log)
    if _report_up_to_date(Path(out), after):
        log("figures and report: up to date (skipped)")
        return after
    t = time.perf_counter()
    draw_figures(out, summary=after)
    path = write_report(out, summary=after)
    log(f"figures and report: {time.perf_counter() - t:.1f} s -> {path}")
    return after


def _report_up_to_date(out: Path, summary: RunSummary) -> bool:
    """Whether ``report.html`` was written after every stage finished (then the figures
    and the report show what the stage files hold; no second read of the summary)."""
    report = out / "report.html"
    if not report.exists() or not summary.stages:
        return False
    try:
        last = max(calendar.timegm(time.strptime(v["finished"], "%Y-%m-%dT%H:%M:%SZ"))
                   for v in summary.stages.values())  # fmt: skip
    except (KeyError, ValueError):  # a stage mark without its time: redraw
        return False
    # the marks are truncated to the second: a report written after a stage is >= its mark
    return report.stat().st_mtime >= last


def run_points(
    out: Path,
    *,
    experiment: str,
    config: Any,
    parameter: str,
    points: list[tuple[float, TrainSpec]],
    cfg: PipelineConfig,
    n_classes: int = 3,
    log: Callable[[str], None] = print,
) -> RunSummary:
    """Several training runs that differ in one parameter (p_err, n per class).

    Each point is a complete run directory ``out/points/<parameter>=<value>``; the
    parent's ``summary.json`` lists them, and is rewritten after every point, so an
    interrupted sweep resumes at the first incomplete point.

    Returns:
        The parent summary, with ``key`` holding where validation accuracy falls below
        the midpoint between 1 and chance (1/K) and where r̂_γ (L-model) crosses 1.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    summary = dict(load_summary(out))
    summary.update(
        experiment=experiment,
        config=jsonable(config),
        pipeline=jsonable(cfg),
        parameter=parameter,
        n_classes=n_classes,
        tail_model="L",
    )
    summary["points"] = [
        {"value": float(v), "dir": f"points/{parameter}={v:.4g}"} for v, _ in points
    ]
    write_summary(out, summary)
    for (value, spec), p in zip(points, summary["points"], strict=True):
        log(f"--- {parameter} = {value:.4g}")
        run_pipeline(
            out / p["dir"], experiment=f"{experiment}[{parameter}={value:.4g}]", config=spec,
            train=make_train_fn(spec), cfg=cfg, log=log,
        )  # fmt: skip
    rows = [(float(p["value"]), read_summary(out / p["dir"])) for p in summary["points"]]
    summary["key"] = points_key_numbers(parameter, rows, n_classes)
    final = write_summary(out, summary)
    draw_figures(out, summary=final)
    write_report(out, summary=final)
    return final


def run_separation(cfg: Any, out: Path, *, tiny: bool = False) -> RunSummary:
    """`lesde run separation`: the theorem experiments (`lesde.experiments.separation`,
    parts a–d) and the collapse demo, composed into one run directory with a summary,
    figures and a report.

    Args:
        cfg: a `lesde.experiments.separation.Config`.
        out: the run directory.
        tiny: the collapse demo at its smoke-test size.

    Returns:
        The summary.
    """
    import shutil

    from lesde.experiments import collapse
    from lesde.experiments import separation as mod

    out = Path(out)
    table = mod.run(cfg, out)
    ccfg = collapse.Config(seed=cfg.seed)
    if tiny:
        ccfg = collapse.Config(seed=cfg.seed, n_paths=10, n_steps=1000, n_per_class=30)
    res = collapse.run(ccfg, out)
    key: dict = {}
    for part, name in (("a", "α−β"), ("b", "s")):
        xs = table[part]["x"]
        curve = table[part]["curves"][-1]  # the longest horizon
        key[f"({part}) separable fraction at {name}={xs[0]:g}"] = curve["fraction"][0]
        key[f"({part}) separable fraction at {name}={xs[-1]:g}"] = curve["fraction"][-1]
    rows = table.get("c", {}).get("rows", [])
    for r in rows:
        key[f"(c) r̂_γ {r['model']}-model at s={r['s']:g}"] = (
            f"{r['s_hat']:.3f} [{r['lo']:.3f}, {r['hi']:.3f}]: {r['verdict']} "
            f"(simulated: {r['fraction']:.0%} separable)"
        )
    if rows:
        key["(c) verdicts matching the simulated separability"] = (
            f"{sum(r['verdict_matches'] for r in rows)}/{len(rows)}"
        )
    rows_d = table.get("d", {}).get("rows", [])
    for r in rows_d:
        key[f"(d) margin-to-noise exponent at c/K={r['c_over_k']:g}, q={r['q']:g}"] = (
            f"{r['slope']:.3f} [{r['lo']:.3f}, {r['hi']:.3f}] (true {r['expected']:.3f}): "
            f"{r['verdict']} (simulated: {r['fraction']:.0%} separable; "
            f"tail index {r['s_hat']:.3f})"
        )
    if rows_d:
        key["(d) verdicts matching the simulated separability"] = (
            f"{sum(r['verdict_matches'] for r in rows_d)}/{len(rows_d)}"
        )
    key["collapse"] = collapse.summary(res)
    summary = dict(load_summary(out))
    summary.update(experiment="separation", config={"separation": table["config"]}, key=key)
    final = write_summary(out, summary)
    (out / "figures").mkdir(exist_ok=True)
    for n in ("separation", "collapse"):
        if (out / f"{n}.png").exists():
            shutil.copyfile(out / f"{n}.png", out / "figures" / f"{n}.png")
    write_report(out, summary=final)
    return final

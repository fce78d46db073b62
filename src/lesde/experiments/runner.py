"""One floor above the figures and the report: a run end to end, and runs over a parameter.

`run_single` chains the pipeline (train → estimate → simulate → analyse) with every
figure and ``report.html``; `run_points` does it for several values of one parameter
(the label-noise and sample-size sweeps) and writes the parent's summary, figures and
report. The experiment modules call these.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from lesde.experiments.config import PipelineConfig, TrainSpec
from lesde.experiments.pipeline import crossing, make_train_fn, run_pipeline
from lesde.rundir import SUMMARY, load_summary, write_json_atomic
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
) -> dict[str, Any]:
    """One training run end to end: pipeline, then every figure, then ``report.html``.

    Args:
        out: the run directory.
        experiment: name stored in the summary.
        config: the experiment's config (stored).
        spec: what to train (ignored when ``train`` is given).
        cfg: options of the later stages.
        train: a custom ``train(train_dir)`` (e.g. `synthetic_record`); default from ``spec``.
        log: progress messages.

    Returns:
        The summary.
    """
    from lesde.figures import draw_figures
    from lesde.report import write_report

    if train is None:
        if spec is None:
            raise ValueError("`spec` or `train` must be given")
        train = make_train_fn(spec)
    before = load_summary(out).get("stages")
    after = run_pipeline(out, experiment=experiment, config=config, train=train, cfg=cfg, log=log)
    if before == after["stages"] and (out / "report.html").exists():
        log("figures and report: up to date (skipped)")
        return after
    t = time.perf_counter()
    draw_figures(out)
    path = write_report(out)
    log(f"figures and report: {time.perf_counter() - t:.1f} s -> {path}")
    return load_summary(out)


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
) -> dict[str, Any]:
    """Several training runs that differ in one parameter (p_err, n per class).

    Each point is a complete run directory ``out/points/<parameter>=<value>``; the
    parent's ``summary.json`` lists them, and is rewritten after every point, so an
    interrupted sweep resumes at the first incomplete point.

    Returns:
        The parent summary, with ``key`` holding where validation accuracy falls below
        the midpoint between 1 and chance (1/K) and where r̂_γ (L-model) crosses 1.
    """
    from lesde.figures import draw_figures
    from lesde.report import write_report

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    summary = load_summary(out)
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
    write_json_atomic(out / SUMMARY, summary)
    for (value, spec), p in zip(points, summary["points"], strict=True):
        log(f"--- {parameter} = {value:.4g}")
        run_pipeline(
            out / p["dir"], experiment=f"{experiment}[{parameter}={value:.4g}]", config=spec,
            train=make_train_fn(spec), cfg=cfg, log=log,
        )  # fmt: skip
    rows = [(float(p["value"]), load_summary(out / p["dir"])) for p in summary["points"]]
    xs = [v for v, _ in rows]
    acc = [s["analyse"]["val_acc_final"] for _, s in rows]
    r_g = {H: [s["estimate"][H]["r_gamma"] for _, s in rows] for H in ("I", "L")}
    key: dict[str, Any] = {}
    if parameter == "p_err":  # where the phase transition of paper Fig. 4 shows
        key["val_acc_transition"] = crossing(xs, acc, 0.5 * (1 + 1 / n_classes))
        key["r_gamma_L_crosses_1_at"] = crossing(xs, r_g["L"], 1.0)
        key["r_gamma_I_crosses_1_at"] = crossing(xs, r_g["I"], 1.0)
        for H in ("I", "L"):
            cis = [s["estimate"][H].get("r_gamma_ci", [np.nan, np.nan]) for _, s in rows]
            mns = [s["analyse"].get("margin_noise", {}).get(H, {}) for _, s in rows]
            # where the interval of r̂_γ first reaches 1, and first lies wholly above it
            key[f"r_gamma_{H}_ci_reaches_1_at"] = next(
                (x for x, c in zip(xs, cis, strict=True) if np.isfinite(c[1]) and c[1] >= 1), None
            )
            key[f"r_gamma_{H}_ci_above_1_at"] = next(
                (x for x, c in zip(xs, cis, strict=True) if np.isfinite(c[0]) and c[0] > 1), None
            )
            lvls = [s["analyse"].get("margin_noise", {}).get("level", {}) for _, s in rows]
            if H == "I":
                key["margin_noise_level_not_separable_at"] = next(
                    (x for x, lv in zip(xs, lvls, strict=True)
                     if lv.get("verdict") == "not separable"), None,
                )  # fmt: skip
            # the exponent's trend is a measurement: where it first turns negative
            key[f"margin_noise_{H}_negative_at"] = next(
                (x for x, m in zip(xs, mns, strict=True)
                 if np.isfinite(m.get("slope", np.nan)) and m["slope"] < 0), None,
            )  # fmt: skip
    for i, (v, s) in enumerate(rows):
        key[f"val_acc at {parameter}={v:.3g}"] = acc[i]
        for H in ("L", "I"):
            e = s["estimate"][H]
            key[f"r_gamma_{H} at {parameter}={v:.3g}"] = r_g[H][i]
            if "r_gamma_ci" in e:
                key[f"r_gamma_{H} at {parameter}={v:.3g}_ci"] = e["r_gamma_ci"]
                key[f"verdict_tail_{H} at {parameter}={v:.3g}"] = e["verdict"]
            f_head = s.get("forecast", {}).get("headline_fraction")
            fc = next(
                (r for r in s.get("forecast", {}).get(H, []) if r["fit_fraction"] == f_head), None
            )
            if fc:
                key[f"forecast_skill_{H} at {parameter}={v:.3g}"] = fc["skill"]
                key[f"sep_fraction_predicted_{H} at {parameter}={v:.3g}"] = fc[
                    "sep_fraction_predicted"
                ]
        key[f"separable_fraction at {parameter}={v:.3g}"] = s["analyse"].get(
            "separable_fraction_final"
        )
        lv = s["analyse"].get("margin_noise", {}).get("level")
        if lv:
            key[f"margin_noise_ratio at {parameter}={v:.3g}"] = lv["median"]
            key[f"margin_noise_ratio at {parameter}={v:.3g}_ci"] = lv["ci"]
            key[f"verdict_margin_noise_level at {parameter}={v:.3g}"] = lv["verdict"]
    summary["key"] = key
    write_json_atomic(out / SUMMARY, summary)
    draw_figures(out)
    write_report(out)
    return summary


def run_separation(cfg: Any, out: Path, *, tiny: bool = False) -> dict[str, Any]:
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
    from lesde.report import write_report

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
    summary = load_summary(out)
    summary.update(experiment="separation", config={"separation": table["config"]}, key=key)
    write_json_atomic(out / "summary.json", summary)
    (out / "figures").mkdir(exist_ok=True)
    for n in ("separation", "collapse"):
        if (out / f"{n}.png").exists():
            shutil.copyfile(out / f"{n}.png", out / "figures" / f"{n}.png")
    write_report(out)
    return summary

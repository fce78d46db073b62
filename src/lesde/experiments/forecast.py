"""The forecast stage of a run, and `lesde.forecast` on any run directory or record.

For every fit fraction f of `PipelineConfig.forecast_fractions` and both H models,
`lesde.forecasting.backtest` fits the LE-ODE/SDE on t ≤ f·T and predicts the rest; the
stage returns the arrays (``forecast.npz``) and the rows of ``summary.json``'s top-level
``forecast.{I,L}``.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from lesde.experiments.config import PipelineConfig
from lesde.experiments.outputs import MODELS, ForecastRun, Forecasts
from lesde.forecasting import Forecast, backtest

__all__ = ["stage_forecast", "forecast", "forecast_record", "ROW_KEYS"]

# the keys of a summary row (issue contract), then the extras
ROW_KEYS = ("fit_fraction", "t_cut", "rd", "rd_end", "rd_persistence", "rd_trend", "skill",
            "sep_fraction_predicted", "sep_fraction_genuine", "predicted_end")  # fmt: skip


def forecast_record(rec: dict) -> dict:
    """The arrays `backtest` reads from `record_arrays` output: the training probes only
    (the clouds and Σ̂ are theirs), with their per-trial class means."""
    from lesde.estimate.class_means import probe_class_means
    from lesde.experiments.stages import _train_probes

    tr = _train_probes(rec)
    out = dict(rec)
    out["probe_logits"] = rec["probe_logits"][:, :, tr]
    out["probe_label"] = np.asarray(rec["probe_label"])[tr]
    out["probe_means"] = probe_class_means(out["probe_logits"], out["probe_label"], rec["K"])
    return out


def _run(fc: Forecast) -> ForecastRun:
    return ForecastRun(
        fit_fraction=fc.fit_fraction, t_cut=fc.t_cut, ts=fc.ts, mean=fc.mean, lo=fc.lo,
        hi=fc.hi, genuine=fc.genuine, persistence=fc.persistence, trend=fc.trend,
        cloud_ts=fc.cloud_ts, spread_predicted=fc.spread_predicted,
        spread_genuine=fc.spread_genuine, ratio_predicted=fc.ratio_predicted,
        ratio_genuine=fc.ratio_genuine,
    )  # fmt: skip


def _options(cfg: PipelineConfig) -> dict[str, Any]:
    return {
        "xbar_source": cfg.xbar_source, "bin_width": cfg.bin_width,
        "t0_fraction": cfg.t0_fraction, "tail_fraction": cfg.tail_fraction or 0.5,
        "n_boot": cfg.forecast_boot, "seed": cfg.seed,
    }  # fmt: skip


def stage_forecast(rec: dict, cfg: PipelineConfig) -> tuple[Forecasts, dict[str, Any]]:
    """Backtest every fit fraction under both H models.

    Returns:
        The `Forecasts` arrays and the numbers: {"I": [row per f], "L": [...],
        "fractions", "headline_fraction", "errors"}; a fraction that leaves too little
        data before its cut is left out with its error recorded.
    """
    frec = forecast_record(rec)
    runs: dict[str, list[ForecastRun]] = {}
    numbers: dict[str, Any] = {
        "fractions": list(cfg.forecast_fractions),
        "headline_fraction": cfg.forecast_headline,
        "errors": [],
    }
    for H in MODELS:
        runs[H], numbers[H] = [], []
        for f in cfg.forecast_fractions:
            try:
                fc = backtest(frec, fit_fraction=f, model=H, **_options(cfg))
            except ValueError as err:
                numbers["errors"].append(f"{H}-model, f = {f:g}: {err}")
                continue
            runs[H].append(_run(fc))
            numbers[H].append(fc.scores)
    return Forecasts(runs), numbers


def forecast(
    run_or_record: Any,
    *,
    fit_fraction: float,
    model: str = "L",
    config: PipelineConfig | None = None,
) -> Forecast:
    """Fit the LE-ODE/SDE on the start of a run and forecast the rest (a backtest).

    Everything is estimated from the record up to t_cut = ``fit_fraction``·T only (class
    means, bins, t₀, tail fits, Σ̂); from the genuine state at the cut the LE-ODE predicts
    the class means and the LE-SDE (with the extrapolated Σ̂) every trial's probe cloud
    to T; both are then scored against the genuine record after the cut, beside the
    persistence and log-time-trend baselines (`lesde.forecasting.backtest`).

    Args:
        run_or_record: a run directory of ``lesde run``/``lesde analyse`` (its
            ``train/``), a training record directory, an ``xarray.Dataset`` of a record,
            or the dict of `lesde.experiments.stages.record_arrays`.
        fit_fraction: f in (0, 1).
        model: "L" or "I".
        config: the estimation options (default `PipelineConfig()`); a run directory's
            own ``pipeline`` options are used when it has them and ``config`` is None.

    Returns:
        A `lesde.Forecast`: the predicted class-mean path ``mean`` (F, K, p) on
        ``ts`` (F,) with its bootstrap band, the predicted clouds' spread and ratio on
        ``cloud_ts``, the clouds at T (``clouds_end``), and the ``scores``.

    Raises:
        ValueError: on a bad option or a record that cannot be read, naming it.
    """
    from lesde.experiments.stages import record_arrays

    cfg = config
    rec = run_or_record
    if isinstance(rec, str | Path):
        from lesde.rundir import load_summary, open_record

        path = Path(rec)
        if not path.exists():
            raise ValueError(f"`run_or_record`: {path} does not exist")
        train = path / "train" if (path / "train").is_dir() else path
        if cfg is None and (path / "summary.json").exists():
            stored = load_summary(path).get("pipeline") or {}
            known = {k: v for k, v in stored.items() if k in PipelineConfig.__dataclass_fields__}
            known = {k: tuple(v) if isinstance(v, list) else v for k, v in known.items()}
            cfg = PipelineConfig(**known)
        rec = open_record(train)
    cfg = cfg or PipelineConfig()
    if not isinstance(rec, dict):
        rec = record_arrays(rec, cfg.classes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return backtest(forecast_record(rec), fit_fraction=fit_fraction, model=model,
                        **_options(cfg))  # fmt: skip

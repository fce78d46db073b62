"""What a run measured and what the fitted LE-SDE predicts: headline, key numbers, notes.

The headline comes first in the report, the summary (``summary["headline"]``) and the
CLI output. Each row says what it is:

- ``measurement``: read off the genuine record (the LP separability of the probes, the
  measured gap-to-spread ratio at the end);
- ``prediction``: what the LE-SDE fitted on the record predicts (the out-of-sample
  forecast from the start of the run; the tail-index verdict of Theorem 3.1);
- ``in-sample fit``: the model driven by rates estimated from the very trajectory it is
  compared with (RD of Fig. 5, the in-sample SDE clouds): how well it can be fitted, not
  what it predicts.

A prediction row says whether it agrees with the measurement (``agrees``: True / False,
None when it gives no separable / not separable answer, with ``why``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from lesde.experiments.summary import (
    KINDS,
    NOT_JUDGED,
    ForecastRow,
    KeyNumbers,
    ModelKey,
    Verdict,
    headline_forecast,
)

__all__ = [
    "headline",
    "headline_lines",
    "key_numbers",
    "verdict_notes",
    "KINDS",
]


def _forecast_value(r: ForecastRow) -> str:
    """The forecast against both baselines, from the `FORECAST_VALUES` vocabulary."""
    if not (np.isfinite(r.skill) and r.skill > 0):
        return "does not beat persistence"
    if np.isfinite(r.rd_trend) and r.rd >= r.rd_trend:
        return "beats persistence only"
    return "beats both baselines"


_FORECAST_WHY = {
    "does not beat persistence": "does not beat holding the class means at the cut: the "
    "LE-ODE does not forecast this run",
    "beats persistence only": "beats holding the class means at the cut, but not the "
    "model-free log-time trend",
    "beats both baselines": "beats holding the class means at the cut and the log-time trend",
}


def _separable(fraction: float) -> str:
    return "separable" if fraction >= 0.5 else "not separable"


def _measurements(ana: Mapping[str, Any]) -> list[Verdict]:
    rows = []
    frac = ana.get("separable_fraction_final")
    if frac is not None:
        rows.append(Verdict("separable trials at the end (linear programs on the train probes)",
                            _separable(frac), "measurement", f"{frac:.0%}"))  # fmt: skip
    lv = ana.get("margin_noise", {}).get("level")
    if lv:
        lo, hi = lv["ci"]
        rows.append(Verdict(
            "class-mean gap / within-class sd at the end (median of trials)", lv["verdict"],
            "measurement", f"{lv['median']:.3g} [{lo:.3g}, {hi:.3g}] against ρ* = "
            f"{lv['threshold']:.3g}: {lv['verdict']}", (lo, hi),
        ))  # fmt: skip
    return rows


def _forecasts(r: ForecastRow, agree) -> list[Verdict]:
    f, p = r.fit_fraction, r.sep_fraction_predicted
    v = _separable(p)
    value = _forecast_value(r)
    return [
        Verdict(
            f"forecast (L-model, fitted on the first {f:.0%} of the run): separable "
            "trials at the end",
            v,
            "prediction",
            f"{p:.0%} predicted (genuine {r.sep_fraction_genuine:.0%})",
            agrees=agree(v),
        ),  # fmt: skip
        Verdict(
            f"forecast (L-model, f = {f:g}): RD of the class means after the cut",
            value,
            "prediction",
            f"{r.rd:.3g} [{r.rd_ci[0]:.3g}, {r.rd_ci[1]:.3g}] against "
            f"persistence {r.rd_persistence:.3g} and log-time trend {r.rd_trend:.3g}: "
            f"skill {r.skill:+.2f}",
            r.rd_ci,
            value != "does not beat persistence",
            _FORECAST_WHY[value],
        ),  # fmt: skip
    ]


def _in_sample(sim: Mapping[str, Any]) -> list[Verdict]:
    rows = []
    if sim.get("rd_late"):
        rows.append(Verdict(
            "RD in late training, rates estimated from the same trajectory (Fig. 5)",
            NOT_JUDGED, "in-sample fit",
            f"L-model {sim['rd_late']['L']:.3g}, I-model {sim['rd_late']['I']:.3g}",
        ))  # fmt: skip
    sde = sim.get("sde", {}).get("L")
    if sde:
        rows.append(Verdict(
            "LE-SDE with α̂, β̂ and Σ̂ from the same run (L-model): separable trials at the end",
            _separable(sde["sep_end_sim"]), "in-sample fit",
            f"{sde['sep_end_sim']:.0%} simulated (genuine {sde['sep_end_gen']:.0%}); "
            f"within-class variance {sde['spread_end_sim']:.3g} (genuine "
            f"{sde['spread_end_gen']:.3g})",
        ))  # fmt: skip
    return rows


def headline(summary: Mapping[str, Any]) -> list[Verdict]:
    """The headline of a run's numbers (module docstring): measurements, then the model's
    predictions (each against the measured separability), then the in-sample fits; every
    model statement carries the run's ``caveats``."""
    ana = summary.get("analyse", {})
    est = summary.get("estimate", {})
    frac = ana.get("separable_fraction_final")
    measured = None if frac is None else frac >= 0.5

    def agree(v: str) -> bool | None:
        if measured is None or v not in ("separable", "not separable"):
            return None
        return (v == "separable") == measured

    rows = _measurements(ana)
    r = headline_forecast(summary.get("forecast", {}))
    if r:
        rows += _forecasts(r, agree)
    for H in ("L", "I"):
        e = est.get(H, {})
        if "verdict" not in e:
            continue
        lo, hi = e["r_gamma_ci"]
        rows.append(Verdict(
            f"tail-index verdict (Theorem 3.1, {H}-model)", e["verdict"], "prediction",
            f"r̂_γ = {e['r_gamma']:.3g} [{lo:.3g}, {hi:.3g}]: {e['verdict']}", (lo, hi),
            agree(e["verdict"]), e.get("verdict_why", ""),
        ))  # fmt: skip
    rows += _in_sample(summary.get("simulate", {}))
    caveats = tuple(summary.get("caveats") or ())
    return [v.with_caveats(caveats) for v in rows]


def headline_lines(rows: Sequence[Verdict]) -> list[str]:
    """The headline as text lines: ``[kind] what: detail (agrees / disagrees)``."""
    return [v.line() for v in rows]


def key_numbers(summary: Mapping[str, Any]) -> KeyNumbers:
    """The key numbers of a run, after the headline (accuracy, separability, tail indices,
    the measured ratio and its trend, RD in and out of sample)."""
    est = summary.get("estimate", {})
    sim = summary.get("simulate", {})
    ana = summary.get("analyse", {})
    models = {}
    for H in ("I", "L"):
        if H not in est:
            continue
        mn = ana.get("margin_noise", {}).get(H) if ana else None
        models[H] = ModelKey(
            est[H]["r_gamma"], est[H].get("r_gamma_ci"), est[H].get("verdict"),
            mn["slope"] if mn else None, mn["slope_ci"] if mn else None,
        )  # fmt: skip
    lv = ana.get("margin_noise", {}).get("level") if ana else None
    return KeyNumbers(
        learned=ana.get("learning", {}).get("learned") if ana else None,
        val_acc_final=ana.get("val_acc_final") if ana else None,
        separable_fraction_final=ana.get("separable_fraction_final") if ana else None,
        etf_deviation_final=ana.get("etf_deviation_final") if ana else None,
        level={"ratio": lv["median"], "ci": lv["ci"], "threshold": lv["threshold"],
               "verdict": lv["verdict"]} if lv else None,
        forecast=headline_forecast(summary.get("forecast", {})),
        models=models,
        rd_late=dict(sim["rd_late"]) if sim else None,
        analysed=bool(ana) and "learning" in ana,
    )  # fmt: skip


def _learning_note(ana: Mapping[str, Any]) -> list[str]:
    learning = ana.get("learning", {})
    if not (learning and learning.get("learned") is False):
        return []
    return [
        f"WARNING: this run did not learn ({learning['why']}): the separation verdicts "
        "and tail indices below describe networks near their initialisation and are "
        "not meaningful. Train longer (more --steps) or use a larger --scale."
    ]


def _level_note(ana: Mapping[str, Any]) -> list[str]:
    lv = ana.get("margin_noise", {}).get("level")
    if not lv:
        return []
    lo, hi = lv["ci"]
    frac = ana.get("separable_fraction_final")
    return [
        f"Measurement: the class-mean gap over the within-class sd at the end (median of "
        f"trials) is {lv['median']:.3g} [{lo:.3g}, {hi:.3g}] against ρ* = "
        f"{lv['threshold']:.3g} (Gaussian clouds of {lv.get('n_per_class', '?')} probes "
        f'per class separate half the time): "{lv["verdict"]}". It summarises the same '
        f"final probes as the linear programs ({(frac or 0):.0%} of the trials separable); "
        "it is not a prediction of the model."
    ]


def _tail_note(H: str, e: Mapping[str, Any], mn: Mapping[str, Any] | None) -> str:
    lo, hi = e["r_gamma_ci"]
    text = (
        f"{H}-model: r̂_γ = {e['r_gamma']:.3g}, 95 % interval [{lo:.3g}, {hi:.3g}] "
        f"(bootstrap over trials; {e.get('r_gamma_below_1', float('nan')):.0%} of "
        f'resamples below 1): tail-index verdict "{e["verdict"]}".'
    )
    if e.get("verdict_why"):
        text += (f" The interval alone would read \"{e.get('verdict_interval')}\", but "
                 f"{e['verdict_why']}.")  # fmt: skip
    elif not e.get("r_gamma_identifiable", True):
        text += " The fit's own interval reaches its search bound: s is not identified."
    if mn and np.isfinite(mn["slope"]):
        slo, shi = mn["slope_ci"]
        text += (
            f" Measured: the margin-to-noise ratio ρ(t) grows like t^{mn['slope']:.3g} "
            f"[{slo:.3g}, {shi:.3g}] on the tail window (a measurement without a verdict: "
            "its interval resamples the spread only and missed the true exponent in 5 of "
            "15 LE-SDE runs)."
        )
    return text


def verdict_notes(summary: Mapping[str, Any]) -> list[str]:
    """Plain-language notes: the caveats, why a verdict was withheld, each verdict with its
    interval, and which kind of statement each number is."""
    est = summary.get("estimate", {})
    ana = summary.get("analyse", {})
    notes = [f"CAVEAT: {c}." for c in summary.get("caveats") or ()]
    notes += _learning_note(ana) + _level_note(ana)
    mn_all = ana.get("margin_noise", {})
    notes += [_tail_note(H, est[H], mn_all.get(H)) for H in ("I", "L")
              if "verdict" in est.get(H, {})]  # fmt: skip
    notes += [
        f"Forecast not made for {err}" for err in summary.get("forecast", {}).get("errors", [])
    ]
    return notes

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

from typing import Any

import numpy as np

__all__ = ["headline", "headline_lines", "key_numbers", "verdict_notes", "KINDS"]

KINDS = ("measurement", "prediction", "in-sample fit")


def _row(what: str, value: str, kind: str, agrees: bool | None = None, why: str = "") -> dict:
    return {"what": what, "value": value, "kind": kind, "agrees": agrees, "why": why}


def _headline_forecast(summary: dict) -> dict | None:
    """The headline forecast row of the L-model (the fraction `forecast_headline`)."""
    fc = summary.get("forecast", {})
    f = fc.get("headline_fraction")
    rows = fc.get("L") or []
    return next((r for r in rows if r.get("fit_fraction") == f), rows[-1] if rows else None)


def _forecast_why(beats: bool, r: dict) -> str:
    """The forecast against both baselines, in words."""
    if not beats:
        return ("does not beat holding the class means at the cut: the LE-ODE does not "
                "forecast this run")  # fmt: skip
    if np.isfinite(r["rd_trend"]) and r["rd"] >= r["rd_trend"]:
        return ("beats holding the class means at the cut, but not the model-free "
                "log-time trend")  # fmt: skip
    return "beats holding the class means at the cut and the log-time trend"


def headline(summary: dict) -> list[dict[str, Any]]:
    """The headline rows of a run summary (module docstring), measurements first."""
    ana = summary.get("analyse", {})
    est = summary.get("estimate", {})
    sim = summary.get("simulate", {})
    rows: list[dict[str, Any]] = []
    frac = ana.get("separable_fraction_final")
    measured = None if frac is None else frac >= 0.5
    if frac is not None:
        rows.append(_row("separable trials at the end (linear programs on the train probes)",
                         f"{frac:.0%}", "measurement"))  # fmt: skip
    lv = ana.get("margin_noise", {}).get("level")
    if lv:
        lo, hi = lv["ci"]
        rows.append(_row(
            "class-mean gap / within-class sd at the end (median of trials)",
            f"{lv['median']:.3g} [{lo:.3g}, {hi:.3g}] against ρ* = {lv['threshold']:.3g}: "
            f"{lv['verdict']}", "measurement",
        ))  # fmt: skip

    def agree(v: str) -> bool | None:
        if measured is None or v not in ("separable", "not separable"):
            return None
        return (v == "separable") == measured

    r = _headline_forecast(summary)
    if r:
        f = r["fit_fraction"]
        p = r["sep_fraction_predicted"]
        v = "separable" if p >= 0.5 else "not separable"
        rows.append(_row(
            f"forecast (L-model, fitted on the first {f:.0%} of the run): separable trials "
            "at the end", f"{p:.0%} predicted (genuine {r['sep_fraction_genuine']:.0%})",
            "prediction", agree(v),
        ))  # fmt: skip
        skill = r["skill"]
        beats = bool(np.isfinite(skill) and skill > 0)
        rows.append(_row(
            f"forecast (L-model, f = {f:g}): RD of the class means after the cut",
            f"{r['rd']:.3g} [{r['rd_ci'][0]:.3g}, {r['rd_ci'][1]:.3g}] against persistence "
            f"{r['rd_persistence']:.3g} and log-time trend {r['rd_trend']:.3g}: skill "
            f"{skill:+.2f}", "prediction", beats, _forecast_why(beats, r),
        ))  # fmt: skip
    for H in ("L", "I"):
        e = est.get(H, {})
        if "verdict" not in e:
            continue
        lo, hi = e["r_gamma_ci"]
        rows.append(_row(
            f"tail-index verdict (Theorem 3.1, {H}-model)",
            f"r̂_γ = {e['r_gamma']:.3g} [{lo:.3g}, {hi:.3g}]: {e['verdict']}", "prediction",
            agree(e["verdict"]), e.get("verdict_why", ""),
        ))  # fmt: skip
    if sim.get("rd_late"):
        rows.append(_row(
            "RD in late training, rates estimated from the same trajectory (Fig. 5)",
            f"L-model {sim['rd_late']['L']:.3g}, I-model {sim['rd_late']['I']:.3g}",
            "in-sample fit",
        ))  # fmt: skip
    sde = sim.get("sde", {}).get("L")
    if sde:
        rows.append(_row(
            "LE-SDE with α̂, β̂ and Σ̂ from the same run (L-model): separable trials at the end",
            f"{sde['sep_end_sim']:.0%} simulated (genuine {sde['sep_end_gen']:.0%}); "
            f"within-class variance {sde['spread_end_sim']:.3g} (genuine "
            f"{sde['spread_end_gen']:.3g})", "in-sample fit",
        ))  # fmt: skip
    return rows


def headline_lines(rows: list[dict[str, Any]]) -> list[str]:
    """The headline as text lines: ``[kind] what: value (agrees / disagrees)``."""
    out = []
    for r in rows:
        mark = {True: " (agrees with the measurement)", False: " (DISAGREES with the "
                "measurement)", None: ""}[r["agrees"]]  # fmt: skip
        if r["kind"] == "prediction" and r["what"].startswith("forecast") and "RD" in r["what"]:
            mark = f" ({r['why']})"
        elif r["why"]:
            mark += f" — {r['why']}"
        out.append(f"[{r['kind']}] {r['what']}: {r['value']}{mark}")
    return out


def key_numbers(summary: dict) -> dict[str, Any]:
    """The key numbers of a run, after the headline (accuracy, separability, tail indices,
    the measured ratio and its trend, RD in and out of sample)."""
    est = summary.get("estimate", {})
    sim = summary.get("simulate", {})
    ana = summary.get("analyse", {})
    key: dict[str, Any] = {}
    if ana and "learning" in ana:
        key["learned"] = ana["learning"]["learned"]
    if ana:
        key["val_acc_final"] = ana.get("val_acc_final")
        key["separable_fraction_final"] = ana.get("separable_fraction_final")
        key["etf_deviation_final"] = ana.get("etf_deviation_final")
        lv = ana.get("margin_noise", {}).get("level")
        if lv:
            key["margin_noise_ratio_final"] = lv["median"]
            key["margin_noise_ratio_final_ci"] = lv["ci"]
            key["margin_noise_threshold"] = lv["threshold"]
            key["verdict_margin_noise_level"] = lv["verdict"]
    r = _headline_forecast(summary)
    if r:
        key["forecast_fit_fraction"] = r["fit_fraction"]
        key["forecast_rd_L"] = r["rd"]
        key["forecast_rd_L_ci"] = r["rd_ci"]
        key["forecast_rd_persistence_L"] = r["rd_persistence"]
        key["forecast_skill_L"] = r["skill"]
        key["forecast_sep_predicted_L"] = r["sep_fraction_predicted"]
    for H in ("I", "L"):
        if H in est:
            key[f"r_gamma_{H}"] = est[H]["r_gamma"]
            if "r_gamma_ci" in est[H]:
                key[f"r_gamma_{H}_ci"] = est[H]["r_gamma_ci"]
            if "verdict" in est[H]:
                key[f"verdict_tail_{H}"] = est[H]["verdict"]
        mn = ana.get("margin_noise", {}).get(H) if ana else None
        if mn:
            key[f"margin_noise_slope_{H}"] = mn["slope"]
            key[f"margin_noise_slope_{H}_ci"] = mn["slope_ci"]
    if sim:
        for H in ("I", "L"):
            key[f"rd_late_{H}"] = sim["rd_late"][H]
    return key


def verdict_notes(summary: dict) -> list[str]:
    """Plain-language notes: why a verdict was withheld, each verdict with its interval,
    and which kind of statement each number is."""
    est = summary.get("estimate", {})
    ana = summary.get("analyse", {})
    mn_all = ana.get("margin_noise", {})
    frac = ana.get("separable_fraction_final")
    notes: list[str] = []
    learning = ana.get("learning", {})
    if learning and learning.get("learned") is False:
        notes.append(
            f"WARNING: this run did not learn ({learning['why']}): the separation verdicts "
            "and tail indices below describe networks near their initialisation and are "
            "not meaningful. Train longer (more --steps) or use a larger --scale."
        )
    lv = mn_all.get("level")
    if lv:
        lo_, hi_ = lv["ci"]
        notes.append(
            f"Measurement: the class-mean gap over the within-class sd at the end (median of "
            f"trials) is {lv['median']:.3g} [{lo_:.3g}, {hi_:.3g}] against ρ* = "
            f"{lv['threshold']:.3g} (Gaussian clouds of {lv.get('n_per_class', '?')} probes "
            f'per class separate half the time): "{lv["verdict"]}". It summarises the same '
            f"final probes as the linear programs ({(frac or 0):.0%} of the trials separable); "
            "it is not a prediction of the model."
        )
    for H in ("I", "L"):
        e, mn = est.get(H, {}), mn_all.get(H)
        if "verdict" not in e:
            continue
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
        notes.append(text)
    fc = summary.get("forecast", {})
    for err in fc.get("errors", []):
        notes.append(f"Forecast not made for {err}")
    return notes

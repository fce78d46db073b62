"""The run summary, typed: what ``summary.json`` holds, built once and read as objects.

A run's summary (`RunSummary`, ``"schema": 2``) holds

- its identity: the experiment, its configuration and the pipeline options, the class
  names;
- ``stages``: what each stage wrote, at which version, how long it took (the resume marks);
- every number of each stage (``estimate``, ``simulate``, ``analyse``, ``forecast``), as
  the stages return them (the report's "All numbers");
- ``caveats``: premises of the LE-SDE that the record does not meet (e.g. an optimizer
  other than plain batch-size-1 SGD); every verdict carries them;
- ``headline``: `Verdict` rows, measurements first (`lesde.experiments.headline`);
- ``key``: `KeyNumbers`; ``notes``: plain-language notes.

The stages build it once (`lesde.experiments.pipeline`), `write_summary` is the one writer
of ``summary.json``, and the report, the CLI, the paper's claims, the sweep tables and the
figures read it through `read_summary`. A `RunSummary` is also a read-only mapping of its
JSON form, so ``summary["key"]["val_acc_final"]`` keeps working.

Why this file is long: the schema is one contract (its types, the flat key names of
``summary.json`` and their one parser, the migration from schema 1); split across files,
a name would be built in one and parsed in another.

Version 1 (no ``"schema"`` key) loads: its headline rows, which held the displayed text
in ``value``, gain their value from the vocabulary (`VALUES`) and keep the text as
``detail``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lesde.estimate.bootstrap import TAIL_VERDICTS
from lesde.experiments.config import STAGES
from lesde.experiments.outputs import MODELS
from lesde.rundir import SUMMARY, load_summary
from lesde.store import jsonable, write_json_atomic

__all__ = [
    "SCHEMA_VERSION",
    "KINDS",
    "VALUES",
    "FORECAST_VALUES",
    "NOT_JUDGED",
    "Verdict",
    "ForecastRow",
    "ModelKey",
    "KeyNumbers",
    "KeyRow",
    "RunSummary",
    "read_summary",
    "write_summary",
    "forecast_rows",
    "headline_forecast",
    "KEY_LABELS",
    "points_key_numbers",
    "point_values",
    "crossing",
]

SCHEMA_VERSION = 2
KINDS = ("measurement", "prediction", "in-sample fit")
# the forecast's verdict against its baselines (holding the class means at the cut; the
# model-free log-time trend)
FORECAST_VALUES = ("beats both baselines", "beats persistence only", "does not beat persistence")
NOT_JUDGED = "not judged"  # a number shown without a verdict (the in-sample fits)
VALUES = TAIL_VERDICTS + FORECAST_VALUES + (NOT_JUDGED,)
_STAGE_NUMBERS = STAGES[1:]  # the stages that return numbers (train returns a record)


def _interval(v: Any) -> tuple[float, float] | None:
    if v is None:
        return None
    lo, hi = v
    return (float(lo), float(hi))


# --------------------------------------------------------------------------- verdicts
@dataclass(frozen=True)
class Verdict:
    """One judgement of a run, or one number shown beside them (``value`` = `NOT_JUDGED`).

    Attributes:
        what: what it judges, in words.
        value: the verdict, from `VALUES`.
        kind: "measurement" (read off the record), "prediction" (of the fitted LE-SDE) or
            "in-sample fit" (the model driven by rates from the trajectory it is compared
            with).
        detail: the numbers behind it, as displayed ("r̂_γ = 0.52 [0.31, 0.74]: separable").
        interval: the 95 % interval of the judged number, when it has one.
        agrees: whether a prediction agrees with the measurement (None: no comparison).
        why: why a verdict was withheld, what it rests on, or the caveats it carries.
    """

    what: str
    value: str
    kind: str
    detail: str = ""
    interval: tuple[float, float] | None = None
    agrees: bool | None = None
    why: str = ""

    def __post_init__(self) -> None:
        if self.value not in VALUES:
            raise ValueError(f"`value` must be one of {VALUES}, got {self.value!r}")
        if self.kind not in KINDS:
            raise ValueError(f"`kind` must be one of {KINDS}, got {self.kind!r}")

    def to_json(self) -> dict[str, Any]:
        return {
            "what": self.what, "value": self.value, "kind": self.kind, "detail": self.detail,
            "interval": None if self.interval is None else list(self.interval),
            "agrees": self.agrees, "why": self.why,
        }  # fmt: skip

    @classmethod
    def from_json(cls, d: Mapping[str, Any], schema: int = SCHEMA_VERSION) -> Verdict:
        if schema < 2:
            return _verdict_v1(d)
        return cls(d["what"], d["value"], d["kind"], d.get("detail", ""),
                   _interval(d.get("interval")), d.get("agrees"), d.get("why", ""))  # fmt: skip

    def line(self) -> str:
        """The verdict as a text line: ``[kind] what: detail (agrees / disagrees)``."""
        mark = {True: " (agrees with the measurement)", False: " (DISAGREES with the "
                "measurement)", None: ""}[self.agrees]  # fmt: skip
        if self.value in FORECAST_VALUES:
            mark = f" ({self.why})"
        elif self.why:
            mark += f" — {self.why}"
        return f"[{self.kind}] {self.what}: {self.detail}{mark}"

    def with_caveats(self, caveats: tuple[str, ...]) -> Verdict:
        """The verdict with the run's caveats appended to ``why`` (model statements only:
        a measurement of the record stands whatever trained it)."""
        if not caveats or self.kind == "measurement":
            return self
        why = "; ".join([w for w in (self.why, *caveats) if w])
        return Verdict(self.what, self.value, self.kind, self.detail, self.interval,
                       self.agrees, why)  # fmt: skip


def _percent(text: str) -> float | None:
    m = re.match(r"\s*([0-9.]+)%", text)
    return float(m.group(1)) / 100 if m else None


def _verdict_v1(d: Mapping[str, Any]) -> Verdict:
    """A schema-1 headline row ({what, value: the displayed text, kind, agrees, why})."""
    what, text, why = d["what"], d["value"], d.get("why", "")
    value = NOT_JUDGED
    if what.startswith("forecast") and "RD" in what:
        value = (
            "does not beat persistence"
            if "does not beat" in why
            else "beats persistence only"
            if "but not" in why
            else "beats both baselines"
        )
    elif "separable trials" in what and _percent(text) is not None:
        value = "separable" if _percent(text) >= 0.5 else "not separable"
    else:
        tail = text.rsplit(": ", 1)[-1] if ": " in text else ""
        if tail in TAIL_VERDICTS:
            value = tail
    return Verdict(what, value, d["kind"], text, None, d.get("agrees"), why)


# --------------------------------------------------------------------------- forecast
@dataclass(frozen=True)
class ForecastRow:
    """One out-of-sample backtest's scores (`lesde.experiments.forecast`).

    Attributes:
        fit_fraction, t_cut: fitted on t ≤ f·T. rd, rd_ci: RD of the predicted class
        means after the cut and its 95 % band. rd_end: RD at T. rd_persistence, rd_trend:
        the baselines' RD. skill, skill_vs_trend: 1 − RD / baseline RD.
        sep_fraction_predicted, sep_fraction_genuine: separable trials at T, predicted
        clouds and genuine probes. diverged: the prediction overflowed (scores NaN).
        numbers: the whole stored row (rates, ratios, spreads, …).
    """

    fit_fraction: float
    t_cut: float
    rd: float
    rd_ci: tuple[float, float]
    rd_end: float
    rd_persistence: float
    rd_trend: float
    skill: float
    skill_vs_trend: float
    sep_fraction_predicted: float
    sep_fraction_genuine: float
    diverged: bool
    numbers: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> ForecastRow:
        nan = float("nan")
        g = {k: float(d.get(k, nan)) for k in (
            "fit_fraction", "t_cut", "rd", "rd_end", "rd_persistence", "rd_trend", "skill",
            "skill_vs_trend", "sep_fraction_predicted", "sep_fraction_genuine")}  # fmt: skip
        return cls(rd_ci=_interval(d.get("rd_ci", (nan, nan))), diverged=bool(d.get("diverged")),
                   numbers=dict(d), **g)  # fmt: skip


def forecast_rows(forecast: Mapping[str, Any], H: str) -> list[ForecastRow]:
    """The backtests of model ``H`` in a summary's ``forecast`` numbers, by fit fraction."""
    return [ForecastRow.from_json(r) for r in forecast.get(H) or []]


def headline_forecast(forecast: Mapping[str, Any], H: str = "L") -> ForecastRow | None:
    """The backtest at the headline fraction (the last one when it is missing)."""
    rows = forecast_rows(forecast, H)
    f = forecast.get("headline_fraction")
    return next((r for r in rows if r.fit_fraction == f), rows[-1] if rows else None)


# --------------------------------------------------------------------------- key numbers
# flat name -> (label, meaning): the key table of the report
KEY_LABELS: dict[str, tuple[str, str]] = {
    "learned": (
        "the networks learned",
        "accuracy above chance and loss fell; else: ignore verdicts",
    ),  # fmt: skip
    "val_acc_final": ("validation accuracy (final)", "mean over trials"),
    "val_loss_final": ("validation loss (final)", "mean over trials"),
    "separable_fraction_final": ("separable trials (final)", "train-probe logits, LP"),
    "separable": ("separability verdict", "majority of trials separable"),
    "etf_deviation_final": ("ETF deviation (final)", "median over trials; 0 = simplex"),
    "margin_noise_ratio_final": ("gap / sd at the end", "measurement: class-mean gap / sd, median"),
    "margin_noise_threshold": ("ρ*", "ratio at which Gaussian clouds separate half the time"),
    "verdict_margin_noise_level": ("finite-time reading", "measurement: ratio above / below ρ*"),
    "forecast_fit_fraction": ("forecast: fraction fitted", "f: fit on t ≤ f·T, forecast the rest"),
    "forecast_rd_L": ("forecast RD (L-model)", "prediction: class means after the cut"),
    "forecast_rd_persistence_L": ("persistence RD", "baseline: class means held at the cut"),
    "forecast_skill_L": ("forecast skill (L-model)", "1 − RD / RD persistence; > 0 beats it"),
    "forecast_sep_predicted_L": ("predicted separable trials", "prediction: LE-SDE clouds at T"),
    "direct_alpha_sign_agrees": ("direct α̂ sign = inverted", "step-level vs L-inversion"),
    "val_acc_transition": ("p_err where accuracy falls", "crosses (1 + 1/K)/2, interpolated"),
}
for _H in MODELS:
    KEY_LABELS.update({
        f"r_alpha_{_H}": (f"r̂_α ({_H}-model)", "tail index of Â (fit), 95 % bootstrap interval"),
        f"r_beta_{_H}": (f"r̂_β ({_H}-model)", "tail index of B̂ (fit), 95 % bootstrap interval"),
        f"r_gamma_{_H}": (f"r̂_γ ({_H}-model)", "tail index of Â − B̂; < 1 predicts separation"),
        f"verdict_tail_{_H}": (f"tail-index verdict ({_H}-model)", "prediction: r̂_γ < / > / ≈ 1, "
                               "or withheld when the power law does not fit or Σ̂ vanishes"),
        f"r_gamma_below_1_{_H}": (f"share of resamples r̂_γ < 1 ({_H})", "bootstrap over trials"),
        f"margin_noise_slope_{_H}": (f"margin-to-noise exponent ({_H})", "measurement: d log ρ "
                                     "/ d log t on the tail window (no verdict)"),
        f"rd_late_{_H}": (f"RD late, {_H}-model", "in-sample fit: last quarter of training"),
        f"r_gamma_{_H}_crosses_1_at": ("p_err where r̂_γ crosses 1", f"{_H}-model, interpolated"),
    })  # fmt: skip


@dataclass(frozen=True)
class ModelKey:
    """One H model's key numbers: r̂_γ, its interval and tail verdict, the margin-to-noise
    exponent (a measurement) and its interval; None where not measured."""

    r_gamma: float
    r_gamma_ci: tuple[float, float] | None = None
    tail_verdict: str | None = None
    margin_noise_slope: float | None = None
    margin_noise_slope_ci: tuple[float, float] | None = None


@dataclass(frozen=True)
class KeyRow:
    """One line of the key table: flat name, label, meaning, value and interval."""

    name: str
    label: str
    meaning: str
    value: Any
    interval: tuple[float, float] | None


@dataclass(frozen=True)
class KeyNumbers:
    """The key numbers of a run (after the headline). None: not measured.

    Attributes:
        learned: the networks learned (`lesde.experiments.stages.learning_check`).
        val_acc_final, separable_fraction_final, etf_deviation_final: the final state.
        level: the finite-time reading {"ratio", "ci", "threshold", "verdict"}.
        forecast: the headline backtest of the L-model.
        models: {H: ModelKey}. rd_late: {H: RD in late training} (in-sample).
        extra: experiment-specific numbers (a sweep's transitions, the theorem parts).
    """

    learned: bool | None = None
    val_acc_final: float | None = None
    separable_fraction_final: float | None = None
    etf_deviation_final: float | None = None
    level: dict[str, Any] | None = None
    forecast: ForecastRow | None = None
    models: dict[str, ModelKey] = field(default_factory=dict)
    rd_late: dict[str, float] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    analysed: bool = False  # the analyse stage ran (its four numbers are present)

    # the flat names of summary.json's "key" (schema 1 and 2): built and parsed here only
    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.analysed:
            out["learned"] = self.learned
            out.update(val_acc_final=self.val_acc_final,
                       separable_fraction_final=self.separable_fraction_final,
                       etf_deviation_final=self.etf_deviation_final)  # fmt: skip
        if self.level:
            out["margin_noise_ratio_final"] = self.level["ratio"]
            out["margin_noise_ratio_final_ci"] = list(self.level["ci"])
            out["margin_noise_threshold"] = self.level["threshold"]
            out["verdict_margin_noise_level"] = self.level["verdict"]
        if self.forecast:
            r = self.forecast
            out.update({"forecast_fit_fraction": r.fit_fraction, "forecast_rd_L": r.rd,
                        "forecast_rd_L_ci": list(r.rd_ci),
                        "forecast_rd_persistence_L": r.rd_persistence,
                        "forecast_skill_L": r.skill,
                        "forecast_sep_predicted_L": r.sep_fraction_predicted})  # fmt: skip
        for H, m in self.models.items():
            out[f"r_gamma_{H}"] = m.r_gamma
            if m.r_gamma_ci is not None:
                out[f"r_gamma_{H}_ci"] = list(m.r_gamma_ci)
            if m.tail_verdict is not None:
                out[f"verdict_tail_{H}"] = m.tail_verdict
            if m.margin_noise_slope is not None:
                out[f"margin_noise_slope_{H}"] = m.margin_noise_slope
                out[f"margin_noise_slope_{H}_ci"] = list(m.margin_noise_slope_ci)
        for H, v in (self.rd_late or {}).items():
            out[f"rd_late_{H}"] = v
        out.update(self.extra)
        return out

    @classmethod
    def from_json(cls, flat: Mapping[str, Any]) -> KeyNumbers:
        d = dict(flat)
        pop = d.pop
        # a single run's four final numbers (a parent's "learned" or accuracy stay extra)
        names = ("learned", "val_acc_final", "separable_fraction_final", "etf_deviation_final")
        analysed = all(k in d for k in names)
        run = {k: pop(k) if analysed else None for k in names}
        level = None
        if "verdict_margin_noise_level" in d:
            level = {"ratio": pop("margin_noise_ratio_final", None),
                     "ci": pop("margin_noise_ratio_final_ci", None),
                     "threshold": pop("margin_noise_threshold", None),
                     "verdict": pop("verdict_margin_noise_level")}  # fmt: skip
        forecast = None
        if "forecast_rd_L" in d:
            forecast = ForecastRow.from_json({
                "fit_fraction": pop("forecast_fit_fraction", None), "rd": pop("forecast_rd_L"),
                "rd_ci": pop("forecast_rd_L_ci", None) or (float("nan"), float("nan")),
                "rd_persistence": pop("forecast_rd_persistence_L", None),
                "skill": pop("forecast_skill_L", None),
                "sep_fraction_predicted": pop("forecast_sep_predicted_L", None),
            })  # fmt: skip
        models, rd_late = {}, {}
        for H in MODELS:
            if f"r_gamma_{H}" in d:
                models[H] = ModelKey(
                    pop(f"r_gamma_{H}"), _interval(pop(f"r_gamma_{H}_ci", None)),
                    pop(f"verdict_tail_{H}", None), pop(f"margin_noise_slope_{H}", None),
                    _interval(pop(f"margin_noise_slope_{H}_ci", None)),
                )  # fmt: skip
        for H in MODELS:
            if f"rd_late_{H}" in d:
                rd_late[H] = pop(f"rd_late_{H}")
        return cls(learned=run["learned"], val_acc_final=run["val_acc_final"],
                   separable_fraction_final=run["separable_fraction_final"],
                   etf_deviation_final=run["etf_deviation_final"], level=level,
                   forecast=forecast, models=models, rd_late=rd_late or None, extra=d,
                   analysed=analysed)  # fmt: skip

    def rows(self) -> list[KeyRow]:
        """The key table: every number with its label, meaning and interval."""
        flat = self.to_json()
        out = []
        for k, v in flat.items():
            if k.endswith("_ci") and k[: -len("_ci")] in flat:
                continue  # shown beside its value
            ci = flat.get(f"{k}_ci")
            label, meaning = KEY_LABELS.get(k, (k, ""))
            out.append(KeyRow(k, label, meaning, v, _interval(ci) if ci is not None else None))
        return out

    def __bool__(self) -> bool:
        return bool(self.to_json())


# --------------------------------------------------------------------------- the summary
@dataclass(frozen=True)
class RunSummary(Mapping):
    """A run directory's summary (module docstring); a read-only mapping of its JSON.

    Attributes:
        experiment, config, pipeline, class_names: what ran.
        stages: {stage: {"done", "version", "outputs", "seconds", "finished"}}.
        numbers: {stage: its numbers} for estimate, simulate, analyse, forecast.
        headline: the `Verdict` rows. key: `KeyNumbers`. notes: plain-language notes.
        caveats: premises the record does not meet. other: the rest (a parent's points
            and parameter, a sweep's grid, the paper's parts), kept as stored.
    """

    experiment: str | None = None
    config: Any = None
    pipeline: Any = None
    class_names: tuple[str, ...] | None = None
    stages: dict[str, Any] = field(default_factory=dict)
    numbers: dict[str, Any] = field(default_factory=dict)
    headline: tuple[Verdict, ...] = ()
    key: KeyNumbers = field(default_factory=KeyNumbers)
    notes: tuple[str, ...] = ()
    caveats: tuple[str, ...] = ()
    other: dict[str, Any] = field(default_factory=dict)
    schema: int = SCHEMA_VERSION

    # ------------------------------------------------------------------ typed reads
    @property
    def learned(self) -> bool | None:
        """Whether the networks learned (None: not measured, e.g. no validation set)."""
        return self.numbers.get("analyse", {}).get("learning", {}).get("learned")

    def forecast_rows(self, H: str) -> list[ForecastRow]:
        return forecast_rows(self.numbers.get("forecast", {}), H)

    @property
    def points(self) -> list[dict[str, Any]]:
        """A parent run's sub-runs [{"value", "dir", …}] (empty for a single run)."""
        return list(self.other.get("points", []))

    def point_summaries(self, run_dir: Path) -> list[tuple[float, RunSummary]]:
        """(value, summary) of every sub-run of a parent run, by value."""
        pts = sorted(self.points, key=lambda p: float(p["value"]))
        return [(float(p["value"]), read_summary(Path(run_dir) / p["dir"])) for p in pts]

    # ------------------------------------------------------------------ JSON
    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"schema": self.schema}
        for k in ("experiment", "config", "pipeline"):
            if getattr(self, k) is not None:
                out[k] = getattr(self, k)
        out["stages"] = self.stages
        if self.class_names is not None:
            out["class_names"] = list(self.class_names)
        out.update(self.numbers)
        out.update(self.other)
        if self.caveats:
            out["caveats"] = list(self.caveats)
        if self.headline or "estimate" in self.stages:
            out["headline"] = [v.to_json() for v in self.headline]
        if self.key or self.headline:
            out["key"] = self.key.to_json()
        if self.notes or self.headline:
            out["notes"] = list(self.notes)
        return out

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> RunSummary:
        schema = int(d.get("schema", 1))
        if schema > SCHEMA_VERSION:
            raise ValueError(f"summary schema {schema} is newer than this lesde reads "
                             f"({SCHEMA_VERSION}); upgrade lesde")  # fmt: skip
        known = {"schema", "experiment", "config", "pipeline", "stages", "class_names",
                 "headline", "key", "notes", "caveats", *_STAGE_NUMBERS}  # fmt: skip
        names = d.get("class_names")
        return cls(
            experiment=d.get("experiment"), config=d.get("config"), pipeline=d.get("pipeline"),
            class_names=None if names is None else tuple(str(n) for n in names),
            stages=dict(d.get("stages") or {}),
            numbers={k: d[k] for k in _STAGE_NUMBERS if k in d},
            headline=tuple(Verdict.from_json(r, schema) for r in d.get("headline") or []),
            key=KeyNumbers.from_json(d.get("key") or {}),
            notes=tuple(d.get("notes") or ()), caveats=tuple(d.get("caveats") or ()),
            other={k: v for k, v in d.items() if k not in known},
            schema=SCHEMA_VERSION,
        )  # fmt: skip

    # ------------------------------------------------------------------ mapping
    def _json(self) -> dict[str, Any]:
        cached = self.__dict__.get("_cache")
        if cached is None:
            cached = self.to_json()
            object.__setattr__(self, "_cache", cached)
        return cached

    def __getitem__(self, k: str) -> Any:
        return self._json()[k]

    def __iter__(self) -> Iterator[str]:
        return iter(self._json())

    def __len__(self) -> int:
        return len(self._json())


def read_summary(run_dir: str | Path, *, broken: str = "raise") -> RunSummary:
    """The summary of a run directory (empty when it has none; see `load_summary` for
    ``broken``)."""
    return RunSummary.from_json(load_summary(Path(run_dir), broken=broken))


def write_summary(run_dir: str | Path, summary: RunSummary | Mapping[str, Any]) -> RunSummary:
    """Write ``summary.json`` atomically (the one writer), from a `RunSummary` or from the
    dict of a run in progress (checked by reading it as one).

    Returns:
        The summary written.
    """
    s = summary if isinstance(summary, RunSummary) else RunSummary.from_json(jsonable(summary))
    write_json_atomic(Path(run_dir) / SUMMARY, s.to_json())
    return s


# --------------------------------------------------------------------------- parent runs
# a parent run's (label-noise, sample-size) key numbers: the transitions and every point's
# numbers as "{name} at {parameter}={value}{suffix}", built and parsed here only
def crossing(x: Any, y: Any, level: float) -> float | None:
    """First x where y crosses ``level`` (linear interpolation), None if it never does."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float) - level
    for i in range(len(x) - 1):
        if np.isfinite(y[i]) and np.isfinite(y[i + 1]) and y[i] * y[i + 1] <= 0 and y[i] != 0:
            return float(x[i] - y[i] * (x[i + 1] - x[i]) / (y[i + 1] - y[i]))
    return None


def points_key_numbers(
    parameter: str, rows: Sequence[tuple[float, Mapping[str, Any]]], n_classes: int
) -> dict[str, Any]:
    """A parent run's key numbers from its points' summaries ``[(value, summary)]``: where
    validation accuracy falls below the midpoint between 1 and chance, where r̂_γ and its
    interval cross 1, and every point's numbers (``"r_gamma_L at p_err=0.1"``)."""
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
    return key


def point_values(key: Mapping[str, Any], name: str, parameter: str = "p_err",
                 suffix: str = "") -> dict[float, Any]:  # fmt: skip
    """{value: number} of a parent's per-point key numbers ``"{name} at {parameter}=V{suffix}"``
    (`points_key_numbers`)."""
    out = {}
    prefix = f"{name} at {parameter}="
    for k, v in key.items():
        if k.startswith(prefix) and k.endswith(suffix):
            body = k[len(prefix) : len(k) - len(suffix)] if suffix else k[len(prefix) :]
            try:
                out[float(body)] = v
            except ValueError:
                continue
    return out

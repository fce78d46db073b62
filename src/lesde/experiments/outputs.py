"""What each stage hands to the next and to the figures: named fields, not string keys.

`Estimates` (the estimate stage), `Simulation` (simulate) and `Analysis` (analyse) are
what the stages return and what `lesde.figures` draws from. Each is stored as one
``.npz`` (`to_arrays` / `from_arrays`), with the flat key layout of
[docs/rundir.md](../../../docs/rundir.md): the per-model keys (``A_I``, ``mean_paper_L``,
``mn_ratio_I``) are built and parsed here only.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

__all__ = [
    "ModelEstimate",
    "Estimates",
    "SimRun",
    "Simulation",
    "Analysis",
    "ForecastRun",
    "Forecasts",
    "MODELS",
]

MODELS = ("I", "L")


@dataclass(frozen=True)
class ModelEstimate:
    """One H model's estimates on the grid (paper §4.1).

    Attributes:
        A, B: (T,) Â, B̂ from t₀. alpha, beta: (T,) α̂, β̂ (the plotting window).
        alpha_sim, beta_sim: (T,) the rates that drive the simulation (window 21).
        r_gamma_boot: (n_boot,) bootstrap values of r̂_γ (empty without a bootstrap).
    """

    A: np.ndarray
    B: np.ndarray
    alpha: np.ndarray
    beta: np.ndarray
    alpha_sim: np.ndarray
    beta_sim: np.ndarray
    r_gamma_boot: np.ndarray


@dataclass(frozen=True)
class Estimates:
    """The estimate stage: X̄(t) and both models' estimates.

    Attributes:
        ts: (T,) grid. xbar: (T, K, p) class means. xbar_trials: (R, C, K, K) per-trial
        probe class means at the checkpoints. checkpoint_step: (C,). t0_index: t₀'s index.
        models: {"I": ModelEstimate, "L": ModelEstimate}.
    """

    ts: np.ndarray
    xbar: np.ndarray
    xbar_trials: np.ndarray
    checkpoint_step: np.ndarray
    t0_index: int
    models: dict[str, ModelEstimate]

    def to_arrays(self) -> dict[str, np.ndarray]:
        out = {"ts": self.ts, "xbar": self.xbar, "xbar_trials": self.xbar_trials,
               "checkpoint_step": self.checkpoint_step,
               "t0_index": np.array(self.t0_index)}  # fmt: skip
        for H, m in self.models.items():
            for f in fields(ModelEstimate):
                out[f"{f.name}_{H}"] = getattr(m, f.name)
        return out

    @classmethod
    def from_arrays(cls, d: dict[str, np.ndarray]) -> Estimates:
        models = {
            H: ModelEstimate(
                **{f.name: d.get(f"{f.name}_{H}", np.array([])) for f in fields(ModelEstimate)}
            )  # fmt: skip
            for H in MODELS
            if f"A_{H}" in d
        }
        return cls(d["ts"], d["xbar"], d["xbar_trials"], d["checkpoint_step"],
                   int(d["t0_index"]), models)  # fmt: skip


@dataclass(frozen=True)
class SimRun:
    """One simulation of the LE-ODE from the estimates.

    Attributes:
        mean: (T', K, p) the path from X̄(t₀). sd: (T', K, p) spread of the band paths.
        rd: (T', K) RD against the genuine class means.
    """

    mean: np.ndarray
    sd: np.ndarray
    rd: np.ndarray


@dataclass(frozen=True)
class Simulation:
    """The simulate stage (from t₀ on).

    Attributes:
        ts: (T',) grid. xbar: (T', K, p) the genuine class means there.
        own: {H: SimRun}, each H model simulated with its own rates.
        paper: {H: SimRun}, the L-model driven by H's rates (paper Fig. 5).
        clouds: {H: {name: array}} the LE-SDE with α̂, β̂ and Σ̂(t), per-sample clouds
            of every trial from the probes at t₀ (`stage_simulate`): "ts" (C',)
            checkpoints; "spread_sim", "spread_gen" (C',) within-class variance;
            "ratio_sim", "ratio_gen" (C',) margin-to-noise ratio; "sep_ts" (S,) and
            "sep_sim", "sep_gen" (S,) the separable fraction of trials. Empty when the
            record has no probes to start from.
    """

    ts: np.ndarray
    xbar: np.ndarray
    own: dict[str, SimRun]
    paper: dict[str, SimRun]
    clouds: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)

    def to_arrays(self) -> dict[str, np.ndarray]:
        out = {"ts": self.ts, "xbar": self.xbar}
        for variant, runs in (("own", self.own), ("paper", self.paper)):
            for H, r in runs.items():
                for f in fields(SimRun):
                    out[f"{f.name}_{variant}_{H}"] = getattr(r, f.name)
        for H, group in self.clouds.items():
            for name, v in group.items():
                out[f"cl_{H}_{name}"] = v
        return out

    @classmethod
    def from_arrays(cls, d: dict[str, np.ndarray]) -> Simulation:
        runs = {
            variant: {H: SimRun(*(d[f"{f.name}_{variant}_{H}"] for f in fields(SimRun)))
                      for H in MODELS if f"mean_{variant}_{H}" in d}
            for variant in ("own", "paper")
        }  # fmt: skip
        clouds = {H: {k[len(f"cl_{H}_"):]: d[k] for k in d if k.startswith(f"cl_{H}_")}
                  for H in MODELS}  # fmt: skip
        return cls(d["ts"], d["xbar"], runs["own"], runs["paper"],
                   {H: g for H, g in clouds.items() if g})  # fmt: skip


@dataclass(frozen=True)
class Analysis:
    """The analyse stage. Optional groups are empty dicts when not measured.

    Attributes:
        checkpoint_step: (C,). etf_trials: (R, C). etf_mean_path: (C,).
        separable_final: (R,) bool. val_loss, val_acc: (R, C).
        le_matrix: {"E_ts", "E", "E_lo", "E_hi"} of Ê(t) with intervals.
        direct: {"le_steps", "le_alpha", "le_beta"} of the direct local elasticity.
        fig1: {"nu", "pair", "sample_t", "sample_proj", "sample_label"}: what Fig. 1 draws.
        diffusion: {"ts", "V", "sigma2", "noise", "ratio_direct"}: Σ̂(t) and the ratios.
        ratio: {H: (ts, ρ(t))} the margin-to-noise ratio under each H model.
    """

    checkpoint_step: np.ndarray
    etf_trials: np.ndarray
    etf_mean_path: np.ndarray
    separable_final: np.ndarray
    val_loss: np.ndarray
    val_acc: np.ndarray
    le_matrix: dict[str, np.ndarray] = field(default_factory=dict)
    direct: dict[str, np.ndarray] = field(default_factory=dict)
    fig1: dict[str, np.ndarray] = field(default_factory=dict)
    diffusion: dict[str, np.ndarray] = field(default_factory=dict)
    ratio: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)

    # npz key -> (group, name); the layout of analysis.npz
    _FIG1 = {"fig1_nu": "nu", "fig1_pair": "pair", "fig1_sample_t": "sample_t",
             "fig1_sample_proj": "sample_proj", "fig1_sample_label": "sample_label"}  # fmt: skip
    _DIFF = {"diff_ts": "ts", "diff_V": "V", "diff_sigma2": "sigma2", "mn_noise": "noise",
             "mn_ratio_direct": "ratio_direct"}  # fmt: skip
    _LE = ("E_ts", "E", "E_lo", "E_hi")
    _DIRECT = ("le_steps", "le_alpha", "le_beta")
    _BASE = ("checkpoint_step", "etf_trials", "etf_mean_path", "separable_final", "val_loss",
             "val_acc")  # fmt: skip

    def to_arrays(self) -> dict[str, Any]:
        out: dict[str, Any] = {k: getattr(self, k) for k in self._BASE}
        out.update(self.le_matrix)
        out.update(self.direct)
        out.update({k: self.fig1[v] for k, v in self._FIG1.items() if v in self.fig1})
        out.update({k: self.diffusion[v] for k, v in self._DIFF.items() if v in self.diffusion})
        for H, (ts, r) in self.ratio.items():
            out[f"mn_ts_{H}"], out[f"mn_ratio_{H}"] = ts, r
        return out

    @classmethod
    def from_arrays(cls, d: dict[str, Any]) -> Analysis:
        return cls(
            *(d[k] for k in cls._BASE),
            le_matrix={k: d[k] for k in cls._LE if k in d},
            direct={k: d[k] for k in cls._DIRECT if k in d},
            fig1={v: d[k] for k, v in cls._FIG1.items() if k in d},
            diffusion={v: d[k] for k, v in cls._DIFF.items() if k in d},
            ratio={
                H: (d[f"mn_ts_{H}"], d[f"mn_ratio_{H}"]) for H in MODELS if f"mn_ratio_{H}" in d
            },  # fmt: skip
        )


@dataclass(frozen=True)
class ForecastRun:
    """One backtest's arrays (`lesde.Forecast` without its scores).

    Attributes:
        fit_fraction, t_cut: the cut. ts: (F,) forecast grid. mean, lo, hi: (F, K, p) the
        prediction and its band. genuine, persistence, trend: (F, K, p). cloud_ts: (C',).
        spread_predicted, spread_genuine, ratio_predicted, ratio_genuine: (C',).
    """

    fit_fraction: float
    t_cut: float
    ts: np.ndarray
    mean: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    genuine: np.ndarray
    persistence: np.ndarray
    trend: np.ndarray
    cloud_ts: np.ndarray
    spread_predicted: np.ndarray
    spread_genuine: np.ndarray
    ratio_predicted: np.ndarray
    ratio_genuine: np.ndarray


@dataclass(frozen=True)
class Forecasts:
    """The forecast stage: {H: [ForecastRun per fit fraction]}; stored as ``forecast.npz``
    with keys ``fc_<H>_<i>_<field>`` (i the index of the fraction)."""

    runs: dict[str, list[ForecastRun]]

    def to_arrays(self) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for H, rows in self.runs.items():
            out[f"fc_{H}_n"] = np.array(len(rows))
            for i, r in enumerate(rows):
                for f in fields(ForecastRun):
                    out[f"fc_{H}_{i}_{f.name}"] = np.asarray(getattr(r, f.name))
        return out

    @classmethod
    def from_arrays(cls, d: dict[str, np.ndarray]) -> Forecasts:
        runs: dict[str, list[ForecastRun]] = {}
        for H in MODELS:
            if f"fc_{H}_n" not in d:
                continue
            runs[H] = []
            for i in range(int(d[f"fc_{H}_n"])):
                vals = {f.name: d[f"fc_{H}_{i}_{f.name}"] for f in fields(ForecastRun)}
                vals["fit_fraction"] = float(vals["fit_fraction"])
                vals["t_cut"] = float(vals["t_cut"])
                runs[H].append(ForecastRun(**vals))
        return cls(runs)

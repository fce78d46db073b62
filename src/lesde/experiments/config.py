"""Options of a run: the later stages' `PipelineConfig` and what to train, `TrainSpec`."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from lesde._validation import check_choice, check_fraction, check_int, check_seed

__all__ = ["PipelineConfig", "TrainSpec", "STAGES", "STAGE_VERSIONS", "le_steps_for"]

STAGES = ("train", "estimate", "simulate", "analyse", "forecast")
# Bumped when a stage's output changes meaning; a run directory whose stage was written
# by an older version recomputes it (and everything after it) on the next `lesde run`.
# estimate 2: tail indices by the fit of A (intervals, verdicts); analyse 2: Σ̂ and ρ(t).
# estimate/analyse 3: classes by their original label (PipelineConfig.classes); analyse 4:
# the finite-time margin-to-noise level.
# analyse 5: the Fig. 1 projection and its sampled points.
# estimate 4: the tail fit's goodness-of-fit check and the noise premise; simulate 2: the
# LE-SDE clouds with Σ̂(t); forecast 1: the out-of-sample backtest.
STAGE_VERSIONS = {"train": 1, "estimate": 4, "simulate": 2, "analyse": 6, "forecast": 1}


@dataclass(frozen=True)
class PipelineConfig:
    """Options of the estimate/simulate/analyse stages (the trainer has its own).

    Attributes:
        xbar_source: "samples" (paper: logits of trained samples, averaged over trials)
            or "probe" (probe-set class means at checkpoints).
        classes: "clean" (default): a sample's class is its original label, and label
            corruption enters only through the sampling — the LE-SDE of paper §4.2, whose
            W = P/K with the corruption matrix P mixes the true classes; the class means,
            separability and collapse are those of the true classes. "train": the
            training label after corruption. The two agree when p_err = 0.
        bin_width: steps per time bin for ``"samples"``; 10 pools ~10·R/K logits per class
            per point, enough for a smooth X̄(t) with R = 30–100 trials.
        t0_index: reference grid index t₀ of the inversion and start of the simulations
            (docs/math.md §4); None: ``t0_fraction`` of the grid.
        t0_fraction: t₀ as a fraction of the grid when ``t0_index`` is None. At
            initialisation the class means nearly coincide and their margins have random
            signs; the L-model amplifies whatever margins it starts from, so a simulation
            from t = 0 grew the wrong pattern (RD ≈ 2 on GeoMNIST) while one from 5% of
            the run, once the margins have their sign, followed the genuine paths.
        rate_window: Savitzky–Golay window for the plotted rates; None: an odd number
            near 1/10 of the grid, within [11, 191] (the paper: 191 at 10⁵ steps).
        sim_window: window of the rates that drive the simulation (paper: 21).
        n_paths: simulated LE-ODE paths (paper: 500).
        init_noise: spread τ of the initial points of the band paths, in units of the
            paper's N(0, ‖X̄^k(0)‖²/K) (`simulate_from_estimates`). The paper's τ = 1 is
            amplified by the fitted growth into bands ~25× the logits on GeoMNIST; 0.1
            keeps the band readable. RD uses the path from X̄(0) itself.
        late_fraction: the last fraction of the grid over which RD is averaged.
        tail_fraction: the tail indices fit Â, B̂ and Â − B̂ (`lesde.estimate.tail`) on
            the last ``tail_fraction`` of the time span. Real runs are not power laws
            from the start: Â − B̂ rises fast and then grows slowly, and on the default
            GeoMNIST run windows from 5 % / 25 % / 50 % of the run gave ŝ_γ ≈ 2.2 / 1.7 /
            0.76: an early window reads the approach to the slow growth as a fast decay.
            The last half is the default; every run's sensitivity table shows the last
            25 / 50 / 75 %. None: the fit's own default (the last 3/4).
        le_window: checkpoints per least-squares window of Ê(t); None: ~1/6 of them.
        n_boot: bootstrap resamples of Ê(t).
        tail_boot: bootstrap resamples of trials for the intervals of r̂_α, r̂_β, r̂_γ
            (`lesde.estimate.bootstrap`); 0 turns them off. 200 gives the 2.5 % / 97.5 %
            percentiles from the 5th and 195th values.
        forecast_fractions: fit fractions f of the forecast stage: each fits the
            LE-ODE/SDE on t ≤ f·T and forecasts the rest (`lesde.forecasting.backtest`).
        forecast_headline: the fraction whose forecast the headline reports (one of
            ``forecast_fractions``): half the run fitted, half forecast.
        forecast_boot: bootstrap resamples of trials for the forecast band (0: none);
            50 gives a 95 % band from the 2nd and 49th values at a few seconds per run.
        seed: seed of the simulation and bootstrap.
    """

    xbar_source: str = "samples"
    classes: str = "clean"
    bin_width: int = 10
    t0_index: int | None = None
    t0_fraction: float = 0.05
    rate_window: int | None = None
    sim_window: int = 21
    n_paths: int = 500
    init_noise: float = 0.1
    late_fraction: float = 0.25
    tail_fraction: float | None = 0.5
    le_window: int | None = None
    n_boot: int = 100
    tail_boot: int = 200
    forecast_fractions: tuple[float, ...] = (0.1, 0.2, 0.3, 0.5)
    forecast_headline: float = 0.5
    forecast_boot: int = 50
    seed: int = 0

    def __post_init__(self) -> None:
        check_choice("classes", self.classes, ("clean", "train"))
        check_choice("xbar_source", self.xbar_source, ("samples", "probe"))
        if self.tail_boot != 0:
            check_int("tail_boot", self.tail_boot, low=10)
        for name in ("bin_width", "sim_window", "n_paths"):
            check_int(name, getattr(self, name))
        check_fraction("t0_fraction", self.t0_fraction, closed_high=False)
        fr = tuple(self.forecast_fractions)
        if not fr or any(not (isinstance(f, float | int) and 0 < f < 1) for f in fr):
            raise ValueError(f"`forecast_fractions` must be values in (0, 1), got {fr!r}")
        object.__setattr__(self, "forecast_fractions", tuple(float(f) for f in fr))
        if self.forecast_headline not in self.forecast_fractions:
            raise ValueError(
                f"`forecast_headline` must be one of `forecast_fractions` {fr}, got "
                f"{self.forecast_headline!r}"
            )
        if self.forecast_boot != 0:
            check_int("forecast_boot", self.forecast_boot, low=10)
        if not 0 < self.late_fraction <= 1:
            raise ValueError(f"`late_fraction` must be in (0, 1], got {self.late_fraction!r}")


@dataclass(frozen=True)
class TrainSpec:
    """What to train for one run: data, ensemble size, steps, recording.

    Attributes:
        data: dataset name for `lesde.data.load` ("geomnist", "digits", "cifar10").
        data_options: keyword options of the loader (counts per class, classes, root).
        n_trials: independent networks (paper: 100).
        n_steps: SGD steps per trial, batch size 1 (paper: 10⁵ on GeoMNIST).
        n_checkpoints: probe/validation checkpoints, linearly spaced including 0.
        probe_per_class: probe samples per class from the training set (and as many
            from the validation set).
        lr: SGD learning rate (paper: 0.005).
        p_err: label-corruption ratio of the training labels (docs/math.md §7).
        n_le_steps: steps at which the direct local elasticity is measured (`le_steps_for`).
        seed: root seed.
    """

    data: str
    data_options: dict = dataclasses.field(default_factory=dict)
    n_trials: int = 32
    n_steps: int = 4000
    n_checkpoints: int = 41
    probe_per_class: int = 20
    lr: float = 0.005
    p_err: float = 0.0
    n_le_steps: int = 12
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("n_trials", "n_steps", "n_checkpoints", "probe_per_class"):
            check_int(name, getattr(self, name))
        check_fraction("p_err", self.p_err)
        check_seed("seed", self.seed)

    def train_config(self):
        """The `lesde.train.TrainConfig` of this spec (the one place a run's trainer
        options are filled in; `lesde train` maps its flags itself)."""
        from lesde.train import TrainConfig

        return TrainConfig(
            n_trials=self.n_trials,
            n_steps=self.n_steps,
            lr=self.lr,
            seed=self.seed,
            n_checkpoints=self.n_checkpoints,
            schedule="linear",  # even spacing: Ê(t) windows and ETF curves on a uniform grid
            probe_per_class=self.probe_per_class,
            le_steps=le_steps_for(self.n_steps, self.n_le_steps),
            # compared with the L-model inversion; the H of nothing when none is measured
            le_model="L" if le_steps_for(self.n_steps, self.n_le_steps) else "I",
            p_err=self.p_err,
        )


def le_steps_for(n_steps: int, n: int) -> tuple[int, ...]:
    """Steps for the direct local-elasticity measurement: ``n // 2`` log-spaced in the
    first 10% of training (where the dynamics change fastest) and the rest evenly
    spaced over the later 90% (where the sign comparison with the inversion is made)."""
    if n <= 0:
        return ()
    early = np.geomspace(1, max(1, n_steps // 10), n // 2) if n // 2 else np.array([])
    late = np.linspace(n_steps / 10, n_steps, n - n // 2 + 1)[1:]
    steps = np.concatenate([early, late]).round().astype(int).clip(1, n_steps)
    return tuple(sorted({int(v) for v in steps}))

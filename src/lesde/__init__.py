"""lesde: locally elastic stochastic differential equations (Zhang, Wang & Su, NeurIPS 2021).

The public API, re-exported here. Names are resolved lazily (PEP 562) so that
``import lesde`` stays cheap and does not import torch until training is used.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    # model and exact solutions
    "LEModel": "lesde.model",
    "margin_directions": "lesde.model",
    "closed_form": "lesde.closed_form",
    "integrated_rates": "lesde.closed_form",
    "class_margins": "lesde.closed_form",
    # simulators
    "solve_ode": "lesde.simulate.ode",
    "simulate_sde": "lesde.simulate.sde",
    "SDEResult": "lesde.simulate.sde",
    "simulate_particles": "lesde.simulate.particles",
    "ParticleResult": "lesde.simulate.particles",
    # analysis
    "pairwise_separable": "lesde.analysis.separation",
    "is_separable": "lesde.analysis.separation",
    "separable_pair": "lesde.analysis.separation",
    "etf_deviation": "lesde.analysis.collapse",
    "neural_collapse": "lesde.analysis.collapse",
    "CollapseMetrics": "lesde.analysis.collapse",
    "norm_spread": "lesde.analysis.collapse",
    "relative_difference": "lesde.analysis.fit",
    # estimation
    "estimate_ab": "lesde.estimate.ab",
    "ABResult": "lesde.estimate.ab",
    "estimate_rates": "lesde.estimate.rates",
    "savgol_derivative": "lesde.estimate.rates",
    "tail_index": "lesde.estimate.rates",
    "tail_fit": "lesde.estimate.tail",
    "TailFit": "lesde.estimate.tail",
    "estimate_le_matrix": "lesde.estimate.le_matrix",
    "LEMatrixResult": "lesde.estimate.le_matrix",
    "direct_local_elasticity": "lesde.estimate.direct",
    "DirectLE": "lesde.estimate.direct",
    "simulate_from_estimates": "lesde.simulate.from_estimates",
    "simulate_clouds": "lesde.simulate.clouds",
    "CloudResult": "lesde.simulate.clouds",
    # out-of-sample forecasts
    "forecast": "lesde.experiments.forecast",
    "Forecast": "lesde.forecasting.backtest",
    "backtest": "lesde.forecasting.backtest",
    "FromEstimatesResult": "lesde.simulate.from_estimates",
    # data
    "Dataset": "lesde.data.dataset",
    "make_geomnist": "lesde.data.geomnist",
    "load_cifar10": "lesde.data.cifar",
    "load_digits": "lesde.data.digits",
    "corrupt_labels": "lesde.data.corruption",
    # training (imports torch on first use)
    "TrainConfig": "lesde.train.ensemble",
    "train_ensemble": "lesde.train.ensemble",
    "run_training": "lesde.train.ensemble",
    "Recorder": "lesde.train.own_loop",
    # run store, experiments, figures, report
    "open_run": "lesde.store",
    "IncompleteRunError": "lesde.store",
    "PipelineConfig": "lesde.experiments.pipeline",
    "run_pipeline": "lesde.experiments.pipeline",
    "analyse": "lesde.studies.analyse",
    "draw_figures": "lesde.figures",
    "write_report": "lesde.report",
    "run_sweep": "lesde.sweep",
}

__all__ = sorted(_EXPORTS) + ["__version__"]

# `closed_form` is both a submodule and a function of that name. Importing the submodule
# (as lesde.estimate does) would bind the package attribute to the module, so the
# function is bound eagerly here: once the submodule is in sys.modules, later imports of
# it no longer touch the package attribute, and `lesde.closed_form(...)` stays callable.
from lesde.closed_form import closed_form as closed_form  # noqa: E402


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'lesde' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__

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
    "etf_deviation": "lesde.analysis.collapse",
    "neural_collapse": "lesde.analysis.collapse",
    "relative_difference": "lesde.analysis.fit",
    # estimation
    "estimate_ab": "lesde.estimate.ab",
    "ABResult": "lesde.estimate.ab",
    "estimate_rates": "lesde.estimate.rates",
    "tail_index": "lesde.estimate.rates",
    "estimate_le_matrix": "lesde.estimate.le_matrix",
    "direct_local_elasticity": "lesde.estimate.direct",
    "simulate_from_estimates": "lesde.simulate.from_estimates",
    # run store
    "open_run": "lesde.store",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'lesde' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__

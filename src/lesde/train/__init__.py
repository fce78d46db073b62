"""Ensemble training of the paper's CNN with recorded dynamics (paper §4.1).

`train_ensemble` trains R independent networks in lockstep and records what
`lesde.train.recorder` lists; `run_training` does the same into a resumable run
directory (`lesde.store`).
"""

from lesde.train.ensemble import (
    EnsembleCNN,
    TrainConfig,
    TrainingDiverged,
    draw_samples,
    initial_params,
    load_data,
    resolve_device,
    run_training,
    train_ensemble,
)
from lesde.train.nets import CNN, PARAM_NAMES, CNNSpec, init_params
from lesde.train.recorder import checkpoint_steps, choose_probes, log_steps, record_layout

__all__ = [
    "CNN",
    "CNNSpec",
    "EnsembleCNN",
    "PARAM_NAMES",
    "TrainConfig",
    "TrainingDiverged",
    "checkpoint_steps",
    "choose_probes",
    "draw_samples",
    "init_params",
    "initial_params",
    "load_data",
    "log_steps",
    "record_layout",
    "resolve_device",
    "run_training",
    "train_ensemble",
]

"""How fast training runs on this machine: trial-steps/s of the default path, measured.

Used to estimate how long a run will take before it starts (e.g. ``lesde run paper
--scale paper``, ≈ 1.5·10⁸ trial-steps).
"""

from __future__ import annotations

import time

import numpy as np
import torch

__all__ = ["measure_rate"]


def measure_rate(
    *,
    n_trials: int,
    image_size: int = 32,
    in_channels: int = 1,
    n_classes: int = 3,
    dtype: torch.dtype = torch.float32,
    steps: int = 30,
    backend: str = "cnn",
) -> float:
    """Trial-steps/s of the default training step on random data (at most ~2 s).

    The trials are split into thread blocks as `lesde.train.train_ensemble` splits them
    (one per torch thread) and advanced by the same engine calls, on random images and
    labels; a few warm-up steps come first (they also build the compiled "cnn" step,
    once per process and shape). Evaluations and recording are not included: they cost
    about a tenth of the rate at one evaluation per 2000 steps and about 30 % at the
    paper's GeoMNIST schedule, 660 images every 500 steps (the bench's steady state,
    ``bench/results/train.md``); a whole paper-scale GeoMNIST run, with its record writes
    and start-up, trained at ~60 % of this rate (44k against 75k trial-steps/s).

    Args:
        n_trials: trials trained together.
        image_size, in_channels, n_classes: the paper CNN's input and output shape.
        dtype: torch.float32 or torch.float64.
        steps: timed steps per trial (fewer when they would take over ~2 s).
        backend: "cnn" (the paper's CNN, default path) or "func" (the same network
            through the "func" backend).

    Returns:
        Measured trial-steps per second.

    Raises:
        ValueError: an unknown backend or a non-positive ``n_trials`` / ``steps``.
    """
    from concurrent.futures import ThreadPoolExecutor

    from lesde.train.config import TrainConfig, _resolve_groups, initial_params
    from lesde.train.loop import _split, _steps
    from lesde.train.nets import CNN, CNNSpec

    if backend not in ("cnn", "func"):
        raise ValueError(f"`backend` must be 'cnn' or 'func', got {backend!r}")
    if n_trials < 1 or steps < 1:
        raise ValueError(f"`n_trials` and `steps` must be >= 1, got {n_trials}, {steps}")
    spec = CNNSpec(in_channels, n_classes, image_size=image_size)
    cpu = torch.device("cpu")
    cfg = TrainConfig(n_trials=n_trials, backend=backend)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn((64, in_channels, image_size, image_size), generator=gen, dtype=dtype)
    y = torch.randint(0, n_classes, (64,), generator=gen)

    def engine(lo: int, hi: int):
        params = [initial_params(cfg, spec, r, dtype=dtype) for r in range(lo, hi)]
        if backend == "cnn":
            from lesde.train.engine_cnn import EnsembleCNN

            return EnsembleCNN(spec, params, device=cpu, dtype=dtype)
        from lesde.train.backends import FuncEnsemble

        return FuncEnsemble(lambda: CNN(spec), params, device=cpu, dtype=dtype,
                            batch_shape=(1, in_channels, image_size, image_size))  # fmt: skip

    blocks = [(engine(lo, hi), hi - lo) for lo, hi in _split(n_trials, _resolve_groups(cfg, cpu))]
    rng = np.random.default_rng(0)

    def run(block, n: int) -> None:
        eng, r = block
        idx = torch.as_tensor(rng.integers(0, 64, (r, n, 1)))
        _steps(eng, x, idx, y[idx], 0.005)

    threads = torch.get_num_threads()
    if len(blocks) > 1:
        torch.set_num_threads(1)  # as train_ensemble: one intra-op thread per block
    try:
        with ThreadPoolExecutor(len(blocks)) as pool:
            t = time.perf_counter()
            list(pool.map(lambda b: run(b, 3), blocks))  # warm-up
            warm = (time.perf_counter() - t) / 3  # seconds per step, roughly
            # keep the timed part within ~1.5 s whatever the machine
            n = max(1, min(steps, int(1.5 / max(warm, 1e-9))))
            t = time.perf_counter()
            list(pool.map(lambda b: run(b, n), blocks))
            return n_trials * n / (time.perf_counter() - t)
    finally:
        torch.set_num_threads(threads)

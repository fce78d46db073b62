"""Vectorised ensemble trainer: many independent networks trained by batch-1 SGD in lockstep.

This produces the paper's "genuine dynamics" (§4.1): ``n_trials`` independent copies of
the CNN of `lesde.train.nets`, each with its own initialisation and its own sequence of
training samples, trained by plain SGD on the softmax cross-entropy, with the logits of
the trained samples recorded at every step (`lesde.train.recorder`).

How the paper's CNN trials advance together in the "cnn" engine (measured in
``bench/bench_train.py``): a batch-size-1 step is tiny, so per-operation overhead, memory
layout and memory traffic dominate, not FLOPs. A block of trials runs as *one* network:

- the convolutions are grouped convolutions with one group per trial (input laid out
  as (B, R·C, H, W), weights as (R·c_out, c_in, 5, 5)), in channels-last memory for
  float32 (PyTorch's NCHW CPU max-pool is 20-30x slower at these shapes and the oneDNN
  convolutions ~2x slower; float64 has no oneDNN kernels and stays NCHW);
- the fully connected layers are batched matmuls over trials ((R, B, n_in) @ (R, n_in, n_out));
- the backward pass is written by hand (no autograd graph: ~40 ATen calls per step
  for all trials of a block together), and the SGD update of the FC weights is fused
  into the weight-gradient product (``addcmul_`` for B = 1, ``baddbmm_`` otherwise,
  with −lr), so those weights are read and written once per step instead of three times;
- on the CPU the trials are split into blocks (``TrainConfig.n_groups``, default one
  per torch thread), each advanced by its own Python thread with one intra-op thread
  (torch releases the GIL inside kernels). Two blocks beat one block on two intra-op
  threads by 1.2-1.6x (the machine was shared while measuring), and by far more when
  another process holds a core: OpenMP teams then stall at every barrier (measured
  ~100 trial-steps/s).
- Probe and validation evaluations push each image through all trials at once; conv1
  of shared images is one GEMM whose result is already channels-last.

Seeds: one ``np.random.SeedSequence(seed)``; trial r's initialisation uses spawn key
(0, r), its samples in chunk c use (1, r, c), the probe draw (2,), label corruption (3,).
A chunk of samples is a pure function of (seed, r, c), so a resumed run draws exactly
what an uninterrupted one does. Same seed → bitwise-identical arrays on the same machine.

The trainer is spread over files of one concept each: `lesde.train.config` (options,
seeds, sampling), `lesde.train.engine_cnn` (backend "cnn"), `lesde.train.backends`
(the backend protocol and backend "func"), `lesde.train.prepare` (data, probes, record
layout, evaluations), `lesde.train.loop` (chunks, thread blocks, recording, resume
state) and this module (the public entry points; the names of the others are
re-exported here).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lesde.data.dataset import Dataset
from lesde.data.registry import load_data
from lesde.train.config import (  # noqa: F401  (re-exported: the trainer's public names)
    _CL,
    _DTYPES,
    TrainConfig,
    TrainingDiverged,
    _resolve_groups,
    _seed_seq,
    aten,
    draw_samples,
    initial_params,
    resolve_device,
)
from lesde.train.engine_cnn import EnsembleCNN
from lesde.train.loop import _Group, _loop, _run_chunk, _split  # noqa: F401
from lesde.train.prepare import _evaluate, _meta, _prepare, _Prepared  # noqa: F401
from lesde.train.recorder import (
    MemorySink,
)

__all__ = [
    "TrainConfig",
    "TrainingDiverged",
    "train_ensemble",
    "initial_params",
    "draw_samples",
    "EnsembleCNN",
    "resolve_device",
    "run_training",
    "load_data",
]


def train_ensemble(
    data: Dataset,
    cfg: TrainConfig,
    *,
    out: str | Path | None = None,
    resume: bool = False,
    _n_groups: int | None = None,
    data_config: dict[str, Any] | None = None,
    progress: Callable[[int], None] | None = None,
    model: Callable[[], Any] | None = None,
):
    """Train ``cfg.n_trials`` networks on ``data`` by SGD and record their dynamics.

    With ``cfg.backend="cnn"`` (default) the networks are the paper's CNN, advanced by
    the hand-written engine; with ``"func"`` they are whatever ``model()`` builds (any
    ``nn.Module`` whose output is (B, K) logits), trial r initialised by ``model()``
    under its own seed, vectorised with ``torch.func`` (`lesde.train.backends`).

    Args:
        data: the dataset (`lesde.data.load`); label corruption (``cfg.p_err``) is
            applied here, to the training labels only.
        cfg: configuration.
        out: run directory (`lesde.store`); None keeps everything in memory.
        resume: continue the unfinished run in ``out`` from its last complete chunk
            (the configuration must match the saved one).
        data_config: JSON-able description of ``data`` saved in ``config.json`` (the
            CLI uses it to rebuild the data on resume); needs ``out``.
        progress: called with the number of steps just done (per trial), every few steps.
        model: ``backend="func"``: a no-argument factory of one network (with any
            other backend it is refused, naming ``backend``).

    Returns:
        ``xarray.Dataset`` of the record (`lesde.store` lists its variables). With
        ``out``, it is `lesde.open_run` of the finished run.

    Raises:
        TrainingDiverged: a loss became non-finite; the data so far are kept and the
            run is marked diverged.
        ValueError: ``model`` with a backend other than "func"; ``resume`` or
            ``data_config`` without ``out``; ``cfg.n_val`` above the validation set's size.
    """
    if model is not None and cfg.backend != "func":
        # the "cnn" engine trains the paper's CNN only: a factory would be ignored
        raise ValueError(
            f"`model` needs the 'func' backend (TrainConfig(backend='func', ...)), got "
            f"`backend`={cfg.backend!r}, which trains the paper's CNN and never calls `model`"
        )
    if out is None and resume:
        raise ValueError("`resume` needs `out`")
    if out is None and data_config is not None:
        raise ValueError("`data_config` is saved in `out`/config.json, but `out` is None: "
                         "give `out`, or drop `data_config`")  # fmt: skip
    n_val_data = len(np.asarray(data.y_val)) if isinstance(data, Dataset) else None
    if n_val_data is not None and getattr(cfg, "n_val", None) is not None:
        if cfg.n_val > n_val_data:  # a subset that large would silently be all of them
            raise ValueError(f"`n_val` must be at most the {n_val_data} validation samples "
                             f"of `data`, got {cfg.n_val}")  # fmt: skip
    if model is None and cfg.backend == "func" and cfg.model is not None:
        from lesde.train.backends import resolve_model

        model = resolve_model(cfg.model)
    prep = _prepare(data, cfg, model)
    config = {"train": cfg.to_json(), "data": dict(data_config or {})}
    if out is None:
        sink: Any = MemorySink(prep.layout)
        for name, (dims, values) in prep.coords.items():
            sink.arrays[name], sink.dims[name] = np.asarray(values), dims
        writer = None
    else:
        from lesde.store import RunWriter

        if resume:
            writer = RunWriter(out, config=config, resume=True)
        else:
            writer = RunWriter(
                out,
                variables=prep.layout,
                coords=prep.coords,
                config=config,
                meta=_meta(cfg, prep),
                attrs=prep.attrs,
            )
        sink = writer

    R, S = cfg.n_trials, cfg.n_steps
    n_groups = _resolve_groups(cfg, prep.device) if _n_groups is None else int(_n_groups)
    if writer is not None:
        if resume:
            n_groups = int(writer.meta.get("n_groups", n_groups))  # same split: bitwise resume
        else:
            writer.update_meta(n_groups=n_groups)
    if cfg.backend == "cnn":
        init = [initial_params(cfg, prep.spec, r) for r in range(R)]
    else:
        from lesde.train.backends import func_initial_params

        # trial r's initialisation under spawn key (0, r), as the cnn engine's
        init = [func_initial_params(model, _seed_seq(cfg.seed, 0, r).generate_state(2, np.uint32),
                                    prep.dtype) for r in range(R)]  # fmt: skip
    start = 0
    if writer is not None and resume:
        state, start = writer.load_state()
        if state:
            init = [{n: state[n][r] for n in state} for r in range(R)]

    def engine(params: list[dict[str, torch.Tensor]]):
        if cfg.backend == "cnn":
            return EnsembleCNN(prep.spec, params, device=prep.device, dtype=prep.dtype)
        from lesde.train.backends import FuncEnsemble

        return FuncEnsemble(
            model, params, device=prep.device, dtype=prep.dtype, momentum=cfg.momentum,
            weight_decay=cfg.weight_decay, feature_module=cfg.feature_module,
            batch_shape=(cfg.batch_size, *prep.x_train.shape[1:]),
        )  # fmt: skip

    groups = [_Group(engine(init[lo:hi]), lo, hi) for lo, hi in _split(R, n_groups)]
    t0 = time.perf_counter()
    threads = torch.get_num_threads()
    if len(groups) > 1:
        # one intra-op thread per group: each group's ops run in its own Python thread
        # (torch releases the GIL); OpenMP teams of 2 stall badly when another process
        # holds a core (measured: ~60x slower under load), single-threaded groups do not
        torch.set_num_threads(1)
    try:
        _loop(groups, prep, cfg, sink, writer, start, progress)
    finally:
        torch.set_num_threads(threads)
    elapsed = time.perf_counter() - t0
    if writer is None:
        import xarray as xr

        coords_names = set(prep.coords) - {
            "probe_label",
            "probe_clean_label",
            "probe_split",
            "probe_index",
        }
        ds = xr.Dataset(
            {n: (sink.dims[n], a) for n, a in sink.arrays.items() if n not in coords_names},
            coords={n: (sink.dims[n], sink.arrays[n]) for n in coords_names},
            attrs={**prep.attrs, "status": "complete", "steps_done": S},
        )
        ds.attrs["seconds"] = elapsed
        from lesde.estimate.direct import add_direct_le

        return add_direct_le(ds)
    from lesde.store import open_run

    writer.mark_complete(
        seconds_last_session=elapsed, finished=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    )
    return open_run(out)


def run_training(
    out: str | Path,
    cfg: TrainConfig | None = None,
    *,
    data: str = "geomnist",
    data_options: dict[str, Any] | None = None,
    progress: Callable[[int], None] | None = None,
    model: Callable[[], Any] | None = None,
):
    """Train into the run directory ``out``, resuming it if it is unfinished.

    A complete run is opened and returned as is; an unfinished one continues from its
    last complete chunk with its saved configuration (``cfg``, ``data`` and
    ``data_options`` are then ignored); otherwise a new run starts.

    Args:
        out: run directory.
        cfg: configuration of a new run.
        data: dataset name for `lesde.data.load`, or an ``.npz`` path (`load_data`).
        data_options: loader options (e.g. ``{"n_train": 300, "n_val": 100, "seed": 0}``).
        progress: as in `train_ensemble`.

    Returns:
        ``xarray.Dataset`` of the run (`lesde.open_run`).
    """
    from lesde.rundir import config_diff, mismatch
    from lesde.store import CorruptRunError, open_run, read_json, reset_for_repair, run_status

    out = Path(out)
    status = run_status(out)
    if status == "missing" and (out / "config.json").exists():
        # killed between config.json and the first meta.json: nothing was trained yet
        saved = read_json(out / "config.json")
        if cfg is None:
            cfg = TrainConfig.from_json(saved["train"])
            data, data_options = saved["data"]["name"], saved["data"].get("options")
        _clear_unstarted(out)
    elif status != "missing":
        saved = read_json(out / "config.json")
        if cfg is not None:
            requested = {
                "train": cfg.to_json(),
                "data": {"name": str(data), "options": dict(data_options or {})},
            }
            diffs = config_diff(saved, requested)
            if diffs:
                raise mismatch(out, diffs, what="training record")
    if status in ("complete", "diverged"):
        try:
            return open_run(out)
        except CorruptRunError as err:
            # a deleted or damaged chunk of a finished run: train it again from the start
            # (a chunk is a pure function of the seeds and the trial split is kept, so the
            # record comes out bitwise equal); the message says which file
            warnings.warn(f"{err}; retraining the run to repair it", stacklevel=2)
            saved = read_json(out / "config.json")
            old = reset_for_repair(out)
            (out / "config.json").unlink()
            dcfg = saved["data"]
            ds = load_data(dcfg["name"], dcfg.get("options"))
            return train_ensemble(ds, TrainConfig.from_json(saved["train"]), out=out,
                                  data_config=dcfg, progress=progress,
                                  _n_groups=old.get("n_groups"), model=model)  # fmt: skip
    if status == "running":
        saved = read_json(out / "config.json")
        cfg = TrainConfig.from_json(saved["train"])
        dcfg = saved["data"]
        ds = load_data(dcfg["name"], dcfg.get("options"))
        return train_ensemble(ds, cfg, out=out, resume=True, data_config=dcfg, progress=progress,
                              model=model)  # fmt: skip
    if cfg is None:
        raise ValueError(f"`cfg` is required to start a new run in {out}")
    dcfg = {"name": str(data), "options": dict(data_options or {})}
    ds = load_data(data, data_options)
    return train_ensemble(ds, cfg, out=out, data_config=dcfg, progress=progress, model=model)


def _clear_unstarted(out: Path) -> None:
    """Remove what a run killed before its first ``meta.json`` left (config, empty zarr)."""
    import shutil

    for name in ("config.json", "record.zarr", "state", "manifest.json"):
        p = out / name
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()

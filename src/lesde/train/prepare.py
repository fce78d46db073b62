"""Data preparation for a run: labels (with corruption), probes, checkpoints, the record
layout, and the evaluations at checkpoints."""

from __future__ import annotations

import platform
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lesde.data.dataset import Dataset
from lesde.train.config import _DTYPES, TrainConfig, _seed_seq, resolve_device
from lesde.train.engine_cnn import EnsembleCNN
from lesde.train.nets import CNNSpec
from lesde.train.recorder import (
    Probes,
    checkpoint_steps,
    choose_probes,
    record_layout,
)

# --------------------------------------------------------------------------- trainer


@dataclass
class _Prepared:
    spec: CNNSpec | None
    device: torch.device
    dtype: torch.dtype
    y_train: np.ndarray  # as trained on
    y_clean: np.ndarray
    x_train: torch.Tensor
    y_train_t: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    probes: Probes
    x_probe: torch.Tensor
    x_eval: torch.Tensor  # probes then validation images
    ck_steps: np.ndarray
    layout: dict
    coords: dict
    attrs: dict
    n_classes: int = 0
    n_features: int = 0


def _prepare(data: Dataset, cfg: TrainConfig, model: Callable | None = None) -> _Prepared:
    if not isinstance(data, Dataset):
        raise TypeError(f"`data` must be a lesde Dataset, got {type(data).__name__}")
    if not isinstance(cfg, TrainConfig):
        raise TypeError(f"`cfg` must be a TrainConfig, got {type(cfg).__name__}")
    x_tr = np.asarray(data.x_train)
    if cfg.backend == "func":
        if not callable(model):
            raise ValueError(
                "`model`: backend='func' trains the network that `model()` builds; pass a "
                "factory (train_ensemble(..., model=make_net) or lesde train --model)"
            )
    elif x_tr.ndim != 4 or x_tr.shape[2] != x_tr.shape[3]:
        raise ValueError(
            f"`data.x_train`: the paper's CNN trains on (N, C, H, H) images, got samples of "
            f"shape {x_tr.shape}"
        )
    K = data.n_classes
    y_clean = np.asarray(data.y_train, dtype=np.int64)
    if y_clean.min() < 0 or y_clean.max() >= K:
        raise ValueError(
            f"`data.y_train` must lie in [0, {K}), got [{y_clean.min()}, {y_clean.max()}]"
        )
    counts = np.bincount(y_clean, minlength=K)
    if cfg.sampling != "uniform" and (counts == 0).any():
        raise ValueError(
            f"every class needs training samples for sampling={cfg.sampling!r}, "
            f"got counts {counts.tolist()}"
        )
    if cfg.sampling == "stratified" and cfg.batch_size % K:
        raise ValueError(
            f"`batch_size` must be a multiple of K={K} for stratified sampling, "
            f"got {cfg.batch_size}"
        )
    y_train = y_clean
    if cfg.p_err > 0:
        from lesde.data import corrupt_labels

        cseed = int(_seed_seq(cfg.seed, 3).generate_state(1)[0])
        y_new = corrupt_labels(y_clean, cfg.p_err, seed=cseed, n_classes=K)[0]
        y_train = np.asarray(y_new, dtype=np.int64)
    device, dtype = resolve_device(cfg.device), _DTYPES[cfg.dtype]
    spec = None
    if cfg.backend == "cnn":
        spec = CNNSpec(
            in_channels=int(x_tr.shape[1]),
            n_classes=K,
            widths=cfg.widths,
            image_size=int(x_tr.shape[2]),
        )
        n_features = spec.n_features
    else:
        from lesde.train.backends import check_model

        net = model()
        if not isinstance(net, torch.nn.Module):
            raise TypeError(f"`model` must return an nn.Module, got {type(net).__name__}")
        net = net.to(dtype=dtype)
        sample = torch.as_tensor(x_tr[:2]).to(dtype)
        check_model(net, n_classes=K, sample=sample)
        n_features = 0
        if cfg.feature_module is not None:
            try:
                sub = net.get_submodule(cfg.feature_module)
            except AttributeError as err:
                raise ValueError(
                    f"`feature_module`: the model has no submodule {cfg.feature_module!r}"
                ) from err
            got: list = []
            h = sub.register_forward_hook(lambda _m, _i, o: got.append(o.flatten(1).shape[1]))
            with torch.no_grad():
                net(sample)
            h.remove()
            n_features = int(got[0])
    x_val, y_val = np.asarray(data.x_val), np.asarray(data.y_val, dtype=np.int64)
    probes = choose_probes(
        y_train,
        y_clean,
        y_val,
        x_tr,
        x_val,
        cfg.probe_per_class,
        n_classes=K,
        seed=_seed_seq(cfg.seed, 2),
    )
    if cfg.n_val is not None and cfg.n_val < y_val.size:
        keep = np.sort(
            np.random.default_rng(_seed_seq(cfg.seed, 4)).choice(
                y_val.size, cfg.n_val, replace=False
            )
        )
        x_val, y_val = x_val[keep], y_val[keep]
    ck = checkpoint_steps(cfg.n_steps, cfg.n_checkpoints, cfg.schedule)
    P = probes.label.size
    layout = record_layout(
        n_trials=cfg.n_trials,
        n_steps=cfg.n_steps,
        batch_size=cfg.batch_size,
        n_classes=K,
        n_probes=P,
        n_checkpoints=ck.size,
        n_le=len(cfg.le_steps),
        n_features=n_features if cfg.record_features else None,
        chunk_steps=cfg.chunk_steps,
        float_dtype=cfg.dtype,
    )
    coords = {
        "step": (("step",), np.arange(1, cfg.n_steps + 1, dtype=np.int64)),
        "trial": (("trial",), np.arange(cfg.n_trials, dtype=np.int64)),
        "checkpoint_step": (("checkpoint",), ck),
        "probe_label": (("probe",), probes.label),
        "probe_clean_label": (("probe",), probes.clean_label),
        "probe_split": (("probe",), probes.split),
        "probe_index": (("probe",), probes.index),
    }
    if cfg.le_steps:
        coords["le_step"] = (("le_step",), np.asarray(cfg.le_steps, dtype=np.int64))
    attrs = {
        "n_classes": K,
        "class_names": list(data.class_names),
        "lr": cfg.lr,
        "seed": cfg.seed,
        "n_trials": cfg.n_trials,
        "n_steps": cfg.n_steps,
        "batch_size": cfg.batch_size,
        "sampling": cfg.sampling,
        "dtype": cfg.dtype,
        "le_model": cfg.le_model,
        "p_err": cfg.p_err,
        "time_unit": "SGD iterations",
    }
    kw = {"device": device, "dtype": dtype}
    return _Prepared(
        n_classes=K,
        n_features=n_features,
        spec=spec,
        device=device,
        dtype=dtype,
        y_train=y_train,
        y_clean=y_clean,
        x_train=torch.as_tensor(x_tr).to(**kw),
        y_train_t=torch.as_tensor(y_train, device=device),
        x_val=torch.as_tensor(x_val).to(**kw),
        y_val=torch.as_tensor(y_val, device=device),
        probes=probes,
        x_probe=torch.as_tensor(probes.x).to(**kw),
        x_eval=torch.as_tensor(np.concatenate([probes.x, x_val])).to(**kw),
        ck_steps=ck,
        layout=layout,
        coords=coords,
        attrs=attrs,
    )


def _evaluate(eng: EnsembleCNN, prep: _Prepared) -> dict[str, np.ndarray]:
    """Probe logits/features and validation loss/accuracy of every trial."""
    P = prep.x_probe.shape[0]
    # probes and validation images in one pass: the FC weights are read once
    logits, feats = eng.forward_shared(prep.x_eval)  # (R, P + N_val, K), (R, P + N_val, F)
    out = {
        "probe_logits": logits[:, :P].cpu().numpy(),
        "probe_features": feats[:, :P].cpu().numpy(),
    }
    if prep.y_val.numel():
        vl = logits[:, P:]  # (R, N_val, K)
        logp = torch.log_softmax(vl.double(), -1)
        yv = prep.y_val.view(1, -1, 1).expand(eng.R, -1, 1)
        out["val_loss"] = (-logp.gather(-1, yv)).mean((1, 2)).cpu().numpy()
        out["val_acc"] = (vl.argmax(-1) == prep.y_val).double().mean(1).cpu().numpy()
    else:
        out["val_loss"] = np.full(eng.R, np.nan)
        out["val_acc"] = np.full(eng.R, np.nan)
    return out


def _meta(cfg: TrainConfig, prep: _Prepared) -> dict[str, Any]:
    import lesde

    try:
        rev = (
            subprocess.run(
                ["git", "rev-parse", "HEAD"],
                capture_output=True,
                text=True,
                timeout=5,
                cwd=Path(__file__).resolve().parent,
            ).stdout.strip()
            or None
        )
    except (OSError, subprocess.SubprocessError):
        rev = None
    import xarray
    import zarr

    return {
        "seed": cfg.seed,
        "device": str(prep.device),
        "torch_threads": torch.get_num_threads(),
        "git_revision": rev,
        "versions": {
            "lesde": lesde.__version__,
            "torch": torch.__version__,
            "numpy": np.__version__,
            "xarray": xarray.__version__,
            "zarr": zarr.__version__,
            "python": platform.python_version(),
        },
        "platform": platform.platform(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }

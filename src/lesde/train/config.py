"""The trainer's options (`TrainConfig`), devices, seeds and the sampling of SGD steps;
`step_by_step`, the engines' common way of making several steps.

A chunk of samples is a pure function of (seed, trial, chunk) (`draw_samples`), and
trial r's initialisation of its SeedSequence spawn key (0, r) (`initial_params`), so a
resumed run draws exactly what an uninterrupted one does.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from lesde.train.nets import CNNSpec, init_params

aten = torch.ops.aten
_CL = torch.channels_last
_DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclass(frozen=True)
class TrainConfig:
    """Configuration of an ensemble training run (saved as ``config.json``).

    Attributes:
        n_trials: R, independent networks.
        n_steps: S, SGD steps per trial (paper: 10⁵ on GeoMNIST).
        lr: SGD step size h (paper: 0.005), no momentum, no weight decay.
        batch_size: B samples per step and trial (paper: 1); the loss is their mean.
        sampling: ``"balanced"`` (class L ~ Unif[K], then a sample of that class, the
            paper's eq. 4), ``"uniform"`` (a sample uniformly from the training set) or
            ``"stratified"`` (B/K samples of every class per step; B a multiple of K).
        seed: root seed of everything stochastic.
        dtype: ``"float32"`` or ``"float64"``.
        device: ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda"``.
        widths: CNN widths (conv1, conv2, fc1, fc2); the paper's (6, 16, 120, 84). The
            ``"cnn"`` backend only (``"func"`` trains what ``model()`` builds).
        n_checkpoints: probe/validation evaluations, including steps 0 and S.
        schedule: ``"log"`` or ``"linear"`` checkpoint spacing.
        probe_per_class: probes per class drawn from train and from val each.
        record_features: also record the probes' penultimate features (84 per probe).
        le_steps: steps m (1 ≤ m ≤ S) at which to measure local elasticity directly.
        le_model: H of the direct measurement: ``"I"`` (H = I) or ``"L"`` (d̂_L d̂_Lᵀ);
            ``"L"`` needs ``le_steps``.
        p_err: label-corruption fraction of the training labels (docs/math.md §7).
        n_val: validation samples used for val_loss/val_acc (a fixed random subset);
            None: all.
        chunk_steps: steps per written chunk; also the resume granularity.
        backend: ``"cnn"`` (the hand-written engine of the paper's CNN, the default) or
            ``"func"`` (any ``nn.Module`` from the ``model`` factory given to
            `train_ensemble`, vectorised with ``torch.func``; `lesde.train.backends`).
        momentum, weight_decay: SGD options of the ``"func"`` backend (torch.optim.SGD
            semantics); the paper's plain SGD is 0, 0 (the ``"cnn"`` engine has only that).
        feature_module: ``"func"`` with ``record_features``: the submodule whose output
            is recorded as the probes' features.
        model: ``"func"``: where the model factory comes from, ``"package.module:fn"``
            or ``"file.py:fn"``; stored so that a resumed run rebuilds it (None: the
            factory must be passed again to resume).
        n_groups: blocks of trials advanced in parallel threads (one intra-op thread
            each; ``torch.set_num_threads(1)`` holds while training and is restored
            after); None: one per torch CPU thread (1 on CUDA). Results can differ in
            the last float bits between group counts; a resumed run reuses its count.

    Options that would have no effect in a combination (``widths`` with ``"func"``,
    ``feature_module`` or ``model`` with ``"cnn"``, ``feature_module`` without
    ``record_features``, ``le_model="L"`` without ``le_steps``) are refused with a
    ValueError naming them.
    """

    n_trials: int = 100
    n_steps: int = 10_000
    lr: float = 0.005
    batch_size: int = 1
    sampling: str = "balanced"
    seed: int = 0
    dtype: str = "float32"
    device: str = "auto"
    widths: tuple[int, int, int, int] = (6, 16, 120, 84)
    n_checkpoints: int = 50
    schedule: str = "log"
    probe_per_class: int = 16
    record_features: bool = False
    le_steps: tuple[int, ...] = ()
    le_model: str = "I"
    p_err: float = 0.0
    n_val: int | None = None
    chunk_steps: int = 500
    n_groups: int | None = None
    backend: str = "cnn"
    momentum: float = 0.0
    weight_decay: float = 0.0
    feature_module: str | None = None
    model: str | None = None

    # options added after records existed: left out of config.json at their defaults, so
    # a run directory written before them still matches the same configuration
    _LATER = {"backend": "cnn", "momentum": 0.0, "weight_decay": 0.0, "feature_module": None,
              "model": None}  # fmt: skip

    def __post_init__(self) -> None:
        for name in ("n_trials", "n_steps", "batch_size", "n_checkpoints", "chunk_steps"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"`{name}` must be a positive int, got {v!r}")
        if self.n_checkpoints < 2:
            raise ValueError(f"`n_checkpoints` must be >= 2, got {self.n_checkpoints}")
        if not (isinstance(self.lr, int | float) and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"`lr` must be a positive float, got {self.lr!r}")
        if self.sampling not in ("balanced", "uniform", "stratified"):
            raise ValueError(
                f"`sampling` must be 'balanced', 'uniform' or 'stratified', got {self.sampling!r}"
            )
        if self.dtype not in _DTYPES:
            raise ValueError(f"`dtype` must be 'float32' or 'float64', got {self.dtype!r}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"`device` must be 'auto', 'cpu' or 'cuda', got {self.device!r}")
        if self.schedule not in ("log", "linear"):
            raise ValueError(f"`schedule` must be 'log' or 'linear', got {self.schedule!r}")
        if self.le_model not in ("I", "L"):
            raise ValueError(f"`le_model` must be 'I' or 'L', got {self.le_model!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"`seed` must be a non-negative int, got {self.seed!r}")
        if not 0.0 <= self.p_err <= 1.0:
            raise ValueError(f"`p_err` must be in [0, 1], got {self.p_err!r}")
        if self.probe_per_class < 1:
            raise ValueError(f"`probe_per_class` must be >= 1, got {self.probe_per_class!r}")
        if self.n_groups is not None and self.n_groups < 1:
            raise ValueError(f"`n_groups` must be None or >= 1, got {self.n_groups!r}")
        if self.n_val is not None and self.n_val < 1:
            raise ValueError(f"`n_val` must be None or >= 1, got {self.n_val!r}")
        if self.backend not in ("cnn", "func"):
            raise ValueError(f"`backend` must be 'cnn' or 'func', got {self.backend!r}")
        for name in ("momentum", "weight_decay"):
            v = getattr(self, name)
            if not (isinstance(v, int | float) and math.isfinite(v) and v >= 0):
                raise ValueError(f"`{name}` must be a finite float >= 0, got {v!r}")
            if v and self.backend == "cnn":
                raise ValueError(f"`{name}`: the 'cnn' engine is plain SGD; use backend='func'")
        if self.record_features and self.backend == "func" and self.feature_module is None:
            raise ValueError("`record_features` with backend='func' needs `feature_module`")
        for name in ("feature_module", "model"):
            if getattr(self, name) is not None and self.backend != "func":
                raise ValueError(f"`{name}` ({getattr(self, name)!r}) needs backend='func', got "
                                 f"`backend`={self.backend!r}, which never uses it")  # fmt: skip
        if self.feature_module is not None and not self.record_features:
            raise ValueError(f"`feature_module` ({self.feature_module!r}) names what "
                             "`record_features` records; it is False")  # fmt: skip
        if self.backend == "func" and tuple(self.widths) != (6, 16, 120, 84):
            raise ValueError(
                f"`widths` {tuple(self.widths)} sets the paper's CNN; "
                "backend='func' trains what `model()` builds and never uses it"
            )
        le = tuple(sorted({int(m) for m in self.le_steps}))
        if le and (le[0] < 1 or le[-1] > self.n_steps):
            raise ValueError(f"`le_steps` must lie in [1, {self.n_steps}], got {self.le_steps!r}")
        if le and self.batch_size != 1:
            raise ValueError(f"`le_steps` needs batch_size 1, got {self.batch_size}")
        if self.le_model != "I" and not le:
            raise ValueError(f"`le_model`={self.le_model!r} is the H of the direct local-"
                             "elasticity measurement, but `le_steps` is empty: nothing is "
                             "measured")  # fmt: skip
        object.__setattr__(self, "le_steps", le)
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["widths"] = list(self.widths)
        d["le_steps"] = list(self.le_steps)
        for k, default in self._LATER.items():
            if d[k] == default:
                del d[k]
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> TrainConfig:
        d = dict(d)
        d["widths"] = tuple(d["widths"])
        d["le_steps"] = tuple(d["le_steps"])
        return cls(**d)


class TrainingDiverged(RuntimeError):
    """A non-finite loss stopped training (the run is stored as diverged)."""


def resolve_device(device: str) -> torch.device:
    """``"auto"`` → CUDA when available, else CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("`device` is 'cuda' but torch sees no CUDA device")
    return torch.device(device)


def _resolve_groups(cfg: TrainConfig, device: torch.device) -> int:
    """Trial groups run in parallel threads: ``cfg.n_groups`` or one per CPU thread."""
    if cfg.n_groups is not None:
        return min(cfg.n_groups, cfg.n_trials)
    if device.type != "cpu":
        return 1
    return max(1, min(torch.get_num_threads(), cfg.n_trials))


def _seed_seq(seed: int, *key: int) -> np.random.SeedSequence:
    return np.random.SeedSequence(entropy=seed, spawn_key=key)


def initial_params(
    cfg: TrainConfig, spec: CNNSpec, trial: int, *, dtype: torch.dtype | None = None
) -> dict[str, torch.Tensor]:
    """Trial ``trial``'s initial parameters (PyTorch default init, spawn key (0, trial))."""
    state = _seed_seq(cfg.seed, 0, trial).generate_state(2, np.uint32)
    g = torch.Generator().manual_seed(int(state[0]) << 31 | int(state[1]) >> 1)
    return init_params(spec, g, dtype=dtype or _DTYPES[cfg.dtype])


def draw_samples(
    cfg: TrainConfig, y_train: np.ndarray, n_classes: int, trial: int, chunk: int
) -> np.ndarray:
    """Training-set indices of trial ``trial`` for chunk ``chunk`` of steps.

    Args:
        cfg: the run's configuration (seed, sampling, batch size, chunk length).
        y_train: (N,) training labels as trained on (after corruption).
        n_classes: K.
        trial: r.
        chunk: c; the chunk covers steps c·chunk_steps + 1 ... (c+1)·chunk_steps.

    Returns:
        (chunk_steps, B) int64 indices.
    """
    rng = np.random.default_rng(_seed_seq(cfg.seed, 1, trial, chunk))
    L, B = cfg.chunk_steps, cfg.batch_size
    if cfg.sampling == "uniform":
        return rng.integers(0, y_train.size, size=(L, B))
    order = np.argsort(y_train, kind="stable")
    counts = np.bincount(y_train, minlength=n_classes)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    if cfg.sampling == "balanced":
        cls = rng.integers(0, n_classes, size=(L, B))
    else:  # stratified: B/K of every class
        cls = np.broadcast_to(np.tile(np.arange(n_classes), B // n_classes), (L, B))
    j = rng.integers(0, counts[cls])
    return order[starts[cls] + j]


def step_by_step(
    eng: Any, x_train: torch.Tensor, idx: torch.Tensor, y: torch.Tensor, lr: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """L SGD steps of an engine one call of ``eng.step`` each (engines without a faster
    ``run_steps``): samples ``idx`` (R, L, B), labels ``y`` (R, L, B); returns the logits
    (L, R, B, K) before each update and the losses (L, R, B)."""
    out = [eng.step(eng.batch(x_train, idx[:, i]), y[:, i], lr) for i in range(idx.shape[1])]
    return torch.stack([o[0] for o in out]), torch.stack([o[1] for o in out])

"""Vectorised ensemble trainer: many independent CNNs trained by batch-size-1 SGD in lockstep.

Why this file is long: the hand-written engine, the chunk loop and the entry points of
the paper's CNN trainer; they split into the backend protocol, the "cnn" backend and the
loop when training backends arrive (the issue "Your own network"), not before.

This produces the paper's "genuine dynamics" (§4.1): ``n_trials`` independent copies of
the CNN of `lesde.train.nets`, each with its own initialisation and its own sequence of
training samples, trained by plain SGD on the softmax cross-entropy, with the logits of
the trained samples recorded at every step (`lesde.train.recorder`).

How the trials advance together (measured in ``bench/bench_train.py`` and
``PERF_NOTES.md``): a batch-size-1 step is tiny, so per-operation overhead, memory
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
"""

from __future__ import annotations

import dataclasses
import math
import platform
import subprocess
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from lesde.data.dataset import Dataset
from lesde.data.registry import load_data
from lesde.train.nets import KERNEL, PARAM_NAMES, CNNSpec, init_params
from lesde.train.recorder import (
    MemorySink,
    Probes,
    checkpoint_steps,
    choose_probes,
    record_layout,
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
        widths: CNN widths (conv1, conv2, fc1, fc2); the paper's (6, 16, 120, 84).
        n_checkpoints: probe/validation evaluations, including steps 0 and S.
        schedule: ``"log"`` or ``"linear"`` checkpoint spacing.
        probe_per_class: probes per class drawn from train and from val each.
        record_features: also record the probes' penultimate features (84 per probe).
        le_steps: steps m (1 ≤ m ≤ S) at which to measure local elasticity directly.
        le_model: H of the direct measurement: ``"I"`` (H = I) or ``"L"`` (d̂_L d̂_Lᵀ).
        p_err: label-corruption fraction of the training labels (docs/math.md §7).
        n_val: validation samples used for val_loss/val_acc (a fixed random subset);
            None: all.
        chunk_steps: steps per written chunk; also the resume granularity.
        backend: ``"cnn"`` (the hand-written engine of the paper's CNN, the default) or
            ``"func"`` (any ``nn.Module`` from the ``model`` factory given to
            `train_ensemble`, vectorised with ``torch.func``; `lesde.train.backends`).
        momentum, weight_decay: SGD options of the ``"func"`` backend (torch.optim.SGD
            semantics); the paper's plain SGD is 0, 0 (the ``"cnn"`` engine has only that).
        feature_module: ``"func"``: the submodule whose output is recorded as the
            probes' features (``record_features``).
        model: ``"func"``: where the model factory comes from, ``"package.module:fn"``
            or ``"file.py:fn"``; stored so that a resumed run rebuilds it (None: the
            factory must be passed again to resume).
        n_groups: blocks of trials advanced in parallel threads (one intra-op thread
            each; ``torch.set_num_threads(1)`` holds while training and is restored
            after); None: one per torch CPU thread (1 on CUDA). Results can differ in
            the last float bits between group counts; a resumed run reuses its count.
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
        le = tuple(sorted({int(m) for m in self.le_steps}))
        if le and (le[0] < 1 or le[-1] > self.n_steps):
            raise ValueError(f"`le_steps` must lie in [1, {self.n_steps}], got {self.le_steps!r}")
        if le and self.batch_size != 1:
            raise ValueError(f"`le_steps` needs batch_size 1, got {self.batch_size}")
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


# --------------------------------------------------------------------------- engine


class EnsembleCNN:
    """R CNNs stored stacked, with a hand-written batched forward and backward.

    Layout: conv weights (R·c_out, c_in, 5, 5) and biases (R·c_out,) for grouped
    convolutions; FC weights (R, n_out, n_in) and biases (R, 1, n_out) for ``baddbmm``.

    Args:
        spec: network shape.
        params: one {name: tensor} per trial (names of `PARAM_NAMES`).
        device, dtype: where and how the stacked parameters live.
    """

    def __init__(
        self,
        spec: CNNSpec,
        params: list[dict[str, torch.Tensor]],
        *,
        device: torch.device,
        dtype: torch.dtype,
    ) -> None:
        self.spec = spec
        self.R = len(params)
        self.device, self.dtype = device, dtype
        # memory format of the conv/pool stages (see `step`); float64 has no oneDNN
        # kernels and its native convolutions are faster in NCHW (measured)
        self.mf = _CL if dtype == torch.float32 else torch.contiguous_format
        stacked = {n: torch.stack([p[n] for p in params]) for n in PARAM_NAMES}
        self.load_state(stacked)

    def load_state(self, stacked: dict[str, torch.Tensor]) -> None:
        """Set the parameters from {name: (R, *shape)} tensors."""
        R, kw = self.R, {"device": self.device, "dtype": self.dtype}
        t = {n: stacked[n].to(**kw).contiguous() for n in PARAM_NAMES}
        self.W1 = t["conv1.weight"].reshape(
            R * t["conv1.weight"].shape[1], *t["conv1.weight"].shape[2:]
        )
        self.b1 = t["conv1.bias"].reshape(-1)
        # conv weights kept channels-last like the activations: oneDNN would otherwise
        # reorder them at every call (3 copies per step, measured)
        self.W2 = (
            t["conv2.weight"]
            .reshape(R * t["conv2.weight"].shape[1], *t["conv2.weight"].shape[2:])
            .contiguous(memory_format=self.mf)
        )
        self.b2 = t["conv2.bias"].reshape(-1)
        self.W3, self.b3 = t["fc1.weight"], t["fc1.bias"].unsqueeze(1)
        self.W4, self.b4 = t["fc2.weight"], t["fc2.bias"].unsqueeze(1)
        self.W5, self.b5 = t["fc3.weight"], t["fc3.bias"].unsqueeze(1)

    def state(self) -> dict[str, torch.Tensor]:
        """{name: (R, *shape)} the parameters (views, or copies for channels-last ones)."""
        R, shapes = self.R, self.spec.param_shapes()
        flat = [
            self.W1,
            self.b1,
            self.W2,
            self.b2,
            self.W3,
            self.b3,
            self.W4,
            self.b4,
            self.W5,
            self.b5,
        ]
        return {n: v.reshape(R, *shapes[n]) for n, v in zip(PARAM_NAMES, flat, strict=True)}

    def batch(self, x_train: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """The step input: trial r's B images in channels [r·C, (r+1)·C), (B, R·C, H, W).

        Args:
            x_train: (N, C, H, W). idx: (R, B) sample indices of the block's trials.
        """
        R, B = idx.shape
        C, H = self.spec.in_channels, self.spec.image_size
        return x_train[idx.T.reshape(-1)].view(B, R * C, H, H)

    def trial_params(self, r: int) -> dict[str, torch.Tensor]:
        """Copies of trial r's parameters."""
        return {n: v[r].clone() for n, v in self.state().items()}

    def step(
        self, x: torch.Tensor, y: torch.Tensor, lr: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One SGD step of every trial on its own mini-batch.

        Args:
            x: (B, R·C, H, W) images, trial r's in channels [r·C, (r+1)·C).
            y: (R, B) labels.
            lr: step size.

        Returns:
            logits (R, B, K) before the update and per-sample losses (R, B).
        """
        R = self.R
        B = x.shape[0]
        w1, w2 = self.spec.widths[:2]
        # forward; ReLU after max-pool equals max-pool after ReLU (monotone), on 4× fewer
        # elements, and routes gradients to the same elements (a ReLU-killed max has
        # zero gradient either way)
        # the conv/pool stages run in channels-last layout: at these shapes PyTorch's NCHW
        # CPU max-pool is 20-30x slower and the oneDNN convolutions ~2x slower (measured)
        x = x.contiguous(memory_format=self.mf)
        a1 = F.conv2d(x, self.W1, self.b1, groups=R)  # (B, R·w1, 28, 28)
        p1, i1 = aten.max_pool2d_with_indices(a1, [2, 2], [2, 2])
        r1 = torch.relu(p1)  # (B, R·w1, 14, 14)
        a2 = F.conv2d(r1, self.W2, self.b2, groups=R)  # (B, R·w2, 10, 10)
        p2, i2 = aten.max_pool2d_with_indices(a2, [2, 2], [2, 2])
        r2 = torch.relu(p2).contiguous()  # (B, R·w2, 5, 5), NCHW for the FC layers
        f = r2.view(B, R, -1).transpose(0, 1)  # (R, B, 400)
        h3 = torch.relu(torch.baddbmm(self.b3, f, self.W3.transpose(1, 2)))  # (R, B, 120)
        h4 = torch.relu(torch.baddbmm(self.b4, h3, self.W4.transpose(1, 2)))  # (R, B, 84)
        z = torch.baddbmm(self.b5, h4, self.W5.transpose(1, 2))  # (R, B, K)
        logp = torch.log_softmax(z, -1)
        yi = y.unsqueeze(-1)  # (R, B, 1)
        loss = -logp.gather(-1, yi).squeeze(-1)  # (R, B)
        # backward of mean cross-entropy: (softmax − onehot) / B
        g5 = logp.exp()
        g5.scatter_add_(-1, yi, torch.full_like(yi, -1.0, dtype=g5.dtype))
        if B > 1:
            g5.div_(B)
        # SGD on the FC weights right after each one's last read (W ← W − lr·gᵀh, fused
        # into the gradient product), while W is still in cache (9.6 MB for 50 trials' fc1)
        g4 = aten.threshold_backward(torch.bmm(g5, self.W5), h4, 0)  # (R, B, 84)
        self._fc_update(self.W5, g5, h4, lr)
        g3 = aten.threshold_backward(torch.bmm(g4, self.W4), h3, 0)  # (R, B, 120)
        self._fc_update(self.W4, g4, h3, lr)
        gf = torch.bmm(g3, self.W3)  # (R, B, 400)
        self._fc_update(self.W3, g3, f, lr)
        gp2 = aten.threshold_backward(gf.transpose(0, 1).reshape(r2.shape), r2, 0)
        ga2 = aten.max_pool2d_with_indices_backward(
            gp2.contiguous(memory_format=self.mf), a2, [2, 2], [2, 2], [0, 0], [1, 1], False, i2
        )
        gr1, gW2, gb2 = aten.convolution_backward(
            ga2,
            r1,
            self.W2,
            [R * w2],
            [1, 1],
            [0, 0],
            [1, 1],
            False,
            [0, 0],
            R,
            [True, True, True],
        )
        gp1 = aten.threshold_backward(gr1.contiguous(memory_format=self.mf), r1, 0)
        ga1 = aten.max_pool2d_with_indices_backward(
            gp1, a1, [2, 2], [2, 2], [0, 0], [1, 1], False, i1
        )
        _, gW1, gb1 = aten.convolution_backward(
            ga1,
            x,
            self.W1,
            [R * w1],
            [1, 1],
            [0, 0],
            [1, 1],
            False,
            [0, 0],
            R,
            [False, True, True],
        )
        torch._foreach_add_(
            [self.W1, self.b1, self.W2, self.b2, self.b3, self.b4, self.b5],
            [
                gW1,
                gb1,
                gW2,
                gb2,
                g3.sum(1, keepdim=True),
                g4.sum(1, keepdim=True),
                g5.sum(1, keepdim=True),
            ],
            alpha=-lr,
        )
        return z, loss

    @staticmethod
    def _fc_update(W: torch.Tensor, g: torch.Tensor, h: torch.Tensor, lr: float) -> None:
        """W ← W − lr · gᵀh for W (R, n_out, n_in), g (R, B, n_out), h (R, B, n_in)."""
        if g.shape[1] == 1:
            # rank-1 gradient: the outer-product update reads and writes W once and is
            # ~40% faster than the K=1 matmul (measured)
            W.addcmul_(g.transpose(1, 2), h, value=-lr)
        else:
            W.baddbmm_(g.transpose(1, 2), h, alpha=-lr)

    @torch.no_grad()
    def forward_shared(
        self, x: torch.Tensor, *, max_elements: int = 1 << 20
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Every trial's logits and penultimate features on the same images.

        Args:
            x: (N, C, H, W) images.
            max_elements: bound on the conv1 activation size per block of images.

        Returns:
            logits (R, N, K) and features (R, N, w4).
        """
        R = self.R
        w1 = self.spec.widths[0]
        per = R * w1 * self.spec.conv1_size**2
        n_block = max(1, max_elements // per)
        flat = []
        for s in range(0, x.shape[0], n_block):
            xb = x[s : s + n_block]
            n, S1 = xb.shape[0], self.spec.conv1_size
            # conv1 of every trial on the same images is one GEMM, (n·28·28, C·25) @
            # (C·25, R·w1), whose result is already the channels-last (n, R·w1, 28, 28)
            cols = F.unfold(xb, KERNEL).transpose(1, 2)  # (n, 784, C·25)
            a1 = torch.addmm(self.b1, cols.reshape(n * S1 * S1, -1), self.W1.view(R * w1, -1).T)
            a1 = a1.view(n, S1, S1, R * w1).permute(0, 3, 1, 2)  # CL-strided (n, R·w1, 28, 28)
            r1 = torch.relu(F.max_pool2d(a1, 2))
            a2 = F.conv2d(r1, self.W2, self.b2, groups=R)
            flat.append(torch.relu(F.max_pool2d(a2, 2)).contiguous().reshape(xb.shape[0], R, -1))
        # FC layers once for all images: each trial's weights are read once, not per block
        f = torch.cat(flat, 0).transpose(0, 1)  # (R, N, 400)
        h3 = torch.relu(torch.baddbmm(self.b3, f, self.W3.transpose(1, 2)))
        h4 = torch.relu(torch.baddbmm(self.b4, h3, self.W4.transpose(1, 2)))
        return torch.baddbmm(self.b5, h4, self.W5.transpose(1, 2)), h4


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
            CLI uses it to rebuild the data on resume).
        progress: called with the number of steps just done (per trial), every few steps.
        model: ``backend="func"``: a no-argument factory of one network.

    Returns:
        ``xarray.Dataset`` of the record (`lesde.store` lists its variables). With
        ``out``, it is `lesde.open_run` of the finished run.

    Raises:
        TrainingDiverged: a loss became non-finite; the data so far are kept and the
            run is marked diverged.
    """
    if model is None and cfg.backend == "func" and cfg.model is not None:
        from lesde.train.backends import resolve_model

        model = resolve_model(cfg.model)
    prep = _prepare(data, cfg, model)
    config = {"train": cfg.to_json(), "data": dict(data_config or {})}
    if out is None:
        if resume:
            raise ValueError("`resume` needs `out`")
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
        return ds
    from lesde.store import open_run

    writer.mark_complete(
        seconds_last_session=elapsed, finished=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    )
    return open_run(out)


class _Group:
    """A contiguous block of trials [lo, hi) with its own engine (run by one thread)."""

    def __init__(self, eng: EnsembleCNN, lo: int, hi: int) -> None:
        self.eng, self.lo, self.hi = eng, lo, hi


def _split(n_trials: int, n_groups: int) -> list[tuple[int, int]]:
    b = np.linspace(0, n_trials, n_groups + 1).round().astype(int)
    return [(int(lo), int(hi)) for lo, hi in zip(b[:-1], b[1:], strict=True) if hi > lo]


def _run_chunk(
    g: _Group,
    prep: _Prepared,
    cfg: TrainConfig,
    s0: int,
    s1: int,
    idx: torch.Tensor,
    progress: Callable[[int], None] | None,
) -> dict[str, Any]:
    """Steps s0+1 .. s1 of one group's trials, with the checkpoints and LE steps inside.

    Args:
        idx: (R_g, L, B) training indices of the group for these steps.

    Returns:
        {"logits": (L, R_g, B, K), "loss": (L, R_g, B), "ck": {step: eval},
        "le": {step: (before, after)}} (arrays on the CPU for the evaluations).
    """
    eng, Rg = g.eng, g.hi - g.lo
    B, K = cfg.batch_size, prep.n_classes
    L = s1 - s0
    ck = set(prep.ck_steps.tolist())
    le = set(cfg.le_steps)
    y_all = prep.y_train_t[idx]  # (R_g, L, B)
    logits_buf = torch.empty((L, Rg, B, K), dtype=prep.dtype, device=prep.device)
    loss_buf = torch.empty((L, Rg, B), dtype=prep.dtype, device=prep.device)
    out: dict[str, Any] = {"ck": {}, "le": {}}
    pending = 0
    for i in range(L):
        m = s0 + i + 1  # this update makes step m
        if m - 1 in ck:
            out["ck"][m - 1] = _evaluate(eng, prep)
        x = eng.batch(prep.x_train, idx[:, i])
        if m in le:
            before = eng.forward_shared(prep.x_probe)[0].cpu().numpy()
        z, loss = eng.step(x, y_all[:, i], cfg.lr)
        logits_buf[i] = z
        loss_buf[i] = loss
        if m in le:
            out["le"][m] = (before, eng.forward_shared(prep.x_probe)[0].cpu().numpy())
        pending += 1
        if progress is not None and pending >= 10:
            progress(pending)
            pending = 0
    if progress is not None and pending:
        progress(pending)
    if s1 == cfg.n_steps and s1 in ck:
        out["ck"][s1] = _evaluate(eng, prep)
    out["logits"] = logits_buf.cpu().numpy()
    out["loss"] = loss_buf.cpu().numpy()
    return out


def _loop(
    groups: list[_Group],
    prep: _Prepared,
    cfg: TrainConfig,
    sink: Any,
    writer: Any,
    start: int,
    progress: Callable[[int], None] | None,
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from lesde.estimate.direct import direct_local_elasticity

    R, S, cs, B = cfg.n_trials, cfg.n_steps, cfg.chunk_steps, cfg.batch_size
    K = prep.n_classes
    ck_index = {int(s): i for i, s in enumerate(prep.ck_steps)}
    le_index = {m: j for j, m in enumerate(cfg.le_steps)}
    batch_dim = () if B == 1 else (slice(None),)
    all_ = slice(None)

    # progress is reported by the first group only (all groups advance together)
    def prog(i: int) -> Callable[[int], None] | None:
        return progress if i == 0 else None

    pool = ThreadPoolExecutor(len(groups)) if len(groups) > 1 else None
    try:
        for s0 in range(start - start % cs, S, cs):
            chunk = s0 // cs
            s1 = min(s0 + cs, S)
            L = s1 - s0
            idx_np = np.stack([draw_samples(cfg, prep.y_train, K, r, chunk) for r in range(R)])
            idx_np = idx_np[:, :L]  # (R, L, B)
            idx = torch.as_tensor(idx_np, device=prep.device)
            jobs = [(g, prep, cfg, s0, s1, idx[g.lo : g.hi], prog(i)) for i, g in enumerate(groups)]
            if pool is None:
                parts = [_run_chunk(*jobs[0])]
            else:
                parts = list(pool.map(lambda a: _run_chunk(*a), jobs))
            # checkpoints: concatenate the groups' trials
            for step in sorted(parts[0]["ck"]):
                c = ck_index[step]
                reg = (all_, slice(c, c + 1))
                for name in ("probe_logits", "val_loss", "val_acc", "probe_features"):
                    if name == "probe_features" and not cfg.record_features:
                        continue
                    v = np.concatenate([p["ck"][step][name] for p in parts], axis=0)
                    sink.write(name, reg, v[:, None])
            lg = np.concatenate([p["logits"] for p in parts], axis=1).transpose(1, 0, 2, 3)
            ls = np.concatenate([p["loss"] for p in parts], axis=1).transpose(1, 0, 2)
            for m in sorted(parts[0]["le"]):
                j = le_index[m]
                before = np.concatenate([p["le"][m][0] for p in parts], axis=0)
                after = np.concatenate([p["le"][m][1] for p in parts], axis=0)
                lab = prep.y_train[idx_np[:, m - s0 - 1, 0]]
                res = direct_local_elasticity(
                    before, after, prep.probes.label, lg[:, m - s0 - 1, 0], lab,
                    n_classes=K, H=cfg.le_model,
                )  # fmt: skip
                reg = (all_, slice(j, j + 1))
                sink.write("le_probe_before", reg, before[:, None])
                sink.write("le_probe_after", reg, after[:, None])
                sink.write("le_E", reg, res.E[:, None])
                sink.write("le_alpha", reg, res.alpha[:, None])
                sink.write("le_beta", reg, res.beta[:, None])
                sink.write("le_class", reg, lab[:, None].astype(np.int16))
            # (R, L, B, K) -> (R, L[, B], K)
            bad = ~np.isfinite(ls)
            if B == 1:
                lg, ls = lg[:, :, 0], ls[:, :, 0]
            idx_w = idx_np if B > 1 else idx_np[..., 0]
            n_ok = L
            if bad.any():
                n_ok = int(np.argwhere(bad.any(axis=(0, 2)))[0, 0]) + 1  # keep the bad step
            reg = (all_, slice(s0, s0 + n_ok), *batch_dim)
            sink.write("sample_logits", reg, lg[:, :n_ok])
            sink.write("sample_loss", reg, ls[:, :n_ok])
            sink.write("sample_index", reg, idx_w[:, :n_ok].astype(np.int32))
            sink.write("sample_label", reg, prep.y_train[idx_w[:, :n_ok]].astype(np.int16))
            sink.write("sample_clean_label", reg, prep.y_clean[idx_w[:, :n_ok]].astype(np.int16))
            if bad.any():
                trial = int(np.argwhere(bad.any(axis=2)[:, n_ok - 1])[0, 0])
                step = s0 + n_ok
                msg = (
                    f"non-finite loss at step {step} in trial {trial} "
                    f"(lr={cfg.lr}); data up to that step are kept"
                )
                if writer is not None:
                    writer.mark_diverged(step=step, trial=trial, message=msg, steps_done=step)
                raise TrainingDiverged(msg)
            if writer is not None:
                state = [g.eng.state() for g in groups]
                writer.save_state({n: torch.cat([st[n] for st in state]) for n in state[0]}, s1)
    finally:
        if pool is not None:
            pool.shutdown()


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

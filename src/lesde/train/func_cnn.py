"""The "func" backend on the compiled CNN step: models that compute what the kernel does.

A model given to the "func" backend (`lesde.train.backends.FuncEnsemble`) is trained by
the compiled C step of the "cnn" backend (`lesde.train.kernel_src`, ~5x the traced torch
graph on the paper's CNN, ``bench/results/train.md``) when it is, as a function, a
member of the kernel's family:

    conv(C→w1, 5×5) → ReLU → max-pool 2 → conv(w1→w2, 5×5) → ReLU → max-pool 2
    → flatten → fc(→w3) → ReLU → fc(→w4) → ReLU → fc(→K)

on square C×S×S inputs, any widths, channels, classes and side (`CNNSpec`). Nothing is
read from the model's code: its parameters (no buffers) must have that family's shapes
in that order, and then the model and the kernel must agree on check inputs, the way
the traced graph's rewrites are accepted (`lesde.train.func_graph`):

- 3 trials from random parameters, a step and then 3 steps at B = 1 and at B = 2 on
  random images: logits, losses and every parameter after the steps, against the plain
  ``vmap`` step of the model itself (``FuncEnsemble(compile=False)``);
- the evaluation forward on the same images: logits, and the features of the
  ``feature_module`` against the kernel's penultimate features (the ReLU after the
  second fc layer); where those differ, evaluations run the model's own forward.

Tolerances as the "cnn" backend's own kernel check: 1e-10 relative in float64 (the same
sums in other orders: ~1e-15 observed), 1e-4 in float32 (~1e-6 after a few steps). A
model that differs (another activation, average pooling, a residual connection, a
buffer, momentum or weight decay, a device other than the CPU) keeps the traced graph,
without a warning: that is the ordinary path, `FuncEnsemble.passes` says which was
taken. ``FuncEnsemble(cnn_kernel=False)`` keeps the traced graph regardless.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from lesde.train.nets import PARAM_NAMES, CNNSpec

__all__ = ["KernelRoute", "kernel_route", "spec_of"]

_LOCK = threading.Lock()
# (model factory, sample shape, dtype, feature module) -> the route, or None; per process
_ROUTES: dict[tuple, KernelRoute | None] = {}


@dataclass(frozen=True)
class KernelRoute:
    """How a model runs on the compiled CNN step.

    Attributes:
        spec: the kernel's network shape.
        kernel: the checked compiled step (`lesde.train.engine_fast.Kernel`).
        features: whether the feature module's output equals the kernel's penultimate
            features (False: evaluations use the model's own forward).
    """

    spec: CNNSpec
    kernel: object
    features: bool


def spec_of(shapes: list[tuple[int, ...]], sample_shape: tuple[int, ...]) -> CNNSpec | None:
    """The `CNNSpec` whose parameter shapes, in `PARAM_NAMES` order, are ``shapes`` on
    inputs of ``sample_shape`` (C, S, S); None when there is none."""
    if len(shapes) != len(PARAM_NAMES) or len(sample_shape) != 3:
        return None
    C, S, S2 = sample_shape
    w1, w2, w3, w4, K = shapes[0][0], shapes[2][0], shapes[4][0], shapes[6][0], shapes[8][0]
    if S != S2 or S < 16 or K < 2 or len(shapes[0]) != 4:
        return None
    try:
        spec = CNNSpec(in_channels=C, n_classes=K, widths=(w1, w2, w3, w4), image_size=S)
    except ValueError:
        return None
    want = spec.param_shapes()
    if any(tuple(s) != want[n] for s, n in zip(shapes, PARAM_NAMES, strict=True)):
        return None
    return spec


def kernel_route(
    make_net: Callable[[], nn.Module],
    net: nn.Module,
    sample_shape: tuple[int, ...],
    dtype: torch.dtype,
    feature_module: str | None,
    reference: Callable[[list[dict[str, torch.Tensor]]], object],
) -> KernelRoute | None:
    """The compiled-step route of the model ``make_net`` builds (``net``: one instance)
    on inputs of ``sample_shape``, checked once per process; None: keep the traced graph.

    Args:
        reference: builds the model's plain ``vmap`` engine (``FuncEnsemble(...,
            compile=False)``) from per-trial state dicts: what the kernel is checked against.
    """
    key = (make_net, tuple(sample_shape), dtype, feature_module)
    with _LOCK:
        if key in _ROUTES:
            return _ROUTES[key]
        _ROUTES[key] = _build(net, tuple(sample_shape), dtype, feature_module, reference)
        return _ROUTES[key]


def _build(net, sample_shape, dtype, feature_module, reference) -> KernelRoute | None:
    from lesde.train.engine_cnn import _kernel_for, compare_engines, kernel_tolerance

    if list(net.buffers()) or dtype not in (torch.float32, torch.float64):
        return None
    spec = spec_of([tuple(p.shape) for p in net.parameters()], sample_shape)
    if spec is None:
        return None
    kernel = _kernel_for(spec, dtype)
    if kernel is None:
        return None
    names = [n for n, _ in net.named_parameters()]
    try:
        err, feature_err = compare_engines(spec, dtype, kernel, reference, names)
    except (RuntimeError, ValueError, TypeError):  # the model cannot run the check inputs
        return None
    tol = kernel_tolerance(dtype)  # as the "cnn" backend's check of its own kernel
    features = feature_module is not None and feature_err <= tol
    return KernelRoute(spec, kernel, features) if err <= tol else None

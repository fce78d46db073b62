"""Training backends: what advances a block of trials, one SGD step each on its own samples.

The loop of `lesde.train.ensemble` (chunks, thread blocks, recording, resume,
divergence) drives any object with this protocol:

- ``R``: the number of trials in the block;
- ``batch(x_train, idx)``: the step input from the training tensor and the block's
  sample indices ``idx`` (R, B);
- ``step(x, y, lr)``: one SGD update of every trial; returns the logits (R, B, K) before
  the update and the per-sample losses (R, B);
- ``forward_shared(x)``: every trial's logits (R, N, K) and features (R, N, F) on the
  same samples (F = 0 when none are recorded);
- ``state()`` / ``load_state(stacked)``: {name: (R, ...)} tensors, all a resumed run
  needs to continue bitwise.

Two backends: ``"cnn"``, the hand-written engine of the paper's CNN
(`lesde.train.ensemble.EnsembleCNN`), and ``"func"`` (`FuncEnsemble`), any
``nn.Module`` vectorised over trials with ``torch.func`` (``functional_call``, ``vmap``,
``grad``); its step is traced once into an aten graph and optimised
(`lesde.train.func_graph`).
"""

from __future__ import annotations

import importlib
import importlib.util
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lesde.train.config import step_by_step
from lesde.train.nets import PARAM_NAMES

__all__ = ["FuncEnsemble", "func_initial_params", "resolve_model", "check_model"]

_MOMENTUM = "__momentum__."  # state-dict prefix of the momentum buffers
_TRACE_LOCK = threading.Lock()  # one trace at a time (a block compiled on its first step)
# compiled steps shared by engines of the same model factory and shapes: the graph holds
# no parameter values, so the blocks of a run, and the runs of one process (a sweep),
# trace once (~1-2 s for the paper's CNN); least recently used beyond _CACHE_SIZE
_GRAPH_CACHE: OrderedDict[tuple, object] = OrderedDict()
_CACHE_SIZE = 32


def resolve_model(spec: str) -> Callable[[], nn.Module]:
    """The model factory named by ``"package.module:function"`` or ``"file.py:function"``.

    Raises:
        ValueError: the string has no ``:function`` part.
        ImportError: the module or file cannot be imported, or has no such function.
    """
    if not isinstance(spec, str) or ":" not in spec:
        raise ValueError(f"--model must be 'package.module:function' or 'file.py:function', "
                         f"got {spec!r}")  # fmt: skip
    where, name = spec.rsplit(":", 1)
    if where.endswith(".py"):
        path = Path(where)
        if not path.is_file():
            raise ImportError(f"--model {spec}: no such file {path}")
        mod_spec = importlib.util.spec_from_file_location(f"lesde_user_model_{path.stem}", path)
        module = importlib.util.module_from_spec(mod_spec)
        try:
            mod_spec.loader.exec_module(module)
        except Exception as err:  # noqa: BLE001 - the user's code: report, whatever it raised
            raise ImportError(f"--model {spec}: importing {path} failed: {err}") from err
    else:
        try:
            module = importlib.import_module(where)
        except ImportError as err:
            raise ImportError(f"--model {spec}: cannot import {where!r} ({err})") from err
    fn = getattr(module, name, None)
    if not callable(fn):
        raise ImportError(f"--model {spec}: {where} has no function {name!r}")
    return fn


def check_model(net: nn.Module, *, n_classes: int, sample: torch.Tensor) -> None:
    """Refuse what batch-1 SGD over trials cannot honour, naming the module.

    BatchNorm has no batch statistics at batch size 1 and keeps running statistics as
    hidden state; dropout draws outside the run's seeds. Both are refused (use GroupNorm
    / LayerNorm, and p = 0). The output must be (B, K) logits with K = the data's classes.
    """
    for name, m in net.named_modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            raise ValueError(
                f"`model`: module {name!r} ({type(m).__name__}) is not supported by the func "
                "backend: batch-1 SGD has no batch statistics; use GroupNorm or LayerNorm"
            )
        if isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0:
            raise ValueError(
                f"`model`: module {name!r} ({type(m).__name__}, p={m.p}) is not supported: "
                "dropout draws outside the run's seeds; set p=0"
            )
    with torch.no_grad():
        out = net(sample)
    if not isinstance(out, torch.Tensor) or out.shape != (sample.shape[0], n_classes):
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(
            f"`model`: the output must be (B, K) logits with K = {n_classes} classes of the "
            f"data, got {shape} for a batch of {sample.shape[0]}"
        )


def func_initial_params(
    make_net: Callable[[], nn.Module], seed_state: np.ndarray, dtype: torch.dtype
) -> dict[str, torch.Tensor]:
    """One trial's initial parameters and buffers: ``make_net()`` under its own seed.

    The global torch RNG is forked, seeded from ``seed_state`` (the trial's SeedSequence
    words) and restored, so the user's initialisation code runs unchanged and nothing
    else is disturbed.
    """
    seed = int(seed_state[0]) << 31 | int(seed_state[1]) >> 1
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = make_net()
    if not isinstance(net, nn.Module):
        raise TypeError(f"`model` must return an nn.Module, got {type(net).__name__}")
    return {k: v.detach().to(dtype).clone() for k, v in net.state_dict().items()}


class FuncEnsemble:
    """R copies of any ``nn.Module`` trained by SGD in lockstep with ``torch.func``.

    Semantics are those of ``torch.optim.SGD(lr, momentum, weight_decay)`` applied to each
    trial's mean cross-entropy over its B samples (dampening 0, no Nesterov).

    Args:
        make_net: builds one network (the template; its own weights are not used).
        params: one ``state_dict`` per trial (`func_initial_params`).
        device, dtype: where and how the stacked parameters live.
        momentum, weight_decay: SGD options (0 = plain SGD as in the paper).
        feature_module: name of a submodule whose output is recorded as the features.
        batch_shape: ``(B, *sample shape)`` of the steps to come: the step is compiled
            now (`lesde.train.func_graph`); otherwise on the first step of each shape.
        compile: False keeps the plain ``vmap`` step (the reference the compiled one is
            tested against).
        cnn_kernel: False keeps the traced graph for a model that the compiled CNN step
            computes (`lesde.train.func_cnn`; by default such a model runs on it).
    """

    def __init__(
        self,
        make_net: Callable[[], nn.Module],
        params: list[dict[str, torch.Tensor]],
        *,
        device: torch.device,
        dtype: torch.dtype,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        feature_module: str | None = None,
        batch_shape: tuple[int, ...] | None = None,
        compile: bool = True,
        cnn_kernel: bool = True,
    ) -> None:
        from torch.func import functional_call, grad, vmap

        self.R = len(params)
        self.device, self.dtype = device, dtype
        self.base = make_net().to(device=device, dtype=dtype)
        self.param_names = [n for n, _ in self.base.named_parameters()]
        self.buffer_names = [n for n, _ in self.base.named_buffers()]
        self.momentum, self.weight_decay = float(momentum), float(weight_decay)
        self.feature_module = feature_module
        if feature_module is not None:
            try:
                self.base.get_submodule(feature_module)
            except AttributeError as err:
                raise ValueError(
                    f"`feature_module`: the model has no submodule {feature_module!r}"
                ) from err
        self.buf: dict[str, torch.Tensor] | None = None
        # the compiled CNN step when the model is one of its family (`_route`)
        self.cnn_kernel = bool(cnn_kernel)
        self._cnn = None
        self._route_for: tuple[int, ...] | None = None
        stacked = {k: torch.stack([p[k] for p in params]) for k in params[0]}
        self.load_state(stacked)

        def loss_fn(p, b, x, y):
            logits = functional_call(self.base, (p, b), (x,))
            each = F.cross_entropy(logits, y, reduction="none")
            return each.mean(), (logits, each)

        self._grad = vmap(grad(loss_fn, has_aux=True))
        self._make_net = make_net
        self.compile = bool(compile)
        self._compiled: dict[tuple, object] = {}  # (x shape, y shape) -> CompiledStep | None
        if batch_shape is not None:
            self._route(tuple(batch_shape[1:]))
        if self.compile and batch_shape is not None and self._cnn is None:
            B = int(batch_shape[0])
            x = torch.zeros((self.R, *batch_shape), device=device, dtype=dtype)
            y = torch.zeros((self.R, B), device=device, dtype=torch.long)
            self._compiled_for(x, y)

    def _flat_grad(self, *args):
        """``_grad`` with flat arguments (params, buffers, x, y) and outputs, for tracing."""
        P, Q = len(self.param_names), len(self.buffer_names)
        p = dict(zip(self.param_names, args[:P], strict=True))
        b = dict(zip(self.buffer_names, args[P : P + Q], strict=True))
        g, (logits, each) = self._grad(p, b, args[-2], args[-1])
        return [g[n] for n in self.param_names] + [logits, each]

    def _cached(self, key: tuple, extra: tuple, build: Callable[[], object]):
        """``self._compiled[key]``, built once per process for this model factory, device
        and tensor layout (`_GRAPH_CACHE`), ``extra`` naming what else the graph depends on."""
        if key not in self._compiled:
            tensors = {**self.p, **self.b}
            layout = tuple((n, tuple(v.shape), v.dtype) for n, v in tensors.items())
            shared = (self._make_net, key, str(self.device), extra, layout)
            with _TRACE_LOCK:
                if shared not in _GRAPH_CACHE:
                    _GRAPH_CACHE[shared] = build()
                    while len(_GRAPH_CACHE) > _CACHE_SIZE:
                        _GRAPH_CACHE.popitem(last=False)
                _GRAPH_CACHE.move_to_end(shared)
                self._compiled[key] = _GRAPH_CACHE[shared]
        return self._compiled[key]

    def _compiled_for(self, x: torch.Tensor, y: torch.Tensor):
        """The compiled step for these shapes (compiled on first use; None: use vmap)."""
        from lesde.train.func_graph import compile_step

        fuse = not (self.momentum or self.weight_decay)
        return self._cached(
            (tuple(x.shape), x.dtype, tuple(y.shape)), (fuse,),
            lambda: compile_step(self._flat_grad, [self.p[n] for n in self.param_names],
                                 [self.b[n] for n in self.buffer_names], x, y, fuse=fuse),
        )  # fmt: skip

    def _route(self, sample_shape: tuple[int, ...]) -> None:
        """Move the trials onto the compiled CNN step when the model computes what it
        does on inputs of ``sample_shape`` (`lesde.train.func_cnn`); decided once."""
        if self._route_for is not None:
            if self._cnn is not None and sample_shape != self._route_for:
                raise ValueError(f"inputs of shape {sample_shape} after {self._route_for}: "
                                 "the compiled CNN step takes one image size")  # fmt: skip
            return
        self._route_for = sample_shape
        plain = not (self.momentum or self.weight_decay)
        if not (self.compile and self.cnn_kernel and plain and self.device.type == "cpu"):
            return
        from lesde.train.engine_cnn import EnsembleCNN
        from lesde.train.func_cnn import kernel_route

        def reference(params):
            return FuncEnsemble(self._make_net, params, device=self.device, dtype=self.dtype,
                                feature_module=self.feature_module, compile=False)  # fmt: skip

        route = kernel_route(self._make_net, self.base, sample_shape, self.dtype,
                             self.feature_module, reference)  # fmt: skip
        if route is None:
            return
        self._kernel_route = route
        per = [{m: self.p[n][r] for n, m in zip(self.param_names, PARAM_NAMES, strict=True)}
               for r in range(self.R)]  # fmt: skip
        self._cnn = EnsembleCNN(route.spec, per, device=self.device, dtype=self.dtype,
                                kernel=route.kernel)  # fmt: skip
        self._views()

    def _views(self) -> None:
        """``self.p`` as views of the compiled engine's parameters (updated in place)."""
        st = self._cnn.state()
        self.p = {n: st[m] for n, m in zip(self.param_names, PARAM_NAMES, strict=True)}

    @property
    def passes(self) -> tuple[str, ...]:
        """The optimisations of the compiled step(s) (empty: the plain vmap step;
        ``("cnn-kernel",)``: the compiled CNN step, `lesde.train.func_cnn`)."""
        from lesde.train.func_graph import CompiledStep

        if self._cnn is not None:
            return ("cnn-kernel",)
        done = [c.passes for c in self._compiled.values() if isinstance(c, CompiledStep)]
        return done[0] if done else ()

    # ------------------------------------------------------------------ state
    def load_state(self, stacked: dict[str, torch.Tensor]) -> None:
        kw = {"device": self.device, "dtype": self.dtype}
        if self._cnn is not None:
            self._cnn.load_state({m: stacked[n] for n, m in
                                  zip(self.param_names, PARAM_NAMES, strict=True)})  # fmt: skip
            self._views()
            return
        self.p = {n: stacked[n].to(**kw).contiguous() for n in self.param_names}
        self.b = {n: stacked[n].to(device=self.device).contiguous() for n in self.buffer_names}
        mom = {n[len(_MOMENTUM) :]: v for n, v in stacked.items() if n.startswith(_MOMENTUM)}
        self.buf = {n: v.to(**kw).contiguous() for n, v in mom.items()} if mom else None

    def state(self) -> dict[str, torch.Tensor]:
        out = {**self.p, **self.b}
        if self.buf is not None:
            out.update({_MOMENTUM + n: v for n, v in self.buf.items()})
        return out

    # ------------------------------------------------------------------ steps
    def batch(self, x_train: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """(R, B, *sample shape) inputs of the block's trials."""
        return x_train[idx]

    def step(self, x: torch.Tensor, y: torch.Tensor, lr: float):
        """One SGD step of every trial on its own samples.

        Args:
            x: (R, B, ...) inputs. y: (R, B) labels. lr: step size.

        Returns:
            logits (R, B, K) before the update and per-sample losses (R, B).
        """
        self._route(tuple(x.shape[2:]))
        if self._cnn is not None:
            return self._cnn.step_trials(x, y, lr)
        cs = self._compiled_for(x, y) if self.compile else None
        params = [self.p[n] for n in self.param_names]
        buffers = [self.b[n] for n in self.buffer_names]
        if cs is not None and not (self.momentum or self.weight_decay):
            logits, each = cs.step(params, buffers, x, y, lr)
            return logits.detach(), each.detach()
        if cs is not None:
            grads, logits, each = cs.gradients(params, buffers, x, y)
            g = dict(zip(self.param_names, grads, strict=True))
        else:
            g, (logits, each) = self._grad(self.p, self.b, x, y)
        with torch.no_grad():
            if self.momentum and self.buf is None:
                self.buf = {}
            for n in self.param_names:
                d = g[n]
                if self.weight_decay:
                    d = d.add(self.p[n], alpha=self.weight_decay)
                if self.momentum:
                    if n not in self.buf:  # torch.optim.SGD: the first buffer is the gradient
                        self.buf[n] = d.clone()
                    else:
                        self.buf[n].mul_(self.momentum).add_(d)
                    d = self.buf[n]
                self.p[n].sub_(d, alpha=lr)
        return logits.detach(), each.detach()

    def run_steps(
        self, x_train: torch.Tensor, idx: torch.Tensor, y: torch.Tensor, lr: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """L SGD steps of every trial on samples ``idx`` (R, L, B) with labels ``y``:
        logits (L, R, B, K) and losses (L, R, B); one kernel call on the compiled CNN step."""
        self._route(tuple(x_train.shape[1:]))
        if self._cnn is not None:
            return self._cnn.run_steps(x_train, idx, y, lr)
        return step_by_step(self, x_train, idx, y, lr)

    def _one_forward(self, *args):
        """One trial's (logits, features) from flat (params, buffers, x); features (N, 0)
        without a feature module."""
        from torch.func import functional_call

        P, Q = len(self.param_names), len(self.buffer_names)
        p = dict(zip(self.param_names, args[:P], strict=True))
        b = dict(zip(self.buffer_names, args[P : P + Q], strict=True))
        x = args[-1]
        feats: list[torch.Tensor] = []
        hook = None
        if self.feature_module is not None:
            sub = self.base.get_submodule(self.feature_module)
            hook = sub.register_forward_hook(lambda _m, _i, out: feats.append(out.flatten(1)))
        try:
            logits = functional_call(self.base, (p, b), (x,))
        finally:
            if hook is not None:
                hook.remove()
        return [logits, feats[0] if feats else logits.new_zeros((x.shape[0], 0))]

    def _forward_for(self, x: torch.Tensor):
        """The compiled one-trial forward on inputs of ``x``'s shape (None: eager)."""
        from lesde.train.func_graph import compile_forward

        first = [self.p[n][0] for n in self.param_names] + [self.b[n][0] for n in self.buffer_names]
        return self._cached(
            ("forward", tuple(x.shape), x.dtype),
            (self.feature_module,),
            lambda: compile_forward(self._one_forward, first, x),
        )

    @torch.no_grad()
    def forward_shared(self, x: torch.Tensor):
        """Logits (R, N, K) and features (R, N, F; F = 0 without a feature module).

        One forward per trial: on shared inputs a loop over trials is ~2.4× faster than
        ``vmap`` (measured: 1.1 s vs 2.6 s for 50 paper CNNs on 396 images), and the
        feature hook sees plain tensors. The one-trial forward is compiled as the step
        (channels-last on float32 CPU: 0.58 s instead of 0.76 s for 50 paper CNNs on
        348 images, measured).
        """
        self._route(tuple(x.shape[1:]))
        if self._cnn is not None and (self.feature_module is None or self._kernel_route.features):
            z, h4 = self._cnn.forward_shared(x)
            return z, (h4 if self.feature_module is not None else z.new_zeros((*z.shape[:2], 0)))
        fwd = self._forward_for(x) if self.compile else None
        run = fwd if fwd is not None else self._one_forward
        names = [*self.param_names, *self.buffer_names]
        tensors = {**self.p, **self.b}
        outs = [run(*[tensors[n][r] for n in names], x) for r in range(self.R)]
        return torch.stack([o[0] for o in outs]), torch.stack([o[1] for o in outs])

"""The "func" backend's SGD step traced once into an aten graph, then made fast.

``vmap(grad(loss))`` over R trials of any ``nn.Module`` is traced with ``make_fx`` into a
graph of plain aten operations (the vmapped ops already batched over the trials: a
convolution with ``groups=R``, a ``bmm`` for a linear layer). Running that graph skips
the functorch machinery at every step, and three rewrites recover what the hand-written
"cnn" engine gets from knowing its network:

1. **channels-last convolutions** (float32 on CPU, where oneDNN runs them ~2× faster
   in that layout): every 4-D convolution and its backward get their activations and
   weights in channels-last, with size-1 dimensions given canonical strides (a tensor
   that is channels-last by `is_contiguous` but whose batch stride is not would send
   the kernels down their slow generic-stride path: 25× slower max-pool, measured);
2. **max-pool over planes**: a vmapped pool sees (R, C, H, W) whose memory is that of
   the grouped convolution's (1, R·C, H, W); pooling is per plane, so it runs on that
   (1, R·C, H, W) view (indices are per plane, identical) instead of copying;
3. **fused SGD update** (plain SGD only): a weight whose gradient is a ``bmm`` of two
   factors (a linear layer's outer product) is updated in place from the factors
   (``addcmul_`` / ``baddbmm_``), never writing the (R, out, in) gradient (for the
   paper's fc1 at 50 trials: 9.6 MB written and read again per step).

4. **ops that release the GIL**: an aten op called through ``torch.ops`` holds the GIL
   for its whole kernel (measured: two threads of ``torch.ops.aten.bmm`` run no faster
   than one, ``torch.bmm`` 1.5-2× faster), which would serialise the loop's thread
   blocks; every op is called through its public binding (``torch.bmm``,
   ``torch.convolution``, ...), and two backward ops that have none are written with
   public ones (ReLU backward: ``where``; non-overlapping max-pool backward:
   ``max_unpool2d``). The convolution backward stays an aten call: rewritten with
   ``conv_transpose2d`` and ``unfold`` + ``bmm`` it released the GIL but made a
   two-thread step 2.2× slower (7,188 vs 15,549 trial-steps/s, paper CNN, measured).

``view`` ops become ``reshape`` when layouts change (a channels-last tensor cannot
always be viewed). The rewritten graph is checked once against the traced one on random
inputs; if they disagree (or tracing fails), the step falls back, with a warning, to the
traced graph or to ``vmap`` itself, so a model this file does not foresee still trains
correctly, only slower.

Why a traced graph is safe here: ``vmap`` already refuses data-dependent control flow
and unseeded randomness, so the ops of one step do not depend on the values; the graph
is specialised to the block's shapes (R, B, sample shape), which are fixed for a run.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

__all__ = ["CompiledStep", "compile_forward", "compile_step"]

aten = torch.ops.aten
_CL = torch.channels_last
# ops that only re-index their first argument (the chain between a bmm and a gradient)
_VIEWS = {
    aten.view.default,
    aten.reshape.default,
    aten._unsafe_view.default,
    aten.transpose.int,
    aten.permute.default,
    aten.t.default,
}


def _cl(t: torch.Tensor) -> torch.Tensor:
    """``t`` in channels-last with canonical strides (a view when it already is)."""
    if t.dim() != 4:
        return t
    _, C, H, W = t.shape
    if t.is_contiguous(memory_format=_CL):
        canon = (H * W * C, 1, W * C, C)
        return t if t.stride() == canon else t.as_strided(t.shape, canon)
    return t.contiguous(memory_format=_CL)


def _planes_view(x: torch.Tensor) -> bool:
    """Whether (N, C, H, W) ``x`` is (1, N·C, H, W) without a copy."""
    return x.shape[0] == 1 or x.stride(0) == x.shape[1] * x.stride(1)


def _pool_planes(x, kernel, stride, padding, dilation, ceil_mode, cl):
    """max_pool2d_with_indices of (N, C, H, W) run on its (1, N·C, H, W) planes."""
    N, C, H, W = x.shape
    if not _planes_view(x):  # folding would copy: pool as it is
        return aten.max_pool2d_with_indices(_cl(x) if cl else x, kernel, stride, padding,
                                            dilation, ceil_mode)  # fmt: skip
    xs = x.reshape(1, N * C, H, W)
    o, i = aten.max_pool2d_with_indices(_cl(xs) if cl else xs, kernel, stride, padding,
                                        dilation, ceil_mode)  # fmt: skip
    return o.reshape(N, C, *o.shape[2:]), i.reshape(N, C, *i.shape[2:])


def _pool_planes_backward(g, x, kernel, stride, padding, dilation, ceil_mode, ind, cl):
    """max_pool2d_with_indices_backward on the (1, N·C, ...) planes (see `_pool_planes`)."""
    N, C, H, W = x.shape
    f = _cl if cl else (lambda t: t)
    if not _planes_view(x):
        return aten.max_pool2d_with_indices_backward(f(g), f(x), kernel, stride, padding,
                                                     dilation, ceil_mode, f(ind))  # fmt: skip
    out = aten.max_pool2d_with_indices_backward(
        f(g.reshape(1, N * C, *g.shape[2:])), f(x.reshape(1, N * C, H, W)), kernel, stride,
        padding, dilation, ceil_mode, f(ind.reshape(1, N * C, *ind.shape[2:])),
    )  # fmt: skip
    return out.reshape(N, C, H, W)


def _pool_args(args: Sequence, backward: bool) -> tuple:
    """Normalised (kernel, stride, padding, dilation, ceil_mode) of a traced pool node."""
    a = list(args)[2:] if backward else list(args)[1:]
    kernel = list(a[0])
    stride = list(a[1]) if len(a) > 1 and a[1] else kernel
    padding = list(a[2]) if len(a) > 2 else [0, 0]
    dilation = list(a[3]) if len(a) > 3 else [1, 1]
    ceil_mode = bool(a[4]) if len(a) > 4 else False
    return kernel, stride, padding, dilation, ceil_mode


def _threshold_backward(g, out, threshold):
    return torch.where(torch.gt(out, threshold), g, 0.0)


def _pool_backward_unpool(g, x, kernel, stride, padding, dilation, ceil_mode, ind, cl):
    """Max-pool backward of non-overlapping windows: each input receives at most one
    gradient, at its window's argmax (``max_unpool2d``)."""
    del kernel, stride, padding, dilation, ceil_mode, cl
    return torch._C._nn.max_unpool2d(g, ind, list(x.shape[-2:]))


def _public(op) -> Callable | None:
    """The public binding of an aten op (releases the GIL), or None."""
    name = op._schema.name.split("::")[-1]
    for where in (torch._C._VariableFunctions, torch._C._nn):
        fn = getattr(where, name, None)
        if fn is not None:
            return fn
    return None


def _gil_free_pass(gm: torch.fx.GraphModule) -> torch.fx.GraphModule:
    """Rewrite 4: every op through a binding that releases the GIL where one exists."""
    g = copy.deepcopy(gm)
    for n in g.graph.nodes:
        if n.op != "call_function":
            continue
        t = n.target
        if t is aten.threshold_backward.default:
            n.target = _threshold_backward
        elif t is _pool_planes_backward:
            kernel, stride, padding, dilation, ceil_mode = n.args[2:7]
            if list(kernel) == list(stride) and not any(padding) and \
                    all(d == 1 for d in dilation):  # fmt: skip
                n.target = _pool_backward_unpool
        elif isinstance(t, torch._ops.OpOverload):
            fn = _public(t)
            if fn is not None:
                n.target = fn
    g.recompile()
    return g


@dataclass
class _Fused:
    """Weight ``param`` updated as ``W.view(shape) -= lr · a @ b`` from outputs a, b."""

    param: int
    a: int
    b: int
    shape: tuple[int, ...]
    rank1: bool  # inner dimension 1: an outer product (addcmul_ beats a K = 1 matmul)


@dataclass
class CompiledStep:
    """One SGD step of a block of trials as a graph: what `compile_step` returns.

    ``graph(*params, *buffers, x, y)`` returns the outputs listed by ``grads`` (an
    output index per parameter, None for a fused one), ``fused`` and ``logits``/``loss``.
    """

    graph: Callable
    grads: list[int | None]
    fused: list[_Fused]
    logits: int
    loss: int
    passes: tuple[str, ...] = field(default=())

    def step(self, params: list[torch.Tensor], buffers: list[torch.Tensor], x, y, lr: float):
        """Update ``params`` in place by plain SGD; returns (logits, per-sample loss)."""
        out = self.graph(*params, *buffers, x, y)
        with torch.no_grad():
            idx = [i for i, o in enumerate(self.grads) if o is not None]
            if idx:
                torch._foreach_add_([params[i] for i in idx],
                                    [out[self.grads[i]] for i in idx], alpha=-lr)  # fmt: skip
            for f in self.fused:
                w = params[f.param].view(f.shape)
                if f.rank1:
                    w.addcmul_(out[f.a], out[f.b], value=-lr)
                else:
                    w.baddbmm_(out[f.a], out[f.b], alpha=-lr)
        return out[self.logits], out[self.loss]

    def gradients(self, params, buffers, x, y):
        """(gradients, logits, loss) for optimisers other than plain SGD (no fusion)."""
        out = self.graph(*params, *buffers, x, y)
        return [out[i] for i in self.grads], out[self.logits], out[self.loss]


def _trace(flat_fn: Callable, example: list[torch.Tensor]) -> torch.fx.GraphModule:
    from torch.fx.experimental.proxy_tensor import make_fx

    return make_fx(flat_fn)(*example)


def _layout_passes(gm: torch.fx.GraphModule, cl: bool) -> tuple[Callable, tuple[str, ...]]:
    """Rewrites 1 and 2 (channels-last convolutions, max-pool over planes), and their names."""
    g = copy.deepcopy(gm)
    graph = g.graph
    done: set[str] = set()
    for n in list(graph.nodes):
        if n.op != "call_function":
            continue
        if n.target is aten.view.default:
            n.target = aten.reshape.default
        elif n.target is aten.max_pool2d_with_indices.default:
            n.target = _pool_planes
            n.args = (n.args[0], *_pool_args(n.args, False), cl)
            n.kwargs = {}
            done.add("planes")
        elif n.target is aten.max_pool2d_with_indices_backward.default:
            k, s, p, d, c = _pool_args(n.args, True)
            n.target = _pool_planes_backward
            n.args = (n.args[0], n.args[1], k, s, p, d, c, n.args[7], cl)
            n.kwargs = {}
        elif cl and n.target in (aten.convolution.default, aten.convolution_backward.default):
            which = (0, 1) if n.target is aten.convolution.default else (0, 1, 2)
            args = list(n.args)
            with graph.inserting_before(n):
                for i in which:
                    if isinstance(args[i], torch.fx.Node):
                        args[i] = graph.call_function(_cl, (args[i],))
            n.args = tuple(args)
            done.add("channels-last")
    g.recompile()
    return g, tuple(sorted(done))


def _fuse_pass(gm, n_params: int, param_shapes, example) -> tuple:
    """Rewrite 3: gradient outputs that are a bmm re-indexed by an identity view chain."""
    g = copy.deepcopy(gm)
    graph = g.graph
    out_node = next(n for n in graph.nodes if n.op == "output")
    outs = list(out_node.args[0])
    env = _shapes(gm, example)
    fused: list[_Fused] = []
    for i in range(n_params):
        node, chain = outs[i], []
        while isinstance(node, torch.fx.Node) and node.target in _VIEWS:
            chain.append(node)
            node = node.args[0]
        if not (isinstance(node, torch.fx.Node) and node.target is aten.bmm.default):
            continue
        a, b = node.args
        shape = tuple(env[node.name])
        # the chain must map bmm's output onto the parameter element for element
        ix = torch.arange(int(torch.Size(shape).numel()), dtype=torch.float64).view(shape)
        t = ix
        for c in reversed(chain):
            t = c.target(t, *c.args[1:], **c.kwargs)
        if tuple(t.shape) != tuple(param_shapes[i]) or not torch.equal(t.reshape(-1),
                                                                      ix.reshape(-1)):  # fmt: skip
            continue
        rank1 = env[a.name][-1] == 1  # (R, n, 1) * (R, 1, m), broadcast by addcmul_
        outs.append(a)
        outs.append(b)
        fused.append(_Fused(i, len(outs) - 2, len(outs) - 1, shape, rank1))
        outs[i] = None
    out_node.args = (outs,)
    graph.eliminate_dead_code()
    g.recompile()
    return g, fused


def _shapes(gm, example) -> dict[str, tuple[int, ...]]:
    """Shape of every tensor node, from one run of the graph on ``example``."""
    shapes: dict[str, tuple[int, ...]] = {}

    class _Rec(torch.fx.Interpreter):
        def run_node(self, n):
            r = super().run_node(n)
            if isinstance(r, torch.Tensor):
                shapes[n.name] = tuple(r.shape)
            return r

    _Rec(gm).run(*example)
    return shapes


def _agree(ref: Sequence, new: Sequence, tol: float) -> bool:
    """Whether every tensor of ``new`` equals that of ``ref`` to ``tol`` of its largest."""
    for r, n in zip(ref, new, strict=True):
        if r is None or n is None:
            if (r is None) != (n is None):
                return False
            continue
        if r.numel() == 0 or n.numel() == 0:
            if r.shape != n.shape:
                return False
            continue
        scale = max(float(r.abs().max()), 1e-30)
        if r.shape != n.shape or float((r - n).abs().max()) > tol * scale:
            return False
    return True


def compile_step(
    flat_fn: Callable,
    params: list[torch.Tensor],
    buffers: list[torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    fuse: bool,
) -> CompiledStep | None:
    """Trace ``flat_fn(*params, *buffers, x, y) -> [*grads, logits, loss]`` and optimise it.

    Args:
        flat_fn: the vmapped gradient function with flat arguments and outputs.
        params, buffers: the block's stacked tensors (only their shapes and dtypes matter,
            but the trace runs the step once on them; nothing is modified).
        x, y: an example batch of the block's shapes.
        fuse: apply the fused SGD update (plain SGD only).

    Returns:
        the compiled step, or None when tracing fails (a warning says why; the caller
        then keeps ``vmap``).
    """
    P = len(params)
    example = [*params, *buffers, x, y]
    try:
        gm = _trace(flat_fn, example)
    except Exception as err:  # noqa: BLE001 - any failure: keep the vmap step
        warnings.warn(f"func backend: could not trace the step ({type(err).__name__}: {err}); "
                      "using vmap (correct, slower)", stacklevel=3)  # fmt: skip
        return None
    plain = CompiledStep(gm, list(range(P)), [], P, P + 1, ("traced",))
    # check inputs: random values of the example's shapes and dtypes (a fixed generator:
    # the global RNG is not touched)
    gen = torch.Generator(device=x.device).manual_seed(0)

    def rnd(t):
        if t.is_floating_point():
            return torch.randn(t.shape, generator=gen, dtype=t.dtype, device=t.device)
        return t.clone()

    check = [p.clone() for p in params] + [b.clone() for b in buffers] + [rnd(x), y.clone()]
    ref = gm(*check)
    tol = 1e-9 if x.dtype == torch.float64 else 1e-4  # rounding only: reordered sums
    cl = x.dtype == torch.float32 and x.device.type == "cpu"
    best = plain
    try:
        lay, names = _layout_passes(gm, cl)
        if names and _agree(ref, lay(*check), tol):
            best = CompiledStep(lay, list(range(P)), [], P, P + 1, ("traced", *names))
        if fuse:
            shapes = [tuple(p.shape) for p in params]
            fg, fused = _fuse_pass(best.graph, P, shapes, check)
            if fused:
                cand = CompiledStep(fg, [None if any(f.param == i for f in fused) else i
                                         for i in range(P)], fused, P, P + 1,
                                    (*best.passes, "fused-update"))  # fmt: skip
                if _fused_agrees(cand, best, check, P, tol):
                    best = cand
        free = _gil_free_pass(best.graph)
        if _agree(best.graph(*check), free(*check), tol):
            best = CompiledStep(free, best.grads, best.fused, best.logits, best.loss,
                                (*best.passes, "gil-free"))  # fmt: skip
    except Exception as err:  # noqa: BLE001 - a rewrite this file did not foresee
        warnings.warn(f"func backend: graph rewrite failed ({type(err).__name__}: {err}); "
                      "using the traced graph", stacklevel=3)  # fmt: skip
    return best


def compile_forward(
    flat_fn: Callable, tensors: list[torch.Tensor], x: torch.Tensor
) -> Callable | None:
    """One trial's forward ``flat_fn(*params, *buffers, x) -> [logits, features]`` traced
    and given rewrites 1, 2 and 4 (checked on random inputs as `compile_step`).

    Returns None when tracing fails (a warning says why; the caller runs it eagerly).
    """
    example = [*tensors, x]
    try:
        with torch.no_grad():
            gm = _trace(flat_fn, example)
    except Exception as err:  # noqa: BLE001 - any failure: keep the eager forward
        warnings.warn(f"func backend: could not trace the forward ({type(err).__name__}: "
                      f"{err}); running it eagerly (correct, slower)", stacklevel=3)  # fmt: skip
        return None
    gen = torch.Generator(device=x.device).manual_seed(1)
    check = [*tensors, torch.randn(x.shape, generator=gen, dtype=x.dtype, device=x.device)
             if x.is_floating_point() else x]  # fmt: skip
    tol = 1e-9 if x.dtype == torch.float64 else 1e-4  # rounding only: reordered sums
    try:
        with torch.no_grad():
            best, ref = gm, gm(*check)
            lay, names = _layout_passes(gm, x.dtype == torch.float32 and x.device.type == "cpu")
            if names and _agree(ref, lay(*check), tol):
                best = lay
            free = _gil_free_pass(best)
            if _agree(ref, free(*check), tol):
                best = free
            return best
    except Exception as err:  # noqa: BLE001 - a rewrite this file did not foresee
        warnings.warn(f"func backend: forward rewrite failed ({type(err).__name__}: {err}); "
                      "using the traced graph", stacklevel=3)  # fmt: skip
    return gm


def _fused_agrees(cand: CompiledStep, base: CompiledStep, check, P: int, tol: float) -> bool:
    """The fused graph's factors multiply to the base graph's gradients (and same logits)."""
    ref = base.graph(*check)
    out = cand.graph(*check)
    new = [out[i] if i is not None else None for i in cand.grads]
    for f in cand.fused:
        a, b = out[f.a], out[f.b]
        new[f.param] = (a * b if f.rank1 else torch.bmm(a, b)).reshape(check[f.param].shape)
    want = [ref[i] for i in base.grads] + [ref[base.logits], ref[base.loss]]
    return _agree(want, [*new, out[cand.logits], out[cand.loss]], tol)

"""The "func" backend's compiled step (`lesde.train.func_graph`) against plain vmap.

The float64 equalities with one-by-one training and with the "cnn" engine (in
test_train_func.py) already run through the compiled step; here: the float32 CPU path
with its channels-last rewrite, larger batches (the fused update as baddbmm), and the
safety net (a rewrite that changes the result is rejected; a trace that fails falls
back to vmap).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from lesde.train import CNN, CNNSpec, backends
from lesde.train import func_graph as fg
from lesde.train.backends import FuncEnsemble, func_initial_params

DEV = torch.device("cpu")


@pytest.fixture(autouse=True)
def _fresh_graphs():
    """Every test compiles its own steps (the cache would hand out earlier ones)."""
    backends._GRAPH_CACHE.clear()
    yield
    backends._GRAPH_CACHE.clear()


def make_cnn():
    return CNN(CNNSpec(1, 3))


def make_mlp():
    return nn.Sequential(nn.Linear(16, 32), nn.Tanh(), nn.Linear(32, 10))


def pair(make_net, R, dtype, **kw):
    init = [func_initial_params(make_net, np.array([7, r], dtype=np.uint32), dtype)
            for r in range(R)]  # fmt: skip
    # cnn_kernel=False: the paper's CNN would run on the compiled CNN step (func_cnn)
    fast = FuncEnsemble(make_net, init, device=DEV, dtype=dtype, cnn_kernel=False, **kw)
    ref = FuncEnsemble(make_net, init, device=DEV, dtype=dtype, compile=False, **kw)
    return fast, ref


def inputs(make_net, R, B, steps, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    shape, K = ((1, 32, 32), 3) if make_net is make_cnn else ((16,), 10)
    xs = torch.randn((steps, R, B, *shape), generator=g, dtype=dtype)
    ys = torch.randint(0, K, (steps, R, B), generator=g)
    return xs, ys


@pytest.mark.parametrize(("make_net", "B"), [(make_cnn, 1), (make_cnn, 3), (make_mlp, 1),
                                             (make_mlp, 4)])  # fmt: skip
def test_float32_compiled_step_follows_vmap(make_net, B):
    R, steps = 5, 25
    fast, ref = pair(make_net, R, torch.float32)
    xs, ys = inputs(make_net, R, B, steps, torch.float32)
    for m in range(steps):
        za, la = fast.step(xs[m], ys[m], 0.01)
        zb, lb = ref.step(xs[m], ys[m], 0.01)
        # float32 rounding of reordered sums (~1e-7 relative per op) carried through 25
        # SGD steps: 1e-4 of the logits' scale, over 10x the largest measured (7e-6)
        scale = float(zb.abs().max())
        assert float((za - zb).abs().max()) <= 1e-4 * scale, m
        assert float((la - lb).abs().max()) <= 1e-4 * max(float(lb.abs().max()), 1.0)
    for n in fast.param_names:
        d = (fast.p[n] - ref.p[n]).abs().max()
        assert float(d) <= 1e-4 * float(ref.p[n].abs().max()), n
    # the fast path really is taken: a silent fallback would pass the checks above
    assert "fused-update" in fast.passes
    if make_net is make_cnn:
        assert "channels-last" in fast.passes
    assert "gil-free" in fast.passes
    # the heavy ops go through bindings that release the GIL, not torch.ops (which holds
    # it through the kernel and would serialise the loop's thread blocks)
    graph = next(iter(fast._compiled.values())).graph.graph
    held = [
        n.target
        for n in graph.nodes
        if isinstance(n.target, torch._ops.OpOverload)
        and n.target._schema.name.split("::")[-1]
        in {"bmm", "convolution", "relu", "add", "threshold_backward"}
    ]
    assert held == []
    assert ref.passes == ()


def test_float64_compiled_step_equals_vmap_to_rounding():
    fast, ref = pair(make_cnn, 3, torch.float64)
    xs, ys = inputs(make_cnn, 3, 2, 10, torch.float64, seed=1)
    for m in range(10):
        za, _ = fast.step(xs[m], ys[m], 0.02)
        zb, _ = ref.step(xs[m], ys[m], 0.02)
        # float64 rounding only (~1e-16 per op): 1e-10 as the backend conformance tests
        np.testing.assert_allclose(za.numpy(), zb.numpy(), rtol=1e-10, atol=1e-13)
    assert "planes" in fast.passes  # float64: no channels-last (no oneDNN kernels)


def test_momentum_uses_the_compiled_gradients_without_fusion():
    fast, ref = pair(make_mlp, 3, torch.float64, momentum=0.9, weight_decay=1e-3)
    xs, ys = inputs(make_mlp, 3, 2, 8, torch.float64, seed=2)
    for m in range(8):
        za, _ = fast.step(xs[m], ys[m], 0.05)
        zb, _ = ref.step(xs[m], ys[m], 0.05)
    np.testing.assert_allclose(za.numpy(), zb.numpy(), rtol=1e-10, atol=1e-13)
    assert "traced" in fast.passes and "fused-update" not in fast.passes


def test_a_rewrite_that_changes_the_result_is_rejected(monkeypatch):
    real = fg._layout_passes

    def wrong(gm, cl):  # a rewrite with a bug: doubles every output
        g, names = real(gm, cl)
        return (lambda *a: [2 * t for t in g(*a)]), names

    monkeypatch.setattr(fg, "_layout_passes", wrong)
    fast, ref = pair(make_cnn, 2, torch.float64)
    xs, ys = inputs(make_cnn, 2, 1, 3, torch.float64)
    for m in range(3):
        za, _ = fast.step(xs[m], ys[m], 0.1)
        zb, _ = ref.step(xs[m], ys[m], 0.1)
        np.testing.assert_allclose(za.numpy(), zb.numpy(), rtol=1e-10, atol=1e-13)
    assert "planes" not in fast.passes and "traced" in fast.passes


def test_a_trace_that_fails_falls_back_to_vmap_with_a_warning(monkeypatch):
    def boom(fn, example):
        raise RuntimeError("cannot trace this")

    monkeypatch.setattr(fg, "_trace", boom)
    fast, ref = pair(make_mlp, 2, torch.float32)
    xs, ys = inputs(make_mlp, 2, 1, 3, torch.float32)
    with pytest.warns(UserWarning, match="could not trace the step.*cannot trace this"):
        fast.step(xs[0], ys[0], 0.1)
    ref.step(xs[0], ys[0], 0.1)
    for m in range(1, 3):
        za, _ = fast.step(xs[m], ys[m], 0.1)
        zb, _ = ref.step(xs[m], ys[m], 0.1)
        assert torch.equal(za, zb)  # the same vmap step: bitwise
    assert fast.passes == ()


def test_engines_of_one_model_share_one_compiled_step():
    a, _ = pair(make_mlp, 3, torch.float32)
    b, _ = pair(make_mlp, 3, torch.float32)
    xs, ys = inputs(make_mlp, 3, 1, 1, torch.float32)
    a.step(xs[0], ys[0], 0.1)
    b.step(xs[0], ys[0], 0.1)
    assert len(backends._GRAPH_CACHE) == 1
    assert next(iter(a._compiled.values())) is next(iter(b._compiled.values()))
    c, _ = pair(make_mlp, 4, torch.float32)  # another block size: its own graph
    xc, yc = inputs(make_mlp, 4, 1, 1, torch.float32)
    c.step(xc[0], yc[0], 0.1)
    assert len(backends._GRAPH_CACHE) == 2


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_compiled_shared_forward_equals_the_eager_one(dtype):
    # features of fc2 (the 84 penultimate units) recorded through the compiled forward
    fast, ref = pair(make_cnn, 3, dtype, feature_module="fc2")
    x = inputs(make_cnn, 1, 9, 1, dtype, seed=3)[0][0, 0]  # (9, 1, 32, 32) shared images
    la, fa = fast.forward_shared(x)
    lb, fb = ref.forward_shared(x)
    assert la.shape == (3, 9, 3) and fa.shape == fb.shape == (3, 9, 84)
    # rounding only; float32: channels-last reorders the sums (1e-5 of the scale)
    tol = 1e-10 if dtype == torch.float64 else 1e-5
    assert float((la - lb).abs().max()) <= tol * float(lb.abs().max())
    assert float((fa - fb).abs().max()) <= tol * float(fb.abs().max())
    assert fast.passes == ()  # no step compiled yet: the forward is not a step
    assert ("forward", tuple(x.shape), dtype) in fast._compiled
    assert fast._compiled[("forward", tuple(x.shape), dtype)] is not None

"""The "func" backend on the compiled CNN step (`lesde.train.func_cnn`).

A model that computes what the kernel computes runs on it; one that does not (another
activation, other shapes, momentum) keeps the traced graph. Either way the training is
the model's own: float64 against the plain ``vmap`` step of the same model to 1e-10
relative (the same sums in other orders: ~1e-15 measured), as the backend's other
conformance tests.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from lesde.data.dataset import Dataset
from lesde.train import CNN, CNNSpec, TrainConfig, func_cnn, train_ensemble
from lesde.train.backends import FuncEnsemble, func_initial_params

DEV = torch.device("cpu")
RTOL = 1e-10  # float64 rounding through 30 steps; measured ~1e-15


def lenet(act=nn.ReLU, C=1, K=3, widths=(6, 16, 120, 84), S=32):
    """The kernel's family written as a Sequential; ReLU after the pools (same function)."""
    w1, w2, w3, w4 = widths
    side = ((S - 4) // 2 - 4) // 2
    return nn.Sequential(
        nn.Conv2d(C, w1, 5), nn.MaxPool2d(2), act(), nn.Conv2d(w1, w2, 5), act(),
        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(w2 * side * side, w3), act(),
        nn.Linear(w3, w4), act(), nn.Linear(w4, K),
    )  # fmt: skip


def make_paper():
    return CNN(CNNSpec(1, 3))


def make_seq():
    return lenet()


def make_tanh():
    return lenet(nn.Tanh)


def make_small():
    return lenet(C=3, K=5, widths=(4, 8, 32, 16), S=28)


def make_avg():
    w = lenet()
    w[1] = nn.AvgPool2d(2)
    return w


def pair(make_net, R, dtype, sample, **kw):
    init = [func_initial_params(make_net, np.array([3, r], dtype=np.uint32), dtype)
            for r in range(R)]  # fmt: skip
    fast = FuncEnsemble(make_net, init, device=DEV, dtype=dtype, batch_shape=(1, *sample), **kw)
    ref = FuncEnsemble(make_net, init, device=DEV, dtype=dtype, compile=False, **kw)
    return fast, ref


def run_both(fast, ref, sample, K, steps=30, B=1, lr=0.05, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn((24, *sample), generator=g, dtype=fast.dtype)
    y = torch.randint(0, K, (24,), generator=g)
    for _ in range(steps):
        idx = torch.randint(0, 24, (fast.R, B), generator=g)
        za, la = fast.step(fast.batch(x, idx), y[idx], lr)
        zb, lb = ref.step(ref.batch(x, idx), y[idx], lr)
        np.testing.assert_allclose(za.numpy(), zb.numpy(), rtol=RTOL, atol=1e-13)
        np.testing.assert_allclose(la.numpy(), lb.numpy(), rtol=RTOL, atol=1e-13)
    for n in fast.param_names:
        np.testing.assert_allclose(fast.p[n].numpy(), ref.p[n].numpy(), rtol=RTOL, atol=1e-13)
    return x


@pytest.mark.parametrize(
    ("make_net", "sample", "K"),
    [(make_paper, (1, 32, 32), 3), (make_seq, (1, 32, 32), 3), (make_small, (3, 28, 28), 5)],
    ids=["paper-cnn", "sequential", "other-shapes"],
)
@pytest.mark.parametrize("B", [1, 2])
def test_members_of_the_family_run_on_the_kernel(make_net, sample, K, B):
    fast, ref = pair(make_net, 3, torch.float64, sample)
    assert fast.passes == ("cnn-kernel",)
    x = run_both(fast, ref, sample, K, B=B)
    la, fa = fast.forward_shared(x)
    lb, fb = ref.forward_shared(x)
    np.testing.assert_allclose(la.numpy(), lb.numpy(), rtol=RTOL, atol=1e-13)
    assert fa.shape == fb.shape == (3, 24, 0)
    # run_steps (the loop's segments) equals step by step
    g = torch.Generator().manual_seed(5)
    idx = torch.randint(0, 24, (3, 6, B), generator=g)
    y = torch.randint(0, K, (3, 6, B), generator=g)
    za, _ = fast.run_steps(x, idx, y, 0.05)
    zb = torch.stack([ref.step(ref.batch(x, idx[:, i]), y[:, i], 0.05)[0] for i in range(6)])
    np.testing.assert_allclose(za.numpy(), zb.numpy(), rtol=RTOL, atol=1e-13)


@pytest.mark.parametrize("make_net", [make_tanh, make_avg], ids=["tanh", "avg-pool"])
def test_same_shapes_other_function_keeps_the_traced_graph(make_net):
    # the parameter shapes are the family's; only the numerical check can tell
    net = make_net()
    assert func_cnn.spec_of([tuple(p.shape) for p in net.parameters()], (1, 32, 32))
    fast, ref = pair(make_net, 2, torch.float64, (1, 32, 32))
    assert "traced" in fast.passes
    run_both(fast, ref, (1, 32, 32), 3, steps=10)


def test_other_shapes_options_and_opt_out_keep_the_traced_graph():
    mlp = nn.Sequential(nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3))
    assert func_cnn.spec_of([tuple(p.shape) for p in mlp.parameters()], (16,)) is None
    net = make_seq()
    shapes = [tuple(p.shape) for p in net.parameters()]
    assert func_cnn.spec_of(shapes, (1, 32, 32)) == CNNSpec(1, 3)
    assert func_cnn.spec_of(shapes, (1, 36, 36)) is None  # fc1 would take 16·6·6 inputs
    assert func_cnn.spec_of(shapes, (3, 32, 32)) is None
    for kw in ({"momentum": 0.9}, {"weight_decay": 1e-3}, {"cnn_kernel": False}):
        fast, _ = pair(make_seq, 2, torch.float64, (1, 32, 32), **kw)
        assert fast.passes != ("cnn-kernel",), kw


def test_features_come_from_the_kernel_only_where_they_are_the_same():
    # "10" is the ReLU after the second fc layer: the kernel's penultimate features;
    # "9" is that layer before its ReLU: the model's own forward records it
    for name, from_kernel in (("10", True), ("9", False)):
        fast, ref = pair(make_seq, 2, torch.float64, (1, 32, 32), feature_module=name)
        assert fast.passes == ("cnn-kernel",)
        assert fast._kernel_route.features is from_kernel
        x = run_both(fast, ref, (1, 32, 32), 3, steps=5)
        (la, fa), (lb, fb) = fast.forward_shared(x), ref.forward_shared(x)
        assert fa.shape == (2, 24, 84)
        np.testing.assert_allclose(fa.numpy(), fb.numpy(), rtol=RTOL, atol=1e-13)
        np.testing.assert_allclose(la.numpy(), lb.numpy(), rtol=RTOL, atol=1e-13)


def test_state_round_trip_continues_bitwise():
    a, _ = pair(make_seq, 3, torch.float32, (1, 32, 32))
    g = torch.Generator().manual_seed(2)
    x = torch.randn((10, 1, 32, 32), generator=g)
    idx = torch.randint(0, 10, (3, 8, 1), generator=g)
    y = torch.randint(0, 3, (3, 8, 1), generator=g)
    a.run_steps(x, idx[:, :4], y[:, :4], 0.05)
    state = {n: v.clone() for n, v in a.state().items()}
    assert set(state) == set(a.param_names)  # the model's own names
    b, _ = pair(make_seq, 3, torch.float32, (1, 32, 32))
    b.load_state(state)
    za, _ = a.run_steps(x, idx[:, 4:], y[:, 4:], 0.05)
    zb, _ = b.run_steps(x, idx[:, 4:], y[:, 4:], 0.05)
    assert torch.equal(za, zb)
    assert all(torch.equal(a.state()[n], b.state()[n]) for n in a.param_names)


def test_train_ensemble_func_on_a_family_member_equals_cnn_kernel_off(monkeypatch):
    # the same run through the kernel route and through the traced graph (float64)
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 8)
    x = rng.normal(0, 0.3, (y.size, 1, 32, 32)).astype(np.float32)
    d = Dataset.from_arrays(x, y, x[::3], y[::3])
    cfg = TrainConfig(n_trials=2, n_steps=40, dtype="float64", chunk_steps=15,
                      n_checkpoints=3, probe_per_class=2, backend="func")  # fmt: skip
    fast = train_ensemble(d, cfg, model=make_seq)
    import lesde.train.backends as backends

    real = backends.FuncEnsemble.__init__

    def traced(self, *a, **k):
        real(self, *a, **{**k, "cnn_kernel": False})
        assert "cnn-kernel" not in self.passes

    monkeypatch.setattr(backends.FuncEnsemble, "__init__", traced)
    slow = train_ensemble(d, cfg, model=make_seq)
    for name in ("sample_logits", "probe_logits", "val_loss"):
        np.testing.assert_allclose(fast[name].values, slow[name].values, rtol=RTOL, atol=1e-12)

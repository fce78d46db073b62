"""The paper's CNN: shapes, initialisation, FLOP count."""

import math

import numpy as np
import pytest
import torch

from lesde.train import CNN, PARAM_NAMES, CNNSpec, init_params


def test_spec_shapes_match_the_paper():
    spec = CNNSpec(in_channels=1, n_classes=3)
    # 32 -> conv5 28 -> pool 14 -> conv5 10 -> pool 5; 16 * 5 * 5 = 400 inputs of fc1
    assert (spec.conv1_size, spec.pool1_size, spec.conv2_size, spec.pool2_size) == (28, 14, 10, 5)
    assert spec.n_flat == 400
    shapes = spec.param_shapes()
    assert list(shapes) == list(PARAM_NAMES)
    assert shapes["fc1.weight"] == (120, 400) and shapes["fc3.weight"] == (3, 84)
    net = CNN(spec)
    assert {k: tuple(v.shape) for k, v in net.state_dict().items()} == shapes


def test_flops_per_step_hand_count():
    # forward 2*(6*25*784 + 16*150*100 + 400*120 + 120*84 + 84*3) = 831,864 FLOP; backward
    # is twice that less conv1's unneeded input gradient (2*6*25*784 = 235,200).
    # PERF_NOTES quotes ~2.55 MFLOP, i.e. 3x forward including that input gradient.
    fwd = 2 * (6 * 25 * 784 + 16 * 150 * 100 + 400 * 120 + 120 * 84 + 84 * 3)
    assert CNNSpec().flops_per_step() == 3 * fwd - 2 * 6 * 25 * 784


@pytest.mark.parametrize("C", [1, 3])
def test_forward_shapes(C):
    spec = CNNSpec(in_channels=C, n_classes=4, widths=(4, 8, 20, 10))
    net = CNN(spec)
    x = torch.randn(5, C, 32, 32)
    assert net(x).shape == (5, 4)
    assert net.features(x).shape == (5, 10)


def test_init_params_reproducible_and_within_default_bounds():
    spec = CNNSpec()
    a = init_params(spec, torch.Generator().manual_seed(3))
    b = init_params(spec, torch.Generator().manual_seed(3))
    c = init_params(spec, torch.Generator().manual_seed(4))
    for name in PARAM_NAMES:
        assert torch.equal(a[name], b[name])
        assert not torch.equal(a[name], c[name])
        fan_in = math.prod(spec.param_shapes()[name.replace("bias", "weight")][1:])
        bound = 1 / math.sqrt(fan_in)  # PyTorch's default U(-1/sqrt(fan_in), 1/sqrt(fan_in))
        assert a[name].abs().max() <= bound
        # a uniform on [-b, b] has sd b/sqrt(3); 48000 draws in fc1 pin it to ~1%
        if name == "fc1.weight":
            assert a[name].std().item() == pytest.approx(bound / math.sqrt(3), rel=0.02)


def test_float64_init_equals_float32_values():
    spec = CNNSpec()
    a = init_params(spec, torch.Generator().manual_seed(0), dtype=torch.float32)
    b = init_params(spec, torch.Generator().manual_seed(0), dtype=torch.float64)
    assert np.array_equal(a["conv1.weight"].double().numpy(), b["conv1.weight"].numpy())


def test_from_params_loads_values():
    spec = CNNSpec()
    p = init_params(spec, torch.Generator().manual_seed(1), dtype=torch.float64)
    net = CNN.from_params(spec, p)
    assert net.fc2.weight.dtype == torch.float64
    assert torch.equal(net.conv2.weight, p["conv2.weight"])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n_classes": 1}, "n_classes"),
        ({"widths": (6, 16, 120)}, "widths"),
        ({"in_channels": 0}, "in_channels"),
        ({"image_size": 12}, "image_size"),
    ],
)
def test_spec_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        CNNSpec(**kwargs)

"""The paper's small CNN (a LeNet-like "variant of AlexNet", paper §4.1 and appendix D).

conv(C→w1, 5×5) → ReLU → maxpool 2 → conv(w1→w2, 5×5) → ReLU → maxpool 2
→ fc(w2·5·5→w3) → ReLU → fc(w3→w4) → ReLU → fc(w4→K), on C×32×32 images;
widths ``(w1, w2, w3, w4)`` default to ``(6, 16, 120, 84)``.

Two views of the same network:

- `CNN`, an ordinary ``nn.Module`` (the reference the ensemble trainer is tested against);
- `init_params`, the parameters of one trial drawn from a ``torch.Generator`` with
  PyTorch's default layer initialisation (U(−1/√fan_in, 1/√fan_in) for weights and
  biases), named as in ``CNN.state_dict()`` so that `CNN.from_params` loads them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["CNNSpec", "CNN", "init_params", "PARAM_NAMES"]

# parameter names, in the order the trainer stacks and updates them
PARAM_NAMES: tuple[str, ...] = (
    "conv1.weight",
    "conv1.bias",
    "conv2.weight",
    "conv2.bias",
    "fc1.weight",
    "fc1.bias",
    "fc2.weight",
    "fc2.bias",
    "fc3.weight",
    "fc3.bias",
)

KERNEL = 5  # the paper's 5×5 convolutions


@dataclass(frozen=True)
class CNNSpec:
    """Shape of the CNN.

    Attributes:
        in_channels: C, image channels (1 for GeoMNIST, 3 for CIFAR).
        n_classes: K, number of logits.
        widths: (conv1 channels, conv2 channels, fc1 units, fc2 units); the paper's
            (6, 16, 120, 84).
        image_size: side of the square input; 32 in the paper.
    """

    in_channels: int = 1
    n_classes: int = 3
    widths: tuple[int, int, int, int] = (6, 16, 120, 84)
    image_size: int = 32

    def __post_init__(self) -> None:
        for name in ("in_channels", "n_classes", "image_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"`{name}` must be a positive int, got {v!r}")
        if self.n_classes < 2:
            raise ValueError(f"`n_classes` must be >= 2, got {self.n_classes}")
        w = tuple(self.widths)
        if len(w) != 4 or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in w):
            raise ValueError(f"`widths` must be 4 positive ints, got {self.widths!r}")
        object.__setattr__(self, "widths", w)
        if self.pool2_size < 1:
            raise ValueError(f"`image_size` must be >= 16 for two conv+pool stages, got {w}")

    @property
    def conv1_size(self) -> int:
        """Side of the conv1 output (28 for 32×32 input)."""
        return self.image_size - KERNEL + 1

    @property
    def pool1_size(self) -> int:
        return self.conv1_size // 2

    @property
    def conv2_size(self) -> int:
        return self.pool1_size - KERNEL + 1

    @property
    def pool2_size(self) -> int:
        return self.conv2_size // 2

    @property
    def n_flat(self) -> int:
        """Inputs of fc1 (400 for the paper's net)."""
        return self.widths[1] * self.pool2_size**2

    @property
    def n_features(self) -> int:
        """Penultimate feature dimension (fc2 units, 84)."""
        return self.widths[3]

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        """Shape of every parameter of one network, by name."""
        w1, w2, w3, w4 = self.widths
        C, K = self.in_channels, self.n_classes
        return {
            "conv1.weight": (w1, C, KERNEL, KERNEL),
            "conv1.bias": (w1,),
            "conv2.weight": (w2, w1, KERNEL, KERNEL),
            "conv2.bias": (w2,),
            "fc1.weight": (w3, self.n_flat),
            "fc1.bias": (w3,),
            "fc2.weight": (w4, w3),
            "fc2.bias": (w4,),
            "fc3.weight": (K, w4),
            "fc3.bias": (K,),
        }

    def flops_per_step(self) -> float:
        """FLOPs of one forward+backward of one sample (≈2.55e6 for the paper's net)."""
        w1, w2, w3, w4 = self.widths
        C, K = self.in_channels, self.n_classes
        fwd = 2 * (
            w1 * C * KERNEL**2 * self.conv1_size**2
            + w2 * w1 * KERNEL**2 * self.conv2_size**2
            + self.n_flat * w3
            + w3 * w4
            + w4 * K
        )
        # backward: weight gradients everywhere, input gradients except for conv1
        bwd = 2 * fwd - 2 * w1 * C * KERNEL**2 * self.conv1_size**2
        return float(fwd + bwd)


class CNN(nn.Module):
    """The paper's CNN as an ``nn.Module`` (reference implementation).

    Args:
        spec: its shape.
    """

    def __init__(self, spec: CNNSpec) -> None:
        super().__init__()
        self.spec = spec
        w1, w2, w3, w4 = spec.widths
        self.conv1 = nn.Conv2d(spec.in_channels, w1, KERNEL)
        self.conv2 = nn.Conv2d(w1, w2, KERNEL)
        self.fc1 = nn.Linear(spec.n_flat, w3)
        self.fc2 = nn.Linear(w3, w4)
        self.fc3 = nn.Linear(w4, spec.n_classes)

    @classmethod
    def from_params(cls, spec: CNNSpec, params: dict[str, torch.Tensor]) -> CNN:
        """A `CNN` holding copies of ``params`` (names as in `PARAM_NAMES`), in their dtype."""
        net = cls(spec).to(next(iter(params.values())).dtype)
        net.load_state_dict({k: v.detach().clone() for k, v in params.items()})
        return net

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features (after fc2 and ReLU). x: (N, C, H, W) -> (N, w4)."""
        h = F.max_pool2d(F.relu(self.conv1(x)), 2)
        h = F.max_pool2d(F.relu(self.conv2(h)), 2)
        h = F.relu(self.fc1(h.flatten(1)))
        return F.relu(self.fc2(h))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits. x: (N, C, H, W) -> (N, K)."""
        return self.fc3(self.features(x))


def init_params(
    spec: CNNSpec,
    generator: torch.Generator,
    *,
    dtype: torch.dtype = torch.float32,
) -> dict[str, torch.Tensor]:
    """Draw one network's parameters with PyTorch's default layer initialisation.

    ``nn.Conv2d``/``nn.Linear`` initialise weights by kaiming_uniform(a=√5), which is
    U(−1/√fan_in, 1/√fan_in), and biases by the same uniform; drawing them here from an
    explicit generator keeps every trial's initialisation reproducible without global
    seeding. Values are drawn in float32 and then cast, so a float64 run starts from the
    same numbers as a float32 run with the same seed.

    Args:
        spec: network shape.
        generator: CPU ``torch.Generator`` (consumed).
        dtype: dtype of the returned tensors.

    Returns:
        {name: tensor} in the order of `PARAM_NAMES`.
    """
    out: dict[str, torch.Tensor] = {}
    shapes = spec.param_shapes()
    for name in PARAM_NAMES:
        shape = shapes[name]
        weight_shape = shapes[name.replace(".bias", ".weight")]
        fan_in = math.prod(weight_shape[1:])
        bound = 1.0 / math.sqrt(fan_in)
        u = torch.rand(shape, generator=generator, dtype=torch.float32)
        out[name] = ((2 * u - 1) * bound).to(dtype)
    return out

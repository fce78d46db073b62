"""Model factories for `lesde train --model examples/models.py:NAME` (README, "Your own model").

Each function builds one network; `lesde` calls it once per trial under the trial's own
seed, so every trial starts from its own PyTorch default initialisation.
"""

from torch import nn


def digits_mlp() -> nn.Module:
    """An MLP for scikit-learn's digits as `lesde` loads them (1×32×32), all 10 classes."""
    return nn.Sequential(nn.Flatten(), nn.Linear(1024, 64), nn.Tanh(), nn.Linear(64, 10))


class _Block(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1)
        self.act = nn.ReLU()

    def forward(self, x):
        return self.act(x + self.conv2(self.act(self.conv1(x))))


def small_resnet() -> nn.Module:
    """A small residual conv net for 1×32×32 GeoMNIST images, 3 classes (no BatchNorm:
    batch-1 SGD has no batch statistics)."""
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, stride=2, padding=1),
        nn.ReLU(),  # 16×16
        _Block(8),
        nn.Conv2d(8, 16, 3, stride=2, padding=1),
        nn.ReLU(),  # 8×8
        _Block(16),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, 3),
    )

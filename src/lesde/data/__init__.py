"""Datasets: GeoMNIST, CIFAR-10 from local files, scikit-learn digits, label corruption.

Every loader returns a `Dataset` (train/validation arrays, class names, provenance);
`load` picks one by name.
"""

from lesde.data.cifar import load_cifar10
from lesde.data.corruption import corrupt_labels
from lesde.data.dataset import Dataset
from lesde.data.digits import load_digits
from lesde.data.geomnist import make_geomnist
from lesde.data.registry import available, load

__all__ = [
    "Dataset",
    "available",
    "corrupt_labels",
    "load",
    "load_cifar10",
    "load_digits",
    "make_geomnist",
]

"""`lesde.data.load`: names, options, provenance with checksums; `lesde data` CLI."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

import lesde.data
from lesde.cli import app
from lesde.data import available, load, make_geomnist
from lesde.data.registry import array_sha256


def test_known_names():
    assert available() == ["cifar10", "digits", "geomnist"]
    assert set(lesde.data.__all__) >= {
        "Dataset", "make_geomnist", "load_cifar10", "load_digits", "corrupt_labels", "load",
    }  # fmt: skip


def test_unknown_name_lists_known_ones():
    with pytest.raises(ValueError, match="cifar10, digits, geomnist"):
        load("mnist")


def test_geomnist_provenance_and_checksums():
    d = load("geomnist", n_train=4, n_val=2, seed=9)
    ref = make_geomnist(4, 2, seed=9)
    np.testing.assert_array_equal(d.x_train, ref.x_train)
    prov = d.provenance
    assert prov["name"] == "geomnist" and prov["seed"] == 9
    assert "geomnist" in prov["source"]
    assert prov["options"] == {"n_train": 4, "n_val": 2, "seed": 9, "size": 32}
    for name in ("x_train", "y_train", "x_val", "y_val"):
        x = np.ascontiguousarray(getattr(d, name))
        h = hashlib.sha256(f"{x.dtype.str}{x.shape}".encode())
        h.update(x.tobytes())
        assert prov["sha256"][name] == h.hexdigest()
    json.dumps(prov)
    # checksums tell data apart: another seed, another digest
    assert load("geomnist", n_train=4, n_val=2, seed=10).provenance["sha256"] != prov["sha256"]


def test_checksum_covers_dtype_and_shape():
    x = np.zeros(6, dtype=np.float32)
    assert array_sha256(x) != array_sha256(x.reshape(2, 3))
    assert array_sha256(x) != array_sha256(x.view(np.int32))
    assert array_sha256(np.zeros((0, 3))) != array_sha256(np.zeros((3, 0)))


def test_defaults_and_aliases():
    d = load("geomnist")  # defaults: 300 + 100 per class, seed 0
    assert d.x_train.shape == (900, 1, 32, 32) and d.x_val.shape == (300, 1, 32, 32)
    assert d.provenance["seed"] == 0
    a = load("digits", classes=(1, 2), n_train=40, n_val=10, seed=2)
    b = load("digits", classes=(1, 2), n_train_per_class=40, n_val_per_class=10, seed=2)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    assert a.provenance["options"]["n_train_per_class"] == 40
    assert a.provenance["options"]["classes"] == [1, 2]


def test_bad_options():
    with pytest.raises(ValueError, match="given twice"):
        load("digits", n_train=3, n_train_per_class=3)
    with pytest.raises(TypeError, match="geomnist"):
        load("geomnist", colour=True)


def test_cli_show_writes_png(tmp_path, capsys):
    out = tmp_path / "fig" / "geo.png"
    assert app(["data", "show", "geomnist", "--out", str(out), "--n", "3"]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert str(out) in capsys.readouterr().out
    out2 = tmp_path / "digits.png"
    assert app(["data", "show", "digits", "--out", str(out2), "--classes", "4", "9"]) == 0
    assert out2.stat().st_size > 1000


def test_cli_info_prints_json(capsys):
    assert app(["data", "info", "geomnist", "--n", "2", "--seed", "5"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["x_train"] == [6, 1, 32, 32]
    assert info["provenance"]["seed"] == 5


def test_cli_missing_cifar_explains(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("LESDE_DATA", raising=False)
    rc = app(["data", "show", "cifar10", "--cifar-root", str(tmp_path)])
    assert rc == 2  # expected failures exit 2 (one line, no traceback)
    err = capsys.readouterr().err
    assert "cifar-10-batches-py" in err and "--cifar-root" in err


def test_plot_samples_grid_layout():
    from lesde.plots.data import plot_samples, sample_grid

    d = make_geomnist(5, 0, seed=0)
    grid = sample_grid(d.x_train, d.y_train, 3, n_per_class=4)
    assert grid.shape == (3 * 34 - 2, 4 * 34 - 2)
    # cell (class 1, sample 0) is the first rectangle, min-max scaled
    img = d.x_train[5, 0]
    np.testing.assert_allclose(grid[34:66, 0:32], (img - img.min()) / (img.max() - img.min()))
    rgb = sample_grid(np.random.default_rng(0).normal(size=(4, 3, 8, 8)), np.array([0, 0, 1, 1]), 2,
                      n_per_class=2)  # fmt: skip
    assert rgb.shape == (18, 18, 3) and rgb.min() >= 0 and rgb.max() <= 1
    ax = plot_samples(d.x_train, d.y_train, d.class_names, n_per_class=4)
    assert [t.get_text() for t in ax.get_yticklabels()] == list(d.class_names)


def test_cli_rejects_classes_for_geomnist(capsys):
    assert app(["data", "show", "geomnist", "--classes", "0", "1"]) == 2
    assert "--classes" in capsys.readouterr().err


def test_dataset_from_arrays_any_shape_and_checks():
    from lesde.data.dataset import Dataset

    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 64))  # vectors, K = 10 from the labels
    y = np.arange(40) % 10
    d = Dataset.from_arrays(x, y, x[:20], y[:20])
    assert d.n_classes == 10 and d.class_names[9] == "class 9" and d.x_train.dtype == np.float32
    seq = Dataset.from_arrays(rng.normal(size=(6, 5, 7)), np.arange(6) % 2,
                              rng.normal(size=(2, 5, 7)), np.array([0, 1]), ["a", "b"])  # fmt: skip
    assert seq.x_val.shape == (2, 5, 7)
    with pytest.raises(ValueError, match="`y_train` must hold one label per row"):
        Dataset.from_arrays(x, y[:30], x[:20], y[:20])
    with pytest.raises(ValueError, match=r"`y_val` labels must be in \[0, 2\)"):
        Dataset.from_arrays(x[:4], np.array([0, 1, 0, 1]), x[:2], np.array([0, 5]), ["a", "b"])
    with pytest.raises(ValueError, match="integer labels"):
        Dataset.from_arrays(x, y.astype(float), x[:20], y[:20])
    with pytest.raises(ValueError, match="NaN or infinite"):
        Dataset.from_arrays(np.full_like(x, np.nan), y, x[:20], y[:20])
    with pytest.raises(ValueError, match="one shape"):
        Dataset.from_arrays(x, y, x[:20, :10], y[:20])

"""CIFAR-10 loading from small fixtures in both official formats; restricted unpickling;
clear errors; opt-in download from a local file:// URL with MD5 verification."""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest

from lesde.data import load, load_cifar10
from lesde.data._unpickle import UnsafePickleError, restricted_load
from lesde.data.cifar import CIFAR10_CLASSES, download_cifar10, find_cifar10

N_PER_BATCH = 40  # 4 images of each class per training batch: 20 per class in all
N_TEST = 30  # 3 per class


class _Py2Pickler(pickle._Pickler):
    """Writes what Python 2's cPickle wrote for the official batches: strings as py2
    `str` (BINSTRING opcodes, read back as bytes with encoding="bytes") and numpy
    globals under numpy 1.x names (``numpy.core.multiarray._reconstruct``)."""

    dispatch = dict(pickle._Pickler.dispatch)

    def _save_py2_str(self, obj):
        raw = obj.encode("latin-1") if isinstance(obj, str) else bytes(obj)
        if len(raw) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw)
        else:
            self.write(pickle.BINSTRING + len(raw).to_bytes(4, "little") + raw)
        self.memoize(obj)

    dispatch[bytes] = _save_py2_str
    dispatch[str] = _save_py2_str

    def save_global(self, obj, name=None):
        from lesde.data._unpickle import _numpy_reconstruct

        names = {
            id(np.ndarray): "numpy\nndarray\n",
            id(np.dtype): "numpy\ndtype\n",
            id(_numpy_reconstruct()): "numpy.core.multiarray\n_reconstruct\n",
        }
        self.write(pickle.GLOBAL + names[id(obj)].encode())
        self.memoize(obj)


def _py2_dumps(obj) -> bytes:
    buf = io.BytesIO()
    _Py2Pickler(buf, protocol=2).dump(obj)
    return buf.getvalue()


def _content(seed: int = 0):
    """Train batches and test batch: (data (n, 3072) uint8, labels (n,)) with unique images."""
    rng = np.random.default_rng(seed)
    batches = []
    for _ in range(5):
        labels = rng.permutation(np.arange(N_PER_BATCH) % 10)
        batches.append((rng.integers(0, 256, (N_PER_BATCH, 3072), dtype=np.uint8), labels))
    labels = rng.permutation(np.arange(N_TEST) % 10)
    test = (rng.integers(0, 256, (N_TEST, 3072), dtype=np.uint8), labels)
    return batches, test


def write_python_version(root: Path, seed: int = 0) -> Path:
    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True)
    batches, test = _content(seed)
    for i, (data, labels) in enumerate([*batches, test]):
        name = f"data_batch_{i + 1}" if i < 5 else "test_batch"
        content = {
            b"batch_label": f"batch {i}".encode(),
            b"labels": [int(v) for v in labels],
            b"data": data,
            b"filenames": [f"img_{i}_{j}.png".encode() for j in range(len(labels))],
        }
        (d / name).write_bytes(_py2_dumps(content))
    meta = {
        b"num_cases_per_batch": N_PER_BATCH,
        b"label_names": [n.encode() for n in CIFAR10_CLASSES],
        b"num_vis": 3072,
    }
    (d / "batches.meta").write_bytes(_py2_dumps(meta))
    return d


def write_binary_version(root: Path, seed: int = 0) -> Path:
    d = root / "cifar-10-batches-bin"
    d.mkdir(parents=True)
    batches, test = _content(seed)
    for i, (data, labels) in enumerate([*batches, test]):
        name = f"data_batch_{i + 1}.bin" if i < 5 else "test_batch.bin"
        rec = np.concatenate([labels.astype(np.uint8)[:, None], data], axis=1)  # (n, 3073)
        (d / name).write_bytes(rec.tobytes())
    (d / "batches.meta.txt").write_text("\n".join(CIFAR10_CLASSES) + "\n\n")
    return d


@pytest.fixture
def py_root(tmp_path):
    write_python_version(tmp_path)
    return tmp_path


def _lookup(batches):
    data = np.concatenate([b[0] for b in batches])
    labels = np.concatenate([b[1] for b in batches])
    return {row.tobytes(): int(lab) for row, lab in zip(data, labels, strict=True)}


def test_python_version_selects_requested_classes(py_root):
    d = load_cifar10(
        py_root, classes=(3, 0), n_train_per_class=15, n_val_per_class=2, seed=1, normalize=False
    )
    assert d.x_train.shape == (30, 3, 32, 32) and d.x_train.dtype == np.float32
    assert d.x_val.shape == (4, 3, 32, 32)
    np.testing.assert_array_equal(d.y_train, np.repeat([0, 1], 15))
    assert d.class_names == ("cat", "airplane")
    batches, test = _content()
    # every selected image is a distinct source image of the requested class
    cases = ((d.x_train, d.y_train, _lookup(batches)), (d.x_val, d.y_val, _lookup([test])))
    for x, y, source in cases:
        raw = np.rint(x * 255).astype(np.uint8).reshape(len(x), -1)
        np.testing.assert_allclose(raw / np.float32(255), x.reshape(len(x), -1), atol=1e-7)
        keys = [r.tobytes() for r in raw]
        assert len(set(keys)) == len(keys)
        assert [source[k] for k in keys] == [(3, 0)[v] for v in y]


def test_binary_version_gives_identical_arrays(tmp_path):
    write_python_version(tmp_path / "a")
    write_binary_version(tmp_path / "b")
    kw = dict(classes=(1, 2, 9), n_train_per_class=12, n_val_per_class=3, seed=4)
    a = load_cifar10(tmp_path / "a", **kw)
    b = load_cifar10(tmp_path / "b", **kw)
    assert a.provenance["format"] == "python" and b.provenance["format"] == "binary"
    for name in ("x_train", "y_train", "x_val", "y_val"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert a.class_names == b.class_names == ("automobile", "bird", "truck")


def test_root_may_be_the_batches_directory(tmp_path):
    inner = write_binary_version(tmp_path)
    assert find_cifar10(inner) == (inner, "binary")
    assert find_cifar10(tmp_path) == (inner, "binary")
    d = load_cifar10(inner, n_train_per_class=3, n_val_per_class=1, seed=0)
    assert d.x_train.shape == (9, 3, 32, 32)


def test_normalisation_uses_selected_training_images(py_root):
    raw = load_cifar10(py_root, n_train_per_class=10, n_val_per_class=3, seed=2, normalize=False)
    d = load_cifar10(py_root, n_train_per_class=10, n_val_per_class=3, seed=2)
    mean = raw.x_train.mean(axis=(0, 2, 3), dtype=np.float64)
    std = raw.x_train.std(axis=(0, 2, 3), dtype=np.float64)
    # standardised training channels: mean 0, std 1 up to float32 rounding (~1e-6)
    np.testing.assert_allclose(d.x_train.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(d.x_train.std(axis=(0, 2, 3)), 1, atol=1e-5)
    # validation images use the training statistics, not their own
    expect = (raw.x_val - mean[None, :, None, None]) / std[None, :, None, None]
    np.testing.assert_allclose(d.x_val, expect, atol=1e-5)
    norm = d.provenance["normalization"]
    assert norm["stats_from"] == "selected training images"
    np.testing.assert_allclose(norm["mean"], mean, rtol=1e-12)
    np.testing.assert_allclose(norm["std"], std, rtol=1e-12)
    json.dumps(d.provenance)  # JSON-able for the run store


def test_selection_is_seeded(py_root):
    kw = dict(n_train_per_class=8, n_val_per_class=2)
    a, b = load_cifar10(py_root, seed=5, **kw), load_cifar10(py_root, seed=5, **kw)
    c = load_cifar10(py_root, seed=6, **kw)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    assert not np.array_equal(a.x_train, c.x_train)


def test_missing_data_error_says_where_what_and_how(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError) as err:
        load_cifar10(tmp_path / "nowhere", seed=0)
    msg = str(err.value)
    assert str(tmp_path / "nowhere" / "cifar-10-batches-py") in msg
    assert str(tmp_path / "nowhere" / "cifar-10-batches-bin") in msg
    assert "data_batch_1" in msg and "test_batch" in msg  # what is expected
    assert "--cifar-root" in msg and "LESDE_DATA" in msg and "cs.toronto.edu" in msg
    monkeypatch.delenv("LESDE_DATA", raising=False)
    with pytest.raises(FileNotFoundError, match="LESDE_DATA"):
        load_cifar10(None, seed=0)


def test_env_var_is_the_default_root(py_root, monkeypatch):
    monkeypatch.setenv("LESDE_DATA", str(py_root))
    d = load_cifar10(None, n_train_per_class=2, n_val_per_class=1, seed=0)
    assert d.x_train.shape == (6, 3, 32, 32)


def test_incomplete_copy_names_missing_file(py_root):
    (py_root / "cifar-10-batches-py" / "test_batch").unlink()
    with pytest.raises(FileNotFoundError, match="missing test_batch"):
        load_cifar10(py_root, seed=0)


def test_corrupt_files_raise_clear_errors(tmp_path):
    d = write_python_version(tmp_path / "p")
    path = d / "data_batch_3"
    path.write_bytes(path.read_bytes()[:500])  # truncated
    with pytest.raises(ValueError, match="data_batch_3.*corrupt"):
        load_cifar10(tmp_path / "p", seed=0)
    path.write_bytes(_py2_dumps({b"labels": [1, 2]}))  # a pickle, but not a batch
    with pytest.raises(ValueError, match="b'data'"):
        load_cifar10(tmp_path / "p", seed=0)
    b = write_binary_version(tmp_path / "b")
    (b / "data_batch_2.bin").write_bytes(b"\x00" * 3000)  # not whole records
    with pytest.raises(ValueError, match="data_batch_2.bin.*3073"):
        load_cifar10(tmp_path / "b", seed=0)


class _Evil:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("protocol", [0, 2, 4])
def test_malicious_pickle_is_refused_not_executed(tmp_path, protocol):
    marker = tmp_path / "pwned"
    payload = pickle.dumps({b"data": _Evil(marker), b"labels": []}, protocol=protocol)
    with pytest.raises(UnsafePickleError, match="system"):
        restricted_load(payload)
    # planted in a CIFAR copy, it fails the load with the file named, and never runs
    d = write_python_version(tmp_path / "c")
    (d / "data_batch_1").write_bytes(payload)
    with pytest.raises(UnsafePickleError, match="data_batch_1"):
        load_cifar10(tmp_path / "c", seed=0)
    assert not marker.exists()
    # builtins are refused too (eval/exec/getattr chains start from a global)
    with pytest.raises(UnsafePickleError, match=r"builtin__\.eval|builtins\.eval"):
        restricted_load(pickle.dumps(eval, protocol=protocol))


def test_codecs_encode_admitted_only_for_latin1():
    # Python 3 writes bytes at protocol 2 as _codecs.encode(str, "latin1"): allowed
    assert restricted_load(pickle.dumps(b"\x00\xffab", protocol=2)) == b"\x00\xffab"
    evil = b"c_codecs\nencode\n(Vabc\nVrot13\ntR."  # same global, another codec
    with pytest.raises(UnsafePickleError, match="rot13"):
        restricted_load(evil)


@pytest.mark.parametrize("protocol", [0, 2, 3, 5])
def test_arrays_pickled_by_python3_load_too(protocol):
    x = np.arange(12, dtype=np.uint8).reshape(3, 4)
    out = restricted_load(pickle.dumps({"data": x, "labels": [0, 1, 2]}, protocol=protocol))
    np.testing.assert_array_equal(out["data"], x)


def _tarball(tmp_path: Path, *, evil: bool = False) -> Path:
    src = tmp_path / "src"
    write_python_version(src)
    tgz = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(tgz, "w:gz") as tar:
        tar.add(src / "cifar-10-batches-py", arcname="cifar-10-batches-py")
        if evil:
            info = tarfile.TarInfo("../escaped.txt")
            info.size = 3
            tar.addfile(info, io.BytesIO(b"bad"))
            link = tarfile.TarInfo("cifar-10-batches-py/link")
            link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
            tar.addfile(link)
    return tgz


def test_download_from_file_url_verifies_md5(tmp_path):
    tgz = _tarball(tmp_path, evil=True)
    md5 = hashlib.md5(tgz.read_bytes()).hexdigest()
    dest = tmp_path / "dl" / "data"
    d = load_cifar10(
        dest, n_train_per_class=5, n_val_per_class=2, seed=0,
        download=True, url=tgz.as_uri(), md5=md5,
    )  # fmt: skip
    ref = load_cifar10(tmp_path / "src", n_train_per_class=5, n_val_per_class=2, seed=0)
    np.testing.assert_array_equal(d.x_train, ref.x_train)
    assert (dest / "cifar-10-batches-py" / "data_batch_5").is_file()
    # unsafe members were skipped
    assert not (tmp_path / "dl" / "escaped.txt").exists()
    assert not (dest / "cifar-10-batches-py" / "link").exists()
    assert not list(dest.glob(".cifar-unpack-*"))  # temporary directory cleaned


def test_download_md5_mismatch_unpacks_nothing(tmp_path):
    tgz = _tarball(tmp_path)
    dest = tmp_path / "dl"
    with pytest.raises(ValueError, match="MD5 mismatch"):
        download_cifar10(dest, url=tgz.as_uri(), md5="0" * 32)
    assert not (dest / "cifar-10-batches-py").exists()
    assert not list(dest.glob("*.part")) and not list(dest.glob("*.tar.gz"))
    with pytest.raises(ValueError, match="md5"):
        download_cifar10(dest, url=tgz.as_uri())  # unknown URL needs an explicit MD5


def test_no_download_unless_asked(tmp_path):
    # the default never touches the network: a missing copy is an error
    with pytest.raises(FileNotFoundError):
        load_cifar10(tmp_path, seed=0, url="http://127.0.0.1:9/never.tar.gz", md5="0" * 32)


@pytest.mark.parametrize(
    ("kwargs", "err", "match"),
    [
        ({"classes": (0, 0)}, ValueError, "classes"),
        ({"classes": (10,)}, ValueError, "classes"),
        ({"classes": ("a",)}, TypeError, "classes"),
        ({"n_train_per_class": 0}, ValueError, "n_train_per_class"),
        ({"n_train_per_class": 5001}, ValueError, "n_train_per_class"),
        ({"n_val_per_class": 1.5}, TypeError, "n_val_per_class"),
    ],
)
def test_invalid_arguments(py_root, kwargs, err, match):
    with pytest.raises(err, match=match):
        load_cifar10(py_root, seed=0, **kwargs)


def test_more_images_than_the_copy_holds(py_root):
    with pytest.raises(ValueError, match="fewer than the 21 requested"):
        load_cifar10(py_root, n_train_per_class=21, n_val_per_class=1, seed=0)


def test_registry_loads_cifar10_with_generic_counts(py_root):
    d = load("cifar10", root=str(py_root), classes=(0, 1), n_train=6, n_val=2, seed=3)
    ref = load_cifar10(py_root, classes=(0, 1), n_train_per_class=6, n_val_per_class=2, seed=3)
    np.testing.assert_array_equal(d.x_train, ref.x_train)
    prov = d.provenance
    assert prov["name"] == "cifar10" and prov["seed"] == 3
    assert prov["options"]["n_train_per_class"] == 6
    assert set(prov["sha256"]) == {"x_train", "y_train", "x_val", "y_val"}
    json.dumps(prov)


def test_cli_show_cifar10_from_fixture(py_root, tmp_path):
    from lesde.cli import app

    out = tmp_path / "cifar.png"
    argv = ["data", "show", "cifar10", "--cifar-root", str(py_root), "--n", "3", "--out", str(out)]
    assert app([*argv, "--classes", "2", "5"]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

"""Every expected CLI failure is one line on stderr naming the flag or file, exit status 2.

The cases are the list of the issue "Run directories that never mix": each runs the
real command in-process and checks the exit status, that stderr is a single line, that
it names the flag (as typed) or the file, and that no traceback is printed.
"""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lesde.cli import app

FILE = "a_file.txt"


@pytest.fixture
def ws(tmp_path, monkeypatch):
    """A workspace: a plain file, an npz of mismatched lengths, a broken run directory."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LESDE_DATA", raising=False)
    (tmp_path / FILE).write_text("not a directory\n")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 1, 8, 8)).astype(np.float32)
    names = np.array(["a", "b", "c"])
    np.savez(tmp_path / "bad_len.npz", x_train=x, y_train=np.repeat(np.arange(3), 17)[:50],
             x_val=x[:9], y_val=np.arange(9) % 3, class_names=names)  # fmt: skip
    np.savez(tmp_path / "nan.npz", x_train=np.full_like(x, np.nan), y_train=np.arange(60) % 3,
             x_val=x[:9], y_val=np.arange(9) % 3)  # fmt: skip
    (tmp_path / "trunc.npz").write_bytes((tmp_path / "bad_len.npz").read_bytes()[:300])
    for name, text in (("badjson", "{not json"), ("notobj", "[1, 2]")):
        d = tmp_path / name
        (d / "figures").mkdir(parents=True)
        (d / "summary.json").write_text(text)
    (tmp_path / "record").mkdir()  # a training record, not a run directory
    (tmp_path / "record" / "meta.json").write_text("{}")
    d = tmp_path / "truncstage"
    d.mkdir()
    (d / "summary.json").write_text(json.dumps({"stages": {"analyse": {"done": True}}}))
    (d / "estimates.npz").write_bytes(b"PK\x03\x04 truncated")
    return tmp_path


def _cifar_with_evil_pickle(root: Path) -> Path:
    from test_data_cifar import write_python_version

    d = write_python_version(root / "c")

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    (d / "data_batch_1").write_bytes(pickle.dumps({b"data": Evil(), b"labels": []}))
    return root / "c"


CASES = [
    # --out naming an existing file, for every command that writes a directory
    (["run", "geomnist", "--out", FILE], "--out"),
    (["train", "--out", FILE, "--steps", "5"], "--out"),
    (["sweep", "--out", FILE], "--out"),
    (["separation", "--out", FILE], "--out"),
    (["figures", "badjson", "--out", FILE], "--out"),
    (["data", "show", "geomnist", "--out", "."], "--out"),
    (["report", "badjson", "--out", "."], "--out"),
    # a directory that cannot be written (/sys refuses to create entries, even for root)
    (["run", "geomnist", "--out", "/sys/kernel/lesde-test"], "--out"),
    (["train", "--out", "/sys/kernel/lesde-test", "--steps", "5"], "--out"),
    (["separation", "--out", "/sys/kernel/lesde-test"], "--out"),
    # bad values, named as typed
    (["train", "--threads", "0", "--out", "t"], "--threads"),
    (["train", "--trials", "0", "--out", "t"], "--trials"),
    (["train", "--n-val-per-class", "0", "--out", "t"], "--n-val-per-class"),
    (["train", "--n-le-steps", "-2", "--out", "t"], "--n-le-steps"),
    (["train", "--batch-size", "4", "--le-steps", "5", "--out", "t"], "--le-steps"),
    (["train", "--p-err", "1.5", "--out", "t"], "--p-err"),
    (["train", "--lr", "nan", "--out", "t"], "--lr"),
    (["train", "--feature-module", "fc2", "--out", "t", "--steps", "5"], "--feature-module"),
    (["run", "geomnist", "--seed", "-1"], "--seed"),
    (["run", "geomnist", "--trials", "0"], "--trials"),
    (["sweep", "--seeds", "-1"], "--seeds"),
    (["sweep", "--p-err", "0", "0"], "--p-err"),
    (["separation", "--seed", "-1"], "--seed"),
    (["separation", "--runs", "0"], "--runs"),
    (["data", "show", "geomnist", "--n", "0"], "--n"),
    (["train", "--resume", "nothing-here"], "nothing-here"),
    (["train"], "--out"),
    # files that are broken or not what they should be
    (["report", "badjson"], "summary.json"),
    (["report", "notobj"], "summary.json"),
    (["figures", "truncstage"], "estimates.npz"),
    (["figures", "record"], "lesde analyse record --out DIR"),
    (["train", "--data", "bad_len.npz", "--out", "t", "--steps", "5"], "y_train"),
    (["train", "--data", "nan.npz", "--out", "t", "--steps", "5"], "x_train"),
    (["train", "--data", "trunc.npz", "--out", "t", "--steps", "5"], "trunc.npz"),
    (["train", "--data", "missing.npz", "--out", "t", "--steps", "5"], "missing.npz"),
    (["run", "cifar", "--cifar-root", "."], "--cifar-root"),
]


@pytest.mark.parametrize(("argv", "named"), CASES, ids=[" ".join(c[0]) for c in CASES])
def test_expected_failure_is_one_line(ws, capsys, argv, named):
    assert app(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert named in err, err
    assert "Traceback" not in err
    assert err.startswith("lesde ")


def test_unsafe_pickle_is_one_line(ws, capsys):
    root = _cifar_with_evil_pickle(ws)
    assert app(["data", "show", "cifar10", "--cifar-root", str(root)]) == 2
    captured = capsys.readouterr()
    assert "pwned" not in captured.out  # never executed
    err = captured.err.strip()
    assert len(err.splitlines()) == 1 and "data_batch_1" in err and "Traceback" not in err


def test_debug_shows_the_traceback(ws, capsys):
    assert app(["--debug", "report", "badjson"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and "summary.json" in err


def test_npz_without_class_names_gets_default_names(ws, capsys):
    # not an error: the classes get default names
    assert app(["train", "--data", "nan.npz", "--out", "t"]) == 2  # (NaN: refused)
    rng = np.random.default_rng(1)
    y = np.arange(30) % 3
    x = rng.normal(size=(30, 1, 32, 32)).astype(np.float32)
    np.savez("plain.npz", x_train=x, y_train=y, x_val=x[:9], y_val=y[:9])
    assert app(["train", "--data", "plain.npz", "--out", "p", "--trials", "2", "--steps", "4",
                "--checkpoints", "2", "--probe-per-class", "2", "--no-progress"]) == 0  # fmt: skip
    from lesde import open_run

    assert list(open_run("p").attrs["class_names"]) == ["class 0", "class 1", "class 2"]


def test_broken_pipe_is_quiet(tmp_path):
    # `lesde data info … | head -c 1`: the reader closes early; no traceback, exit 0
    cmd = f"{sys.executable} -m lesde.cli data info geomnist --n 200 | head -c 1"
    r = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], capture_output=True, text=True)
    assert "Traceback" not in r.stderr and "BrokenPipe" not in r.stderr, r.stderr
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize(
    ("ck", "labels", "named"),
    [
        ([0, 5, 5], [0, 0, 1, 1], "`checkpoint_step` must be strictly increasing, got 5 then 5"),
        ([0, 5, 11], [0, 0, 1, 1], "`checkpoint_step` must be at most S = 10 steps (10), got 11"),
        ([0, 5, 10], [0, 0, 0, 0], "`probe_label` needs >= 2 probes of every class 0..1"),
    ],
)
def test_analyse_bad_logits_are_one_line_before_any_work(ws, capsys, ck, labels, named):
    # R = 2 trials, S = 10 steps, K = 2 classes, C = 3 checkpoints, P = 4 probes
    rng = np.random.default_rng(0)
    np.savez("l.npz", sample_logits=rng.normal(size=(2, 10, 2)),
             sample_label=rng.integers(0, 2, (2, 10)), probe_logits=rng.normal(size=(2, 3, 4, 2)),
             probe_label=np.array(labels), checkpoint_step=np.array(ck))  # fmt: skip
    assert app(["analyse", "--logits", "l.npz", "--out", "o"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and named in err and "Traceback" not in err, err
    assert not (ws / "o" / "train").exists() and not (ws / "o" / "summary.json").exists()

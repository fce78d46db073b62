"""`lesde train`: end to end through the CLI, and kill -9 of a real process then --resume."""

import subprocess
import sys

import numpy as np

from helpers import kill_when_steps_done
from lesde.cli import app
from lesde.store import open_run, run_status


def _args(npz, out, steps, extra=()):
    return [
        "train",
        "--data",
        str(npz),
        "--trials",
        "3",
        "--steps",
        str(steps),
        "--seed",
        "1",
        "--out",
        str(out),
        "--checkpoints",
        "6",
        "--probe-per-class",
        "2",
        "--no-progress",
        *extra,
    ]


def test_cli_trains_and_records(npz, tmp_path, capsys):
    out = tmp_path / "run"
    assert app(_args(npz, out, 40, ["--chunk-steps", "16", "--n-le-steps", "3"])) == 0
    assert "final val_acc" in capsys.readouterr().out
    ds = open_run(out)
    assert ds.sizes["trial"] == 3 and ds.sizes["step"] == 40
    assert list(ds["le_step"].values) == [1, 6, 40]  # 3 log-spaced steps in [1, 40]
    assert ds.attrs["seed"] == 1
    # the same run again is a no-op; a different one into the same directory is refused
    # (exit 2), naming what differs
    capsys.readouterr()
    assert app(_args(npz, out, 40, ["--chunk-steps", "16", "--n-le-steps", "3"])) == 0
    assert app(_args(npz, out, 41, ["--chunk-steps", "16", "--n-le-steps", "3"])) == 2
    err = capsys.readouterr().err
    assert "n_steps: 40 → 41" in err and "--overwrite" in err and len(err.splitlines()) == 1
    assert app(["train", "--resume", str(tmp_path / "nothing")]) == 2


def test_cli_bad_option_and_divergence(npz, tmp_path, capsys):
    assert app(_args(npz, tmp_path / "x", 0)) == 2
    assert "--steps" in capsys.readouterr().err  # the flag as the user typed it
    assert app(_args(npz, tmp_path / "d", 20, ["--lr", "1e6"])) == 3
    assert "diverged" in capsys.readouterr().err
    assert run_status(tmp_path / "d") == "diverged"


def test_kill_subprocess_then_resume_is_bitwise_identical(npz, tmp_path):
    steps, chunk = 3000, 200
    extra = ["--chunk-steps", str(chunk), "--n-le-steps", "4"]
    cmd = [sys.executable, "-m", "lesde.cli"]
    ref = tmp_path / "ref"
    subprocess.run(cmd + _args(npz, ref, steps, extra), check=True, capture_output=True)

    run = tmp_path / "run"
    proc = subprocess.Popen(
        cmd + _args(npz, run, steps, extra), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    killed_at = kill_when_steps_done(proc, run / "meta.json", 2 * chunk)
    assert killed_at is not None and killed_at < steps, "process finished before the kill"
    assert run_status(run) == "running"  # never looks complete when it is not

    r = subprocess.run(
        cmd + ["train", "--resume", str(run), "--no-progress"], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    a, b = open_run(ref), open_run(run)
    for v in a.data_vars:
        np.testing.assert_array_equal(a[v].values, b[v].values, err_msg=v)

"""Run directories: identity, one writer, integrity of the record, recomputed stages."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lesde.cli import app
from lesde.rundir import LockHeldError, RunDirLock, config_diff, wipe
from lesde.store import CorruptRunError, open_run


def _tree_hash(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != ".lesde.lock"
    }


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A finished `lesde run geomnist --scale tiny` (real training, ~10 s)."""
    out = tmp_path_factory.mktemp("geo") / "run"
    assert app(["run", "geomnist", "--scale", "tiny", "--out", str(out)]) == 0
    return out


@pytest.mark.parametrize(
    ("argv", "differs"),
    [
        (["run", "geomnist", "--scale", "tiny", "--seed", "5"], "seed: 0 → 5"),
        (["run", "geomnist", "--scale", "default"], "scale"),
        (["run", "digits", "--scale", "tiny"], "experiment: 'geomnist' → 'digits'"),
        (["run", "separation", "--scale", "tiny"], "experiment"),
        (["run", "label-noise", "--scale", "tiny"], "experiment"),
    ],
)
def test_mismatched_rerun_is_refused_and_changes_nothing(tiny_run, capsys, argv, differs):
    before = _tree_hash(tiny_run)
    assert app([*argv, "--out", str(tiny_run)]) == 2
    err = capsys.readouterr().err.strip()
    assert differs in err and "--overwrite" in err and len(err.splitlines()) == 1
    assert _tree_hash(tiny_run) == before  # byte-identical afterwards


def test_identical_rerun_recomputes_nothing(tiny_run, capsys):
    before = _tree_hash(tiny_run)
    assert app(["run", "geomnist", "--scale", "tiny", "--out", str(tiny_run)]) == 0
    out = capsys.readouterr().out
    assert "train: done (skipped)" in out and "up to date (skipped)" in out
    assert _tree_hash(tiny_run) == before


def test_new_seed_under_a_deleted_summary_is_refused(tiny_run, tmp_path, capsys):
    # copying the run and deleting its summary must not let another seed reuse the training
    import shutil

    d = tmp_path / "copy"
    shutil.copytree(tiny_run, d)
    (d / "summary.json").unlink()
    assert app(["run", "geomnist", "--scale", "tiny", "--seed", "5", "--out", str(d)]) == 2
    err = capsys.readouterr().err
    assert "training record" in err and "seed: 0 → 5" in err


def test_tiny_run_says_it_did_not_learn(tiny_run):
    # --scale tiny trains to chance: summary, notes and report say the verdicts mean nothing
    import json

    s = json.loads((tiny_run / "summary.json").read_text())
    assert s["analyse"]["learning"]["learned"] is False and s["key"]["learned"] is False
    assert s["notes"][0].startswith("WARNING: this run did not learn")
    html = (tiny_run / "report.html").read_text()
    assert "id='did-not-learn'" in html and "not meaningful" in html


def test_learning_check_known_answers():
    from lesde.experiments.pipeline import learning_check

    rng = np.random.default_rng(0)
    loss = np.stack([np.full(10, 1.1), np.linspace(1.1, 0.1, 10)], axis=1).T  # (10, 2)
    good = learning_check(0.95 + 0.01 * rng.standard_normal((10, 2)), loss, 3)
    assert good["learned"]
    chance = learning_check(1 / 3 + 0.01 * rng.standard_normal((10, 2)), loss, 3)
    assert not chance["learned"] and "chance" in chance["why"]
    flat = learning_check(np.full((10, 2), 0.9), np.full((10, 2), 1.1), 3)
    assert not flat["learned"] and "loss" in flat["why"]


def test_overwrite_starts_afresh_and_refuses_foreign_files(tmp_path):
    d = tmp_path / "r"
    (d / "figures").mkdir(parents=True)
    (d / "summary.json").write_text("{}")
    wipe(d)
    assert list(d.iterdir()) == []
    (d / "my_thesis.tex").write_text("precious")
    with pytest.raises(ValueError, match="my_thesis.tex"):
        wipe(d)
    assert (d / "my_thesis.tex").exists()


def test_config_diff():
    assert config_diff({"a": 1, "b": {"c": [1, 2]}}, {"a": 1, "b": {"c": (1, 2)}}) == []
    assert config_diff({"a": 1}, {"a": 2}) == ["a: 1 → 2"]
    assert config_diff({"a": 1}, {"a": 1, "new": None}) == []  # a new option, unset
    assert config_diff({"a": 1}, {"a": 1, "new": 3}) == ["new: (absent) → 3"]


# ------------------------------------------------------------------ the lock
HOLD = """
import sys
from lesde.rundir import RunDirLock
with RunDirLock(sys.argv[1]):
    print("locked", flush=True)
    sys.stdin.readline()  # hold until the test writes a line
"""


def test_lock_held_by_another_process_names_its_pid(tmp_path, capsys):
    d = tmp_path / "locked"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(d)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "locked"  # synchronised, no sleep
        with pytest.raises(LockHeldError, match=f"PID {holder.pid}"):
            with RunDirLock(d):
                pass
        assert app(["run", "geomnist", "--scale", "tiny", "--out", str(d)]) == 2
        err = capsys.readouterr().err.strip()
        assert f"PID {holder.pid}" in err and len(err.splitlines()) == 1
    finally:
        holder.communicate("\n", timeout=30)
    with RunDirLock(d):  # released when the holder exited
        pass


def test_lock_is_released_when_the_holder_is_killed(tmp_path):
    d = tmp_path / "killed"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(d)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert holder.stdout.readline().strip() == "locked"
    holder.kill()
    holder.wait()
    with RunDirLock(d):  # the kernel dropped the flock with the process
        pass


# ------------------------------------------------------------------ training records
def _train_args(npz, out, steps=600):
    return ["train", "--data", str(npz), "--trials", "4", "--steps", str(steps), "--seed", "3",
            "--out", str(out), "--checkpoints", "5", "--probe-per-class", "2",
            "--chunk-steps", "100", "--no-progress"]  # fmt: skip


def _assert_same_record(a: Path, b: Path) -> None:
    x, y = open_run(a), open_run(b)
    assert set(x.data_vars) == set(y.data_vars)
    for v in x.data_vars:
        np.testing.assert_array_equal(x[v].values, y[v].values, err_msg=v)


@pytest.fixture(scope="module")
def reference(npz, tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "run"
    assert app(_train_args(npz, out)) == 0
    return out


def _chunks(run: Path, var: str = "sample_logits") -> list[Path]:
    return sorted(p for p in (run / "record.zarr" / var).rglob("*")
                  if p.is_file() and p.name != "zarr.json")  # fmt: skip


@pytest.mark.parametrize("damage", ["delete", "truncate"])
def test_damaged_chunk_is_named_and_repaired_bitwise(npz, reference, tmp_path, capsys, damage):
    run = tmp_path / "run"
    assert app(_train_args(npz, run)) == 0
    chunk = _chunks(run)[2]
    rel = str(chunk.relative_to(run))
    if damage == "delete":
        chunk.unlink()
    else:
        chunk.write_bytes(chunk.read_bytes()[:7])
    with pytest.raises(CorruptRunError, match=rel.replace("/", ".")):
        open_run(run)  # never NaN for a run marked complete
    capsys.readouterr()
    assert app(["train", "--resume", str(run), "--no-progress"]) == 0
    assert rel in capsys.readouterr().err  # the damaged file was named
    _assert_same_record(reference, run)


def test_concurrent_writers_exactly_one_trains(npz, reference, tmp_path):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "lesde.cli", *_train_args(npz, run, steps=600)]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]  # fmt: skip
    outs = [p.communicate(timeout=300) for p in procs]
    trained = [o for o, _ in outs if o.startswith("wrote")]
    assert len(trained) == 1, outs
    for p, (o, e) in zip(procs, outs, strict=True):
        if not o.startswith("wrote"):
            # the other one either met the lock or found the run already complete
            assert (p.returncode == 2 and "in use by another lesde process" in e) or (
                p.returncode == 0 and "already complete" in o
            ), (p.returncode, o, e)
        assert "Traceback" not in e
    _assert_same_record(reference, run)


def test_killed_before_meta_json_can_start_again(npz, reference, tmp_path):
    # a run killed between config.json and its first meta.json: both ways forward work
    run = tmp_path / "run"
    assert app(_train_args(npz, run)) == 0
    for p in ("meta.json", "manifest.json"):
        (run / p).unlink()
    assert app(["train", "--resume", str(run), "--no-progress"]) == 0
    _assert_same_record(reference, run)
    (run / "meta.json").unlink()
    assert app(_train_args(npz, run)) == 0  # a fresh `train` into it starts afresh too
    _assert_same_record(reference, run)


# ------------------------------------------------------------------ pipeline stages
def test_damaged_stage_files_and_summary_are_recomputed(tmp_path):
    from lesde.experiments import pipeline as pl

    def train(d):
        pl.synthetic_record(d, n_trials=4, n_steps=400, n_checkpoints=9, seed=0)

    cfg = pl.PipelineConfig(n_paths=20, n_boot=10, tail_boot=20)
    pl.run_pipeline(tmp_path, experiment="s", config={}, train=train, cfg=cfg, log=lambda m: None)
    ref = pl.load_npz(tmp_path / "estimates.npz")
    est = tmp_path / "estimates.npz"
    est.write_bytes(est.read_bytes()[:100])  # truncated
    log: list[str] = []
    with pytest.warns(UserWarning, match="estimates.npz: damaged"):
        pl.run_pipeline(tmp_path, experiment="s", config={}, train=train, cfg=cfg, log=log.append)
    assert [m.split(":")[0] for m in log] == [
        "train",
        "estimate",
        "simulate",
        "analyse",
        "forecast",
    ]
    again = pl.load_npz(tmp_path / "estimates.npz")
    np.testing.assert_array_equal(again["A_L"], ref["A_L"])
    (tmp_path / "summary.json").write_text("{broken")
    log.clear()
    with pytest.warns(UserWarning, match="summary.json: not valid JSON"):
        s = pl.run_pipeline(tmp_path, experiment="s", config={}, train=train, cfg=cfg,
                            log=log.append)  # fmt: skip
    assert s["stages"]["analyse"]["done"] and "estimate" in " ".join(log)


def test_open_run_refuses_a_manifest_mismatch_by_name(reference, tmp_path):
    import shutil

    run = tmp_path / "copy"
    shutil.copytree(reference, run)
    coord = run / "record.zarr" / "probe_label" / "c" / "0"
    assert coord.exists()
    coord.write_bytes(bytes(reversed(coord.read_bytes())))  # same size, other bytes
    with pytest.raises(CorruptRunError, match="probe_label.*checksum"):
        open_run(run)
    assert os.path.exists(run / "manifest.json")


def test_overwrite_empties_a_paper_run_directory(tmp_path):
    # the sub-runs of `lesde run paper` are lesde's own files too
    d = tmp_path / "p"
    for sub in ("geomnist", "label-noise", "figures"):
        (d / sub).mkdir(parents=True)
    (d / "summary.json").write_text("{}")
    wipe(d)
    assert list(d.iterdir()) == []

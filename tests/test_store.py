"""Run store: round trip, incomplete and diverged runs, in-process resume."""

import json

import numpy as np
import pytest

import lesde
from lesde.data.dataset import Dataset
from lesde.store import IncompleteRunError, RunWriter, open_run, run_status
from lesde.train import TrainConfig, TrainingDiverged, train_ensemble


def toy_dataset(n=15, K=3, seed=0):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(K), n)
    x = rng.normal(0, 0.3, (y.size, 1, 32, 32)).astype(np.float32)
    for k in range(K):
        x[y == k, :, 4 + 8 * k : 10 + 8 * k, 6:26] += 1.0
    return Dataset(x, y, x[::3].copy(), y[::3].copy(), ("a", "b", "c"), {"name": "toy"})


CFG = dict(
    n_trials=3, n_steps=60, chunk_steps=20, n_checkpoints=5, probe_per_class=2, le_steps=(10, 45)
)


class _Kill(Exception):
    pass


def _killer(after_steps):
    done = [0]

    def progress(n):
        done[0] += n
        if done[0] >= after_steps:
            raise _Kill

    return progress


def test_round_trip_matches_in_memory(tmp_path):
    data = toy_dataset()
    cfg = TrainConfig(**CFG)
    mem = train_ensemble(data, cfg)
    disk = train_ensemble(data, cfg, out=tmp_path / "run", data_config={"name": "toy"})
    assert run_status(tmp_path / "run") == "complete"
    assert not (tmp_path / "run" / "state").exists()  # resume state dropped when complete
    for v in mem.data_vars:
        np.testing.assert_array_equal(mem[v].values, disk[v].values.astype(mem[v].dtype))
    assert disk["sample_logits"].dims == ("trial", "step", "logit")
    assert disk["probe_logits"].dims == ("trial", "checkpoint", "probe", "logit")
    assert disk["le_E"].dims == ("trial", "le_step", "class_k", "class_l")
    assert "checkpoint_step" in disk.coords and "le_step" in disk.coords
    assert disk.attrs["class_names"] == ["a", "b", "c"] and disk.attrs["status"] == "complete"
    meta = json.loads((tmp_path / "run" / "meta.json").read_text())
    assert meta["steps_done"] == 60 and "torch" in meta["versions"]
    cfg_saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert cfg_saved["train"]["n_steps"] == 60 and cfg_saved["data"] == {"name": "toy"}
    # the top-level re-export is the same function
    assert lesde.open_run is open_run


def test_kill_and_resume_in_process_is_bitwise_identical(tmp_path):
    data = toy_dataset()
    cfg = TrainConfig(**CFG)
    ref = train_ensemble(data, cfg, out=tmp_path / "ref")
    run = tmp_path / "run"
    with pytest.raises(_Kill):
        train_ensemble(data, cfg, out=run, progress=_killer(47))  # mid third chunk
    assert run_status(run) == "running"
    assert json.loads((run / "meta.json").read_text())["steps_done"] == 40
    with pytest.raises(IncompleteRunError, match="incomplete"):
        open_run(run)
    with pytest.warns(UserWarning, match="incomplete"):
        part = open_run(run, allow_incomplete=True)
    assert np.isfinite(part["sample_logits"].values[:, :40]).all()
    res = train_ensemble(data, cfg, out=run, resume=True)
    for v in ref.data_vars:
        np.testing.assert_array_equal(ref[v].values, res[v].values, err_msg=v)


def test_resume_refuses_other_config_and_complete_runs(tmp_path):
    data = toy_dataset()
    cfg = TrainConfig(**CFG)
    with pytest.raises(_Kill):
        train_ensemble(data, cfg, out=tmp_path / "r", progress=_killer(5))
    other = TrainConfig(**{**CFG, "lr": 0.01})
    with pytest.raises(ValueError, match="configuration differs"):
        train_ensemble(data, other, out=tmp_path / "r", resume=True)
    train_ensemble(data, cfg, out=tmp_path / "r", resume=True)
    with pytest.raises(ValueError, match="already complete"):
        train_ensemble(data, cfg, out=tmp_path / "r", resume=True)
    with pytest.raises(FileExistsError, match="not empty"):
        train_ensemble(data, cfg, out=tmp_path / "r")


def test_diverged_run_is_kept_and_marked(tmp_path):
    data = toy_dataset()
    cfg = TrainConfig(**{**CFG, "lr": 1e6, "le_steps": ()})
    with pytest.raises(TrainingDiverged, match="non-finite loss"):
        train_ensemble(data, cfg, out=tmp_path / "d")
    meta = json.loads((tmp_path / "d" / "meta.json").read_text())
    assert meta["status"] == "diverged"
    step = meta["diverged"]["step"]
    assert 1 <= step <= 60
    with pytest.warns(UserWarning, match="diverged"):
        ds = open_run(tmp_path / "d")
    loss = ds["sample_loss"].values
    assert np.isfinite(loss[:, : step - 1]).all()  # data before the divergence are kept
    assert not np.isfinite(loss[:, step - 1]).all()  # the non-finite step itself is recorded
    assert (ds["sample_index"].values[:, step:] == -1).all()  # nothing after it


def test_open_run_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a lesde run"):
        open_run(tmp_path)


def test_run_writer_region_writes(tmp_path):
    w = RunWriter(
        tmp_path / "w",
        variables={"a": (("trial", "step"), (2, 6), np.float32, (2, 3))},
        coords={"step": (("step",), np.arange(1, 7))},
        config={"x": 1},
    )
    w.write("a", (slice(None), slice(0, 3)), np.ones((2, 3), np.float32))
    with pytest.warns(UserWarning):
        ds = open_run(tmp_path / "w", allow_incomplete=True)
    a = ds["a"].values
    assert (a[:, :3] == 1).all() and np.isnan(a[:, 3:]).all()
    w.mark_complete()
    assert open_run(tmp_path / "w").attrs["status"] == "complete"


def test_atomic_writes_keep_old_file_on_failure_and_use_umask_permissions(tmp_path):
    import os
    from dataclasses import dataclass

    from lesde.store import load_npz, save_npz_atomic, write_json_atomic

    @dataclass
    class Cfg:
        a: tuple = (1, 2)

    p = tmp_path / "x.json"
    write_json_atomic(p, {"n": np.int64(3), "v": np.array([0.5]), "cfg": Cfg(), "f": np.nan})
    got = json.loads(p.read_text())
    assert np.isnan(got.pop("f"))  # NaN is kept (as JSON's NaN), not turned into null
    assert got == {"n": 3, "v": [0.5], "cfg": {"a": [1, 2]}}
    mask = os.umask(0)
    os.umask(mask)
    assert (p.stat().st_mode & 0o777) == (0o666 & ~mask)  # not mkstemp's 0600
    # a value JSON cannot hold fails the write: the old file stays whole, no temp is left
    with pytest.raises(TypeError):
        write_json_atomic(p, {"bad": object()})
    assert json.loads(p.read_text())["n"] == 3
    assert sorted(q.name for q in tmp_path.iterdir()) == ["x.json"]
    save_npz_atomic(tmp_path / "a.npz", x=np.arange(3))
    np.testing.assert_array_equal(load_npz(tmp_path / "a.npz")["x"], np.arange(3))

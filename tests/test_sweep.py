"""Sweeps: local sequential, resume, and a real local Ray instance giving the same table."""

from __future__ import annotations

import json

import pytest

from lesde.sweep import SweepConfig, grid, run_sweep

CFG = SweepConfig(datasets=("synthetic",), p_errs=(0.0, 2 / 3), seeds=(0,), scale="tiny")


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep_local")
    return out, run_sweep(CFG, out, log=lambda m: None)


def test_grid_order_and_dirs():
    cfg = SweepConfig(datasets=("synthetic", "digits"), p_errs=(0.0, 0.5), seeds=(1, 2))
    g = grid(cfg)
    assert len(g) == 8 and len({p["dir"] for p in g}) == 8
    assert g[0] == {"dataset": "synthetic", "p_err": 0.0, "seed": 1,
                    "dir": "points/synthetic_p0.0000_s1"}  # fmt: skip


def test_local_sweep_writes_each_point_and_the_table(local):
    out, table = local
    assert table["executor"] == "local"
    assert len(table["rows"]) == 2
    on_disk = json.loads((out / "sweep.json").read_text())
    assert [r["dir"] for r in on_disk["rows"]] == [p["dir"] for p in grid(CFG)]
    for r in table["rows"]:
        assert (out / r["dir"] / "report.html").exists()
        assert 0.0 <= r["key"]["val_acc_final"] <= 1.0
    # the toy label noise removes γ at p_err = 2/3: less separation, lower accuracy
    a0, a1 = (r["key"]["val_acc_final"] for r in table["rows"])
    assert a1 < a0
    assert (out / "figures" / "fig4_label_noise.png").exists()
    assert (out / "report.html").exists()


def test_rerun_resumes_without_recomputing(local):
    out, table = local
    stamp = json.loads((out / CFG_DIR0 / "summary.json").read_text())["stages"]
    again = run_sweep(CFG, out, log=lambda m: None)
    assert again["rows"] == table["rows"]
    assert json.loads((out / CFG_DIR0 / "summary.json").read_text())["stages"] == stamp


CFG_DIR0 = grid(CFG)[0]["dir"]


def test_ray_sweep_matches_local(local, tmp_path):
    import ray  # in the dev extra; `make test` installs it

    _, table = local
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        assert ray.is_initialized()
        rt = run_sweep(CFG, tmp_path, ray_address="auto", log=lambda m: None)
    finally:
        ray.shutdown()
    assert rt["executor"] == "ray:auto"
    # same seeds, same machine: the tasks reproduce the local numbers exactly
    assert rt["rows"] == table["rows"]
    for r in rt["rows"]:
        assert (tmp_path / r["dir"] / "summary.json").exists()


def test_config_validates():
    with pytest.raises(ValueError, match="datasets"):
        SweepConfig(datasets=("mnist",))
    with pytest.raises(ValueError, match="p_errs"):
        SweepConfig(p_errs=(1.5,))

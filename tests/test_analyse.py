"""`lesde analyse`: the whole chain on any record, from a directory or an .npz of logits."""

from __future__ import annotations

import json

import numpy as np
import pytest

import lesde
from lesde.cli import app
from lesde.experiments.synthetic import synthetic_record


@pytest.fixture(scope="module")
def logits_npz(tmp_path_factory):
    """The logits of a particle-process record (known α, β) as a plain .npz."""
    import xarray as xr

    d = tmp_path_factory.mktemp("logits")
    rec = synthetic_record(d / "syn", n_trials=8, n_steps=1500, n_checkpoints=16, seed=0)
    ds = xr.open_zarr(rec / "record.zarr", consolidated=False).load()
    path = d / "logits.npz"
    np.savez(path, sample_logits=ds.sample_logits.values, sample_label=ds.sample_label.values,
             probe_logits=ds.probe_logits.values, probe_label=ds.probe_label.values,
             checkpoint_step=ds.checkpoint_step.values)  # fmt: skip
    return path


def test_analyse_logits_npz_end_to_end(logits_npz, tmp_path, capsys):
    out = tmp_path / "an"
    assert app(["analyse", "--logits", str(logits_npz), "--out", str(out)]) == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["experiment"] == "analyse" and all(s["stages"][k]["done"] for k in s["stages"])
    # the record separates (γ > 0): the finite-time verdict says so, like the LPs
    assert s["analyse"]["separable_fraction_final"] == 1.0
    assert s["key"]["verdict_margin_noise_level"] == "separable"
    assert s["key"]["learned"] is None  # no validation metrics in an .npz of logits
    assert (out / "report.html").stat().st_size > 50_000
    assert (out / "figures" / "fig5_simulated.png").exists()
    # the same call again recomputes nothing; another source into it is refused
    capsys.readouterr()
    assert app(["analyse", "--logits", str(logits_npz), "--out", str(out)]) == 0
    assert "up to date (skipped)" in capsys.readouterr().out
    other = tmp_path / "other.npz"
    other.write_bytes(logits_npz.read_bytes())
    assert app(["analyse", "--logits", str(other), "--out", str(out)]) == 2
    assert "source" in capsys.readouterr().err


def test_analyse_a_training_record_from_python(npz, tmp_path):
    # a record of `lesde train` (the paper's CNN on a toy set), analysed from Python
    run = tmp_path / "t"
    assert app(["train", "--data", str(npz), "--trials", "4", "--steps", "300",
                "--checkpoints", "7", "--schedule", "linear", "--probe-per-class", "3",
                "--out", str(run), "--no-progress"]) == 0  # fmt: skip
    s = lesde.analyse(run, tmp_path / "an", log=lambda m: None)
    assert s["key"]["val_acc_final"] == pytest.approx(
        float(lesde.open_run(run)["val_acc"].values[:, -1].mean())
    )
    assert (tmp_path / "an" / "train").resolve() == run.resolve()  # linked, not copied
    assert "verdict_tail_I" in s["key"] and "r_gamma_I_ci" in s["key"]


def test_analyse_bad_input_is_one_line(logits_npz, tmp_path, capsys):
    d = dict(np.load(logits_npz))
    del d["probe_label"]
    bad = tmp_path / "bad.npz"
    np.savez(bad, **d)
    assert app(["analyse", "--logits", str(bad), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "probe_label" in err
    assert app(["analyse", "--out", str(tmp_path / "o")]) == 2  # neither PATH nor --logits
    assert app(["analyse", str(tmp_path)]) == 2  # not a record
    assert "not a lesde training record" in capsys.readouterr().err

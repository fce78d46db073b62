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


def _bad_logits(d, case):
    """``d`` (the fixture's arrays) broken one way; returns the key the error must name."""
    R, S, K = d["sample_logits"].shape
    ck, py = d["checkpoint_step"].copy(), d["probe_label"].copy()
    C = ck.size
    if case == "ck_repeats":
        ck[3] = ck[2]
        d["checkpoint_step"] = ck
        return "`checkpoint_step` must be strictly increasing"
    if case == "ck_decreases":
        d["checkpoint_step"] = ck[::-1].copy()
        return "`checkpoint_step` must be strictly increasing"
    if case == "ck_past_steps":
        ck[-1] = S + 1
        d["checkpoint_step"] = ck
        return f"`checkpoint_step` must be at most S = {S} steps ({S}), got {S + 1}"
    if case == "ck_not_int":
        d["checkpoint_step"] = ck + 0.5
        return "`checkpoint_step` must be integers"
    if case == "ck_negative":
        d["checkpoint_step"] = ck - 1
        return "`checkpoint_step` must be >= 0, got -1"
    if case == "step_decreases":
        d["step"] = np.arange(S, 0, -1)
        return "`step` must be strictly increasing"
    if case == "step_short":
        d["step"] = np.arange(1, S)
        return f"`step` must be ({S},)"
    if case == "ck_past_step_array":
        d["step"] = np.arange(S)  # 0 … S-1: the last checkpoint (S) is past it
        return f"`checkpoint_step` must be at most the last of `step` ({S - 1})"
    if case == "class_missing":
        py[py == K - 1] = 0
        d["probe_label"] = py
        return f"`probe_label` needs >= 2 probes of every class 0..{K - 1}, got 0 of class {K - 1}"
    if case == "one_probe":
        first = np.flatnonzero(py == 1)
        py[first[1:]] = 0
        d["probe_label"] = py
        return "got 1 of class 1"
    if case == "label_range":
        py[0] = K
        d["probe_label"] = py
        return f"`probe_label` must be integers in [0, {K})"
    if case == "sample_label_range":
        d["sample_label"] = d["sample_label"].copy()
        d["sample_label"][0, 0] = -1
        return "`sample_label` must be integers"
    if case == "nan_logits":
        d["probe_logits"] = d["probe_logits"].copy()
        d["probe_logits"][0, 0, 0, 0] = np.nan
        return "`probe_logits` must be finite, got 1 NaN"
    if case == "val_shape":
        d["val_loss"] = np.zeros((R, C + 1))
        return f"`val_loss` must be (R, C) = ({R}, {C}), got ({R}, {C + 1})"
    if case == "val_acc_shape":
        d["val_acc"] = np.zeros(C)
        return "`val_acc` must be (R, C)"
    if case == "unknown_key":
        d["val_accuracy"] = np.zeros((R, C))
        return "unknown key(s) val_accuracy; the optional keys are step, val_loss, val_acc"
    if case == "empty":
        d["sample_logits"], d["sample_label"] = d["sample_logits"][:, :0], d["sample_label"][:, :0]
        return "needs R, S, C, P >= 1 and K >= 2, got R=8, S=0"
    if case == "class_names":
        d["class_names"] = np.array(["a"] * (K + 1))
        return f"`class_names` must hold K = {K} names, got {K + 1}"
    raise AssertionError(case)


BAD_CASES = ["ck_repeats", "ck_decreases", "ck_past_steps", "ck_not_int", "ck_negative",
             "step_decreases", "step_short", "ck_past_step_array", "class_missing", "one_probe",
             "label_range", "sample_label_range", "nan_logits", "val_shape", "val_acc_shape",
             "class_names", "unknown_key", "empty"]  # fmt: skip


@pytest.mark.parametrize("case", BAD_CASES)
def test_import_logits_validates_up_front(logits_npz, tmp_path, case):
    from lesde.studies.analyse import import_logits

    d = dict(np.load(logits_npz))
    said = _bad_logits(d, case)
    bad = tmp_path / "bad.npz"
    np.savez(bad, **d)
    with pytest.raises(ValueError) as err:
        import_logits(bad, tmp_path / "out" / "train")
    msg = str(err.value)
    assert said in msg and len(msg.splitlines()) == 1, msg
    assert not (tmp_path / "out").exists()  # nothing written


def test_analyse_bad_logits_leave_no_run_directory(logits_npz, tmp_path, capsys):
    import warnings

    d = dict(np.load(logits_npz))
    _bad_logits(d, "class_missing")
    bad = tmp_path / "bad.npz"
    np.savez(bad, **d)
    out = tmp_path / "o"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # refused before any numpy warning
        with pytest.raises(ValueError, match="`probe_label` needs >= 2 probes"):
            lesde.analyse(None, out, logits=bad, log=lambda m: None)
    assert not out.exists()
    assert app(["analyse", "--logits", str(bad), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "probe_label" in err and "finite" not in err
    # the CLI's lock file at most: no train/, no summary
    assert not out.exists() or {p.name for p in out.iterdir()} <= {".lesde.lock"}


def test_analyse_refuses_a_path_and_logits_together(logits_npz, tmp_path):
    with pytest.raises(ValueError, match=r"`path` .* and `logits` .* are alternatives"):
        lesde.analyse(tmp_path, tmp_path / "o", logits=logits_npz, log=lambda m: None)
    assert not (tmp_path / "o").exists()

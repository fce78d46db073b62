"""The typed summary: one schema, old summaries load and render the same, new ones round-trip."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from lesde._progress import LineProgress, progress_bar
from lesde.experiments.pipeline import build_summary
from lesde.experiments.summary import (
    SCHEMA_VERSION,
    VALUES,
    KeyNumbers,
    RunSummary,
    Verdict,
    point_values,
    points_key_numbers,
    read_summary,
    write_summary,
)

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results"
V1 = sorted(RESULTS.glob("**/summary.json"))  # written before the schema had a version


def _v1_line(r: dict) -> str:
    """How schema 1's CLI printed a headline row (the text the typed row must reproduce)."""
    mark = {True: " (agrees with the measurement)", False: " (DISAGREES with the "
            "measurement)", None: ""}[r["agrees"]]  # fmt: skip
    if r["kind"] == "prediction" and r["what"].startswith("forecast") and "RD" in r["what"]:
        mark = f" ({r['why']})"
    elif r["why"]:
        mark += f" — {r['why']}"
    return f"[{r['kind']}] {r['what']}: {r['value']}{mark}"


def test_the_committed_summaries_are_schema_1():
    # the fixtures of the migration: if they are ever rewritten, old files lose their test
    assert len(V1) >= 10
    assert all("schema" not in json.loads(p.read_text()) for p in V1)


@pytest.mark.parametrize("path", V1, ids=lambda p: str(p.relative_to(RESULTS)))
def test_schema_1_loads_and_renders_the_same(path):
    d = json.loads(path.read_text())
    s = read_summary(path.parent)
    assert s.schema == SCHEMA_VERSION
    # the key numbers come back under the same names, in the same order
    assert list(s.key.to_json().items()) == list(d.get("key", {}).items())
    assert [v.line() for v in s.headline] == [_v1_line(r) for r in d.get("headline", [])]
    assert list(s.notes) == d.get("notes", [])
    for k in ("estimate", "simulate", "analyse", "forecast", "config", "pipeline"):
        assert s.get(k) == d.get(k), k  # the mapping view is the stored JSON
    assert all(v.value in VALUES for v in s.headline)


def test_schema_1_headline_gains_vocabulary_values():
    s = read_summary(RESULTS / "demo")
    values = {v.what.split(" (")[0]: v.value for v in s.headline}
    assert values["separable trials at the end"] == "separable"  # 100 % of trials
    assert s.headline[3].value == "beats persistence only"  # skill +0.32, trend better
    tail = [v for v in s.headline if v.what.startswith("tail-index")]
    assert [v.value for v in tail] == ["power law does not fit"] * 2


def test_todays_summary_round_trips(tmp_path):
    # a summary built by today's code from a run's stage numbers: written, read back equal
    d = json.loads((RESULTS / "geomnist-paper" / "summary.json").read_text())
    built = build_summary({k: v for k, v in d.items() if k not in ("headline", "key", "notes")})
    write_summary(tmp_path, built)
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert on_disk["schema"] == SCHEMA_VERSION
    assert all(set(r) >= {"what", "value", "interval", "kind", "agrees", "why"}
               for r in on_disk["headline"])  # fmt: skip
    again = read_summary(tmp_path)
    assert again.to_json() == built.to_json()
    assert again.headline == built.headline
    # the interval of the tail verdict is the bootstrap interval of the estimate stage
    tail = next(v for v in again.headline if v.what.startswith("tail-index") and "L-" in v.what)
    assert list(tail.interval) == d["estimate"]["L"]["r_gamma_ci"]
    assert again.key.models["L"].r_gamma == d["estimate"]["L"]["r_gamma"]


def test_caveats_reach_every_model_statement_not_the_measurements():
    d = json.loads((RESULTS / "demo" / "summary.json").read_text())
    d = {k: v for k, v in d.items() if k not in ("headline", "key", "notes")}
    d["caveats"] = ["trained by torch.optim.Adam, not plain batch-size-1 SGD"]
    s = build_summary(d)
    for v in s.headline:
        assert ("Adam" in v.why) == (v.kind != "measurement"), v.what
    assert s.notes[0].startswith("CAVEAT: trained by torch.optim.Adam")
    assert "caveats" in s.to_json()


def test_a_verdict_outside_the_vocabulary_is_refused():
    with pytest.raises(ValueError, match="`value` must be one of"):
        Verdict("x", "probably separable", "prediction")
    with pytest.raises(ValueError, match="`kind` must be one of"):
        Verdict("x", "separable", "guess")


def test_a_newer_schema_is_refused(tmp_path):
    (tmp_path / "summary.json").write_text(json.dumps({"schema": SCHEMA_VERSION + 1}))
    with pytest.raises(ValueError, match="newer than this lesde reads"):
        read_summary(tmp_path)


def test_key_numbers_parse_what_they_write():
    flat = json.loads((RESULTS / "demo" / "summary.json").read_text())["key"]
    k = KeyNumbers.from_json(flat)
    assert k.forecast.rd == flat["forecast_rd_L"] and k.level["verdict"] == "separable"
    assert k.models["I"].margin_noise_slope_ci == tuple(flat["margin_noise_slope_I_ci"])
    assert k.extra == {}  # every name of a single run is typed
    assert KeyNumbers.from_json(k.to_json()).to_json() == flat  # (NaN != NaN: compare JSON)


def test_points_key_numbers_parse_back():
    parent = read_summary(RESULTS / "label-noise-paper")
    rows = parent.point_summaries(RESULTS / "label-noise-paper")
    key = points_key_numbers("p_err", rows, 3)
    assert key == parent.key.to_json()  # the committed parent was built the same way
    sep = point_values(key, "separable_fraction")  # values as the names print them (:.3g)
    assert sep == {float(f"{v:.3g}"): s.key.separable_fraction_final for v, s in rows}
    cis = point_values(key, "r_gamma_L", suffix="_ci")
    assert cis[0.5] == list(dict(rows)[0.5].key.models["L"].r_gamma_ci)


def test_the_summary_is_a_read_only_mapping():
    s = read_summary(RESULTS / "demo")
    assert isinstance(s, RunSummary) and s["key"]["val_acc_final"] == s.key.val_acc_final
    with pytest.raises(TypeError):
        s["key"] = {}  # type: ignore[index]


def test_progress_outside_a_terminal_prints_lines():
    buf = io.StringIO()  # not a TTY, like a log file
    bar = progress_bar(1000, desc="train geomnist (10 trials)", unit="trial-step", file=buf,
                       every=0)  # fmt: skip
    assert isinstance(bar, LineProgress)
    bar.update(250)
    bar.set_postfix_str("geomnist")
    bar.update(750)
    bar.close()
    lines = buf.getvalue().splitlines()
    assert len(lines) == 3 and "\r" not in buf.getvalue()
    assert lines[0].startswith("train geomnist (10 trials): 25% (250/1k trial-steps)")
    assert "trial-steps/s" in lines[1] and "[geomnist]" in lines[1]
    assert lines[-1].endswith("(done)")
    quiet = io.StringIO()
    slow = progress_bar(10, desc="x", file=quiet)  # default: a line a minute at most
    slow.update(1)
    assert quiet.getvalue() == ""

"""A plugin's mitigation in the report, from the results folder's record alone: its claim, its rows against the
matched placebo, its colours; a damaged record is a warning, never code or markup."""

import json

import numpy as np
import pytest

from sublim.analysis import Options, ReportError, build_report, load_results
from sublim.analysis.figures import arm_styles
from sublim.core.mitigations import check_mitigation

from synthetic import trial_outputs, write_sweep, write_trial
from test_mitigations import Flip

ARMS = [("none", 0.0, "shared"), ("flip", 0.5, "shared"), ("placebo", 1.0, "shared")]
CLAIM = ("Flip: reversing the trait component stops acquisition", "Flipping suppresses acquisition against a placebo.")
SIMS = Options(mediation_sims=20)


def flip_facts() -> dict:
    flip = type("Declared", (Flip,), {"claims": {"flip": CLAIM}, "contrasts": (
        {"claim": "flip", "metric": "trait_gain", "test": "paired t-test", "expect": "<", "arms": "flip",
         "reference": "matched placebo", "role": "primary"},)})
    return check_mitigation(flip, "flip", "test").facts()


def sweep_with(tmp_path, record) -> object:
    folder = write_sweep(tmp_path / "sweep", seeds=6, arms=ARMS)
    sweep = json.loads((folder / "sweep.json").read_text())
    (folder / "sweep.json").write_text(json.dumps({**sweep, "mitigations": record}))
    return folder


def test_a_recorded_plugin_gets_its_claim_colours_and_matched_placebo_without_being_installed(tmp_path):
    folder = sweep_with(tmp_path, {"flip": {**flip_facts(), "plugin": {"distribution": "flip", "version": "1"}}})
    files = build_report(folder, tmp_path / "report", SIMS)
    tests = json.loads(files.stats.read_text())["tests"]
    rows = [(r["arm"], r["reference"], r["role"]) for r in tests if r["claim"] == "flip"]
    assert rows == [("flip@0.5/shared", "placebo@1/shared", "primary")]  # the placebo at 2 × 0.5
    assert any(r["claim"] == "mediation" and r["arm"] == "flip" for r in tests)
    assert f"**Claim.** {CLAIM[1]}" in files.markdown.read_text() and CLAIM[0] in files.markdown.read_text()
    assert arm_styles(load_results(folder).completed)["flip@0.5/shared"][0] == "#123456"


def test_an_unrecorded_or_damaged_record_leaves_a_stand_in_with_a_warning(tmp_path):
    bad = {"flip": {**flip_facts(), "title": "<script>alert(1)</script>"}}
    results = load_results(sweep_with(tmp_path, bad))
    assert any("mitigation 'flip' is not usable (title must be one printable line" in w for w in results.warnings)
    styles = arm_styles(results.completed)
    assert styles["flip@0.5/shared"][0] not in ("#123456", styles["placebo@1/shared"][0])  # its own colour
    files = build_report(tmp_path / "sweep", tmp_path / "report", SIMS)
    assert "<script>" not in files.markdown.read_text() + files.html.read_text()
    assert not [r for r in json.loads(files.stats.read_text())["tests"] if r["claim"] == "flip"]


def test_nothing_a_folder_names_is_imported(tmp_path, monkeypatch):
    """A folder whose arms and record name a module importable here: the report reads names and facts only."""
    (tmp_path / "planted.py").write_text("import pathlib\npathlib.Path(__file__).with_suffix('.ran').touch()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    facts = {**flip_facts(), "name": "planted", "claims": {}, "contrasts": ()}
    folder = write_sweep(tmp_path / "sweep", seeds=3, arms=[("none", 0.0, "shared"), ("planted", 1.0, "shared")])
    sweep = json.loads((folder / "sweep.json").read_text())
    (folder / "sweep.json").write_text(json.dumps({**sweep, "mitigations": {"planted": {
        **facts, "plugin": {"distribution": "planted", "version": "1", "value": "planted:Flip"}}}}))
    build_report(folder, tmp_path / "report", SIMS)
    assert not (tmp_path / "planted.ran").exists()


def test_a_plugin_the_folder_does_not_record_makes_its_trials_invalid_with_the_reason(tmp_path):
    results = load_results(sweep_with(tmp_path, {}))
    flip = results.trials[results.trials["trial_id"].str.contains("flip")]
    assert len(flip) and (flip["status"] == "invalid").all()
    assert flip["error"].str.contains("mitigation").all()
    assert (results.trials.loc[~results.trials.index.isin(flip.index), "status"] == "completed").all()


def test_a_run_folder_reports_a_plugin_from_the_facts_its_summary_records(tmp_path):
    """`sublim run` keeps the mitigation's facts in summary.json, as sweep.json does for a sweep; without them a run
    of a plugin not installed here is invalid, with the reason (and no earlier folder's facts apply)."""
    summary, trace = trial_outputs(0, "flip", 0.5, "shared", np.random.default_rng(0), 0.0)
    write_trial(tmp_path / "run", {**summary, "mitigations": {"flip": flip_facts()}}, trace)
    results = load_results(tmp_path / "run")
    assert results.trials["status"].tolist() == ["completed"] and not results.warnings
    assert arm_styles(results.completed)["flip@0.5/shared"][0] == "#123456"
    write_trial(tmp_path / "bare", summary, trace)
    with pytest.raises(ReportError, match="1 invalid.*mitigation: 'flip' is not allowed"):
        load_results(tmp_path / "bare")

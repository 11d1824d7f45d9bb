"""Results you can trust: diverged and invalid trials are listed per arm and never reach a statistic,
sweep.json's trial ids and each summary's config are verified before they are believed, and a report
goes into place whole or not at all."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sublim import cli
from sublim.analysis import ReportError, build_report, load_results
from sublim.analysis import figures, load, report
from test_analysis_report import ARMS, trial_outputs, write_sweep, write_trial

ARMS2 = ARMS[:2]  # none/shared and none/independent
SEEDS = 4
VICTIM = "t0_none_0_shared"


def sweep(tmp_path: Path, name: str = "sweep", **kwargs) -> Path:
    return write_sweep(tmp_path / name, seeds=SEEDS, arms=kwargs.pop("arms", ARMS2), **kwargs)


def edit_summary(root: Path, trial_id: str, **changes) -> None:
    path = root / "trials" / trial_id / "summary.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def diverge(folder: Path, config: dict, step: int = 7, quantity: str = "loss") -> None:
    """What `sublim sweep` leaves of a diverged trial: diverged.json only."""
    for name in ("summary.json", "trace.parquet"):
        (folder / name).unlink(missing_ok=True)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "diverged.json").write_text(json.dumps({
        "model": "student", "step": step, "quantity": quantity,
        "message": f"the student diverged at step {step}: its {quantity} is not finite",
        "config": config, "versions": {"python": "3"}}))


def recorded_config(root: Path, trial_id: str) -> dict:
    trials = json.loads((root / "sweep.json").read_text())["trials"]
    return next(t["config"] for t in trials if t["trial_id"] == trial_id)


def stats_of(files) -> dict:
    return json.loads(files.stats.read_text())


def assert_one_left_out(stats: dict, status: str) -> None:
    """The trial counts under `status` in its arm and is absent from every statistic over that arm."""
    arms = {row["arm"]: row for row in stats["arms"]}
    assert arms["none/shared"][status] == 1 and arms["none/shared"]["completed"] == SEEDS - 1
    assert stats["data"]["totals"][status] == 1
    tested = [row for row in stats["tests"] if row["arm"] == "none/shared" and row["metric"] == "mean_alignment"]
    assert tested and all(row["n"] == SEEDS - 1 for row in tested)
    (control,) = [row for row in stats["tests"] if row["reference"] == "none/independent"]
    assert control["n"] == SEEDS - 1


# --- statuses ----------------------------------------------------------------------------------------

def test_diverged_trial_is_listed_per_arm_with_its_step_and_excluded(tmp_path):
    root = sweep(tmp_path)
    diverge(root / "trials" / VICTIM, recorded_config(root, VICTIM), step=7, quantity="loss")
    files = build_report(root, mediation_sims=20)
    stats = stats_of(files)
    assert_one_left_out(stats, "diverged")
    assert files.totals == stats["data"]["totals"]
    assert stats["data"]["diverged"] == [{"trial_id": VICTIM, "arm": "none/shared", "model": "student", "step": 7,
                                          "quantity": "loss",
                                          "message": "the student diverged at step 7: its loss is not finite"}]
    assert f"`{VICTIM}` (none/shared), diverged: step 7, student's loss not finite" in files.markdown.read_text()
    trials = pd.read_csv(files.folder / "tables" / "trials.csv").set_index("trial_id")
    assert trials.at[VICTIM, "status"] == "diverged" and trials.at[VICTIM, "diverged_step"] == 7


def test_null_mean_alignment_is_invalid_and_excluded(tmp_path):
    root = sweep(tmp_path)
    edit_summary(root, VICTIM, mean_alignment=None)  # how the writers spell NaN
    stats = stats_of(build_report(root, mediation_sims=20))
    assert_one_left_out(stats, "invalid")
    [row] = stats["data"]["invalid"]
    assert row["trial_id"] == VICTIM and row["reason"] == "summary.json: mean_alignment is null, not a number"


def test_non_finite_alignment_in_the_trace_is_invalid(tmp_path):
    root = sweep(tmp_path)
    path = root / "trials" / VICTIM / "trace.parquet"
    trace = pd.read_parquet(path)
    trace.loc[5, "alignment"] = np.inf
    trace.to_parquet(path, index=False)
    results = load_results(root)
    row = results.trials.set_index("trial_id").loc[VICTIM]
    assert row["status"] == "invalid" and "alignment not finite at 1 of 24 steps (first at step 5)" in row["error"]
    assert VICTIM not in set(results.completed["trial_id"]) and VICTIM not in set(results.steps["trial_id"])


def test_summary_of_another_config_is_invalid(tmp_path):
    root = sweep(tmp_path)
    foreign = {**recorded_config(root, VICTIM), "lr": 1e-3}
    edit_summary(root, VICTIM, config=foreign)
    stats = stats_of(build_report(root, mediation_sims=20))
    assert_one_left_out(stats, "invalid")
    assert stats["data"]["invalid"][0]["reason"] == ("summary.json belongs to another config than sweep.json "
                                                     "records for this trial")


def test_run_folder_holding_only_diverged_json_is_one_clear_line(tmp_path):
    summary, _ = trial_outputs(0, "none", 0.0, "shared", np.random.default_rng(0), 0.0)
    diverge(tmp_path / "run", summary["config"], step=12, quantity="gradient")
    with pytest.raises(ReportError) as caught:
        build_report(tmp_path / "run")
    message = str(caught.value)
    assert "\n" not in message and "no completed trial among 1 (1 diverged)" in message
    assert "diverged at step 12: its gradient is not finite" in message
    assert not (tmp_path / "run" / "report").exists()


# --- verified reading -------------------------------------------------------------------------------

@pytest.mark.parametrize("bad_id", ["../evil", "a/b", ".hidden", "ok\n", 7])
def test_bad_trial_id_is_refused_before_any_trial_file_is_opened(tmp_path, monkeypatch, bad_id):
    root = sweep(tmp_path)
    summary, trace = trial_outputs(0, "none", 0.0, "shared", np.random.default_rng(0), 0.0)
    write_trial(tmp_path / "evil", summary, trace)  # what "../evil" would reach
    listing = json.loads((root / "sweep.json").read_text())
    listing["trials"][1]["trial_id"] = bad_id
    (root / "sweep.json").write_text(json.dumps(listing))

    def opened(*args, **kwargs):
        pytest.fail("a trial's files were read before every id was checked")

    monkeypatch.setattr(load._Loader, "add", opened)
    with pytest.raises(ReportError) as caught:
        build_report(root)
    message = str(caught.value)
    assert "\n" not in message and str(root / "sweep.json") in message and repr(bad_id) in message
    assert not (root / "report").exists()


# --- the report folder --------------------------------------------------------------------------------

def siblings(path: Path) -> dict[str, bytes | None]:
    """What a folder holds, with file contents: to show that nothing was written."""
    return {str(p.relative_to(path)): p.read_bytes() if p.is_file() else None for p in sorted(path.rglob("*"))}


def test_out_that_is_a_file_is_one_line_exit_2_and_nothing_written(tmp_path, monkeypatch, capsys):
    root = sweep(tmp_path)
    out = tmp_path / "stats.json"
    out.write_text("mine\n")
    before = siblings(tmp_path)
    monkeypatch.setattr(report, "load_results", lambda *a: pytest.fail("results read before --out was checked"))
    with pytest.raises(SystemExit) as caught:
        cli.main(["report", str(root), "--out", str(out)])
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{out}: cannot hold the report (a file, not a folder)" in err
    assert siblings(tmp_path) == before


@pytest.mark.parametrize("held", [["notes.txt"], ["stats.json", "notes.txt"], ["figures"],
                                  ["report.md", "stats.json"]])  # report-like names, but not a report sublim made
def test_out_holding_other_files_is_refused_and_left_alone(tmp_path, held):
    root = sweep(tmp_path)
    out = tmp_path / "mine"
    out.mkdir()
    for name in held:
        (out / name).write_text("keep me\n")
    before = siblings(tmp_path)
    with pytest.raises(ReportError) as caught:
        build_report(root, out, mediation_sims=20)
    message = str(caught.value)
    assert "\n" not in message and f"{out}: holds" in message and "expected an absent or empty folder" in message
    assert siblings(tmp_path) == before


def test_out_holding_a_users_report_and_plots_is_refused_and_left_alone(tmp_path):
    """Names are no proof: only a folder holding the marker a report writes is replaced."""
    root = sweep(tmp_path)
    out = tmp_path / "mine"
    (out / "figures").mkdir(parents=True)
    (out / "report.md").write_text("my own notes\n")
    (out / "figures" / "my_plot.png").write_bytes(b"png")
    with pytest.raises(ReportError, match="is not a report sublim made"):
        build_report(root, out, mediation_sims=20)
    assert (out / "report.md").read_text() == "my own notes\n" and (out / "figures" / "my_plot.png").is_file()
    build_report(root, tmp_path / "made", mediation_sims=20)
    assert (tmp_path / "made" / ".sublim-report.json").is_file()
    build_report(root, tmp_path / "made", mediation_sims=20)  # its own report it replaces


def test_crash_while_writing_keeps_the_earlier_report_and_leaves_no_temporary(tmp_path, monkeypatch):
    root = sweep(tmp_path)
    out = tmp_path / "reports" / "latest"
    build_report(root, out, mediation_sims=20)
    before = siblings(tmp_path / "reports")

    def crash(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(figures, "draw_all", crash)
    with pytest.raises(RuntimeError, match="disk on fire"):
        build_report(root, out, mediation_sims=20, mediation_seed=1)
    assert siblings(tmp_path / "reports") == before
    assert [p.name for p in (tmp_path / "reports").iterdir()] == ["latest"]


def test_rerun_over_an_earlier_report_replaces_it_whole(tmp_path):
    out = tmp_path / "out"
    first = build_report(sweep(tmp_path, "with_doses", arms=ARMS[:3]), out, mediation_sims=20)
    assert (out / "figures" / "dose_response.png").is_file() and first.folder == out
    second = build_report(sweep(tmp_path, "no_doses"), out, mediation_sims=20)
    assert not (out / "figures" / "dose_response.png").exists()  # refused now: no stale figure from the first
    assert stats_of(second)["meta"]["name"] == "no_doses" and len(stats_of(second)["arms"]) == 2
    assert all(path.is_file() for path in (second.markdown, second.html, *second.tables, *second.figures))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["no_doses", "out", "with_doses"]


def test_empty_out_folder_takes_the_report(tmp_path):
    out = tmp_path / "empty"
    out.mkdir()
    files = build_report(sweep(tmp_path), out, mediation_sims=20)
    assert files.stats == out / "stats.json" and files.stats.is_file()


def test_markup_from_a_results_folder_reaches_neither_report_as_markup(tmp_path):
    """An error.txt or a sweep name holding HTML or a javascript: link is shown as text in report.md and .html."""
    hostile = '<img src=x onerror="alert(1)"> [click](javascript:alert(1))'
    root = sweep(tmp_path, failed={"t1_none_0_shared"})
    (root / "trials" / "t1_none_0_shared" / "error.txt").write_text(f"Traceback\nRuntimeError: {hostile}\n")
    sweep_json = json.loads((root / "sweep.json").read_text())
    (root / "sweep.json").write_text(json.dumps({**sweep_json, "name": hostile}))
    files = build_report(root, mediation_sims=20)
    markdown, html = files.markdown.read_text(), files.html.read_text()
    assert "<img src=x" not in markdown and "](javascript:" not in markdown
    assert "<img src=x" not in html and "javascript:alert(1)\">" not in html  # no link but the report's own table
    assert set(re.findall(r'<a href="([^"]+)"', html)) == {"tables/tests.csv", "tables/arms.csv"}
    assert "&lt;img src=x" in markdown and "&lt;img src=x" in html


@pytest.mark.parametrize("marker", [None, "{}", '{"written_by": "someone"}', "folder"])
def test_a_folder_without_the_reports_own_marker_is_refused_even_if_it_looks_like_a_report(tmp_path, marker):
    """The earlier-schema guess (a stats.json holding meta and data) is gone: a user's folder that looks like a
    report, or holds a marker sublim did not write, keeps its figures."""
    out = tmp_path / "old_report"
    (out / "figures").mkdir(parents=True)
    (out / "figures" / "mine.png").write_bytes(b"theirs")
    (out / "stats.json").write_text(json.dumps({"meta": {"name": "x"}, "data": {}}))
    if marker == "folder":
        (out / ".sublim-report.json").mkdir()
    elif marker is not None:
        (out / ".sublim-report.json").write_text(marker)
    with pytest.raises(ReportError, match="is not a report sublim made"):
        build_report(sweep(tmp_path), out, mediation_sims=20)
    assert (out / "figures" / "mine.png").read_bytes() == b"theirs"


@pytest.mark.parametrize("damage, reason", [
    (lambda t: pd.concat([t] * 10), "trace.parquet holds 240 rows, expected 24 steps"),
    (lambda t: t.assign(step=t["step"].astype(float)), "trace.parquet holds columns of another schema"),
    (lambda t: t.assign(epoch=1), "trace.parquet: epochs are not 1 to 3 in runs of 8 steps"),
])
def test_a_trace_the_sweep_would_rebuild_is_listed_invalid(tmp_path, damage, reason):
    root = sweep(tmp_path)
    path = root / "trials" / VICTIM / "trace.parquet"
    damage(pd.read_parquet(path)).to_parquet(path, index=False)
    stats = stats_of(build_report(root, mediation_sims=20))
    assert_one_left_out(stats, "invalid")
    [row] = stats["data"]["invalid"]
    assert row["trial_id"] == VICTIM and row["reason"].startswith(reason)

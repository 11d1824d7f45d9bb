"""End to end: synthetic results folders (written as `sublim sweep` and `sublim run` write them) render
a complete report; stats.json holds the numbers report.md shows; degenerate inputs fail clearly or
report what they can; the report never imports torch."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from sublim.analysis import Options, ReportError, analyse, build_report, load_results
from sublim.analysis.document import ci, fmt

from synthetic import ARMS, EPOCHS, GAIN_PER_ALIGNMENT, REPO, arm_label, trial_outputs, write_sweep, write_trial  # noqa: F401


@pytest.fixture(scope="module")
def sweep_report(tmp_path_factory):
    root = write_sweep(tmp_path_factory.mktemp("results") / "demo",
                       failed={"t1_liminal_2_shared"}, missing={"t2_projection_1_shared"})
    files = build_report(root, mediation_sims=100)
    return root, files


# --- a complete report -----------------------------------------------------------------------------

FIGURES = {"trait_gain.png", "alignment_steps.png", "update_alignment_steps.png", "accuracy_epochs.png", "gain_vs_alignment.png",
           "dose_response.png", "per_layer_alignment.png", "first_order.png"}


def rows(stats: dict, **where) -> list[dict]:
    return [row for row in stats["tests"] if all(row[k] == v for k, v in where.items())]


def test_report_has_every_part(sweep_report):
    root, files = sweep_report
    assert files.folder == root / "report"
    for path in (files.markdown, files.html, files.stats, *files.tables, *files.figures):
        assert path.is_file() and path.stat().st_size > 0, path
    assert {p.name for p in files.tables} == {"tests.csv", "trials.csv", "arms.csv", "arm_epochs.csv",
                                              "dose_response.csv", "first_order.csv"}
    assert {p.name for p in files.figures} == FIGURES
    markdown = files.markdown.read_text()
    headings = ["## Settings", "## Claim 1", "## Claim 2", "## Claim 3", "## Claim 4", "## The referee", "## Control",
                "## Update alignment", "## First-order accounting", "## Mediation", "## Which layer carries the drive?",
                "## Methods", "## Appendix"]
    assert [markdown.index(h) for h in headings] == sorted(markdown.index(h) for h in headings)
    assert markdown.count("**Verdict: ") == 6
    for level in ("supported", "contradicted", "not shown", "refused", "zero by construction", "partly supported"):
        assert f"**{level}**:" in markdown  # every verdict level is defined in Methods
    html = files.html.read_text()
    assert html.count('src="data:image/png;base64,') == len(FIGURES) and "figures/" not in html.split("<body>")[1]
    assert not list(files.folder.rglob("*.tmp"))


def test_tests_table_is_the_csv_and_stats_json(sweep_report):
    _, files = sweep_report
    stats = json.loads(files.stats.read_text())
    assert stats["schema"] == 2
    table = pd.read_csv(files.folder / "tables" / "tests.csv")
    assert len(table) == len(stats["tests"]) > 50
    for column in ("claim", "arm", "reference", "metric", "test", "alternative", "margin", "n", "estimate", "ci_low",
                   "ci_high", "p", "verdict"):
        assert column in table
    assert set(table["alternative"]) == {"two-sided", "equivalence", "non-inferiority"}
    assert set(table["verdict"]) <= {"supported", "contradicted", "not shown", "refused", "zero by construction",
                                     "descriptive"}
    # no p-value from pooled steps: every tested row's n is a number of seeds
    assert table.loc[table["p"].notna(), "n"].max() <= 6


def test_report_counts_failed_and_missing_trials(sweep_report):
    _, files = sweep_report
    stats = json.loads(files.stats.read_text())
    assert stats["data"]["totals"] == {"expected": 30, "completed": 28, "incomplete": 0, "diverged": 0, "invalid": 0,
                                       "failed": 1, "missing": 1}
    arms = {row["arm"]: row for row in stats["arms"]}
    assert arms["liminal@2/shared"]["failed"] == 1 and arms["projection@1/shared"]["missing"] == 1
    assert stats["data"]["failed"][0]["error"] == "RuntimeError: CUDA out of memory"
    markdown = files.markdown.read_text()
    # only the statuses some arm has, and only the arms short of trials
    assert "| arm | completed | failed | missing |" in markdown and "| liminal@2/shared | 5 | 1 | 0 |" in markdown
    assert "| none/shared | 6 | 0 | 0 |" not in markdown
    assert "28 of 30 trials completed (6 seeds), 1 failed, 1 missing" in markdown
    trials = pd.read_csv(files.folder / "tables" / "trials.csv")
    assert len(trials) == 30 and set(trials["status"]) == {"completed", "failed", "missing"}


def test_planted_synthetic_sweep_gets_the_planted_verdicts(sweep_report):
    _, files = sweep_report
    verdicts = {claim["id"]: claim["verdict"] for claim in files.claims}
    assert verdicts["claim1"] == "supported"  # alignment planted positive in every epoch
    assert verdicts["claim3"] == "supported"  # most of the gain planted in epoch 1
    assert verdicts["control"] == "supported"  # independent init planted at zero gain, shared well above
    stats = json.loads(files.stats.read_text())
    (slope,) = rows(stats, test="slope", arm="none/shared", metric="trait_gain ~ mean_alignment")
    assert slope["ci_low"] < GAIN_PER_ALIGNMENT < slope["ci_high"]


def test_settings_section_names_what_differs_from_the_protocol(sweep_report):
    _, files = sweep_report
    stats = json.loads(files.stats.read_text())
    assert {row["setting"]: (row["values"], row["default"]) for row in stats["settings"]} == {
        "epochs": ([EPOCHS], 5), "noise_count": ([8192], 50000)}
    markdown = files.markdown.read_text()
    assert "| epochs | 3 | 5 |" in markdown and "This sweep is too small for its verdicts: 6 seed(s)" in markdown


def _flatten(value) -> list:
    if isinstance(value, dict):
        return [x for v in value.values() for x in _flatten(v)]
    if isinstance(value, list):
        return [x for v in value for x in _flatten(v)]
    return [value]


NUMBER = re.compile(r"(?<![\w@.=])-?\d+(?:\.\d+)?(?:e[-+]\d+)?")
WORDS = ("comparison", "verdict", "what it is", "test", "tests")  # columns of words


def shown(value: float) -> set[str]:
    """Every way the report may print `value`: 3 significant digits, or an interval's fixed decimals."""
    fixed = {re.sub(r"^-(?=0\.?0*$)", "", f"{value:.{d}f}") for d in range(8)}
    return {fmt(value)} | fixed | {f"{value:.{d}e}" for d in range(4)}


def assert_table_numbers_in_stats(files) -> int:
    """Every number in a report.md table cell (but the first, naming the row, and columns of words) is a number
    of stats.json; returns how many were checked."""
    stats = json.loads(files.stats.read_text())
    known = {text for v in _flatten(stats) if isinstance(v, (int, float)) and not isinstance(v, bool)
             and math.isfinite(v) for text in shown(v)}
    checked = 0
    for block in files.markdown.read_text().split("\n\n"):
        lines = block.splitlines()
        if not lines or not lines[0].startswith("| "):
            continue
        header = [c.strip() for c in lines[0].strip("|").split(" | ")]
        for row in lines[2:]:
            cells = list(zip(header, (c.strip() for c in row.strip("|").split(" | "))))[1:]
            for name, cell in cells:
                if name in WORDS:
                    continue
                for number in NUMBER.findall(cell.replace("(90%)", "").replace("\u2212", "-")):
                    assert number in known, f"{number} in {row!r} is not in stats.json"
                    checked += 1
    return checked


def test_every_number_in_the_report_tables_is_in_stats_json(sweep_report):
    _, files = sweep_report
    stats = json.loads(files.stats.read_text())
    assert assert_table_numbers_in_stats(files) > 300
    (m,) = rows(stats, claim="claim1", role="primary")
    assert f"{ci(m['estimate'], m['ci_low'], m['ci_high'])} | {fmt(m['p'])}" in files.markdown.read_text()


def tables_of(markdown: str) -> list[list[list[str]]]:
    """Every table of report.md as rows of cells (the header first)."""
    return [[[c.strip() for c in line.strip("|").split(" | ")] for line in block.splitlines()
             if not line.startswith("| ---")] for block in markdown.split("\n\n") if block.startswith("| ")]


def test_the_report_leads_with_each_claims_verdict_and_estimates(sweep_report):
    _, files = sweep_report
    markdown = files.markdown.read_text()
    title, first = markdown.split("\n\n")[:2]
    assert title.startswith("# Subliminal learning report") and first.startswith(
        "| claim | verdict | key estimates: mean [95% CI] over seeds |")
    lead = tables_of(markdown)[0][1:]
    interval = re.compile(r"\u2212?\d[\d.]* \[\u2212?[\d.]+, \u2212?[\d.]+\]")
    assert [(row[1], interval.search(row[2]) is not None) for row in lead] == [
        (f"**{claim['verdict']}**", claim["verdict"] != "undetermined") for claim in files.claims]
    assert markdown.index("![trait_gain](figures/trait_gain.png)") < markdown.index("## Settings")
    stats = json.loads(files.stats.read_text())
    (m,) = rows(stats, claim="claim1", role="primary")
    assert f"mean alignment (none): {ci(m['estimate'], m['ci_low'], m['ci_high'])}" in lead[0][2]


def test_no_table_has_a_column_of_zeros_and_numbers_stay_on_one_line(sweep_report):
    _, files = sweep_report
    for table in tables_of(files.markdown.read_text()):
        for column in list(zip(*table))[1:]:
            assert set(column[1:]) - {"0", ""}, f"column {column[0]!r} is all zero or empty"
    html = files.html.read_text()
    assert '<td class="n">0.' in html and ".n, .w { white-space: nowrap; }" in html


def test_the_report_names_no_file_outside_its_folder(sweep_report):
    _, files = sweep_report
    for text in (files.markdown.read_text(), files.html.read_text()):
        assert "PROTOCOL" not in text
        assert set(re.findall(r"\]\(([^)]+)\)", text)) <= {"tables/tests.csv", "tables/arms.csv"} | {
            f"figures/{name}" for name in FIGURES}
        assert set(re.findall(r'href="([^"]+)"', text)) <= {"tables/tests.csv", "tables/arms.csv"}
    assert '<a href="tables/tests.csv"><code>tables/tests.csv</code></a>' in files.html.read_text()


def test_stats_json_is_strict_json(sweep_report):
    _, files = sweep_report
    text = files.stats.read_text()
    json.loads(text, parse_constant=lambda name: pytest.fail(f"stats.json holds {name}"))


def test_report_is_reproducible(sweep_report, tmp_path):
    root, files = sweep_report
    again = build_report(root, tmp_path / "again", mediation_sims=100)
    assert json.loads(again.stats.read_text())["tests"] == json.loads(files.stats.read_text())["tests"]


def test_notebook_api_gives_trials_steps_and_tests(sweep_report):
    root, _ = sweep_report
    results = load_results(root)
    trials, tests = analyse(results, Options(mediation_sims=20))
    assert len(trials) == 28 and "predicted_trait_loss_change" in trials and len(results.steps) == 28 * 24
    assert {"claim", "estimate", "verdict"} <= set(tests.columns)


# --- the command -------------------------------------------------------------------------------------

def test_cli_main_writes_report_and_errors_in_one_line(tmp_path, capsys):
    import argparse

    from sublim.cli import report

    parser = argparse.ArgumentParser()
    report.add_arguments(parser)
    root = write_sweep(tmp_path / "small", seeds=3, arms=ARMS[:2])
    args = parser.parse_args([str(root), "--out", str(tmp_path / "r"), "--mediation-sims", "50"])
    assert report.main(args) == 0
    assert (tmp_path / "r" / "report.html").is_file()
    out = capsys.readouterr().out
    assert "report.md" in out and "warning: This sweep is too small for its verdicts: 3 seed(s)" in out
    stats = json.loads((tmp_path / "r" / "stats.json").read_text())
    for claim in stats["claims"]:  # one line per claim: its verdict, title and key estimates
        (line,) = [line for line in out.splitlines() if claim["title"] in line]
        assert line.split()[0] == claim["verdict"].split()[0] and line.endswith(claim["estimates"])
    (m,) = rows(stats, claim="claim1", role="primary")
    assert f"mean alignment (none): {ci(m['estimate'], m['ci_low'], m['ci_high'])}" in out
    with pytest.raises(report.USER_ERRORS) as caught:
        report.main(parser.parse_args([str(tmp_path / "nowhere")]))
    message = str(caught.value)
    assert "\n" not in message and str(tmp_path / "nowhere") in message and "sweep.json" in message


def test_report_needs_no_torch(tmp_path):
    root = write_sweep(tmp_path / "small", seeds=3, arms=ARMS[:3])
    code = ("import sys; import sublim.analysis as analysis; "
            f"analysis.build_report({str(root)!r}, {str(tmp_path / 'r')!r}, mediation_sims=20); "
            "bad = [m for m in ('torch', 'ray') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


# --- degenerate inputs -------------------------------------------------------------------------------

def test_empty_folder_is_not_a_results_folder(tmp_path):
    with pytest.raises(ReportError, match="not a results folder; expected a results folder holding sweep.json"):
        build_report(tmp_path)


def test_missing_folder_and_unreadable_sweep_json(tmp_path):
    with pytest.raises(ReportError, match="no such folder"):
        build_report(tmp_path / "absent")
    (tmp_path / "sweep.json").write_text("{not json")
    with pytest.raises(ReportError, match="sweep.json: unreadable"):
        build_report(tmp_path)
    (tmp_path / "sweep.json").write_text(json.dumps({"name": "x", "trials": []}))
    with pytest.raises(ReportError, match="lists no trials; nothing to analyse"):
        build_report(tmp_path)


def test_unusable_output_folder_and_options(tmp_path):
    root = write_sweep(tmp_path / "ok", seeds=1, arms=ARMS[:1])
    with pytest.raises(ReportError, match="sweep.json: cannot hold the report"):
        build_report(root, root / "sweep.json")
    with pytest.raises(ReportError, match=r"mediation simulations \(3\) too few"):
        build_report(root, mediation_sims=3)


def test_all_trials_failed_is_a_clear_error(tmp_path):
    arms = ARMS[:2]
    failed = {f"t{s}_{m}_{st:g}_{i}" for s in range(3) for m, st, i in arms}
    root = write_sweep(tmp_path / "allfailed", seeds=3, arms=arms, failed=failed)
    with pytest.raises(ReportError) as caught:
        build_report(root)
    message = str(caught.value)
    assert "no completed trial among 6 (6 failed)" in message and "CUDA out of memory" in message
    assert "\n" not in message


def test_one_trial_run_folder_reports_and_refuses_the_rest(tmp_path):
    rng = np.random.default_rng(1)
    summary, trace = trial_outputs(0, "none", 0.0, "shared", rng, 0.0)
    write_trial(tmp_path / "run", summary, trace)
    files = build_report(tmp_path / "run", mediation_sims=20)
    stats = json.loads(files.stats.read_text())
    assert stats["data"]["totals"]["completed"] == 1
    (m,) = rows(stats, claim="claim1", role="primary")
    reason = "needs at least 3 seeds with a finite mean_alignment in none/shared, has 1"
    assert m["verdict"] == "refused" and m["note"] == reason
    assert all(claim["verdict"] == "undetermined" for claim in files.claims)
    markdown = files.markdown.read_text()
    assert reason in markdown and "nan" not in markdown.lower()
    assert "Figure `dose_response` not drawn" in markdown and "This run is too small for its verdicts: 1 seed(s)" \
        in markdown


def test_a_trace_without_the_newer_columns_reports_and_a_summary_without_a_field_is_invalid(tmp_path):
    """Columns newer than a folder (update alignment) may be absent: missing numbers, a warning. A summary field
    every trial has written is not optional: without it the trial is invalid, as the sweep would rebuild it."""
    root = write_sweep(tmp_path / "cols", seeds=4, arms=ARMS[:3])
    for folder in (root / "trials").iterdir():
        trace = pd.read_parquet(folder / "trace.parquet").drop(columns=["update_alignment", "update_trait_change"])
        trace.to_parquet(folder / "trace.parquet")
    summary = json.loads((root / "trials" / "t0_none_0_shared" / "summary.json").read_text())
    del summary["mean_alignment"]
    (root / "trials" / "t0_none_0_shared" / "summary.json").write_text(json.dumps(summary))
    files = build_report(root, mediation_sims=20)
    stats = json.loads(files.stats.read_text())
    assert "trace column 'update_alignment' absent in 11 trial(s)" in " ".join(stats["data"]["warnings"])
    assert stats["data"]["invalid"] == [{"trial_id": "t0_none_0_shared", "arm": "none/shared",
                                         "reason": "summary.json lacks mean_alignment"}]
    assert "refused" in stats["figures"]["update_alignment_steps"]
    assert "file" in stats["figures"]["alignment_steps"]  # what does not need the columns still reports
    (control,) = rows(stats, claim="control", test="paired t-test")
    assert control["n"] == 3 and control["verdict"] == "supported"


def test_incomplete_trial_is_counted_but_not_analysed(tmp_path):
    root = write_sweep(tmp_path / "inc", seeds=3, arms=ARMS[:1])
    path = root / "trials" / "t0_none_0_shared" / "summary.json"
    summary = json.loads(path.read_text())
    summary["epochs_done"] = 1
    path.write_text(json.dumps(summary))
    results = load_results(root)
    assert results.trials.set_index("trial_id").at["t0_none_0_shared", "status"] == "incomplete"
    assert len(results.completed) == 2 and set(results.steps["trial_id"]) == set(results.completed["trial_id"])


def test_nan_written_as_null_loads_as_nan(tmp_path):
    root = write_sweep(tmp_path / "nulls", seeds=3, arms=ARMS[:1])
    path = root / "trials" / "t0_none_0_shared" / "summary.json"
    summary = json.loads(path.read_text())
    summary["final_distill_loss"] = None
    path.write_text(json.dumps(summary))
    trials = load_results(root).trials.set_index("trial_id")
    assert math.isnan(trials.at["t0_none_0_shared", "final_distill_loss"])
    assert trials.at["t1_none_0_shared", "acc_epoch_3"] == pytest.approx(trials.at["t1_none_0_shared", "student_acc"])

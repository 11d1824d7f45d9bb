"""The whole report from a results folder: load, compute, judge, draw, and write

    report.md, report.html (self-contained), stats.json (every number), tables/*.csv, figures/*.png

into one folder, built whole beside it and renamed into place: never a partial report. The Markdown
and HTML are built from the statistics' answers alone, and stats.json holds every answer whole, so
every number they show is in it.
"""

from __future__ import annotations

import dataclasses
import math
import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import pandas as pd

from sublim.core.files import atomic_write, write_json, write_text

from . import claims, figures
from .answers import (AlignmentByEpoch, ArmComparison, CriticalPeriod, DoseResponse, Drawn, Estimate,
                      FixedEffectsRegression, MediationResult, MeanTest, MixedRegression, NonInferiority, Paired,
                      Positivity, PositiveSteps, PowerEntry, Refused, Regressions, Stats, UpdateAlignment, jsonable)
from .document import Block, Bullets, Heading, Image, Paragraph, Table, fmt, to_html, to_markdown
from .errors import ReportError
from .load import STATUSES, Results, load_results
from .stats import (ALPHA, BASELINE, CONFIDENCE, MARGIN, MAX_SEEDS, MEDIATION_SIMS, MIN_DISTINCT_X, MIN_REGRESSION_N,
                    MIN_TEST_N, MIN_WILCOXON_N, POWER, arm_table, compute_stats, epoch_table)

CI = f"{CONFIDENCE:.0%} CI"
REPORT_OUTPUTS = ("report.md", "report.html", "stats.json", "tables", "figures")  # all a report folder holds
REPORT_MARKS = ("stats.json", "report.md")  # what makes a folder an earlier report, to be replaced whole
EXPECTED_OUT = "expected an absent or empty folder, or an earlier sublim report to replace"
FIGURE_CAPTIONS = {
    "alignment_steps": "Alignment cos(g_distill, g_trait) at each optimizer step, mean across trials per arm with "
                       f"its {CI} band; the dashed line is 0.",
    "accuracy_epochs": f"Student test accuracy after each distillation epoch, mean per arm with its {CI} band; "
                       "the dotted line is chance.",
    "gain_vs_alignment": "Trait gain against mean alignment, one point per trial, with the OLS line and its "
                         f"{CI} band (HC3).",
    "dose_response": f"Trait gain and mean alignment against mitigation strength: trials and mean ± {CI}.",
    "update_alignment_steps": "Update alignment cos(−Δθ, g_trait), the step Adam applied against the trait gradient, "
                              f"at each optimizer step: mean across trials per arm with its {CI} band; the dashed "
                              "line is 0.",
    "per_layer_alignment": "Per-trial mean alignment within each layer's weights and bias, mean per arm with its "
                           f"{CI}; the dashed line is 0.",
}


@dataclass
class ReportFiles:
    """Where the report went."""

    folder: Path
    markdown: Path
    html: Path
    stats: Path
    tables: list[Path]
    figures: list[Path]
    claims: list[dict[str, str]]  # id, title, claim, statistic, verdict, words
    totals: dict[str, int]  # trials expected and by status, as stats.json's data.totals


def build_report(results_path: str | Path, out: str | Path | None = None, mediation_sims: int = MEDIATION_SIMS,
                 mediation_seed: int = 0, margin: float = MARGIN) -> ReportFiles:
    """Write the report of the results folder `results_path` into `out` (default `results_path/report`).

    `margin` is the non-inferiority margin, a fraction of none/shared's mean final distillation loss.
    Bad input is refused before any work. The report is built whole in a temporary sibling folder and
    renamed into place, so a failure leaves no partial output and an earlier report as it was."""
    if mediation_sims < 10:
        raise ReportError(f"mediation simulations ({mediation_sims}) too few for an interval; expected at least 10")
    if not (isinstance(margin, (int, float)) and math.isfinite(margin) and margin > 0):
        raise ReportError(f"non-inferiority margin {margin!r} is not a positive finite fraction; expected e.g. 0.05 "
                          "(5% of none/shared's mean final distillation loss)")
    # absolute, so that '.' and 'a/..' have a name and a parent to build beside
    folder = Path(os.path.abspath(out if out is not None else Path(results_path) / "report"))
    _check_out(folder)
    results = load_results(results_path)
    stats = compute_stats(results, mediation_sims=mediation_sims, mediation_seed=mediation_seed, margin=margin)
    staging = _staging(folder)
    try:
        files = _write(results, stats, staging)
        _swap_in(staging, folder)
    except BaseException as error:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(error, OSError):
            raise ReportError(f"{folder}: cannot write the report ({error}); an earlier report there is "
                              "unchanged") from None
        raise
    return _relocated(files, staging, folder)


def _check_out(folder: Path) -> None:
    """Refuse, before any work, a folder the report must not replace, so that it never deletes what it did
    not write: a link, a file, or a folder holding anything but an earlier report (recognised by its
    stats.json or report.md and nothing else beside it)."""
    if folder.is_symlink():
        raise ReportError(f"{folder}: cannot hold the report (a symbolic link); {EXPECTED_OUT}")
    if folder.exists() and not folder.is_dir():
        raise ReportError(f"{folder}: cannot hold the report (a file, not a folder); {EXPECTED_OUT}")
    if folder.is_dir():
        try:
            names = {entry.name for entry in folder.iterdir()}
        except OSError as error:
            raise ReportError(f"{folder}: cannot hold the report ({error.strerror}); {EXPECTED_OUT}") from None
        foreign = sorted(names - set(REPORT_OUTPUTS))
        if foreign:
            shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
            raise ReportError(f"{folder}: holds {shown}, which no report writes; {EXPECTED_OUT}")
        if names and not names & set(REPORT_MARKS):
            raise ReportError(f"{folder}: holds {', '.join(sorted(names))} but no {' or '.join(REPORT_MARKS)}, so "
                              f"not an earlier report; {EXPECTED_OUT}")
    _check_creatable(folder)


def _check_creatable(folder: Path) -> None:
    """The nearest existing folder above `folder` must take new folders: the report and its temporary."""
    ancestor = folder.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ReportError(f"{folder}: cannot hold the report ({ancestor} is not a folder); {EXPECTED_OUT}")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise ReportError(f"{folder}: cannot hold the report ({ancestor} is read-only); {EXPECTED_OUT}")


def _staging(folder: Path) -> Path:
    """A fresh temporary folder beside `folder` (same file system, so renaming it into place is atomic)."""
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.", suffix=".tmp"))
        os.chmod(staging, 0o755)  # mkdtemp's 0700 would make the report private to its writer
    except OSError as error:
        raise ReportError(f"{folder}: cannot hold the report ({error.strerror}); {EXPECTED_OUT}") from None
    return staging


def _write(results: Results, stats: Stats, folder: Path) -> ReportFiles:
    """Every file of the report into `folder`: figures, tables, stats.json, report.md and report.html."""
    epochs = epoch_table(results.completed)
    drawn = figures.draw_all(results.steps, results.completed, epochs, stats.dose_response, folder / "figures",
                             layers=stats.per_layer)
    judged = claims.judge(stats)
    tables = {"trials": results.trials, "arms": arm_table(results.trials), "arm_epochs": epochs,
              "dose_response": _dose_table(stats.dose_response), "per_layer": _layer_table(stats.per_layer),
              "power": _power_table(stats.power)}
    table_paths = []
    for name, table in tables.items():
        path = folder / "tables" / f"{name}.csv"
        atomic_write(path, lambda tmp, t=table: t.to_csv(tmp, index=False))
        table_paths.append(path)
    files = ReportFiles(folder=folder, markdown=folder / "report.md", html=folder / "report.html",
                        stats=folder / "stats.json", tables=table_paths,
                        figures=[folder / f.file for f in drawn.values() if isinstance(f, Drawn)], claims=judged,
                        totals=stats.data.totals)
    write_json(files.stats, jsonable({**stats.to_json(), "figures": drawn, "claims": judged}))
    blocks = document(stats, drawn, judged)
    write_text(files.markdown, to_markdown(blocks))
    write_text(files.html, to_html(blocks, f"Subliminal learning report: {stats.meta.name}", folder))
    return files


def _swap_in(staging: Path, folder: Path) -> None:
    """Rename the built report onto `folder`; an earlier report there is renamed aside first (and back if
    the rename fails), and removed once the new one is in place."""
    if not os.path.lexists(folder):
        os.rename(staging, folder)
        return
    aside = folder.with_name(f".{folder.name}.{uuid.uuid4().hex[:12]}.old")
    os.rename(folder, aside)
    try:
        os.rename(staging, folder)
    except BaseException:
        os.rename(aside, folder)
        raise
    shutil.rmtree(aside, ignore_errors=True)


def _relocated(files: ReportFiles, staging: Path, folder: Path) -> ReportFiles:
    """The report's paths where it now lies, instead of where it was built."""
    def moved(path: Path) -> Path:
        return folder / path.relative_to(staging)

    return dataclasses.replace(files, folder=folder, markdown=moved(files.markdown), html=moved(files.html),
                               stats=moved(files.stats), tables=[moved(p) for p in files.tables],
                               figures=[moved(p) for p in files.figures])


def _layer_table(layers: dict[str, dict[str, MeanTest | Refused]]) -> pd.DataFrame:
    """One row per arm and layer: the test of the layer's per-trial mean alignment, or why it was refused."""
    rows = [{"arm": arm, "layer": layer, **jsonable(result)} for arm, by_layer in layers.items()
            for layer, result in by_layer.items()]
    return pd.DataFrame(rows).drop(columns=["wilcoxon"], errors="ignore")


def _power_table(entries: list[PowerEntry]) -> pd.DataFrame:
    """One row per claim's primary test: the seeds it needs, or why that cannot be said."""
    return pd.DataFrame([jsonable(entry) for entry in entries])


def _dose_table(doses: dict[str, DoseResponse | Refused]) -> pd.DataFrame:
    rows = [{"mitigation": kind, "strength": level.strength, **level.trait_gain.columns("trait_gain"),
             **level.mean_alignment.columns("mean_alignment")}
            for kind, result in doses.items() if isinstance(result, DoseResponse) for level in result.levels]
    return pd.DataFrame(rows)


# --- the document --------------------------------------------------------------------------------

def _span(point: Any, low: Any, high: Any) -> str:
    return f"{fmt(point)} [{fmt(low)}, {fmt(high)}]"


def _interval(result: Estimate | Refused) -> str:
    """'value [low, high]' for a table cell, or that it was refused."""
    return "refused" if isinstance(result, Refused) else _span(result.point, result.ci_low, result.ci_high)


def _p(result: Any) -> str:
    return "refused" if isinstance(result, Refused) else fmt(result.p)


def _with_p(result: MeanTest | Refused) -> str:
    return "refused" if isinstance(result, Refused) else f"{_interval(result)} p={fmt(result.p)}"


def _test_cells(test: MeanTest | Refused, wilcoxon: bool = False) -> list[str]:
    """n, mean [CI], t-test p, Wilcoxon p (if asked) and Cohen's d; a refused test's cells say so."""
    if isinstance(test, Refused):
        return ["n/a", "refused", "refused", *(["refused"] if wilcoxon else []), "n/a"]
    return [fmt(test.n), _interval(test), fmt(test.p), *([_p(test.wilcoxon)] if wilcoxon else []),
            fmt(test.cohens_d)]


def _table(header: list[str], rows: list[list[str]]) -> list[Block]:
    """A table, or nothing when there are no rows (the verdict then says what is missing)."""
    return [Table(header, rows)] if rows else []


def _refusals(results: dict[str, Any]) -> list[Block]:
    """The reasons of refused statistics, listed under their table, each reason once with what it refused."""
    by_reason: dict[str, list[str]] = {}
    for name, result in results.items():
        if isinstance(result, Refused):
            by_reason.setdefault(result.reason, []).append(name)
    items = [f"{', '.join(names)}: {reason}" for reason, names in by_reason.items()]
    return [Paragraph("Refused (not enough data):"), Bullets(items)] if items else []


def _claim_and_statistic(claim: dict[str, str]) -> list[Block]:
    return [Paragraph(f"**Claim.** {claim['claim']}"), Paragraph(f"**Statistic.** {claim['statistic']}")]


def _conclusion(claim: dict[str, str]) -> Paragraph:
    return Paragraph(f"**Verdict: {claim['verdict']}.** {claim['words']}")


def _figure(drawn: dict[str, Drawn | Refused], name: str) -> list[Block]:
    figure = drawn[name]
    if isinstance(figure, Refused):
        return [Paragraph(f"Figure `{name}` not drawn: {figure.reason}.")]
    return [Image(figure.file, FIGURE_CAPTIONS[name])]


def _trial_list(title: str, rows: list[dict[str, Any]], why: Callable[[dict[str, Any]], str]) -> list[Block]:
    """Trials no statistic sees, each with what happened to it (the first 20; stats.json has them all)."""
    if not rows:
        return []
    shown = rows[:20]
    return [Paragraph(f"{title} trials ({len(rows)}, first {len(shown)} shown):"),
            Bullets([f"`{row['trial_id']}` ({row['arm']}): {why(row)}" for row in shown])]


def _data_section(stats: Stats) -> list[Block]:
    data, meta = stats.data, stats.meta
    totals = data.totals
    blocks: list[Block] = [
        Heading("Data"),
        Paragraph(f"Results folder `{meta.results}` ({data.source}): {totals['expected']} trials expected, "
                  + ", ".join(f"{totals[s]} {s}" for s in STATUSES)
                  + f"; {data.seeds} seeds among completed trials. Every statistic below uses completed trials "
                  "only; 'incomplete' trials stopped before their last epoch, 'diverged' ones on a non-finite loss, "
                  "gradient or parameter, and 'invalid' ones left non-finite numbers or a summary of another "
                  "config."),
        Table(["arm", "expected", *STATUSES], [[row["arm"], *(fmt(row[k]) for k in ("expected", *STATUSES))]
                                               for row in data.arms]),
    ]
    teacher = data.teacher_acc
    blocks.append(Paragraph(f"Teacher test accuracy over {teacher.n} distinct teachers: mean "
                            f"{fmt(teacher.mean)} (range {fmt(teacher.min)} to {fmt(teacher.max)})."))
    metrics = ("student_acc_before", "student_acc", "trait_gain", "mean_alignment", "final_distill_loss")
    blocks += [Paragraph(f"Per arm, over completed trials (mean [{CI}]):"),
               Table(["arm", "n", *metrics], [[row["arm"], fmt(row["completed"]),
                                               *(_span(row[f"{m}_mean"], row[f"{m}_ci_low"], row[f"{m}_ci_high"])
                                                 for m in metrics)] for row in stats.arms])]
    blocks += _trial_list("Failed", data.failures, lambda f: f["error"])
    blocks += _trial_list("Diverged", data.diverged,
                          lambda d: f"step {fmt(d['step'])}, {d['model']}'s {d['quantity']} not finite")
    blocks += _trial_list("Invalid", data.invalid, lambda i: i["reason"])
    if data.warnings:
        blocks += [Paragraph("Loading notes:"), Bullets(data.warnings)]
    return blocks


def _steps_cells(steps: PositiveSteps | Refused) -> list[str]:
    """Positive steps [CI], binomial p over steps, trials mostly positive, sign-test p."""
    if isinstance(steps, Refused):
        return ["refused", "n/a", "n/a of n/a", "n/a"]
    return [_interval(steps), fmt(steps.p_steps), f"{fmt(steps.trials_mostly_positive)} of {fmt(steps.n)}",
            fmt(steps.p_trials)]


def _steps_cell(steps: PositiveSteps | Refused) -> str:
    if isinstance(steps, Refused):
        return "refused"
    return f"{_interval(steps)}; {steps.trials_mostly_positive} of {steps.n}, p={fmt(steps.p_trials)}"


def _positivity_refusals(arm: str, result: Positivity) -> dict[str, Any]:
    m, epochs = result.mean_alignment, result.by_epoch
    refused = {f"{arm} mean alignment": m, f"{arm} Wilcoxon": m.wilcoxon if isinstance(m, MeanTest) else None,
               f"{arm} positive steps": result.positive_steps, f"{arm} per epoch": epochs}
    for epoch in [] if isinstance(epochs, Refused) else epochs.epochs:
        refused[f"{arm} epoch {epoch.epoch}"] = epoch.test
        refused[f"{arm} epoch {epoch.epoch} positive steps"] = epoch.positive_steps
    return refused


def _positivity_section(stats: Stats, claim: dict[str, str], drawn: dict[str, Drawn | Refused]) -> list[Block]:
    rows, alignment_rows, step_rows, refused = [], [], [], {}
    for arm, result in stats.positivity.items():
        rows.append([arm, *_test_cells(result.mean_alignment, wilcoxon=True), *_steps_cells(result.positive_steps)])
        refused.update(_positivity_refusals(arm, result))
        if not isinstance(result.by_epoch, Refused):
            epochs = result.by_epoch.epochs
            alignment_rows.append([arm, *(_with_p(e.test) for e in epochs), fmt(result.by_epoch.sustained)])
            step_rows.append([arm, *(_steps_cell(e.positive_steps) for e in epochs)])
    width = max((len(r) - 1 for r in step_rows), default=0)
    epochs_header = [f"epoch {e}" for e in range(1, width + 1)]

    def pad(row: list[str], tail: int = 0) -> list[str]:
        return row[:len(row) - tail] + [""] * (width + 1 + tail - len(row)) + row[len(row) - tail:]

    blocks = [Heading(claim["title"]), *_claim_and_statistic(claim),
              Table(["arm", "n", f"mean alignment [{CI}]", "t-test p", "Wilcoxon p", "Cohen's d",
                     f"positive steps [{CI}]", "binomial p (steps)", "trials mostly positive", "sign-test p"], rows)]
    if alignment_rows:
        blocks += [Paragraph(f"Mean alignment per epoch [{CI}] with t-test p; sustained = interval above 0 in every "
                             "epoch:"),
                   Table(["arm", *epochs_header, "sustained"], [pad(r, tail=1) for r in alignment_rows]),
                   Paragraph(f"Positive steps per epoch: fraction [{CI}]; trials with mostly positive steps, sign-test p:"),
                   Table(["arm", *epochs_header], [pad(r) for r in step_rows])]
    return blocks + _refusals(refused) + [_conclusion(claim), *_figure(drawn, "alignment_steps")]


Compared = list[tuple[str, str, Any]]  # (arm, metric, Paired | MeanTest | Refused)


def _comparison_table(compared: Compared) -> tuple[list[Block], dict[str, Any]]:
    rows, refused = [], {}
    for arm, metric, r in compared:
        reference = r.reference if isinstance(r, Paired) else "0" if metric == "gain_vs_zero" else BASELINE
        shown_arm, shown_metric = (r.arm, r.metric) if isinstance(r, Paired) else (arm, metric)
        rows.append([shown_arm, shown_metric, reference, *_test_cells(r.difference if isinstance(r, Paired) else r)])
        refused[f"{arm} {metric}"] = r
    return _table(["arm", "metric", "against", "n", f"difference [{CI}]", "t-test p", "Cohen's d"], rows), refused


def _comparison_section(claim: dict[str, str], compared: Compared) -> list[Block]:
    table, refused = _comparison_table(compared)
    return [Heading(claim["title"]), *_claim_and_statistic(claim), *table, *_refusals(refused), _conclusion(claim)]


def _by_metric(by_arm: Mapping[str, ArmComparison]) -> Compared:
    return [(arm, metric, r) for arm, comparison in by_arm.items() for metric, r in comparison.by_metric().items()]


def _critical_section(stats: Stats, claim: dict[str, str], drawn: dict[str, Drawn | Refused]) -> list[Block]:
    rows, refused = [], {}
    results = {arm: r for arm, r in stats.critical_period.items() if isinstance(r, CriticalPeriod)}
    width = max((r.epochs for r in results.values()), default=0)
    for arm, r in results.items():
        gains = [_interval(g.gain) for g in r.gain_by_epoch] + [""] * (width - r.epochs)
        test = r.first_minus_later
        rows.append([arm, *gains, _interval(test), _p(test), fmt(r.share_first_epoch)])
        refused[f"{arm} epoch 1 vs later"] = test
    refused.update({arm: r for arm, r in stats.critical_period.items() if isinstance(r, Refused)})
    header = ["arm", *(f"gain in epoch {e}" for e in range(1, width + 1)), "epoch 1 − mean later", "p",
              "share of gain in epoch 1"]
    return [Heading(claim["title"]), *_claim_and_statistic(claim),
            Paragraph(f"Test accuracy gained in each epoch, mean [{CI}]:"), *_table(header, rows),
            *_refusals(refused), _conclusion(claim), *_figure(drawn, "accuracy_epochs")]


def _fit_blocks(fits: Regressions, x: str) -> list[Block]:
    """The three fits of trait_gain on `x` as one table (the within-shared one first: the verdict's), with
    their refusals and the mixed model's warnings."""
    ols, mixed, within = fits.ols, fits.mixed, fits.within_shared

    def cells(fit: Any) -> list[str]:
        return ["n/a", "refused", "refused"] if isinstance(fit, Refused) else [fmt(fit.n), _interval(fit), fmt(fit.p)]

    fitted = isinstance(mixed, MixedRegression)
    rows = [["within shared init, intercept per arm, HC3 robust SEs", *cells(within),
             "n/a" if isinstance(within, Refused) else fmt(within.r2)],
            ["pooled, OLS, HC3 robust SEs", *cells(ols), "n/a" if isinstance(ols, Refused) else fmt(ols.r2)],
            ["pooled, mixed model, random intercept per seed", *cells(mixed),
             f"marginal {fmt(mixed.r2_marginal if fitted else None)}, "
             f"conditional {fmt(mixed.r2_conditional if fitted else None)}"]]
    blocks: list[Block] = [Table(["model", "n", f"slope of trait_gain on {x} [{CI}]", "p", "R²"], rows),
                           *_refusals({f"within shared ({x})": within, f"OLS ({x})": ols, f"mixed model ({x})": mixed})]
    if isinstance(within, FixedEffectsRegression):
        blocks.append(Paragraph(f"Within shared init: arms {', '.join(within.arms)}; {within.seeds} seeds."))
    if isinstance(mixed, MixedRegression) and mixed.fit_warnings:
        blocks.append(Paragraph("Mixed-model fit warnings: " + "; ".join(mixed.fit_warnings)
                                + f" (converged: {fmt(mixed.converged)})."))
    return blocks


def _regression_blocks(stats: Stats) -> list[Block]:
    return [Heading("Does alignment relate to acquisition?", 3),
            Paragraph("The verdict uses the within-shared fit: pooling every arm lets the independent-init control "
                      "and each mitigation's own shift in gain pull the line."),
            *_fit_blocks(stats.regression, "mean_alignment")]


def _mediation_row(kind: str, med: MediationResult) -> list[str]:
    share = med.prop_mediated
    return [kind, fmt(med.n), fmt(med.seeds), f"0 → {fmt(med.contrast_to)}", _interval(med.strength_to_alignment),
            _interval(med.alignment_to_gain),
            *(f"{_interval(e)} {claims.p_value(e)}" for e in (med.acme, med.ade, med.total)),
            _interval(share) if share.interpretable else "not interpretable"]


def _mediation_blocks(stats: Stats) -> list[Block]:
    rows = [_mediation_row(kind, med) for kind, med in stats.mediation.items() if isinstance(med, MediationResult)]
    return [Heading("Does mitigation act through alignment?", 3),
            Paragraph("Mediation strength → mean_alignment → trait_gain. Effects are of moving strength from 0 to "
                      "the largest tested; the a-path is the change in mean alignment, the b-path the change in "
                      "trait_gain per unit of alignment at fixed strength. Simulation p-values resolve down to "
                      f"1/simulations ({stats.meta.mediation_sims} simulations, seed "
                      f"{stats.meta.mediation_seed})."),
            *_table(["mitigation", "n", "seeds", "strength", f"a-path [{CI}]", f"b-path [{CI}]", f"ACME [{CI}]",
                     f"ADE [{CI}]", f"total [{CI}]", f"proportion mediated [{CI}]"], rows),
            *_refusals({f"mediation ({kind})": med for kind, med in stats.mediation.items()})]


def _dose_blocks(stats: Stats) -> list[Block]:
    rows = [[kind, fmt(level.strength), fmt(level.trait_gain.n), _interval(level.trait_gain),
             _interval(level.mean_alignment)]
            for kind, result in stats.dose_response.items() if isinstance(result, DoseResponse)
            for level in result.levels]
    return [Heading("Dose-response", 3),
            *_table(["mitigation", "strength", "n", f"trait_gain [{CI}]", f"mean alignment [{CI}]"], rows),
            *_refusals({f"dose-response ({kind})": r for kind, r in stats.dose_response.items()})]


def _referee_section(stats: Stats, claim: dict[str, str], drawn: dict[str, Drawn | Refused]) -> list[Block]:
    return [Heading(claim["title"]), *_claim_and_statistic(claim), *_regression_blocks(stats),
            *_figure(drawn, "gain_vs_alignment"), *_mediation_blocks(stats), *_dose_blocks(stats),
            *_figure(drawn, "dose_response"), _conclusion(claim)]


def _control_section(stats: Stats, claim: dict[str, str]) -> list[Block]:
    comparisons = stats.comparisons
    return _comparison_section(claim, [(BASELINE, "trait_gain", comparisons.shared_vs_independent),
                                       (stats.meta.control, "gain_vs_zero", comparisons.independent_gain)])


def _noninferiority_blocks(stats: Stats) -> list[Block]:
    rows, refused = [], {}
    for arm, r in stats.noninferiority.items():
        refused[f"{arm} non-inferiority"] = r
        if isinstance(r, NonInferiority):
            rows.append([arm, fmt(r.n), fmt(r.mean_arm), fmt(r.mean_reference), fmt(r.difference), fmt(r.upper),
                         fmt(r.margin), fmt(r.p), fmt(r.noninferior)])
    header = ["arm", "n", "final distillation loss", BASELINE, "difference", f"one-sided {CONFIDENCE:.0%} upper bound",
              "margin", "p (one-sided)", "non-inferior"]
    return [Paragraph(f"Final distillation loss against {BASELINE}, paired by seed: non-inferior when the one-sided "
                      f"upper bound of the difference lies below the margin ({fmt(stats.meta.margin)} × {BASELINE}'s "
                      "mean over the paired seeds; `sublim report --margin`)."),
            *_table(header, rows), *_refusals(refused)]


def _claim2_section(stats: Stats, claim: dict[str, str]) -> list[Block]:
    table, refused = _comparison_table(_by_metric(stats.comparisons.projection) + _by_metric(stats.comparisons.placebo))
    return [Heading(claim["title"]), *_claim_and_statistic(claim), *table, *_refusals(refused),
            *_noninferiority_blocks(stats), _conclusion(claim)]


def _update_rows(stats: Stats) -> tuple[list[list[str]], list[list[str]], dict[str, Any]]:
    """Per arm: gradient beside update alignment; per epoch update alignment; what was refused."""
    rows, epoch_rows, refused = [], [], {}
    for arm, r in stats.update_alignment.by_arm.items():
        gradient = stats.positivity[arm].mean_alignment
        change = r.predicted_trait_loss_change
        rows.append([arm, _interval(gradient), *_test_cells(r.mean_update_alignment), _steps_cell(r.positive_steps),
                     _with_p(change)])
        refused.update({f"{arm} update alignment": r.mean_update_alignment,
                        f"{arm} positive update steps": r.positive_steps, f"{arm} update per epoch": r.by_epoch,
                        f"{arm} predicted trait-loss change": change})
        if isinstance(r.by_epoch, AlignmentByEpoch):
            epoch_rows.append([arm, *(_with_p(e.test) for e in r.by_epoch.epochs), fmt(r.by_epoch.sustained)])
    return rows, epoch_rows, refused


def _update_section(stats: Stats, drawn: dict[str, Drawn | Refused]) -> list[Block]:
    rows, epoch_rows, refused = _update_rows(stats)
    width = max((len(r) - 2 for r in epoch_rows), default=0)
    blocks: list[Block] = [
        Heading("Update alignment: the step the optimizer applied"),
        Paragraph("Adam does not apply the gradient: it applies a preconditioned step Δθ. Update alignment is "
                  "cos(−Δθ, g_trait) per step (positive: the step taken lowers the probe trait loss to first order); "
                  "the predicted trait-loss change sums g_trait·Δθ over steps (below 0: lowered). Beside it, the "
                  "gradient alignment of Claim 1."),
        *_table(["arm", f"gradient alignment [{CI}]", "n", f"update alignment [{CI}]", "t-test p", "Cohen's d",
                 f"positive update steps [{CI}]; trials mostly positive", f"predicted trait-loss change [{CI}]"], rows)]
    if epoch_rows:
        blocks += [Paragraph(f"Update alignment per epoch [{CI}] with t-test p; sustained = interval above 0 in every "
                             "epoch:"),
                   Table(["arm", *(f"epoch {e}" for e in range(1, width + 1)), "sustained"],
                         [r[:-1] + [""] * (width + 2 - len(r)) + r[-1:] for r in epoch_rows])]
    blocks += [*_refusals(refused), *_figure(drawn, "update_alignment_steps"),
               Heading("Does update alignment relate to acquisition?", 3),
               *_fit_blocks(stats.update_alignment.regression, "mean_update_alignment")]
    return blocks


def _layer_section(stats: Stats, drawn: dict[str, Drawn | Refused]) -> list[Block]:
    rows, refused = [], {}
    for arm, by_layer in stats.per_layer.items():
        tested = {layer: r for layer, r in by_layer.items() if isinstance(r, MeanTest)}
        positive = [layer for layer, r in tested.items() if r.ci_low > 0]
        top = max(positive, key=lambda layer: tested[layer].mean) if positive else "none"
        rows.append([arm, fmt(max((r.n for r in tested.values()), default=None)),
                     *(_with_p(r) for r in by_layer.values()), top])
        refused.update({f"{arm} {layer}": r for layer, r in by_layer.items()})
    layers = list(next(iter(stats.per_layer.values()), {}))
    return [Heading("Which layer carries the drive?"),
            Paragraph(f"Per-trial mean alignment cos(g_distill, g_trait) within each layer's weights and bias, "
                      f"mean per arm [{CI}] with a t-test against 0:"),
            *_table(["arm", "n", *layers, "largest of those above 0"], rows), *_refusals(refused),
            *_figure(drawn, "per_layer_alignment")]


def _power_section(stats: Stats) -> list[Block]:
    rows, refused = [], {}
    for entry in stats.power:
        r = entry.result
        refused[f"{entry.claim} {entry.test} ({entry.arm})"] = r
        cells = (["n/a", "n/a", "n/a", "refused"] if isinstance(r, Refused) else
                 [fmt(r.n), fmt(r.cohens_d), fmt(r.power_now), fmt(r.seeds_needed)])
        rows.append([entry.claim, entry.test, entry.arm, *cells])
    return [Heading("Seeds needed"),
            Paragraph(f"For each claim's primary test: the seeds for {POWER:.0%} power at alpha {fmt(ALPHA)} if the "
                      "true effect were the one observed (statsmodels TTestPower; the within-shared slope by "
                      "FTestPowerF2, its effect size given as Cohen's f, one trial per arm per seed), rounded up. "
                      "An observed effect from few seeds is noisy, and optimistic when significant: a planning figure, "
                      "not a promise."),
            *_table(["claim", "test", "arm", "n now", "effect size (Cohen's d; f for a slope)", "power now",
                     "seeds needed"], rows),
            *_refusals(refused)]


def _methods() -> list[Block]:
    return [Heading("Methods"), Bullets([
        f"Intervals are {CI}s; a claim is supported only when its interval excludes the null in the claimed "
        f"direction (two-sided tests at alpha = {fmt(ALPHA)}).",
        f"Tests of a mean need at least {MIN_TEST_N} trials; Wilcoxon signed-rank tests at least "
        f"{MIN_WILCOXON_N} non-zero values; regressions at least {MIN_REGRESSION_N} trials with "
        f"{MIN_DISTINCT_X} distinct values of mean alignment. Fewer, and the statistic is refused, not printed.",
        "Comparisons between arms pair trials by seed: trials of one seed share the teacher and, for shared "
        "init, the student's initialization.",
        "The binomial test pooled over steps treats steps as independent; they are autocorrelated within a "
        "trial, so its p-value is optimistic. The sign test over trials uses independent units.",
        "'Sustained' asks that every epoch's interval lie above 0, an intersection-union test: the joint claim "
        "keeps its error rate without a multiplicity correction.",
        "Mediation uses OLS mediator and outcome models with seed fixed effects and a parametric simulation "
        "(statsmodels Mediation); the proportion mediated is reported only when the total effect's interval "
        "excludes 0.",
        "Non-inferiority of the final distillation loss: a one-sided paired t-test of (arm − none/shared) "
        "against the margin at alpha; non-inferior when the one-sided upper bound lies below the margin.",
        "The referee's regression is fitted within shared-init trials with an intercept per arm (arms whose "
        "trials share one alignment value carry no within-arm information and are left out); the pooled fits "
        "are shown for reference.",
        f"Seeds needed are capped at {MAX_SEEDS:,}; beyond that, or for an effect of 0 or on the wrong side of "
        "a one-sided test, the figure is refused.",
    ])]


def _sequential_section(record: dict[str, Any] | None) -> list[Block]:
    """How a sweep grown in waves decided to stop: its design, each look's boundary and tests, the reason."""
    if not record:
        return []
    design = record["design"]
    looks = {wave["look"]: wave for wave in record["waves"]}
    rows = [[fmt(j + 1), fmt(n), fmt(c), fmt(p),
             "; ".join(f"{t['claim']} {t['test']} ({t['arm']}): {t['status']}" for t in looks[j + 1]["tests"])
             if j + 1 in looks else "not reached"]
            for j, (n, c, p) in enumerate(zip(design["seeds"], design["boundaries_z"], design["nominal_p"]))]
    return [Heading("Sequential design: how many seeds this sweep ran, and why"),
            Paragraph(f"The sweep grew in waves of seeds under a group-sequential design planned before its first "
                      f"wave: {design['method']}, two-sided alpha {fmt(design['alpha'])} per test. A test is resolved "
                      "when its |z| (the z value with the test's two-sided p-value) crosses its look's boundary; "
                      "looking after every wave then keeps each test's error rate at alpha. "
                      f"**Stopped:** {record['stopped'] or 'not yet (interrupted)'}."),
            Table(["look", "seeds", "|z| boundary", "nominal p", "tests at this look"], rows)]


def document(stats: Stats, drawn: dict[str, Drawn | Refused], judged: list[dict[str, str]]) -> list[Block]:
    """The report's blocks, from the statistics, the figures drawn and the claims judged."""
    by_id = {claim["id"]: claim for claim in judged}
    summary = Table(["question", "verdict"], [[claim["title"], claim["verdict"]] for claim in judged])
    return [
        Heading(f"Subliminal learning report: {stats.meta.name}", 1),
        Paragraph("Does a student distilled only on a teacher's auxiliary logits, on noise, acquire the teacher's "
                  "MNIST skill, and does the alignment of distillation and trait gradients drive it?"),
        summary,
        *_data_section(stats),
        *_positivity_section(stats, by_id["claim1"], drawn),
        *_update_section(stats, drawn),
        *_claim2_section(stats, by_id["claim2"]),
        *_critical_section(stats, by_id["claim3"], drawn),
        *_comparison_section(by_id["claim4"], _by_metric(stats.comparisons.liminal)),
        *_referee_section(stats, by_id["referee"], drawn),
        *_control_section(stats, by_id["control"]),
        *_layer_section(stats, drawn),
        *_power_section(stats),
        *_sequential_section(stats.sequential),
        *_methods(),
    ]

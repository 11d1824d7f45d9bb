"""The whole report from a results folder: load, compute, judge, draw, and write

    report.md, report.html (self-contained), stats.json (every number), tables/*.csv, figures/*.png

into one folder, each file written atomically. The Markdown and HTML are built from `stats.json`'s
content alone, so every number they show is in it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import claims, figures
from sublim.core.files import atomic_write, write_text
from .document import Block, Bullets, Heading, Image, Paragraph, Table, fmt, to_html, to_markdown
from .errors import ReportError
from .load import STATUSES, load_results
from .stats import (ALPHA, BASELINE, CONFIDENCE, MEDIATION_SIMS, MIN_DISTINCT_X, MIN_REGRESSION_N, MIN_TEST_N,
                    MIN_WILCOXON_N, arm_table, compute_stats, epoch_table)

CI = f"{CONFIDENCE:.0%} CI"
FIGURE_CAPTIONS = {
    "alignment_steps": "Alignment cos(g_distill, g_trait) at each optimizer step, mean across trials per arm with "
                       f"its {CI} band; the dashed line is 0.",
    "accuracy_epochs": f"Student test accuracy after each distillation epoch, mean per arm with its {CI} band; "
                       "the dotted line is chance.",
    "gain_vs_alignment": "Trait gain against mean alignment, one point per trial, with the OLS line and its "
                         f"{CI} band (HC3).",
    "dose_response": f"Trait gain and mean alignment against mitigation strength: trials and mean ± {CI}.",
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


def build_report(results_path: str | Path, out: str | Path | None = None, mediation_sims: int = MEDIATION_SIMS,
                 mediation_seed: int = 0) -> ReportFiles:
    """Write the report of the results folder `results_path` into `out` (default `results_path/report`)."""
    if mediation_sims < 10:
        raise ReportError(f"mediation simulations ({mediation_sims}) too few for an interval; expected at least 10")
    results = load_results(results_path)
    folder = Path(out) if out is not None else results.path / "report"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ReportError(f"{folder}: cannot hold the report ({error.strerror}); expected a writable folder") from None
    stats = compute_stats(results, mediation_sims=mediation_sims, mediation_seed=mediation_seed)
    stats["meta"]["results"] = str(results.path)
    epochs = epoch_table(results.completed)
    stats["figures"] = figures.draw_all(results.steps, results.completed, epochs, stats["dose_response"],
                                        folder / "figures")
    stats = json.loads(json.dumps(jsonable(stats), allow_nan=False))  # the report shows what stats.json holds
    stats["claims"] = claims.judge(stats)

    tables = {"trials": results.trials, "arms": arm_table(results.trials), "arm_epochs": epochs,
              "dose_response": _dose_table(stats)}
    table_paths = []
    for name, table in tables.items():
        path = folder / "tables" / f"{name}.csv"
        atomic_write(path, lambda tmp, t=table: t.to_csv(tmp, index=False))
        table_paths.append(path)
    blocks = document(stats)
    title = f"Subliminal learning report: {stats['meta']['name']}"
    files = ReportFiles(folder=folder, markdown=folder / "report.md", html=folder / "report.html",
                        stats=folder / "stats.json", tables=table_paths,
                        figures=[folder / f["file"] for f in stats["figures"].values() if "file" in f],
                        claims=stats["claims"])
    write_text(files.stats, json.dumps(stats, indent=2) + "\n")
    write_text(files.markdown, to_markdown(blocks))
    write_text(files.html, to_html(blocks, title, folder))
    return files


def jsonable(value: Any) -> Any:
    """Plain JSON values: numpy scalars as Python numbers, NaN and infinity as null."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is pd.NA or value is pd.NaT:
        return None
    return value


def _dose_table(stats: dict[str, Any]) -> pd.DataFrame:
    rows = [{"mitigation": kind, "strength": level["strength"],
             **{f"{metric}_{key}": level[metric][key] for metric in ("trait_gain", "mean_alignment")
                for key in ("n", "mean", "ci_low", "ci_high")}}
            for kind, result in stats["dose_response"].items() for level in result.get("levels", [])]
    return pd.DataFrame(rows)


# --- the document --------------------------------------------------------------------------------

def _interval(result: dict[str, Any], key: str = "mean") -> str:
    """'value [low, high]' for a table cell, or why it was refused."""
    if "refused" in result:
        return "refused"
    return f"{fmt(result[key])} [{fmt(result['ci_low'])}, {fmt(result['ci_high'])}]"


def _p(result: dict[str, Any]) -> str:
    return "refused" if "refused" in result else fmt(result["p"])


def _with_p(result: dict[str, Any]) -> str:
    return "refused" if "refused" in result else f"{_interval(result)} p={fmt(result['p'])}"


def _table(header: list[str], rows: list[list[str]]) -> list[Block]:
    """A table, or nothing when there are no rows (the verdict then says what is missing)."""
    return [Table(header, rows)] if rows else []


def _refusals(results: dict[str, dict[str, Any]]) -> list[Block]:
    """The reasons of refused statistics, listed under their table, each reason once with what it refused."""
    by_reason: dict[str, list[str]] = {}
    for name, result in results.items():
        if "refused" in result:
            by_reason.setdefault(result["refused"], []).append(name)
    items = [f"{', '.join(names)}: {reason}" for reason, names in by_reason.items()]
    return [Paragraph("Refused (not enough data):"), Bullets(items)] if items else []


def _claim_and_statistic(claim: dict[str, str]) -> list[Block]:
    return [Paragraph(f"**Claim.** {claim['claim']}"), Paragraph(f"**Statistic.** {claim['statistic']}")]


def _conclusion(claim: dict[str, str]) -> Paragraph:
    return Paragraph(f"**Verdict: {claim['verdict']}.** {claim['words']}")


def _figure(stats: dict[str, Any], name: str) -> list[Block]:
    drawn = stats["figures"][name]
    if "refused" in drawn:
        return [Paragraph(f"Figure `{name}` not drawn: {drawn['refused']}.")]
    return [Image(drawn["file"], FIGURE_CAPTIONS[name])]


def _data_section(stats: dict[str, Any]) -> list[Block]:
    data, meta = stats["data"], stats["meta"]
    totals = data["totals"]
    blocks: list[Block] = [
        Heading("Data"),
        Paragraph(f"Results folder `{meta['results']}` ({data['source']}): {totals['expected']} trials expected, "
                  + ", ".join(f"{totals[s]} {s}" for s in STATUSES)
                  + f"; {data['seeds']} seeds among completed trials. Every statistic below uses completed trials "
                  "only; 'incomplete' trials stopped before their last epoch."),
        Table(["arm", "expected", *STATUSES], [[row["arm"], *(fmt(row[k]) for k in ("expected", *STATUSES))]
                                               for row in data["arms"]]),
    ]
    teacher = data["teacher_acc"]
    blocks.append(Paragraph(f"Teacher test accuracy over {teacher['n']} distinct teachers: mean "
                            f"{fmt(teacher['mean'])} (range {fmt(teacher['min'])} to {fmt(teacher['max'])})."))
    metrics = ("student_acc_before", "student_acc", "trait_gain", "mean_alignment", "final_distill_loss")
    blocks += [Paragraph(f"Per arm, over completed trials (mean [{CI}]):"),
               Table(["arm", "n", *metrics], [[row["arm"], fmt(row["completed"]),
                                               *(_interval({k: row[f"{m}_{k}"] for k in ("mean", "ci_low", "ci_high")})
                                                 for m in metrics)] for row in stats["arms"]])]
    if data["failures"]:
        shown = data["failures"][:20]
        blocks += [Paragraph(f"Failed trials ({len(data['failures'])}, first {len(shown)} shown):"),
                   Bullets([f"`{f['trial_id']}` ({f['arm']}): {f['error']}" for f in shown])]
    if data["warnings"]:
        blocks += [Paragraph("Loading notes:"), Bullets(data["warnings"])]
    return blocks


def _positivity_section(stats: dict[str, Any], claim: dict[str, str]) -> list[Block]:
    rows, alignment_rows, step_rows, refused = [], [], [], {}
    for arm, result in stats["positivity"].items():
        m, steps, epochs = result["mean_alignment"], result["positive_steps"], result["by_epoch"]
        wilcoxon = m.get("wilcoxon", {})
        rows.append([arm, fmt(m.get("n")), _interval(m), _p(m), _p(wilcoxon) if wilcoxon else "refused",
                     fmt(m.get("cohens_d")), _interval(steps, "fraction"), fmt(steps.get("p_steps")),
                     f"{fmt(steps.get('trials_mostly_positive'))} of {fmt(steps.get('n'))}", fmt(steps.get("p_trials"))])
        refused.update({f"{arm} mean alignment": m, f"{arm} Wilcoxon": wilcoxon, f"{arm} positive steps": steps,
                        f"{arm} per epoch": epochs})
        for epoch in epochs.get("epochs", []):
            refused[f"{arm} epoch {epoch['epoch']}"] = epoch
            refused[f"{arm} epoch {epoch['epoch']} positive steps"] = epoch["positive_steps"]
        if "epochs" in epochs:
            alignment_rows.append([arm, *(_with_p(e) for e in epochs["epochs"]), fmt(epochs["sustained"])])
            step_rows.append([arm, *(_steps_cell(e["positive_steps"]) for e in epochs["epochs"])])
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
    return blocks + _refusals(refused) + [_conclusion(claim), *_figure(stats, "alignment_steps")]


def _steps_cell(steps: dict[str, Any]) -> str:
    if "refused" in steps:
        return "refused"
    return f"{_interval(steps, 'fraction')}; {steps['trials_mostly_positive']} of {steps['n']}, p={fmt(steps['p_trials'])}"


def _comparison_table(results: dict[str, dict[str, dict[str, Any]]]) -> tuple[list[Block], dict[str, Any]]:
    rows, refused = [], {}
    for arm, metrics in results.items():
        for metric, r in metrics.items():
            reference = r.get("reference", "0" if metric == "gain_vs_zero" else BASELINE)
            rows.append([arm, metric, reference, fmt(r.get("n")), _interval(r), _p(r), fmt(r.get("cohens_d"))])
            refused[f"{arm} {metric}"] = r
    return _table(["arm", "metric", "against", "n", f"difference [{CI}]", "t-test p", "Cohen's d"], rows), refused


def _projection_section(stats: dict[str, Any], claim: dict[str, str]) -> list[Block]:
    table, refused = _comparison_table(stats["comparisons"]["projection"])
    return [Heading(claim["title"]), *_claim_and_statistic(claim), *table, *_refusals(refused), _conclusion(claim)]


def _critical_section(stats: dict[str, Any], claim: dict[str, str]) -> list[Block]:
    rows, refused = [], {}
    results = {arm: r for arm, r in stats["critical_period"].items() if "gain_by_epoch" in r}
    width = max((r["epochs"] for r in results.values()), default=0)
    for arm, r in results.items():
        gains = [_interval(g) for g in r["gain_by_epoch"]] + [""] * (width - r["epochs"])
        test = r["first_minus_later"]
        rows.append([arm, *gains, _interval(test), _p(test), fmt(r["share_first_epoch"])])
        refused[f"{arm} epoch 1 vs later"] = test
    refused.update({arm: r for arm, r in stats["critical_period"].items() if "refused" in r})
    header = ["arm", *(f"gain in epoch {e}" for e in range(1, width + 1)), "epoch 1 − mean later", "p",
              "share of gain in epoch 1"]
    return [Heading(claim["title"]), *_claim_and_statistic(claim),
            Paragraph(f"Test accuracy gained in each epoch, mean [{CI}]:"), *_table(header, rows),
            *_refusals(refused), _conclusion(claim), *_figure(stats, "accuracy_epochs")]


def _liminal_section(stats: dict[str, Any], claim: dict[str, str]) -> list[Block]:
    table, refused = _comparison_table(stats["comparisons"]["liminal"])
    return [Heading(claim["title"]), *_claim_and_statistic(claim), *table, *_refusals(refused), _conclusion(claim)]


def _referee_section(stats: dict[str, Any], claim: dict[str, str]) -> list[Block]:
    regression = stats["regression"]
    ols, mixed = regression["ols"], regression["mixed"]
    fits = [["OLS, HC3 robust SEs", fmt(ols.get("n")), _interval(ols, "slope"), _p(ols), fmt(ols.get("r2"))],
            ["mixed model, random intercept per seed", fmt(mixed.get("n")), _interval(mixed, "slope"), _p(mixed),
             f"marginal {fmt(mixed.get('r2_marginal'))}, conditional {fmt(mixed.get('r2_conditional'))}"]]
    blocks: list[Block] = [Heading(claim["title"]), *_claim_and_statistic(claim),
                           Heading("Does alignment relate to acquisition?", 3),
                           Table(["model", "n", f"slope of trait_gain on mean_alignment [{CI}]", "p", "R²"], fits),
                           *_refusals({"OLS": ols, "mixed model": mixed})]
    if mixed.get("fit_warnings"):
        blocks.append(Paragraph("Mixed-model fit warnings: " + "; ".join(mixed["fit_warnings"])
                                + f" (converged: {fmt(mixed['converged'])})."))
    blocks += [*_figure(stats, "gain_vs_alignment"), Heading("Does mitigation act through alignment?", 3)]
    rows = []
    for kind, med in stats["mediation"].items():
        if "refused" in med:
            continue
        share = med["prop_mediated"]
        rows.append([kind, fmt(med["n"]), fmt(med["seeds"]), f"0 → {fmt(med['contrast_to'])}",
                     _interval(med["strength_to_alignment"], "estimate"), _interval(med["alignment_to_gain"], "estimate"),
                     *(f"{_interval(med[e], 'estimate')} {claims.p_value(med[e])}" for e in ("acme", "ade", "total")),
                     _interval(share, "estimate") if share["interpretable"] else "not interpretable"])
    blocks += [Paragraph("Mediation strength → mean_alignment → trait_gain. Effects are of moving strength from 0 to "
                         "the largest tested; the a-path is the change in mean alignment, the b-path the change in "
                         "trait_gain per unit of alignment at fixed strength. Simulation p-values resolve down to "
                         f"1/simulations ({stats['meta']['mediation_sims']} simulations, seed "
                         f"{stats['meta']['mediation_seed']})."),
               *_table(["mitigation", "n", "seeds", "strength", f"a-path [{CI}]", f"b-path [{CI}]", f"ACME [{CI}]",
                        f"ADE [{CI}]", f"total [{CI}]", f"proportion mediated [{CI}]"], rows),
               *_refusals({f"mediation ({kind})": med for kind, med in stats["mediation"].items()}),
               Heading("Dose-response", 3)]
    dose_rows = [[kind, fmt(level["strength"]), fmt(level["trait_gain"]["n"]), _interval(level["trait_gain"]),
                  _interval(level["mean_alignment"])]
                 for kind, result in stats["dose_response"].items() for level in result.get("levels", [])]
    blocks += [*_table(["mitigation", "strength", "n", f"trait_gain [{CI}]", f"mean alignment [{CI}]"], dose_rows),
               *_refusals({f"dose-response ({kind})": r for kind, r in stats["dose_response"].items()}),
               *_figure(stats, "dose_response"), _conclusion(claim)]
    return blocks


def _control_section(stats: dict[str, Any], claim: dict[str, str]) -> list[Block]:
    comparisons = stats["comparisons"]
    table, refused = _comparison_table({BASELINE: {"trait_gain": comparisons["shared_vs_independent"]},
                                        stats["meta"]["control"]: {"gain_vs_zero": comparisons["independent_gain"]}})
    return [Heading(claim["title"]), *_claim_and_statistic(claim), *table, *_refusals(refused), _conclusion(claim)]


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
    ])]


def document(stats: dict[str, Any]) -> list[Block]:
    """The report's blocks, from the statistics alone."""
    by_id = {claim["id"]: claim for claim in stats["claims"]}
    summary = Table(["question", "verdict"], [[claim["title"], claim["verdict"]] for claim in stats["claims"]])
    return [
        Heading(f"Subliminal learning report: {stats['meta']['name']}", 1),
        Paragraph("Does a student distilled only on a teacher's auxiliary logits, on noise, acquire the teacher's "
                  "MNIST skill, and does the alignment of distillation and trait gradients drive it?"),
        summary,
        *_data_section(stats),
        *_positivity_section(stats, by_id["claim1"]),
        *_projection_section(stats, by_id["claim2"]),
        *_critical_section(stats, by_id["claim3"]),
        *_liminal_section(stats, by_id["claim4"]),
        *_referee_section(stats, by_id["referee"]),
        *_control_section(stats, by_id["control"]),
        *_methods(),
    ]

"""The whole report from a results folder: report.md, report.html (self-contained), stats.json (every number),
tables/*.csv and figures/*.png, built whole beside the output folder and renamed into place: never a partial report.
Every inferential statement is a row of the tests table (tables/tests.csv); the text only renders rows.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sublim.core.config import TrialConfig, level_label
from sublim.core.files import atomic_write, holds_marker, json_safe, unwritable, write_json, write_text
from sublim.core.mitigations import report_facts
from sublim.core.trial_folder import STATUSES

from . import contrasts, figures, sequential
from .axes import RANDOM_EXPONENT, RELATION_METRICS, at_level, level_of, level_table, levels
from .contrasts import (BASELINE, CONTRADICTED, REFUSED, SECONDARY_ADJUSTMENT, SUPPORTED,
                        VERDICTS, ZERO, ZERO_BY_CONSTRUCTION, Options, claim_verdict, tests_table)
from .descriptives import arm_table, data_summary, dose_table, epoch_table, settings, trial_metrics
from .document import Block, Bullets, Heading, Image, Paragraph, Table, ci, fmt, to_html, to_markdown
from .errors import ReportError
from .inference import ALPHA, CONFIDENCE, METHODS, MIN_SEEDS
from .load import Results, load_results

SCHEMA = 2  # of stats.json: 2 = the tests table; 1 (no "schema" key) = the per-question answers before it
MARKER = ".sublim-report.json"  # written into every report folder: `--out` replaces only folders holding it
REPORT_OUTPUTS = ("report.md", "report.html", "stats.json", "tables", "figures", MARKER)
EXPECTED_OUT = "expected an absent or empty folder, or an earlier sublim report to replace"
FEW_SEEDS = 10  # below this many seeds in none/shared the report warns that its verdicts are fragile
CI = f"{CONFIDENCE:.0%} CI"
SECTIONS = {  # claim id of secondary rows -> (heading, what it asks, figures)
    "update": ("Update alignment", "Is the step Adam applied aligned with the trait gradient, cos(−Δθ, g_trait) "
               "> 0, in every epoch?", ("update_alignment_steps",)),
    "first-order": ("First-order accounting", "Does the change the steps predict to first order (Σ g_t·Δθ) account "
                    "for more than half the measured change of the probe trait loss?", ("first_order",)),
    "mediation": ("Mediation and dose-response", "Does a mitigation act through alignment? strength → update "
                  "alignment → trait_gain (statsmodels' parametric Mediation, vectorised; seed fixed effects), "
                  "strength 0 to the largest run; descriptive (untestable assumptions).", ("dose_response",)),
    "layers": ("Which layer carries the drive?", "Mean alignment within each layer's parameters.",
               ("per_layer_alignment",)),
}
CLAIM_FIGURES = {"claim1": ("alignment_steps",), "claim3": ("accuracy_epochs",), "referee": ("gain_vs_alignment",)}


@dataclass
class ReportFiles:
    """Where the report went, and what it concluded."""

    folder: Path
    markdown: Path
    html: Path
    stats: Path
    tables: list[Path]
    figures: list[Path]
    claims: list[dict[str, Any]]  # id, title, verdict, estimates (over axes: per level, its values and "level")
    totals: dict[str, int]  # trials expected and by status
    warnings: list[str] = dataclasses.field(default_factory=list)  # what to know before reading the verdicts


def check_options(options: Options) -> None:
    """Bad options fail in one line before any work."""
    for name, allowed in (("equivalence_margin", "a positive finite trait_gain, e.g. 0.03"),
                          ("noninferiority_margin", "a positive finite fraction, e.g. 0.05")):
        value = getattr(options, name)
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise ReportError(f"{name.replace('_', ' ')} {value!r} is not allowed; expected {allowed}")
    if options.mediation_sims < 10:
        raise ReportError(f"mediation simulations ({options.mediation_sims}) too few for an interval; "
                          "expected at least 10")


def analyse(results: Results, options: Options = Options()) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(completed trials with their per-trial metrics, the tests table): what a notebook needs. Over axes, tested
    within each level and across levels (claims 'across AXIS'); grown in waves, judged at its design's levels."""
    completed = trial_metrics(results.completed, results.steps)
    tests = tests_table(completed, options, axes=results.axes)
    return completed, (sequential.judged_by_design(results.sequential, tests, results.axes) if results.sequential
                       else tests)


def build_report(results_path: str | Path, out: str | Path | None = None, options: Options = Options(),
                 **changes: Any) -> ReportFiles:
    """Write the report of `results_path` into `out` (default `results_path/report`); `changes` are Options fields
    (e.g. mediation_sims=100). Bad input is refused before any work; built in a sibling folder, renamed into place."""
    options = dataclasses.replace(options, **changes)
    check_options(options)
    folder = Path(os.path.abspath(out if out is not None else Path(results_path) / "report"))
    _check_out(folder)
    results = load_results(results_path)
    completed, tests = analyse(results, options)
    staging = _staging(folder)
    try:
        files = _write(results, completed, tests, options, staging, folder)
        _swap_in(staging, folder)
    except BaseException as error:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(error, OSError):
            raise ReportError(f"{folder}: cannot write the report ({error}); an earlier report there is "
                              "unchanged") from None
        raise
    return files


# --- the output folder -----------------------------------------------------------------------------------

def _check_out(folder: Path) -> None:
    """Refuse, before any work, a folder the report must not replace: a link, a file, or a non-empty folder
    that is not an earlier report (by its marker, never by file names)."""
    if folder.is_symlink():
        raise ReportError(f"{folder}: cannot hold the report (a symbolic link); {EXPECTED_OUT}")
    if folder.exists() and not folder.is_dir():
        raise ReportError(f"{folder}: cannot hold the report (a file, not a folder); {EXPECTED_OUT}")
    if folder.is_dir():
        try:
            names = sorted(entry.name for entry in folder.iterdir())
        except OSError as error:
            raise ReportError(f"{folder}: cannot hold the report ({error.strerror}); {EXPECTED_OUT}") from None
        if names and not (holds_marker(folder / MARKER, "sublim report") and set(names) <= set(REPORT_OUTPUTS)):
            shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
            raise ReportError(f"{folder}: holds {shown} and is not a report sublim made; {EXPECTED_OUT}")
    problem = unwritable(folder.parent)  # probed: a read-only mount or /proc fails here, before any work
    if problem:
        raise ReportError(f"{folder}: cannot hold the report ({problem}); {EXPECTED_OUT}")


def _staging(folder: Path) -> Path:
    """A fresh temporary folder beside `folder` (same file system, so renaming it into place is atomic)."""
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.", suffix=".tmp"))
        os.chmod(staging, 0o755)  # mkdtemp's 0700 would make the report private to its writer
    except OSError as error:
        raise ReportError(f"{folder}: cannot hold the report ({error.strerror}); {EXPECTED_OUT}") from None
    return staging


def _swap_in(staging: Path, folder: Path) -> None:
    """Rename the built report onto `folder`; an earlier report is renamed aside first (back if that fails)."""
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


# --- writing -----------------------------------------------------------------------------------------------

def _records(table: pd.DataFrame) -> list[dict[str, Any]]:
    return json_safe(json.loads(table.to_json(orient="records", double_precision=15)))


def _write(results: Results, completed: pd.DataFrame, tests: pd.DataFrame, options: Options, folder: Path,
           final: Path) -> ReportFiles:
    """Write the report into `folder`; what it wrote, named at the `final` folder it is renamed to."""
    axes, claims, parts = results.axes, [], {"arms": [], "arm_epochs": [], "dose_response": []}
    drawn = {"trait_gain": figures.draw("trait_gain", lambda: figures.trait_gain_by_arm(completed, axes),
                                        folder / "figures")}
    for level in levels(completed, axes):  # one level, {}, without axes
        label = level_label(level)
        here, here_tests = at_level(completed, level), at_level(tests, level)
        epochs, doses = epoch_table(here), dose_table(here, contrasts.doses(here))
        drawn.update(figures.draw_all(here, results.steps, epochs, here_tests, doses, folder / "figures",
                                      f"-{label}" if label else ""))
        claims += [{"id": claim, "title": title, "verdict": claim_verdict(here_tests, claim),
                    "estimates": key_estimates(at_level(here_tests, {"claim": claim, "role": "primary"})),
                    **level, **({"level": label} if label else {})}
                   for claim, (title, _) in contrasts.claims(completed["mitigation"]).items()]
        for name, table in (("arms", arm_table(at_level(results.trials, level), here)), ("arm_epochs", epochs),
                            ("dose_response", doses)):
            parts[name].append(table.assign(**level))
    tables = {"tests": tests.drop(columns="model"), "trials": results.trials,
              **{name: pd.concat(tables, ignore_index=True) for name, tables in parts.items()},
              "first_order": completed[["trial_id", "arm", "seed", *axes, "predicted_trait_loss_change",
                                        "measured_trait_loss_change"]]}  # per trial: the first-order accounting
    for axis in axes:
        table = tables[f"across_{axis}"] = level_table(completed, axes, axis)
        drawn[f"across_{axis}"] = figures.draw(f"across_{axis}", lambda table=table, axis=axis: figures.across_axis(
            completed, tests, table, axis), folder / "figures")
    for name, table in tables.items():
        atomic_write(folder / "tables" / f"{name}.csv", lambda tmp, t=table: t.to_csv(tmp, index=False))
    data, meta = data_summary(results), {"name": results.name, "results": str(results.path), "source": results.kind,
                                         "confidence": CONFIDENCE, "alpha": ALPHA, "baseline": BASELINE,
                                         "axes": list(axes), **dataclasses.asdict(options)}
    stats = {"schema": SCHEMA, "meta": meta, "settings": settings(completed), "data": data, "axes": axes,
             "claims": claims, "tests": _records(tables["tests"]), "arms": _records(tables["arms"]),
             "epochs": _records(tables["arm_epochs"]), "dose_response": _records(tables["dose_response"]),
             "across": {axis: _records(tables[f"across_{axis}"]) for axis in axes}, "figures": drawn,
             "sequential": results.sequential, "verdicts": VERDICTS}
    stats["warnings"] = warnings(stats, completed)
    write_json(folder / "stats.json", stats)
    blocks = document(stats, tests)
    write_text(folder / "report.md", to_markdown(blocks))
    write_text(folder / "report.html", to_html(blocks, f"Subliminal learning report: {results.name}", folder))
    write_json(folder / MARKER, {"schema": SCHEMA, "written_by": "sublim report"})
    return ReportFiles(final, final / "report.md", final / "report.html", final / "stats.json",
                       [final / "tables" / f"{name}.csv" for name in tables],
                       [final / f["file"] for f in drawn.values() if "file" in f], claims, data["totals"],
                       stats["warnings"])


# --- the document: the answer first, then each claim's rows and figure, the exhaustive rest last ------------

def expectation(row: dict[str, Any]) -> str:
    """What a row expects, in words: '> 0', 'within ±0.03 of 0', '<= 6.99e-05', 'not 0'."""
    null = fmt(row.get("null", 0))
    return {"=": f"within ±{fmt(row['margin'])} of {null}", "<=": f"<= {fmt(row['margin'])}",
            "!=": f"not {null}"}.get(row["expect"], f"{row['expect']} {null}")


def _estimate(row: dict[str, Any]) -> str:
    return ci(row["estimate"], row["ci_low"], row["ci_high"], row.get("ci_level"))


def _mean(record: dict[str, Any], metric: str) -> str:
    """A descriptive table's mean of `metric` with its interval."""
    return ci(*(record[f"{metric}_{key}"] for key in ("mean", "ci_low", "ci_high")))


def _short(arm: str) -> str:
    return "none" if arm == BASELINE else arm.removesuffix("/shared")


def _against(row: dict[str, Any], name: Any = str) -> str:
    """' − REFERENCE' for a row against an arm; '' for one against a number (its null)."""
    return "" if pd.notna(pd.to_numeric(row["reference"], errors="coerce")) else f" − {name(row['reference'])}"


def _at(records: list[dict[str, Any]], level: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in records if all(r.get(name) == value for name, value in level.items())]


def key_estimates(rows: pd.DataFrame) -> str:
    """A claim's primary rows in one line, grouped by what they measure: 'trait gain (projection − none): @0.5
    −0.37 [−0.43, −0.30], @1 ...'; a row's verdict is named where it is not 'supported'."""
    parts = []
    for (metric, test, _), group in rows.groupby(["metric", "test", "reference"], sort=False):
        records, arms = group.to_dict("records"), [_short(arm) for arm in group["arm"]]
        kind = arms[0].split("@")[0]
        common = arms[0] if len(arms) == 1 else kind if all(a.startswith(kind + "@") for a in arms) else ""
        items = [" ".join(filter(None, (arm.removeprefix(common) + ("" if common else _against(r, _short)),
                                        "" if r["verdict"] in (REFUSED, ZERO) else _estimate(r),
                                        "" if r["verdict"] == SUPPORTED else f"({r['verdict']})")))
                 for arm, r in zip(arms, records)]
        margin = fmt(records[0]["margin"])  # the same for every row of a group: one margin per metric and reference
        what = {"TOST equivalence": f", equivalence within ±{margin}",
                "non-inferiority": f", non-inferiority below {margin}"}.get(test, "")
        scope = f" ({common}{_against(records[0], _short)})" if common else ""
        parts.append(f"{metric.replace('_', ' ')}{what}{scope}: {', '.join(items)}")
    return "; ".join(parts) or "no primary test for these arms"


def rows_table(rows: pd.DataFrame) -> Table:
    """The one renderer of tests-table rows, compact: what is compared, the estimate with its interval on one line,
    p (adjusted, where it differs), the verdict (a refusal's reason), seeds needed; empty columns left out."""
    header = ["comparison", "test", "n", f"estimate [{CI}]", "p", "p adjusted", "verdict", "seeds needed"]
    body = [[f"{r['arm']}{_against(r)}: {r['metric']} {expectation(r)}", r["test"], fmt(r["n"]), _estimate(r),
             fmt(r["p"]), fmt(r["p_adjusted"]) if r["p_adjusted"] != r["p"] else "",
             r["verdict"] + (f": {r['note']}" if r["verdict"] in (REFUSED, ZERO) else ""),
             fmt(r["seeds_needed"]) if np.isfinite(r["seeds_needed"]) else ""] for r in rows.to_dict("records")]
    keep = [i for i in range(len(header)) if i == 3 or any(line[i] not in ("", "n/a") for line in body)]
    return Table([header[i] for i in keep], [[line[i] for i in keep] for line in body])


def pivot(rows: pd.DataFrame, row: Any, column: Any, label: str = "arm", width: int = 4) -> list[Table]:
    """Tests-table rows as tables of row(r) × column(r), at most `width` columns each; a cell is the estimate with
    its interval, marked ✓ supported or ✗ contradicted (unmarked: not shown)."""
    records = rows.to_dict("records")
    cells = {(row(r), column(r)): r["verdict"] if r["verdict"] in (REFUSED, ZERO) else _estimate(r)
             + {SUPPORTED: " ✓", CONTRADICTED: " ✗"}.get(r["verdict"], "") for r in records}
    lines, columns = list(dict.fromkeys(row(r) for r in records)), list(dict.fromkeys(column(r) for r in records))
    return [Table([label, *chunk], [[line, *(cells.get((line, c), "") for c in chunk)] for line in lines
                                     if any((line, c) in cells for c in chunk)])
            for chunk in (columns[i:i + width] for i in range(0, len(columns), width))]


def _figures(stats: dict[str, Any], names: tuple[str, ...], label: str = "", tests: Any = None) -> list[Block]:
    """The figures `names` (of the level `label`, in a sweep over axes), or why each was not drawn."""
    blocks: list[Block] = []
    for name in names:
        key, at = (f"{name}-{label}", f"At {label}. ") if label else (name, "")
        drawn = stats["figures"].get(key, {"refused": "not drawn"})
        caption = figures.CAPTIONS[name.split("_")[0] if name.startswith("across_") else name]
        zero = [] if tests is None else list(dict.fromkeys(tests.loc[tests["verdict"] == ZERO, "metric"]))
        if name == "per_layer_alignment" and zero:  # a panel of zeros says nothing: say why it is not there
            caption += f" Not drawn: {', '.join(zero)}, exactly 0 by construction ({ZERO_BY_CONSTRUCTION[zero[0]]})."
        blocks.append(Image(drawn["file"], at + caption) if "file" in drawn
                      else Paragraph(f"Figure `{key}` not drawn: {drawn['refused']}."))
    return blocks


def warnings(stats: dict[str, Any], completed: pd.DataFrame) -> list[str]:
    """What to know before reading the verdicts: too few seeds of none/shared for them (at the smallest level, over
    axes), settings off the defaults."""
    baseline = completed[completed["arm"] == BASELINE]
    n = min(at_level(baseline, level)["seed"].nunique() for level in levels(completed, stats["axes"]))
    at = " at its smallest level" if stats["axes"] else ""
    return ([f"This {stats['meta']['source']} is too small for its verdicts: {n} seed(s) in {BASELINE}{at} (tests "
             f"need at least {MIN_SEEDS}; the effects this study looks for need about {FEW_SEEDS} or more, see seeds "
             "needed). Read 'not shown' here as 'not enough data', not as evidence against a claim."]
            if n < FEW_SEEDS else []) + (
        ["Settings differ from the defaults (see Settings): numbers are not comparable with a default-setting "
         "sweep."] if stats["settings"] else [])


def _lead(stats: dict[str, Any]) -> list[Block]:
    """The answer: each claim's verdict with its primary estimates (a column per level over axes)."""
    axes, claims = stats["axes"], stats["claims"]
    by = {(c["id"], c.get("level", "")): c for c in claims}
    labels = list(dict.fromkeys(at for _, at in by))
    titles = {c["id"]: c["title"] for c in claims}
    table = (Table(["claim", *labels], [[title, *(f"**{by[(claim, at)]['verdict']}**: {by[(claim, at)]['estimates']}"
                                                  for at in labels)] for claim, title in titles.items()])
             if axes else Table(["claim", "verdict", f"key estimates: mean [{CI}] over seeds"],
                                [[c["title"], f"**{c['verdict']}**", c["estimates"]] for c in claims]))
    return [table, Paragraph("Arms at shared init unless marked /independent; none = none/shared; a − b: paired by "
                             "seed. Every test is a row of `tables/tests.csv`; verdicts are defined in Methods."),
            *([Paragraph("**Read this first.** " + " ".join(stats["warnings"]))] if stats["warnings"] else [])]


def _settings_section(stats: dict[str, Any]) -> list[Block]:
    """The settings off the defaults, and the trials: only the statuses some arm has, only the arms short of trials."""
    used, data = stats["settings"], stats["data"]
    totals, teacher = data["totals"], data["teacher_acc"]
    short = [s for s in STATUSES if s != "completed" and totals[s]]
    counted = (f"All {totals['expected']} trials completed ({data['seeds']} seeds)" if not short else
               f"{totals['completed']} of {totals['expected']} trials completed ({data['seeds']} seeds), "
               + ", ".join(f"{totals[s]} {s}" for s in short) + "; only completed trials enter a statistic")
    blocks: list[Block] = [Heading("Settings"), Paragraph(
        "Every setting is the default of `sublim run` ({teacher_epochs} teacher and {epochs} student epochs, "
        "{noise_count:,} noise images, Adam {lr:g}, batch {batch_size}, hidden {hidden}, m = {aux_logits} auxiliary "
        "logits, {init} init).".format(**dataclasses.asdict(TrialConfig())) if not used else
        "Settings that differ from the defaults of `sublim run` (all others are the defaults):"), *([Table(
            ["setting", "used", "default", "what it is"],
            [[u["setting"], ", ".join(map(fmt, u["values"])), fmt(u["default"]), u["help"]] for u in used])]
                                                                                    if used else []),
        Paragraph(f"{counted}. Teacher test accuracy {fmt(teacher['mean'])} ({fmt(teacher['min'])} to "
                  f"{fmt(teacher['max'])}, {teacher['n']} teachers).")]
    if short:
        blocks.append(Table(["arm", "completed", *short], [
            [" at ".join(filter(None, (a["arm"], level_of(a, stats["axes"])))), *(fmt(a[s]) for s in ["completed",
             *short])] for a in stats["arms"] if any(a[s] for s in short)]))
    why = {"failed": lambda row: row["error"], "invalid": lambda row: row["reason"],
           "diverged": lambda row: f"step {fmt(row['step'])}, {row['model']}'s {row['quantity']} not finite"}
    blocks += [Bullets([f"`{row['trial_id']}` ({row['arm']}), {status}: {words(row)}" for row in data[status][:20]])
               for status, words in why.items() if data[status]]
    return blocks + ([Paragraph("Loading notes:"), Bullets(data["warnings"])] if data["warnings"] else [])


DRIVE = {"mean_update_alignment": "update alignment", "mean_applied_alignment": "applied alignment",
         "measured_trait_loss_change": "probe trait-loss change (nats)", "trait_gain": "trait gain"}
UPDATE_WORDS = {-1: "anti-aligned with", 0: "not distinguishable from orthogonal to", 1: "aligned with"}
EFFECT_WORDS = {-1: "turns the applied update against the trait", 0: "removes the drive to first order",
                1: "leaves a trait-aligned drive"}


def _sign(record: dict[str, Any], metric: str) -> int:
    """+1 or -1 where the interval of `metric` excludes 0 on that side, else 0."""
    return 1 if record[f"{metric}_ci_low"] > 0 else -1 if record[f"{metric}_ci_high"] < 0 else 0


def drive_reading(record: dict[str, Any]) -> str:
    """What a mitigation arm (a row of the arms table) did to the drive, in words that follow the signs of the
    intervals of its update alignment (the step Adam applied) and of the change of the probe trait loss."""
    update, loss = _sign(record, "mean_update_alignment"), _sign(record, "measured_trait_loss_change")
    moved = {-1: "falls", 0: "does not change detectably", 1: "rises"}
    does = ("reverses the drive: it does not merely remove it" if (update, loss) == (-1, 1) else EFFECT_WORDS[update]
            + (", yet the probe trait loss still falls" if loss < 0 and update < 1 else ""))
    return f"update {UPDATE_WORDS[update]} the trait gradient, probe trait loss {moved[loss]}: {does}"


def _drive(stats: dict[str, Any], level: dict[str, Any]) -> list[Block]:
    """What the mitigations that act on the step's trait direction (and their placebo) did to the step, per arm
    beside none/shared: the numbers and, in words, what they add up to."""
    kinds = {a["mitigation"] for a in stats["arms"] if report_facts(a["mitigation"]).acts_on_trait_direction}
    kinds |= {"placebo"} if any(report_facts(kind).placebo_ratio for kind in kinds) else set()
    arms = [a for a in _at(stats["arms"], level) if a["completed"] and (a["arm"] == BASELINE or (
        a["mitigation"] in kinds and a["student_init"] == "shared"))]
    signed = lambda a: all(isinstance(a[f"{m}_ci_low"], float) for m in ("mean_update_alignment",
                                                                           "measured_trait_loss_change"))
    return [] if len(arms) < 2 else [
        Paragraph(f"What the step did, per arm (mean [{CI}] over seeds): the alignment of the step Adam applied, "
                  "cos(−Δθ, g_trait); of the gradient handed to Adam; the change of the probe trait loss; and what "
                  "the signs of those intervals say the arm did."),
        Table(["arm", *DRIVE.values(), "what it did"],
              [[a["arm"], *(_mean(a, m) for m in DRIVE), "reference" if a["arm"] == BASELINE
                else drive_reading(a) if signed(a) else ""] for a in arms])]


def _claims(stats: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return contrasts.claims(a["mitigation"] for a in stats["arms"])


def _claim_section(stats: dict[str, Any], tests: pd.DataFrame, claim: dict[str, Any], label: str,
                   depth: int) -> list[Block]:
    rows = tests[(tests["claim"] == claim["id"]) & tests["role"].isin(("primary", "sustained"))]
    return [Heading(claim["title"], depth), Paragraph(f"**Claim.** {_claims(stats)[claim['id']][1]}"),
            Paragraph(f"**Verdict: {claim['verdict']}.**"), *([rows_table(rows)] if len(rows) else []),
            *(_drive(stats, {n: claim[n] for n in stats["axes"]}) if claim["id"] == "claim2" else []),
            *_figures(stats, CLAIM_FIGURES.get(claim["id"], ()), label)]


def _level_sections(stats: dict[str, Any], tests: pd.DataFrame, level: dict[str, Any],
                    depth: int) -> tuple[list[Block], pd.DataFrame]:
    """Every claim's section, then the secondary sections, of one level (the whole folder without axes); and the
    rows they leave to the appendix."""
    label, blocks = level_label(level), []
    for claim in _at(stats["claims"], level):
        blocks += _claim_section(stats, tests, claim, label, depth)
    shown = tests["role"].isin(("primary", "sustained")) & tests["claim"].isin(_claims(stats))
    for claim, (heading, text, names) in SECTIONS.items():
        rows = tests[(tests["claim"] == claim) & ((tests["arm"] == BASELINE) | (claim == "mediation"))]
        shown |= tests.index.isin(rows.index) & (claim in ("update", "mediation"))
        tables = ([rows_table(rows)] if claim == "update" and len(rows) else pivot(
            rows, lambda r: r["arm"], lambda r: r["test"].split()[-1], "mitigation") if claim == "mediation" else [])
        blocks += [Heading(heading, depth), Paragraph(text), *tables, *_figures(stats, names, label, tests)]
    return blocks, tests[~shown]


def _appendix(rest: pd.DataFrame, arms: list[dict[str, Any]], label: str) -> list[Block]:
    """Per arm, the descriptive means and every test the sections above leave out; a quantity 0 by construction is
    named once, not given a column of zeros."""
    zero = rest["verdict"] == ZERO
    metrics, per_arm = ("trait_gain", "final_distill_loss"), rest["arm"].isin([a["arm"] for a in arms]) & ~zero
    return [Heading(f"Appendix: every arm{' at ' + label if label else ''}"),
            Paragraph(f"Per arm, mean [{CI}] over its completed trials (descriptive; all in `tables/arms.csv`):"),
            Table(["arm", "n", *metrics], [[a["arm"], fmt(a["completed"]), *(_mean(a, m) for m in metrics)]
                                           for a in arms]),
            Paragraph(f"The other tests (secondary rows, outside the claims' family; {SECONDARY_ADJUSTMENT}): ✓ "
                      "supported, ✗ contradicted, unmarked not shown; p-values and notes in `tables/tests.csv`."
                      + "".join(f" Not tested: {metric}, exactly 0 by construction ({ZERO_BY_CONSTRUCTION[metric]})."
                                for metric in dict.fromkeys(rest.loc[zero, "metric"]))),
            *pivot(rest[per_arm], lambda r: r["arm"], lambda r: f"{r['metric']}{_against(r, _short)}"
                   f"{'' if 't-test' in r['test'] else ': ' + r['test']} {expectation(r)}"),
            *([rows_table(rest[~per_arm & ~zero])] if (~per_arm & ~zero).any() else [])]


def _sequential_section(record: dict[str, Any] | None) -> list[Block]:
    return [Heading("Sequential design: how many seeds this sweep ran, and why"), Paragraph(
        f"{record['design'].get('method', 'group-sequential design')}; looks after "
        f"{', '.join(map(str, record['design']['seeds']))} seeds; each primary test above is judged at the look that "
        "decided it (that look's n, estimate and repeated confidence interval; its note names the look), and a test "
        f"still open at the last look reached reads 'not shown'. **Stopped:** {record['stopped'] or 'not yet'}."),
        Table(["look", "seeds", "tests"], [
            [fmt(wave["look"]), fmt(wave["seeds"]), "; ".join(f"{sequential.name(t)}: {t['status']}"
                                                             for t in wave["tests"])]
            for wave in record["waves"]])] if record else []


def _methods(stats: dict[str, Any]) -> list[Block]:
    meta = stats["meta"]
    return [Heading("Methods"), Bullets([f"**{name}**: {meaning}" for name, meaning in VERDICTS.items()]), Bullets([
        "The seed is the unit: every test takes one number per seed (an arm's trials of a seed averaged; paired arms "
        "differenced within seed). Per-step quantities are descriptives only (steps are autocorrelated).",
        f"Intervals are {CI}s, but 90% for equivalence and non-inferiority (marked). Primary rows form one family, "
        f"Holm-adjusted (family-wise alpha {fmt(ALPHA)}) or judged at a sequential design's levels; sustained rows "
        "(every epoch) must all hold. Over axes, each level is its own family.",
        f"\"No effect\" is equivalence (TOST) within ±{fmt(meta['equivalence_margin'])} of trait_gain "
        "(`--equivalence-margin`); non-inferiority of the final distillation loss: the one-sided 95% upper bound of "
        f"the paired difference below {fmt(meta['noninferiority_margin'])} × {BASELINE}'s mean (`--margin`).",
        "Mediation: dose s or log(1 + s / s_min), the lower AIC; simulated p-values resolve to "
        f"1/{meta['mediation_sims']} (seed {meta['mediation_seed']}).",
        f"Seeds needed: for 80% power at alpha 0.05 if the true effect were the one observed, only in the claim's "
        f"direction. A test needs at least {MIN_SEEDS} seeds with some spread, or it is refused with the reason.",
        *(f"**{name}**: {text}" for name, text in METHODS.items()
          if meta["axes"] or name in ("slope", "clustered slope", "heterogeneity"))])]


def _across_section(stats: dict[str, Any], tests: pd.DataFrame, axis: str) -> list[Block]:
    """How the arms' alignment and acquisition move along one axis: per-level means, the across rows, the figure."""
    metrics, table = RELATION_METRICS, stats["across"][axis]
    others = ["other_axes"] if table and "other_axes" in table[0] else []
    return [Heading(f"Across {axis}: does alignment survive it, and does acquisition follow?"),
            Paragraph(f"Per arm and level, mean [{CI}] over seeds. Random directions in P dimensions have cosines of "
                      f"order P^{RANDOM_EXPONENT:g}: where mean_alignment × √P stays level, alignment scales as "
                      "theirs."),
            Table(["arm", *others, axis, "P", "n", *metrics, "× √P"], [
                [row["arm"], *(row[o] for o in others), fmt(row[axis]), fmt(row["parameter_count"]),
                 fmt(row["trait_gain_n"]), *(_mean(row, m) for m in metrics), fmt(row["alignment_x_sqrt_p"])]
                for row in table]),
            rows_table(tests[tests["claim"] == f"across {axis}"]), *_figures(stats, (f"across_{axis}",))]


def document(stats: dict[str, Any], tests: pd.DataFrame) -> list[Block]:
    """The report's blocks, from stats.json's content and the tests table: the answer first (each claim's verdict
    and estimates, trait gain by arm), then settings, each claim's rows and figure, and the exhaustive rest last."""
    axes, appendix = stats["axes"], []
    blocks: list[Block] = [Heading(f"Subliminal learning report: {stats['meta']['name']}", 1), *_lead(stats),
                           *_figures(stats, ("trait_gain",)), *_settings_section(stats)]
    for label, level in {c.get("level", ""): {n: c[n] for n in axes} for c in stats["claims"]}.items():
        blocks += [Heading(f"At {label}")] if axes else []
        sections, rest = _level_sections(stats, at_level(tests, level), level, 3 if axes else 2)
        blocks += sections
        appendix += _appendix(rest, _at(stats["arms"], level), label)
    for axis in axes:
        blocks += _across_section(stats, tests, axis)
    return blocks + _sequential_section(stats["sequential"]) + _methods(stats) + appendix

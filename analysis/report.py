"""The whole report from a results folder: load, test, draw and write

    report.md, report.html (self-contained), stats.json (every number), tables/*.csv, figures/*.png

into one folder, built whole beside it and renamed into place: never a partial report. Every inferential
statement is a row of the tests table (tables/tests.csv, stats.json "tests"); the text only renders rows.
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

from sublim.core.config import level_label
from sublim.core.files import atomic_write, json_safe, write_json, write_text

from . import figures, sequential
from .axes import (RANDOM_EXPONENT, across_tests, at_level, level_of, level_table, levels, tests_by_level,
                   with_axis_columns)
from .contrasts import (BASELINE, CLAIMS, MITIGATIONS_WITH_DOSE, REFUSED, VERDICTS, ZERO, Options, arm_frame, plan,
                        claim_verdict, tests_table)
from .descriptives import (arm_table, data_summary, dose_table, epoch_table, first_order_table, settings,
                           trial_metrics)
from .document import Block, Bullets, Heading, Image, Paragraph, Table, fmt, to_html, to_markdown
from .errors import ReportError
from .inference import ALPHA, CONFIDENCE, MIN_SEEDS
from .load import STATUSES, Results, load_results

SCHEMA = 2  # of stats.json: 2 = the tests table; 1 (no "schema" key) = the per-question answers before it
MARKER = ".sublim-report.json"  # written into every report folder: `--out` replaces only folders holding it
REPORT_OUTPUTS = ("report.md", "report.html", "stats.json", "tables", "figures", MARKER)
EXPECTED_OUT = "expected an absent or empty folder, or an earlier sublim report to replace"
FEW_SEEDS = 10  # below this many seeds in none/shared the report warns that its verdicts are fragile
CI = f"{CONFIDENCE:.0%} CI"
TEST_COLUMNS = ("arm", "reference", "metric", "test", "n", "estimate [CI]", "p", "p adjusted", "verdict", "note")
SECTIONS = {  # claim id of secondary rows -> (heading, what it asks, figures)
    "update": ("Update alignment: the step the optimizer applied",
               "Adam applies a preconditioned step Δθ, not the gradient. Update alignment is cos(−Δθ, g_trait) per "
               "step; positive means the step taken lowers the probe trait loss to first order.",
               ("update_alignment_steps",)),
    "first-order": ("First-order accounting: does Σ g_t·Δθ account for the trait-loss change?",
                    "Per trial, the change of the probe trait loss that the steps predict to first order (Σ g_t·Δθ "
                    "over every step but the last) against the change measured over the same steps (the last step's "
                    "probe loss minus the first's). Per arm, the share explained is the ratio of their means over "
                    "seeds, with a delta-method interval, tested against 0.5: the first-order drive dominates when "
                    "it accounts for more than half the measured change.", ("first_order",)),
    "mediation": ("Does mitigation act through alignment? Mediation and dose-response",
                  "strength → alignment → trait_gain (statsmodels' Mediation, OLS models with seed fixed effects), "
                  "with the raw gradient's cosine and, beside it, the update alignment as mediator. Effects are of "
                  "moving the dose from 0 to the largest strength tested, on the dose scale the rule chose.",
                  ("dose_response",)),
    "layers": ("Which layer carries the drive?",
               "Per-trial mean alignment within each layer's weights and bias, against 0.", ("per_layer_alignment",)),
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
    claims: list[dict[str, Any]]  # id, title, verdict (over axes: per level, with its values and "level" label)
    totals: dict[str, int]  # trials expected and by status


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
    """(completed trials with their per-trial metrics, the tests table): what a notebook needs. A sweep over
    axes is tested within each level (a column per axis) and across levels (claims 'across AXIS'); a sweep
    grown in waves is judged at its sequential design's levels."""
    completed = trial_metrics(results.completed, results.steps)
    if results.axes:
        tests = with_axis_columns(pd.concat([tests_by_level(completed, results.axes, options),
                                             across_tests(completed, results.axes)], ignore_index=True), results.axes)
    else:
        epochs = int(completed["epochs_done"].max()) if "epochs_done" in completed else 0
        tests = tests_table(completed, options, plan(arm_frame(completed), epochs))
    return completed, (sequential.judged_by_design(results.sequential, tests, results.axes) if results.sequential
                       else tests)


def build_report(results_path: str | Path, out: str | Path | None = None, options: Options = Options(),
                 **changes: Any) -> ReportFiles:
    """Write the report of `results_path` into `out` (default `results_path/report`); `changes` are Options
    fields (e.g. mediation_sims=100). Bad input is refused before any work; the report is built in a temporary
    sibling folder and renamed into place."""
    options = dataclasses.replace(options, **changes)
    check_options(options)
    folder = Path(os.path.abspath(out if out is not None else Path(results_path) / "report"))
    _check_out(folder)
    results = load_results(results_path)
    completed, tests = analyse(results, options)
    staging = _staging(folder)
    try:
        files = _write(results, completed, tests, options, staging)
        _swap_in(staging, folder)
    except BaseException as error:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(error, OSError):
            raise ReportError(f"{folder}: cannot write the report ({error}); an earlier report there is "
                              "unchanged") from None
        raise
    return _relocated(files, staging, folder)


# --- the output folder -----------------------------------------------------------------------------------

def is_report(folder: Path) -> bool:
    """A folder this report made: it holds the marker, or (reports of schema 1) a stats.json object with the
    'meta' and 'data' the report wrote, and nothing but report outputs."""
    if (folder / MARKER).is_file() and not (folder / MARKER).is_symlink():
        return True
    stats = folder / "stats.json"
    if not stats.is_file() or stats.is_symlink() or stats.stat().st_size > 64 << 20:
        return False
    try:
        held = json.loads(stats.read_text())
    except (OSError, ValueError, RecursionError):
        return False
    return isinstance(held, dict) and {"meta", "data"} <= set(held) and "schema" not in held


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
        if names and not (is_report(folder) and set(names) <= set(REPORT_OUTPUTS)):
            shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
            raise ReportError(f"{folder}: holds {shown} and is not a report sublim made; {EXPECTED_OUT}")
    ancestor = folder.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir() or not os.access(ancestor, os.W_OK | os.X_OK):
        raise ReportError(f"{folder}: cannot hold the report ({ancestor} is not a writable folder); {EXPECTED_OUT}")


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


def _relocated(files: ReportFiles, staging: Path, folder: Path) -> ReportFiles:
    def moved(path: Path) -> Path:
        return folder / path.relative_to(staging)

    return dataclasses.replace(files, folder=folder, markdown=moved(files.markdown), html=moved(files.html),
                               stats=moved(files.stats), tables=[moved(p) for p in files.tables],
                               figures=[moved(p) for p in files.figures])


# --- writing -----------------------------------------------------------------------------------------------

def _records(table: pd.DataFrame) -> list[dict[str, Any]]:
    return json_safe(json.loads(table.to_json(orient="records", double_precision=15)))


def _write(results: Results, completed: pd.DataFrame, tests: pd.DataFrame, options: Options,
           folder: Path) -> ReportFiles:
    axes, drawn, claims, parts = results.axes, {}, [], {"arms": [], "arm_epochs": [], "dose_response": []}
    for level in levels(completed, axes):  # one level, {}, without axes
        label = level_label(level)
        here, here_tests = at_level(completed, level), at_level(tests, level)
        epochs, doses = epoch_table(here), dose_table(here, MITIGATIONS_WITH_DOSE)
        drawn.update(figures.draw_all(here, results.steps, epochs, here_tests, doses, folder / "figures",
                                      f"-{label}" if label else ""))
        claims += [{"id": claim, "title": title, "verdict": claim_verdict(here_tests, claim), **level,
                    **({"level": label} if label else {})} for claim, (title, _) in CLAIMS.items()]
        for name, table in (("arms", arm_table(at_level(results.trials, level))), ("arm_epochs", epochs),
                            ("dose_response", doses)):
            parts[name].append(table.assign(**level))
    tables = {"tests": tests, "trials": results.trials,
              **{name: pd.concat(tables, ignore_index=True) for name, tables in parts.items()},
              "first_order": first_order_table(completed, list(axes))}
    for axis in axes:
        table = tables[f"across_{axis}"] = level_table(completed, axes, axis)
        drawn[f"across_{axis}"] = figures.draw(f"across_{axis}", lambda table=table, axis=axis: figures.across_axis(
            completed, tests, table, axis, axes), folder / "figures")
    table_paths = []
    for name, table in tables.items():
        path = folder / "tables" / f"{name}.csv"
        atomic_write(path, lambda tmp, t=table: t.to_csv(tmp, index=False))
        table_paths.append(path)
    data, used = data_summary(results), settings(completed)
    meta = {"name": results.name, "results": str(results.path), "source": results.kind, "confidence": CONFIDENCE,
            "alpha": ALPHA, "baseline": BASELINE, "axes": list(axes), **dataclasses.asdict(options)}
    stats = {"schema": SCHEMA, "meta": meta, "settings": used, "data": data, "axes": axes, "claims": claims,
             "tests": _records(tests), "arms": _records(tables["arms"]), "epochs": _records(tables["arm_epochs"]),
             "dose_response": _records(tables["dose_response"]),
             "across": {axis: _records(tables[f"across_{axis}"]) for axis in axes}, "figures": drawn,
             "sequential": results.sequential, "verdicts": VERDICTS}
    files = ReportFiles(folder=folder, markdown=folder / "report.md", html=folder / "report.html",
                        stats=folder / "stats.json", tables=table_paths,
                        figures=[folder / f["file"] for f in drawn.values() if "file" in f], claims=claims,
                        totals=data["totals"])
    write_json(files.stats, stats)
    blocks = document(stats, tests, tables["arms"])
    write_text(files.markdown, to_markdown(blocks))
    write_text(files.html, to_html(blocks, f"Subliminal learning report: {results.name}", folder))
    write_json(folder / MARKER, {"schema": SCHEMA, "written_by": "sublim report"})
    return files


# --- the document --------------------------------------------------------------------------------------------

def _interval(row: dict[str, Any]) -> str:
    if not np.isfinite(row.get("estimate", np.nan)):
        return "n/a"
    level = row.get("ci_level")
    shown = f" ({level:.0%})" if isinstance(level, float) and np.isfinite(level) and level != CONFIDENCE else ""
    return f"{fmt(row['estimate'])} [{fmt(row['ci_low'])}, {fmt(row['ci_high'])}]{shown}"


def test_rows(tests: pd.DataFrame) -> Table:
    """The one renderer of tests-table rows."""
    rows = []
    for row in tests.to_dict("records"):
        rows.append([row["arm"], row["reference"], row["metric"], f"{row['test']} (expects {expectation(row)})",
                     fmt(row["n"]), _interval(row), fmt(row["p"]),
                     fmt(row["p_adjusted"]) if row["p_adjusted"] != row["p"] else "", row["verdict"],
                     row["note"] if isinstance(row["note"], str) else ""])
    return Table(list(TEST_COLUMNS), rows)


def _sentence(row: dict[str, Any]) -> str:
    """One primary row in words: what was compared, the estimate with its interval and p, the verdict."""
    against = "" if _is_number(row["reference"]) else f" minus {row['reference']}"
    if row["verdict"] in (REFUSED, ZERO):
        return f"{row['arm']}, {row['metric']}{against}: {row['verdict']} ({row['note']})."
    p = f"p = {fmt(row['p'])}" + (f", adjusted {fmt(row['p_adjusted'])}" if row["p_adjusted"] != row["p"] else "")
    flip = f"; the verdict flips at margin {fmt(row['flip_margin'])}" if np.isfinite(row["flip_margin"]) else ""
    return (f"{row['arm']}, {row['metric']}{against} ({row['test']}, expects {expectation(row)}): "
            f"{_interval(row)}, {p}, n = {fmt(row['n'])} seeds{flip}: **{row['verdict']}**.")


def _is_number(text: str) -> bool:
    """A reference that is a number (a null value), not an arm."""
    try:
        float(text)
    except ValueError:
        return False
    return True


def expectation(row: dict[str, Any]) -> str:
    """What a row expects, in words: '> 0', 'within ±0.03 of 0', '<= 6.99e-05', 'not 0'."""
    null = fmt(row.get("null", 0))
    return {"=": f"within ±{fmt(row['margin'])} of {null}", "<=": f"<= {fmt(row['margin'])}",
            "!=": f"not {null}"}.get(row["expect"], f"{row['expect']} {null}")


def _figures(stats: dict[str, Any], names: tuple[str, ...], label: str = "") -> list[Block]:
    """The figures `names` (of the level `label`, in a sweep over axes), or why each was not drawn."""
    blocks: list[Block] = []
    for name in names:
        key, at = (f"{name}-{label}", f"At {label}. ") if label else (name, "")
        drawn = stats["figures"].get(key, {"refused": "not drawn"})
        caption = figures.CAPTIONS[name.split("_")[0] if name.startswith("across_") else name]
        blocks.append(Image(drawn["file"], at + caption) if "file" in drawn
                      else Paragraph(f"Figure `{key}` not drawn: {drawn['refused']}."))
    return blocks


def _ordered(rows: pd.DataFrame) -> pd.DataFrame:
    rank = rows["role"].map({"primary": 0, "sustained": 1}).fillna(2)
    return rows.assign(_rank=rank).sort_values("_rank", kind="stable").drop(columns="_rank")


def _claim_section(stats: dict[str, Any], tests: pd.DataFrame, claim: dict[str, str], label: str = "",
                   depth: int = 2) -> list[Block]:
    rows = tests[tests["claim"] == claim["id"]]
    primary = rows[rows["role"].isin(("primary", "sustained"))]
    words = " ".join(_sentence(row) for row in primary.to_dict("records")) or "No primary test for these arms."
    return [Heading(claim["title"], depth), Paragraph(f"**Claim.** {CLAIMS[claim['id']][1]}"),
            test_rows(_ordered(rows)), Paragraph(f"**Verdict: {claim['verdict']}.** {words}"),
            *_figures(stats, CLAIM_FIGURES.get(claim["id"], ()), label)]


def _warnings(stats: dict[str, Any], tests: pd.DataFrame) -> list[Block]:
    seeds = tests.loc[(tests["arm"] == BASELINE) & (tests["claim"] == "claim1") & (tests["role"] == "primary"), "n"]
    n = int(seeds.min()) if len(seeds) and np.isfinite(seeds).all() else 0
    items = []
    if n < FEW_SEEDS:
        at = " (at its smallest level)" if stats["axes"] else ""
        items.append(f"This sweep is too small for its verdicts: {n} seed(s) in {BASELINE}{at} (tests need at least "
                     f"{MIN_SEEDS}; the effects this study looks for need about {FEW_SEEDS} or more, see Seeds "
                     "needed). Read 'not shown' here as 'not enough data', not as evidence against a claim.")
    if stats["settings"]:
        items.append("Settings differ from the protocol's defaults (see Settings): numbers are not comparable with "
                      "a default-setting sweep.")
    return [Paragraph("**Read this first.**"), Bullets(items)] if items else []


def _settings_section(stats: dict[str, Any]) -> list[Block]:
    used = stats["settings"]
    text = ("Every setting is the protocol's default (PROTOCOL.md: 5 teacher and 5 student epochs, 50,000 noise "
            "images, Adam 3e-4, batch 1024, hidden 256, m = 3 auxiliary logits, normal init)." if not used else
            "Settings that differ from the protocol's defaults (all others are the defaults):")
    table = [Table(["setting", "used", "default", "what it is"],
                   [[u["setting"], ", ".join(map(fmt, u["values"])), fmt(u["default"]), u["help"]] for u in used])]
    return [Heading("Settings"), Paragraph(text), *(table if used else [])]


def _data_section(stats: dict[str, Any], arms: pd.DataFrame) -> list[Block]:
    data, totals = stats["data"], stats["data"]["totals"]
    metrics = ("student_acc_before", "student_acc", "trait_gain", "mean_alignment", "final_distill_loss")
    blocks: list[Block] = [
        Heading("Data"),
        Paragraph(f"Results folder `{stats['meta']['results']}` ({data['source']}): {totals['expected']} trials "
                  "expected, " + ", ".join(f"{totals[s]} {s}" for s in STATUSES) + f"; {data['seeds']} seeds among "
                  "completed trials. Only completed trials enter a statistic. Teacher test accuracy: mean "
                  f"{fmt(data['teacher_acc']['mean'])} (range {fmt(data['teacher_acc']['min'])} to "
                  f"{fmt(data['teacher_acc']['max'])}) over {data['teacher_acc']['n']} teachers."),
        Table(["arm", *STATUSES, *(f"{m} [{CI}]" for m in metrics)],
              [[" at ".join(filter(None, (row["arm"], level_of(row, stats["axes"])))), *(fmt(row[s]) for s in STATUSES),
                *(f"{fmt(row[f'{m}_mean'])} [{fmt(row[f'{m}_ci_low'])}, {fmt(row[f'{m}_ci_high'])}]" for m in metrics)]
               for row in arms.to_dict("records")])]
    why = {"failed": lambda row: row["error"], "invalid": lambda row: row["reason"],
           "diverged": lambda row: f"step {fmt(row['step'])}, {row['model']}'s {row['quantity']} not finite"}
    for status, words in why.items():
        listed = data[status]
        if listed:
            blocks += [Paragraph(f"{status.capitalize()} trials ({len(listed)}, first {min(len(listed), 20)} shown):"),
                       Bullets([f"`{row['trial_id']}` ({row['arm']}): {words(row)}" for row in listed[:20]])]
    if data["warnings"]:
        blocks += [Paragraph("Loading notes:"), Bullets(data["warnings"])]
    return blocks


def _dose_blocks(doses: list[dict[str, Any]]) -> list[Block]:
    """Dose-response as descriptives: per mitigation and strength (none/shared as 0), means with intervals."""
    metrics = ("trait_gain", "mean_alignment", "mean_update_alignment")
    return [Paragraph(f"Dose-response, mean [{CI}] per strength (shared init; strength 0 is {BASELINE}):"),
            Table(["mitigation", "strength", "n", *metrics],
                  [[d["mitigation"], fmt(d["strength"]), fmt(d["trait_gain_n"]),
                    *(f"{fmt(d[f'{m}_mean'])} [{fmt(d[f'{m}_ci_low'])}, {fmt(d[f'{m}_ci_high'])}]" for m in metrics)]
                   for d in doses])] if doses else []


def _seeds_section(tests: pd.DataFrame, axes: dict[str, list[Any]]) -> list[Block]:
    primary = tests[tests["role"] == "primary"]
    rows = [[row["claim"], " at ".join(filter(None, (row["arm"], level_of(row, axes)))), row["metric"], row["test"],
             fmt(row["n"]),
             fmt(row["seeds_needed"]) if np.isfinite(row["seeds_needed"]) else
             ("not computed for equivalence" if row["expect"] == "=" else row["note"] or "n/a")]
            for row in primary.to_dict("records")]
    return [Heading("Seeds needed"),
            Paragraph("For each primary test in the claim's direction: the seeds for 80% power at alpha 0.05 (before "
                      "the multiplicity adjustment, so a floor for the family) if the true effect were the one "
                      "observed (statsmodels TTestPower; slopes by FTestPowerF2). Where the "
                      "observed effect opposes the claim, no number is given. A planning figure, not a promise."),
            Table(["claim", "arm", "metric", "test", "n now", "seeds needed"], rows)]


def _sequential_section(record: dict[str, Any] | None) -> list[Block]:
    if not record:
        return []
    design = record["design"]
    rows = [[fmt(wave["look"]), fmt(wave["seeds"]),
             "; ".join(f"{t['claim']} {t['arm']} {t.get('metric', '')}{' at ' + t['level'] if 'level' in t else ''}: "
                       f"{t['status']}" for t in wave["tests"])]
            for wave in record["waves"]]
    return [Heading("Sequential design: how many seeds this sweep ran, and why"),
            Paragraph(f"{design.get('method', 'group-sequential design')}; looks after "
                      f"{', '.join(map(str, design['seeds']))} seeds. The verdicts of its primary tests above use the "
                      f"boundary of the last look reached. **Stopped:** {record['stopped'] or 'not yet (interrupted)'}."),
            Table(["look", "seeds", "tests at this look"], rows)]


def _methods(stats: dict[str, Any]) -> list[Block]:
    meta = stats["meta"]
    return [Heading("Methods"), Paragraph("Verdict levels:"),
            Bullets([f"**{name}**: {meaning}" for name, meaning in VERDICTS.items()]),
            Paragraph("How the tests are run:"), Bullets([
                "The unit of inference is the seed: every test takes one number per seed (an arm's trials of one seed "
                "averaged; paired arms differenced within seed). Per-step quantities are descriptives only: steps "
                "are autocorrelated, so no p-value comes from pooled steps.",
                f"Intervals are {CI}s, except equivalence and non-inferiority rows (90%, the two one-sided tests' "
                f"interval). Primary rows form one family: their p-values are Holm-adjusted (family-wise alpha "
                f"{fmt(ALPHA)}) and the verdict uses the adjusted p; a sweep grown in waves uses its sequential "
                "design's levels instead. Sustained rows (every epoch) join a claim by intersection-union: all must "
                "hold, which needs no adjustment.",
                f"\"No effect\" is an equivalence test (TOST): equivalent when the 90% interval lies within "
                f"±{fmt(meta['equivalence_margin'])} of trait_gain (`--equivalence-margin`). The default, 3 points of "
                "test accuracy (300 of the 10,000 test images), is the smallest acquisition this study treats as "
                "real: about a tenth of the gap between chance (0.1) and the 0.3-0.4 gains shared-init students "
                "reach, and several times one trial's binomial standard error of accuracy (about 0.005).",
                f"Non-inferiority of the final distillation loss: the one-sided 95% upper bound of the paired "
                f"difference below {fmt(meta['noninferiority_margin'])} × {BASELINE}'s mean (`--margin`); each row "
                "says at which fraction its verdict would flip.",
                "Slopes of trait_gain on alignment: OLS per arm across seeds (HC3 SEs); across arms, arm intercepts "
                "with SEs clustered by seed (arms of a seed share its teacher). A common slope is given only when the "
                "heterogeneity test (Wald F of the arm × alignment terms) does not show the slopes differ. Both the "
                "raw gradient's cosine (mean_alignment) and the step Adam applied (mean_update_alignment) are "
                "offered as mediator; the intervention (projection against placebo at equal step norm) is the "
                "primary causal test.",
                "Mediation's dose scale, by a stated rule: trait_gain ~ dose + seed by OLS on the linear dose s and "
                "on log(1 + s / s_min); the lower AIC wins, linear on a tie. Simulated p-values resolve to "
                f"1/{meta['mediation_sims']} (seed {meta['mediation_seed']}).",
                f"Tests need at least {MIN_SEEDS} seeds with some spread; fewer, and the row is refused with the "
                "reason.",
                *(["Over axes: every row above is answered within its level, and primary rows are Holm-adjusted "
                   "within their level (each level is the study rerun at that setting). Rows about an axis are fits "
                   "to per-trial numbers with SEs clustered by seed (t on seeds − 1 df): level differences by the "
                   "Wald F of the level terms, trends by OLS (on log2 of "
                   "the axis where it spans 4x or more), tracking by OLS of trait_gain on mean_alignment without and "
                   "with level intercepts, the exponent in P by a Gaussian GLM with log link (so trials with "
                   "alignment <= 0 still count)."] if meta["axes"] else [])])]


def _level_sections(stats: dict[str, Any], tests: pd.DataFrame, level: dict[str, Any], depth: int) -> list[Block]:
    """Every claim's section, then the secondary sections, of one level (the whole folder without axes)."""
    label, blocks = level_label(level), []
    for claim in (c for c in stats["claims"] if all(c.get(name) == value for name, value in level.items())):
        blocks += _claim_section(stats, tests, claim, label, depth)
    doses = [d for d in stats["dose_response"] if all(d.get(name) == value for name, value in level.items())]
    for claim, (heading, text, names) in SECTIONS.items():
        rows = tests[tests["claim"] == claim]
        blocks += [Heading(heading, depth), Paragraph(text), *([test_rows(rows)] if len(rows) else []),
                   *(_dose_blocks(doses) if claim == "mediation" else []), *_figures(stats, names, label)]
    return blocks


def _across_section(stats: dict[str, Any], tests: pd.DataFrame, axis: str) -> list[Block]:
    """How the arms' alignment and acquisition move along one axis: per-level means, the across rows, the figure."""
    rows = tests[tests["claim"] == f"across {axis}"]
    metrics = ("mean_alignment", "mean_update_alignment", "trait_gain")
    table = stats["across"][axis]
    others = ["other_axes"] if table and "other_axes" in table[0] else []
    levels_table = Table(["arm", *others, axis, "parameters P", "n", *(f"{m} [{CI}]" for m in metrics),
                          "mean_alignment × √P"],
                         [[row["arm"], *(row[o] for o in others), fmt(row[axis]), fmt(row["parameter_count"]),
                           fmt(row["trait_gain_n"]),
                           *(f"{fmt(row[f'{m}_mean'])} [{fmt(row[f'{m}_ci_low'])}, {fmt(row[f'{m}_ci_high'])}]"
                             for m in metrics), fmt(row["alignment_x_sqrt_p"])] for row in table])
    judged = rows[rows["test"].isin(("exponent in P", "tracking across levels", "tracking within levels"))]
    words = " ".join(_sentence(row) for row in judged.to_dict("records"))
    return [Heading(f"Across {axis}: does alignment survive it, and does acquisition follow?"),
            Paragraph(f"Per arm and level of {axis}, over seeds (descriptive). Random directions in P dimensions have "
                      f"cosines of order P^{RANDOM_EXPONENT:g}: where mean_alignment × √P stays level along the axis, "
                      "alignment scales as random directions' would; where it grows, alignment decays more slowly."),
            levels_table,
            Paragraph(f"Tests along {axis} (claim 'across {axis}'; secondary rows, each at alpha {fmt(ALPHA)}): "
                      "whether each arm's means differ between levels at all (any shape), and their trend; whether trait gain tracks mean alignment over the trials of every level "
                      "(across) and within levels (an intercept per level); and, where the axis changes P, the "
                      f"exponent b of {BASELINE}'s mean alignment ∝ P^b, tested against {RANDOM_EXPONENT:g} "
                      "(supported: alignment decays more slowly than random directions')."),
            test_rows(rows), *([Paragraph(words)] if words else []), *_figures(stats, (f"across_{axis}",))]


def document(stats: dict[str, Any], tests: pd.DataFrame, arms: pd.DataFrame) -> list[Block]:
    """The report's blocks, from stats.json's content and the tests table."""
    axes = stats["axes"]
    points = list({level_label(level): level for level in (
        {name: claim[name] for name in axes} for claim in stats["claims"])}.values())
    if axes:
        verdicts = {(claim["id"], level_label({n: claim[n] for n in axes})): claim["verdict"]
                    for claim in stats["claims"]}
        summary = Table(["question", *map(level_label, points)],
                        [[title, *(verdicts[(claim, level_label(p))] for p in points)]
                         for claim, (title, _) in CLAIMS.items()])
    else:
        summary = Table(["question", "verdict"], [[claim["title"], claim["verdict"]] for claim in stats["claims"]])
    blocks: list[Block] = [
        Heading(f"Subliminal learning report: {stats['meta']['name']}", 1),
        Paragraph("Does a student distilled only on a teacher's auxiliary logits, on noise, acquire the teacher's "
                  "MNIST skill, and does the alignment of distillation and trait gradients drive it? Every test "
                  "below is one row of tables/tests.csv; verdict levels are defined in Methods."
                  + (f" This sweep varies {', '.join(axes)}: each claim is tested within each level (one column "
                     "per level above), and each axis has a section on what changes along it." if axes else "")),
        summary, *_warnings(stats, tests), *_settings_section(stats), *_data_section(stats, arms)]
    for level in points:
        if axes:
            blocks += [Heading(f"At {level_label(level)}"),
                       Paragraph(f"Every claim's tests on the trials at {level_label(level)} only.")]
        blocks += _level_sections(stats, at_level(tests, level), level, 3 if axes else 2)
    for axis in axes:
        blocks += _across_section(stats, tests, axis)
    return (blocks + _seeds_section(tests, axes) + _sequential_section(stats["sequential"])
            + _methods(stats))

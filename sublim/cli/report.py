"""`sublim report RESULTS`: statistics, figures and a report (Markdown, HTML, JSON, CSV) of a results folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from sublim.analysis import Options, ReportError, build_report

USER_ERRORS = (ReportError,)
DEFAULTS = Options()
EXAMPLES = """examples:
  sublim report results/paper                        report.md, report.html, stats.json, tables/ and figures/
  sublim report runs/seed0                           one run's folder (from sublim run)
  sublim report results/paper --out /tmp/paper-report --mediation-sims 2000   elsewhere, finer mediation intervals"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EXAMPLES
    parser.add_argument("results", type=Path, metavar="RESULTS",
                        help="results folder: a sweep's (holding sweep.json) or a run's (holding summary.json)")
    parser.add_argument("--out", type=Path, metavar="DIR", help="report folder (default: RESULTS/report)")
    parser.add_argument("--equivalence-margin", type=float, default=DEFAULTS.equivalence_margin, metavar="GAIN",
                        help="smallest trait_gain of interest: \"no effect\" (placebo vs none, independent init) "
                             "means equivalent within +-GAIN by TOST (default: %(default)s, 3 points of test accuracy)")
    parser.add_argument("--margin", type=float, default=DEFAULTS.noninferiority_margin, metavar="FRACTION",
                        help="non-inferiority margin of the final distillation loss, as a fraction of none/shared's "
                             "mean (default: %(default)s)")
    parser.add_argument("--mediation-sims", type=int, default=DEFAULTS.mediation_sims, metavar="N",
                        help="simulations per mediation analysis (default: %(default)s)")
    parser.add_argument("--mediation-seed", type=int, default=DEFAULTS.mediation_seed, metavar="SEED",
                        help="seed of the mediation simulations, for reproducible intervals (default: %(default)s)")


def main(args: argparse.Namespace) -> int:
    options = Options(equivalence_margin=args.equivalence_margin, noninferiority_margin=args.margin,
                      mediation_sims=args.mediation_sims, mediation_seed=args.mediation_seed)
    files = build_report(args.results, args.out, options)
    print(f"wrote {files.markdown}, {files.html} and {files.stats}\n"
          f"  tables: {', '.join(p.name for p in files.tables)} in {files.folder / 'tables'}\n"
          f"  figures: {len(files.figures)} in {files.folder / 'figures'}")
    counts = ", ".join(f"{n} {status}" for status, n in files.totals.items() if n and status != "expected")
    print(f"  trials: {files.totals['expected']} expected; {counts} (statistics use completed trials only)")
    for warning in files.warnings:
        print(f"  warning: {warning}")
    for claim in files.claims:  # one line each: the verdict, the claim, its key estimates (mean [95% CI])
        print(f"  {claim['verdict']:>16}  {claim['title']}" + (f" (at {claim['level']})" if "level" in claim else "")
              + f": {claim['estimates']}")
    return 0

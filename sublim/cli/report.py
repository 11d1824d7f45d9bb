"""`sublim report RESULTS`: statistics, figures and a report (Markdown, HTML, JSON, CSV) of a results folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from sublim.analysis import ReportError, build_report
from sublim.analysis.stats import MARGIN, MEDIATION_SIMS

USER_ERRORS = (ReportError,)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results", type=Path, metavar="RESULTS",
                        help="results folder: a sweep's (holding sweep.json) or a run's (holding summary.json)")
    parser.add_argument("--out", type=Path, metavar="DIR", help="report folder (default: RESULTS/report)")
    parser.add_argument("--mediation-sims", type=int, default=MEDIATION_SIMS, metavar="N",
                        help="simulations per mediation analysis (default: %(default)s)")
    parser.add_argument("--mediation-seed", type=int, default=0, metavar="SEED",
                        help="seed of the mediation simulations, for reproducible intervals (default: %(default)s)")
    parser.add_argument("--margin", type=float, default=MARGIN, metavar="FRACTION",
                        help="non-inferiority margin of the final distillation loss, as a fraction of none/shared's "
                             "mean: an arm is non-inferior when the one-sided upper bound of its paired difference "
                             "lies below it (default: %(default)s)")


def main(args: argparse.Namespace) -> int:
    files = build_report(args.results, args.out, mediation_sims=args.mediation_sims,
                         mediation_seed=args.mediation_seed, margin=args.margin)
    print(f"wrote {files.markdown}, {files.html} and {files.stats}\n"
          f"  tables: {', '.join(p.name for p in files.tables)} in {files.folder / 'tables'}\n"
          f"  figures: {len(files.figures)} in {files.folder / 'figures'}")
    counts = ", ".join(f"{n} {status}" for status, n in files.totals.items() if n and status != "expected")
    print(f"  trials: {files.totals['expected']} expected; {counts} (statistics use completed trials only)")
    for claim in files.claims:
        print(f"  {claim['verdict']:>16}  {claim['title']}")
    return 0

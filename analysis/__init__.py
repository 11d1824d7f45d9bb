"""Statistics, figures and a readable report from the results of `sublim sweep` or `sublim run`.

Reads files only: importing `analysis` or writing a report needs neither torch nor a running Ray. In a
notebook: `results = load_results(path)`, then `trials, tests = analyse(results)` (one row per trial, one row
per test) and `results.steps` (one row per optimizer step).
"""

from .contrasts import CONTRASTS, Contrast, Options, tests_table
from .descriptives import trial_metrics
from .errors import ReportError
from .load import Results, load_results
from .report import ReportFiles, analyse, build_report

__all__ = ["CONTRASTS", "Contrast", "Options", "ReportError", "ReportFiles", "Results", "analyse", "build_report",
           "load_results", "tests_table", "trial_metrics"]

"""Statistics, figures and a readable report from the results of `sublim sweep` or `sublim run`.

Reads files only: importing `analysis` or writing a report needs neither torch nor a running Ray.
"""

from .answers import Refused, Stats
from .errors import ReportError
from .load import Results, load_results
from .report import ReportFiles, build_report
from .stats import compute_stats

__all__ = ["Refused", "ReportError", "ReportFiles", "Results", "Stats", "build_report", "compute_stats",
           "load_results"]

"""The two ways a report can say no: to the whole input, or to one statistic."""

from __future__ import annotations


class ReportError(ValueError):
    """The input cannot be reported on at all; the one-line message names the path and what was expected."""


class Refusal(Exception):
    """Raised while computing one statistic that needs more (or better) data than there is; the message
    says what it needs and has. `stats.attempt` turns it into the `Refused` answer the report shows."""


def need(ok: bool, reason: str) -> None:
    """Refuse the statistic being computed unless `ok`."""
    if not ok:
        raise Refusal(reason)

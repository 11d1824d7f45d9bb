"""Durations as people read them: seconds, minutes or hours (a prediction never reads "0.00 core-hours")."""

from __future__ import annotations


def duration_text(seconds: float) -> str:
    """42 s, 7 min 5 s, 42 min, 3 h 5 min: to the second below ten minutes, to the minute above."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, rest = divmod(seconds, 60)
    if minutes < 10:
        return f"{minutes} min {rest} s"
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(round(seconds / 60), 60)
    return f"{hours} h {minutes} min"

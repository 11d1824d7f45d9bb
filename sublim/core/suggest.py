"""'did you mean ...' for a mistyped name: an option, a spec key, a setting, a mitigation."""

from __future__ import annotations

import difflib
from typing import Any, Iterable


def did_you_mean(word: Any, choices: Iterable[Any]) -> str:
    """' (did you mean X?)' when one of `choices` is close to `word` (difflib's ratio 0.6 or more), else ''."""
    close = difflib.get_close_matches(str(word), [str(choice) for choice in choices], n=1)
    return f" (did you mean {close[0]}?)" if close else ""

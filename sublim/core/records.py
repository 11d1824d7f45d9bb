"""The shapes of the JSON records a results folder holds beyond its trials (sweep.json's sequential record), and the
one check that a received record has its shape, before any of its values is used.

A shape is a type (str, int, NUMBER), None (JSON null), a tuple of alternatives, a list [item shape], or a dict of
keys to shapes, a key ending in '?' being optional; other keys are allowed (newer fields).
"""

from __future__ import annotations

from typing import Any

NUMBER = "number"  # an int or a float, never a bool
MAYBE = (NUMBER, None)

LOOK_TEST = {"claim": str, "arm": str, "reference": str, "metric": str, "test": str, "level?": str, "status": str,
             "reason?": str, "n?": NUMBER, "estimate?": MAYBE, "ci_low?": MAYBE, "ci_high?": MAYBE, "ci_level?": MAYBE,
             "t?": MAYBE, "df?": MAYBE, "p?": MAYBE, "boundary_t?": MAYBE, "nominal_p?": NUMBER,
             "futility_t?": NUMBER, "alpha_share?": NUMBER}
# A decided or open test of a design with stored boundaries: every number the report shows of it.
BOUNDED_TEST = {**LOOK_TEST, "n": NUMBER, "estimate": MAYBE, "ci_low": MAYBE, "ci_high": MAYBE, "ci_level": MAYBE,
                "t": NUMBER, "df": NUMBER, "p": MAYBE, "boundary_t": MAYBE, "nominal_p": NUMBER, "futility_t": NUMBER,
                "alpha_share": NUMBER}
OLDER_TEST = {**LOOK_TEST, "nominal_p": NUMBER}  # of a design before stored boundaries: judged by its status
SEQUENTIAL = {"design": {"method?": str, "family?": [[str]], "seeds": [int], "boundaries_t?": [[MAYBE]],
                         "futility_t?": [NUMBER]},
              "waves": [{"look": int, "seeds": int, "tests": [LOOK_TEST]}], "stopped": (str, None)}


def shape_problem(value: Any, shape: Any, where: str) -> str | None:
    """Why `value` (at `where`) does not have `shape`, or None."""
    if isinstance(shape, tuple):
        problems = [shape_problem(value, option, where) for option in shape]
        return None if None in problems else problems[0]
    if shape is None:
        return None if value is None else f"{where} is not null"
    if shape in (NUMBER, int):
        whole = isinstance(value, int) or shape == NUMBER and isinstance(value, float)
        kind = "a number" if shape == NUMBER else "a whole number"
        return None if whole and not isinstance(value, bool) else f"{where} is not {kind}"
    if shape is str:
        return None if isinstance(value, str) else f"{where} is not text"
    if isinstance(shape, list):
        if not isinstance(value, list):
            return f"{where} is not a list"
        return next((p for i, item in enumerate(value) if (p := shape_problem(item, shape[0], f"{where}[{i}]"))), None)
    if not isinstance(value, dict):
        return f"{where} is not a mapping"
    for key, inner in shape.items():
        name = key.removesuffix("?")
        if name not in value:
            if key.endswith("?"):
                continue
            return f"{where}.{name} is missing"
        problem = shape_problem(value[name], inner, f"{where}.{name}")
        if problem:
            return problem
    return None


def sequential_problem(record: Any) -> str | None:
    """Why sweep.json's sequential record (a sweep grown in waves) cannot be used, or None: its shape, with every
    number the report shows of a test judged by stored boundaries, and at least one planned look."""
    problem = shape_problem(record, SEQUENTIAL, "sequential")
    if problem or not record["design"]["seeds"]:
        return problem or "sequential.design.seeds is empty"
    decided = BOUNDED_TEST if "boundaries_t" in record["design"] else OLDER_TEST
    tests = ((w, t) for w, wave in enumerate(record["waves"]) for t in wave["tests"])
    return next((p for w, t in tests if t["status"] != "undetermined"
                 and (p := shape_problem(t, decided, f"sequential.waves[{w}] test"))), None)

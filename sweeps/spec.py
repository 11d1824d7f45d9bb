"""Sweep specs: a YAML file naming seeds × arms, validated in full before Ray starts.

A spec is small and declarative; every trial of its grid is built here as a `TrialConfig`, so the
trial config's own validation catches a bad arm or setting, and the message names the spec file
and the spec key to fix.
"""

from __future__ import annotations

import itertools
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sublim.core.config import ConfigError, TrialConfig, accepts, check_value, field_types, level_label
from sublim.core.files import (MAX_NAME_LENGTH, SWEEP_NAME_PATTERN, TRIAL_ID_PATTERN, UnreadableFile, os_problem,
                               read_regular)
from sublim.core.mitigations import MITIGATIONS
from sublim.core.suggest import did_you_mean
from sublim.core.text import short_repr

SPEC_KEYS = ("name", "description", "seeds", "arms", "settings", "resources", "axes")
ARM_KEYS = ("mitigation", "strengths", "student_init")
RESOURCE_KEYS = ("cpus", "gpus")
GRID_FIELDS = ("seed", "mitigation", "strength", "student_init")  # set by seeds × arms, not by settings
MAX_TRIALS = 50_000  # per sweep: sweep.json lists every trial, and Tune holds them all in one run
NAME_RULE = (f"letters, digits, '.', '_' and '-', starting with a letter or digit, at most {MAX_NAME_LENGTH} "
             "characters (it names the results folder)")
MAX_SPEC_BYTES = 1 << 20  # the shipped specs are under 2 kB
MAX_YAML_DEPTH = 20  # a spec nests 4 levels deep; PyYAML composes nested nodes recursively


def name_problem(name: Any) -> str | None:
    """Why `name` cannot name a sweep's results folder, or None."""
    if isinstance(name, str) and SWEEP_NAME_PATTERN.fullmatch(name):
        return None
    return f"{short_repr(name)} is not allowed; {NAME_RULE}"


class SpecError(ValueError):
    """A spec cannot be run: the message names the file, the key and what is allowed."""


def read_spec_text(path: str | Path) -> str:
    """A spec file's text, read once and bounded: a regular file (a link to one is followed: the user named it) of
    at most MAX_SPEC_BYTES, so that /dev/zero, a FIFO or a huge file is refused in one line, never read for ever."""
    path = Path(path)
    try:
        return read_regular(path, MAX_SPEC_BYTES, follow_links=True).decode("utf-8")
    except UnreadableFile as error:
        raise SpecError(f"{path}: {error}; a spec is a small YAML text file") from None
    except UnicodeDecodeError as error:
        raise SpecError(f"{path}: not UTF-8 text (byte {error.start}); a spec is a YAML text file") from None
    except OSError as error:
        raise SpecError(f"{path}: cannot read the spec file: {os_problem(error)}") from None


class _SpecLoader(yaml.SafeLoader):
    """safe_load without aliases and with bounded nesting: a spec is small, so a few lines that expand to
    gigabytes (an alias bomb) or thousands of nested brackets fail in one line instead of exhausting memory
    or the stack."""

    depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        mark = self.peek_event().start_mark
        if self.check_event(yaml.AliasEvent):
            raise yaml.composer.ComposerError(None, None, "aliases (*name) are not allowed in a spec; write the "
                                              "value out", mark)
        if self.depth >= MAX_YAML_DEPTH:
            raise yaml.composer.ComposerError(None, None, f"nested deeper than {MAX_YAML_DEPTH} levels", mark)
        self.depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


@dataclass(frozen=True)
class Arm:
    mitigation: str
    strengths: tuple[float, ...]
    student_init: str


@dataclass(frozen=True)
class Resources:
    """What one trial reserves; fractions share a CPU or a GPU between trials."""

    cpus: float = 1.0
    gpus: float = 0.0

    def tune(self) -> dict[str, float]:
        return {"cpu": self.cpus, "gpu": self.gpus}

    @property
    def threads(self) -> int:
        """Torch CPU threads of a trial: its whole CPUs, at least one."""
        return max(1, int(self.cpus))


@dataclass(frozen=True)
class GridTrial:
    """One point of the grid: a stable, readable, filesystem-safe id and its full trial config."""

    trial_id: str
    config: TrialConfig


def axis_id(config: TrialConfig, axes: typing.Iterable[str]) -> str:
    """The trial id of `config` in a grid over `axes`: seed and arm, then each axis value by name in the
    axes' sorted order (e.g. 's003-none-shared-hidden=1024-lr=0.001'), so the id reads as the point it is."""
    level = level_label({name: getattr(config, name) for name in axes})
    return f"{config.trial_id}-{level}" if level else config.trial_id


@dataclass(frozen=True)
class SweepSpec:
    name: str
    description: str
    seeds: tuple[int, ...]
    arms: tuple[Arm, ...]
    settings: dict[str, Any]
    resources: Resources
    trials: tuple[GridTrial, ...]
    axes: dict[str, tuple[Any, ...]] = field(default_factory=dict)  # each axis's values, as the configs hold them

    @classmethod
    def load(cls, path: str | Path) -> "SweepSpec":
        return cls.parse(read_spec_text(path), str(path))

    @classmethod
    def parse(cls, text: str, source: str) -> "SweepSpec":
        """The spec in `text` (YAML), read from `source` (named in every message)."""
        try:
            raw = yaml.load(text, Loader=_SpecLoader)  # noqa: S506 (a SafeLoader)
        except yaml.reader.ReaderError as error:  # its str() takes two lines
            code = error.character if isinstance(error.character, int) else ord(error.character)
            raise SpecError(f"{source}: not valid YAML: character {code:#06x} at position {error.position} is not "
                            "allowed in YAML text") from None
        except yaml.YAMLError as error:
            where = getattr(error, "problem_mark", None)
            line = f" at line {where.line + 1}" if where else ""
            raise SpecError(f"{source}: not valid YAML{line}: {getattr(error, 'problem', error)}") from None
        return cls.from_dict(raw, source)

    @classmethod
    def from_dict(cls, raw: Any, source: str = "<spec>") -> "SweepSpec":
        return _Parser(source).spec(raw)

    def to_dict(self) -> dict[str, Any]:
        """The spec with defaults filled in and seeds listed: what `sweep.json` stores."""
        return {
            "name": self.name,
            "description": self.description,
            "seeds": list(self.seeds),
            "arms": [{"mitigation": a.mitigation, "strengths": list(a.strengths), "student_init": a.student_init}
                     for a in self.arms],
            "settings": dict(self.settings),
            # Only when given: a spec without axes keeps the sweep.json that folders made before axes hold.
            **({"axes": {name: list(values) for name, values in self.axes.items()}} if self.axes else {}),
            "resources": {"cpus": self.resources.cpus, "gpus": self.resources.gpus},
        }


class _Parser:
    """Turns parsed YAML into a SweepSpec, failing on the first mistake with its spec key."""

    def __init__(self, source: str):
        self.source = source

    def fail(self, key: str, problem: str) -> typing.NoReturn:
        raise SpecError(f"{self.source}: key '{key}': {problem}")

    def mapping(self, value: Any, key: str, allowed: tuple[str, ...], required: tuple[str, ...] = ()) -> dict:
        if not isinstance(value, dict):
            self.fail(key, f"expected a mapping with keys {', '.join(allowed)}; got {_kind(value)}")
        for name in value:
            if name not in allowed:
                self.fail(f"{key}.{name}" if key else str(name),
                          f"unknown key{did_you_mean(name, allowed)}; allowed: {', '.join(allowed)}")
        for name in required:
            if name not in value:
                self.fail(f"{key}.{name}" if key else name, "missing; it is required")
        return value

    def number(self, value: Any, key: str) -> float:
        if not accepts(value, float):
            self.fail(key, f"expected a number; got {_kind(value)}")
        return float(value)

    def spec(self, raw: Any) -> SweepSpec:
        if raw is None:
            raise SpecError(f"{self.source}: the spec is empty; it needs at least name, seeds and arms")
        raw = self.mapping(raw, "", SPEC_KEYS, required=("name", "seeds", "arms"))
        name = raw["name"]
        if name_problem(name):
            self.fail("name", name_problem(name))
        description = raw.get("description", "")
        if not isinstance(description, str):
            self.fail("description", f"expected text; got {_kind(description)}")
        seeds = self.seeds(raw["seeds"])
        arms = self.arms(raw["arms"])
        settings = self.settings(raw.get("settings", {}))
        axes = self.axes(raw.get("axes", {}), settings)
        resources = self.resources(raw.get("resources", {}), settings)
        points = sum(len(arm.strengths) for arm in arms) * math.prod(map(len, axes.values()))
        if len(seeds) * points > MAX_TRIALS:  # before building them: a few lines of axes can make millions
            self.fail("seeds", f"{len(seeds):,} seeds x {points:,} {'points of arms x axes' if axes else 'arms'} = "
                               f"{len(seeds) * points:,} trials; a sweep holds at most {MAX_TRIALS:,} (split it into "
                               "several sweeps)")
        configs = self.arm_configs(arms, settings, axes, seeds[0])
        # Seed-major; re-seeding a checked config cannot fail (`seeds` checked each seed) and checks the seed only.
        trials = tuple(GridTrial(axis_id(c, axes), c) for seed in seeds for c in (a.with_seed(seed) for a in configs))
        bad = next((t.trial_id for t in trials if not TRIAL_ID_PATTERN.fullmatch(t.trial_id)), None)
        if bad:
            self.fail("axes", f"trial id {short_repr(bad)} ({len(bad)} characters) is not allowed; a trial id names a "
                              f"folder: at most {MAX_NAME_LENGTH} characters, letters, digits, '@', '.', '_', '+', '-', "
                              "'=': use fewer axes or shorter values")
        return SweepSpec(name, description, seeds, arms, settings, resources, trials, axes)

    def seeds(self, value: Any) -> tuple[int, ...]:
        allowed = "a list of integers, or {start: A, stop: B} for A, A+1, ..., B-1"
        if isinstance(value, dict):
            self.mapping(value, "seeds", ("start", "stop"), required=("start", "stop"))
            if not (accepts(value["start"], int) and accepts(value["stop"], int)):
                self.fail("seeds", f"start and stop must be integers; allowed: {allowed}")
            if value["stop"] - value["start"] > MAX_TRIALS:  # fail before listing a billion seeds
                self.fail("seeds", f"{value['stop'] - value['start']:,} seeds; a sweep holds at most {MAX_TRIALS:,} trials")
            seeds = tuple(range(value["start"], value["stop"]))
        elif isinstance(value, list):
            if not all(accepts(s, int) for s in value):
                self.fail("seeds", f"{value!r} is not allowed; allowed: {allowed}")
            seeds = tuple(value)
        else:
            self.fail("seeds", f"expected {allowed}; got {_kind(value)}")
        if not seeds:
            self.fail("seeds", f"no seeds: the grid would be empty; allowed: {allowed}")
        if len(set(seeds)) != len(seeds):
            self.fail("seeds", "a seed is listed twice; each seed once")
        if min(seeds) < 0:
            self.fail("seeds", f"{min(seeds)} is not allowed; seeds must be >= 0")
        return seeds

    def arms(self, value: Any) -> tuple[Arm, ...]:
        if not isinstance(value, list):
            self.fail("arms", f"expected a list of arms (each with keys {', '.join(ARM_KEYS)}); got {_kind(value)}")
        if not value:
            self.fail("arms", "no arms: the grid would be empty; list at least one arm")
        arms = []
        for i, item in enumerate(value):
            key = f"arms[{i}]"
            item = self.mapping(item, key, ARM_KEYS, required=("mitigation",))
            mitigation = item["mitigation"]
            if mitigation not in MITIGATIONS:
                self.fail(f"{key}.mitigation", str(MITIGATIONS.unknown(mitigation)))
            strengths = item.get("strengths", 0.0 if mitigation == "none" else None)
            if strengths is None:
                self.fail(f"{key}.strengths", f"missing; mitigation {mitigation!r} needs one strength or a list")
            strengths = strengths if isinstance(strengths, list) else [strengths]
            if not strengths:
                self.fail(f"{key}.strengths", "empty list: the grid would be empty; give at least one strength")
            values = tuple(self.number(s, f"{key}.strengths") for s in strengths)
            arms.append(Arm(mitigation, values, item.get("student_init", "shared")))
        return tuple(arms)

    def settings(self, value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            self.fail("settings", f"expected a mapping of trial settings; got {_kind(value)}")
        for name in value:
            self.setting_name(name, "settings")
        return dict(value)

    def setting_name(self, name: Any, key: str) -> None:
        """A trial setting that settings or axes may set: seeds and arms own the grid's fields."""
        if name in GRID_FIELDS:
            where = "seeds" if name == "seed" else "arms"
            self.fail(f"{key}.{name}", f"set by the grid, not by {key}; put it under '{where}'")
        allowed = tuple(name for name in field_types(TrialConfig) if name not in GRID_FIELDS)
        if name not in allowed:
            self.fail(f"{key}.{name}", f"unknown setting{did_you_mean(name, allowed)}; allowed: {', '.join(allowed)}")

    def axes(self, value: Any, settings: dict[str, Any]) -> dict[str, tuple[Any, ...]]:
        """Each axis's values, checked one by one against the setting's type (rules between settings are checked
        on the grid's configs); an axis is a setting the grid varies, so it is neither a grid field nor in settings."""
        if not isinstance(value, dict):
            self.fail("axes", f"expected a mapping from trial settings to lists of values; got {_kind(value)}")
        types = field_types(TrialConfig)
        axes = {}
        for name in sorted(value, key=str):  # the ids' order, whatever the spec's
            self.setting_name(name, "axes")
            if name in settings:
                self.fail(f"axes.{name}", "also in settings; a setting is fixed (settings) or varied (axes), not both")
            values = value[name]
            if not isinstance(values, list) or not values:
                self.fail(f"axes.{name}", f"expected a non-empty list of values; got {_kind(values)}")
            checked = []
            for i, item in enumerate(values):
                try:
                    checked.append(check_value(name, item, types[name]))
                except ConfigError as error:
                    self.fail(f"axes.{name}[{i}]", str(error).partition(": ")[2])
            if len(set(checked)) != len(checked):
                self.fail(f"axes.{name}", "a value is listed twice; each value once")
            axes[name] = tuple(checked)
        return axes

    def resources(self, value: Any, settings: dict[str, Any]) -> Resources:
        value = self.mapping(value, "resources", RESOURCE_KEYS)
        cpus = self.number(value.get("cpus", 1), "resources.cpus")
        gpus = self.number(value.get("gpus", 0), "resources.gpus")
        if cpus <= 0:
            self.fail("resources.cpus", f"{cpus:g} is not allowed; must be > 0 (fractions such as 0.5 allowed)")
        if gpus < 0 or (gpus > 1 and not gpus.is_integer()):
            self.fail("resources.gpus", f"{gpus:g} is not allowed; a fraction below 1 (e.g. 0.25) or a whole number")
        device = settings.get("device", "auto")
        if isinstance(device, str) and device.startswith("cuda") and gpus == 0:
            self.fail("resources.gpus", f"0 while settings.device is {device!r}; give trials a GPU (e.g. gpus: 0.25)")
        return Resources(cpus, gpus)

    def arm_configs(self, arms: tuple[Arm, ...], settings: dict[str, Any], axes: dict[str, tuple[Any, ...]],
                    seed: int) -> tuple[TrialConfig, ...]:
        """One config per arm, strength and point of the axes at a representative seed: a bad arm, setting or
        combination fails once, named by its spec key, and the grid only re-seeds these (no rule of TrialConfig
        ties the seed to another field)."""
        configs: list[TrialConfig] = []
        arms_seen: set[str] = set()
        points = list(itertools.product(*(range(len(values)) for values in axes.values())))
        for i, arm in enumerate(arms):
            for strength in arm.strengths:
                for point in points:
                    values = {**settings, **{name: axes[name][j] for name, j in zip(axes, point)}, "seed": seed,
                              "mitigation": arm.mitigation, "strength": strength, "student_init": arm.student_init}
                    try:
                        config = TrialConfig.from_dict(values)
                    except ConfigError as error:
                        field, _, problem = str(error).partition(": ")
                        self.fail(self._key_of(field, i, dict(zip(axes, point))), problem)
                    configs.append(config)
                if config.arm in arms_seen:
                    self.fail(f"arms[{i}]", f"arm {config.arm} appears twice; list each arm and strength once")
                arms_seen.add(config.arm)
        return tuple(configs)

    @staticmethod
    def _key_of(field: str, arm: int, point: dict[str, int]) -> str:
        """The spec key that set a trial config field (`point`: the index of each axis's value)."""
        if field == "seed":
            return "seeds"
        if field in ("mitigation", "student_init"):
            return f"arms[{arm}].{field}"
        if field == "strength":
            return f"arms[{arm}].strengths"
        if field in point:
            return f"axes.{field}[{point[field]}]"
        return f"settings.{field}"


def _kind(value: Any) -> str:
    return "nothing" if value is None else f"{type(value).__name__} {short_repr(value)}"

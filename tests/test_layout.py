"""The package layout: one `sublim` namespace, imports that point down, one trace schema for writer and reader."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from sublim.core.schema import TRACE_COLUMNS, TRACE_SCHEMA

from conftest import REPO

# Where each package's source lives, and the sublim packages (and heavy libraries) it must not import.
PACKAGES = {
    "sublim.core": (REPO / "sublim" / "core", {"sublim.cli", "sublim.trainable", "sublim.sweeps", "sublim.analysis",
                                               "torch", "ray"}),
    "sublim.trainable": (REPO / "trainable", {"sublim.cli", "sublim.sweeps", "sublim.analysis", "ray"}),
    "sublim.sweeps": (REPO / "sweeps", {"sublim.cli", "sublim.analysis"}),
    "sublim.analysis": (REPO / "analysis", {"sublim.cli", "sublim.trainable", "sublim.sweeps", "torch", "ray"}),
    "sublim.cli": (REPO / "sublim" / "cli", set()),
}


def imported_modules(path: Path, package: str) -> set[str]:
    """Every module a source file imports, relative imports resolved against `package`."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            module = ".".join(part for part in (base, node.module) if part)
            names.add(module)
    return names


@pytest.mark.parametrize("package", PACKAGES)
def test_imports_point_down(package):
    folder, forbidden = PACKAGES[package]
    offences = []
    for path in sorted(folder.glob("*.py")):
        for module in imported_modules(path, package):
            if module.split(".")[0] in ("trainable", "sweeps", "analysis"):
                offences.append(f"{path.name} imports {module}: use sublim.{module}")
            offences += [f"{path.name} imports {module}" for banned in forbidden
                         if module == banned or module.startswith(banned + ".")]
    assert not offences, offences


def test_nothing_outside_the_command_line_imports_it():
    for package, (folder, _) in PACKAGES.items():
        if package != "sublim.cli":
            assert not any(m.startswith("sublim.cli") for p in folder.glob("*.py") for m in imported_modules(p, package))


def _python(code: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("name", ["analysis", "sweeps", "trainable"])
def test_no_generic_top_level_package_is_installed(name, tmp_path):
    done = _python(f"import {name}", tmp_path)  # not the checkout: only what the install provides
    assert done.returncode != 0 and "No module named" in done.stderr


def test_the_namespace_imports_and_analysis_and_core_load_neither_torch_nor_ray(tmp_path):
    code = ("import sys, sublim.core.config, sublim.core.files, sublim.core.schema, sublim.analysis; "
            "heavy = [m for m in ('torch', 'ray') if m in sys.modules]; "
            "import sublim.trainable, sublim.sweeps.spec; print(heavy)")
    done = _python(code, tmp_path)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stdout + done.stderr


def test_the_trace_written_by_a_trial_has_the_schema_the_report_reads(tmp_path, tiny):
    from sublim.analysis.load import load_results
    from sublim.trainable import Trial, write_trial_outputs

    config, data, teacher = tiny
    trial = Trial(config, data, teacher)
    for _ in trial.run():
        pass
    write_trial_outputs(tmp_path, trial.summary(), trial.trace_columns())
    assert pq.read_schema(tmp_path / "trace.parquet").equals(TRACE_SCHEMA, check_metadata=False)
    steps = load_results(tmp_path).steps
    assert tuple(steps.columns[-len(TRACE_COLUMNS):]) == TRACE_COLUMNS
    assert len(steps) == trial.total_steps and steps["alignment"].notna().all()


def test_version_and_a_shipped_spec_by_bare_name(tmp_path):
    from sublim.cli.sweep import shipped_specs, spec_path

    done = subprocess.run([sys.executable, "-m", "sublim", "--version"], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.startswith("sublim ")
    assert {"paper", "smoke"} <= set(shipped_specs())
    assert spec_path(Path("paper")) == shipped_specs()["paper"]
    assert spec_path(Path("paper.yaml")) == Path("paper.yaml")  # a file name is never swapped for a shipped spec

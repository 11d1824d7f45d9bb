"""The README's plugin, exactly as written there: built and installed into this environment, swept beside a placebo
on real MNIST with Ray and run alone, reported, refused on --resume once uninstalled, and reported again (the sweep
and the run) without it."""

import csv
import importlib
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sublim.core.mitigations import MITIGATIONS

from conftest import REPO

pytestmark = [pytest.mark.ray, pytest.mark.mnist]

SECTION = "## Add your own mitigation"
TIMEOUT_S = 900  # a safety net: each command is waited on, never slept on


def readme_example() -> tuple[str, str, str]:
    """(the module's path in the plugin's folder, the module, pyproject.toml) from the README's section."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    (module,) = re.findall(r"```python\n(.*?)```", section, re.S)
    (toml,) = re.findall(r"```toml\n(.*?)```", section, re.S)
    path = re.match(r"# (\S+)\n", module).group(1)
    return path, module, toml


def sublim(*args: str, check: int = 0) -> str:
    done = subprocess.run([sys.executable, "-m", "sublim", *args], capture_output=True, text=True, timeout=TIMEOUT_S)
    assert done.returncode == check, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout + done.stderr


def pip(*args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", *args], capture_output=True,
                          text=True, timeout=TIMEOUT_S)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


@pytest.fixture
def installed_plugin(tmp_path):
    """The README's example installed as the README says (`pip install .`: its build backend comes from the package
    index, sublim is this checkout), then uninstalled."""
    path, module, toml = readme_example()
    folder = tmp_path / "plugin"
    (folder / path).parent.mkdir(parents=True)
    (folder / path).write_text(module)
    (folder / "pyproject.toml").write_text(toml)
    pip("install", str(folder))
    importlib.invalidate_caches()
    MITIGATIONS.reload()
    try:
        yield
    finally:  # pip skips, with a warning, a distribution the test uninstalled itself
        pip("uninstall", "--yes", "sublim-signflip")
        importlib.invalidate_caches()
        MITIGATIONS.reload()


def test_the_readme_plugin_installs_sweeps_beside_a_placebo_and_reports_without_itself(installed_plugin, tmp_path,
                                                                                        data_dir):
    assert "signflip" in MITIGATIONS and MITIGATIONS.plugins["signflip"].distribution == "sublim-signflip"
    assert re.search(r"signflip +sign flip: .* \[plugin: sublim-signflip 0\.1\.0\]", sublim("run", "--help"))

    spec = tmp_path / "flip.yaml"
    spec.write_text(yaml.safe_dump({
        "name": "flip", "seeds": [0, 1],
        "arms": [{"mitigation": "none"}, {"mitigation": "signflip", "strengths": 0.5},
                 {"mitigation": "placebo", "strengths": 1.0}],
        "settings": {"epochs": 1, "teacher_epochs": 1, "noise_count": 2048, "hidden": 16, "probe_batch_size": 256},
    }))
    storage = tmp_path / "results"
    sublim("sweep", str(spec), "--storage", str(storage), "--data-dir", str(data_dir))
    folder = storage / "flip"
    record = json.loads((folder / "sweep.json").read_text())["mitigations"]
    assert record["signflip"]["plugin"] == {"distribution": "sublim-signflip", "version": "0.1.0"}
    assert record["signflip"]["placebo_ratio"] == 2.0 and "plugin" not in record["placebo"]
    flip_trials = sorted(folder.glob("trials/*signflip*/summary.json"))
    assert [json.loads(p.read_text())["versions"]["sublim-signflip"] for p in flip_trials] == ["0.1.0"] * 2

    def report(out: Path) -> tuple[str, list[dict]]:
        sublim("report", str(folder), "--out", str(out), "--mediation-sims", "20")
        with (out / "tables" / "tests.csv").open() as rows:
            return (out / "report.md").read_text(), list(csv.DictReader(rows))

    markdown, tests = report(tmp_path / "report")
    matched = [r for r in tests if r["claim"] == "signflip"]
    assert [(r["arm"], r["reference"], r["role"]) for r in matched] == [("signflip@0.5/shared", "placebo@1/shared",
                                                                         "primary")]
    assert "Sign flip: reversing the trait component stops acquisition" in markdown
    assert any(r["claim"] == "mediation" and r["arm"] == "signflip" for r in tests)

    run = tmp_path / "run"  # one trial, as when debugging the plugin: its summary keeps the plugin's facts
    sublim("run", "--mitigation", "signflip", "--strength", "0.5", "--epochs", "1", "--teacher-epochs", "1",
           "--noise-count", "2048", "--hidden", "16", "--probe-batch-size", "256", "--data-dir", str(data_dir),
           "--teacher-cache", str(folder / "teachers"), "--out", str(run))
    assert json.loads((run / "summary.json").read_text())["mitigations"]["signflip"]["plugin"] == \
        record["signflip"]["plugin"]

    pip("uninstall", "--yes", "sublim-signflip")
    sublim("report", str(run), "--out", str(tmp_path / "run-report"))  # read from its facts, without the plugin
    assert "Sign flip" in (tmp_path / "run-report" / "report.md").read_text()
    refused = sublim("sweep", str(spec), "--storage", str(storage), "--data-dir", str(data_dir), "--resume", check=2)
    assert refused.count("\n") == 1 and "'signflip' (plugin sublim-signflip 0.1.0), not installed here" in refused
    again, tests_again = report(tmp_path / "report-without-plugin")
    assert "Sign flip: reversing the trait component stops acquisition" in again
    assert [r["reference"] for r in tests_again if r["claim"] == "signflip"] == ["placebo@1/shared"]

"""benchmarks/report_scale.py: the folders it clones are valid sweeps of distinct seeds, and its report runs."""

import importlib.util
import re
import subprocess
import sys

from sublim.analysis import load_results

from conftest import REPO

SCRIPT = REPO / "benchmarks" / "report_scale.py"


def load_script():
    spec = importlib.util.spec_from_file_location("report_scale", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_cloned_folder_is_a_valid_sweep_whose_clones_are_their_own_seeds(tmp_path):
    scale = load_script()
    source = scale.write_source(tmp_path / "source", 2)
    scale.build(tmp_path / "scaled", 48, source)  # 4 seeds, cloned from 2
    results = load_results(tmp_path / "scaled")
    trials = results.trials
    assert len(trials) == 48 and (trials["status"] == "completed").all() and not results.warnings
    assert trials["trial_id"].is_unique and sorted(trials["seed"].unique()) == [0, 1, 2, 3]
    assert trials.groupby("seed")["teacher_key"].nunique().eq(1).all() and trials["teacher_key"].nunique() == 4
    assert trials.groupby("seed")["arm"].nunique().eq(len(scale.PAPER_ARMS)).all()
    clone, original = (trials.set_index("arm").query(f"seed == {s}")["trait_gain"] for s in (2, 0))
    assert clone.equals(original)  # seed 2 is seed 0's clone: the same numbers
    assert len(results.steps) == 48 * 24


def test_the_benchmark_prints_one_line_per_size_after_a_successful_report(tmp_path):
    done = subprocess.run([sys.executable, str(SCRIPT), "24", "--mediation-sims", "20", "--keep", str(tmp_path)],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.fullmatch(r"trials 24: \d+\.\d s, \d+ MB peak, \d+\.\d ms/trial  \(\d+\.\d s CPU; folder built in \d+\.\d s\)\n",
                        done.stdout), done.stdout
    assert (tmp_path / "scale-24" / "report" / "report.md").is_file()


def test_a_size_that_is_not_a_multiple_of_the_arms_is_refused_before_anything_is_built(tmp_path):
    done = subprocess.run([sys.executable, str(SCRIPT), "25", "--keep", str(tmp_path / "kept")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "25 trials is not allowed" in done.stderr
    assert not (tmp_path / "kept").exists()

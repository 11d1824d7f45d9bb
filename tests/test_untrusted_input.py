"""Received results folders and spec files are untrusted input: every value validated before use (as a spec's), none
becoming a path or markup, every read bounded and never blocking, every OS error one line at the command line,
outputs never replacing what sublim did not write, and work refused before it starts when it cannot finish."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import time
from pathlib import Path

import pytest
import yaml

from sublim import cli
from sublim.analysis import ReportError, build_report, figures, load_results
from sublim.cli import sweep as sweep_cli
from sublim.core import files as core_files
from sublim.core.config import TrialConfig
from sublim.core.text import file_stem, first_sentence, inert_markdown, one_line
from sublim.core.trial_folder import read_trial
from sublim.sweeps.results import ResultsFolder, SweepError
from sublim.sweeps.spec import MAX_SPEC_BYTES, SweepSpec
from sublim.sweeps.tune_run import SweepOutcome

from synthetic import ARMS, write_sweep

HOSTILE = ["../../outside", "/tmp/sublim-absolute-outside", "nul\x00byte", "l" * 300,
           "line\n[evil]: http://evil.example\n![img](http://evil.example/i.png) www.evil.example\n# heading"]
GOOD_SPEC = {"name": "tiny", "seeds": [0], "arms": [{"mitigation": "none"}], "settings": {"epochs": 1}}


def cli_error(argv: list, capsys) -> tuple[int, str]:
    """Exit status and stderr of a command that must fail."""
    with pytest.raises(SystemExit) as exit_info:
        cli.main([str(a) for a in argv])
    return exit_info.value.code, capsys.readouterr().err


def assert_one_line(code: int, err: str, command: str) -> None:
    assert code == 2 and err.startswith(f"sublim {command}: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err and "\x00" not in err


def hostile(value, text: str, keep: tuple[str, ...] = ()):
    """Every string in the JSON value `value` replaced by `text`, except under the keys in `keep`."""
    if isinstance(value, dict):
        return {k: v if k in keep else hostile(v, text, keep) for k, v in value.items()}
    if isinstance(value, list):
        return [hostile(v, text, keep) for v in value]
    return text if isinstance(value, str) else value


def edit_json(path: Path, change) -> None:
    path.write_text(json.dumps(change(json.loads(path.read_text()))))


def tree(root: Path, leave_out: Path) -> dict[str, str]:
    """Every entry under `root` but `leave_out`, with a hash of each file's bytes: what a command may not change."""
    found = {}
    for folder, names, file_names in os.walk(root):
        if Path(folder) == leave_out or leave_out in Path(folder).parents:
            continue
        for name in names + file_names:
            path = Path(folder) / name
            if path == leave_out:
                continue
            found[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "folder"
    return found


def assert_inert_markdown(markdown: str) -> None:
    """No line-start syntax, link, image, link definition or web address that a folder's text could have made."""
    assert "\x00" not in markdown and "://evil" not in markdown and "www.evil" not in markdown
    for line in markdown.splitlines():
        assert not re.match(r"\s*(?:[-*]\s+)?\[[^\]]*\]:", line), line
        assert not line.startswith("# heading"), line
    assert set(re.findall(r"\]\(([^)]*)\)", markdown)) <= {f"tables/{n}.csv" for n in ("tests", "arms")} | set(
        re.findall(r"figures/[A-Za-z0-9._=+@-]+\.png", markdown))


# --- 1. every value read from a folder is validated by TrialConfig ------------------------------------------------

@pytest.mark.parametrize("change, reason", [
    ({"batch_size": 0}, "batch_size: 0 is not allowed; must be >= 1"),
    ({"noise_count": "lots"}, "noise_count: 'lots' is not allowed; must be of type int"),
    ({"mitigation": "../evil"}, "mitigation: '../evil' is not allowed; allowed: none"),
    ({"device": "cuda:../x"}, "device: 'cuda:../x' is not allowed"),
    ({"hidden": [256]}, "hidden: [256] is not allowed"),
    ({"shape": "round"}, "shape: unknown setting"),
])
def test_a_trial_whose_recorded_config_fails_trial_config_is_invalid_with_the_reason(tmp_path, change, reason):
    root = write_sweep(tmp_path / "sweep", seeds=3, arms=ARMS[:2])
    victim = "t0_none_0_shared"
    edit_json(root / "sweep.json", lambda s: {**s, "trials": [
        {**t, "config": {**t["config"], **change}} if t["trial_id"] == victim else t for t in s["trials"]]})
    trials = load_results(root).trials.set_index("trial_id")
    assert trials.at[victim, "status"] == "invalid" and reason in trials.at[victim, "error"]
    assert trials.at[victim, "arm"] == "unlabelled"  # never the label the folder wrote
    assert (trials.drop(index=victim)["status"] == "completed").all()


def test_a_run_folder_whose_summary_holds_a_bad_config_is_refused_in_one_line(tmp_path):
    root = write_sweep(tmp_path / "sweep", seeds=1, arms=ARMS[:1])
    run = root / "trials" / "t0_none_0_shared"
    edit_json(run / "summary.json", lambda s: {**s, "config": {**s["config"], "batch_size": 0}})
    found = read_trial(run, None)  # was: ZeroDivisionError counting the expected steps
    assert found.status == "invalid" and "batch_size: 0 is not allowed" in found.problem
    with pytest.raises(ReportError, match="summary.json holds a trial config that is not allowed") as refused:
        load_results(run)
    assert "\n" not in str(refused.value)


def test_the_arm_label_is_computed_from_the_validated_config_never_taken_from_the_folder(tmp_path):
    root = write_sweep(tmp_path / "sweep", seeds=3, arms=ARMS[:2])
    edit_json(root / "sweep.json", lambda s: {**s, "trials": [{**t, "arm": "none/shared\n[x]: http://evil.example"}
                                                               for t in s["trials"]]})
    assert set(load_results(root).trials["arm"]) == {"none/shared", "none/independent"}


@pytest.mark.parametrize("axes", [{"hidden": [[256]]}, {"hidden": [{"a": 1}]}, {"hidden": ["../x"]},
                                  {"hidden": [256, 256]}, {"hidden": [256, 512]}, {"device": ["../../x"]}])
def test_axes_that_are_not_values_the_trials_hold_make_one_level_with_a_warning(tmp_path, axes):
    root = write_sweep(tmp_path / "sweep", seeds=3, arms=ARMS[:2])
    edit_json(root / "sweep.json", lambda s: {**s, "spec": {"axes": axes}})
    results = load_results(root)  # was: TypeError (unhashable) for a list or a dict
    assert results.axes == {} and any("axes are not a mapping" in w for w in results.warnings)


def test_resume_refuses_a_folder_whose_recorded_configs_fail_validation_in_one_line(tmp_path):
    spec = SweepSpec.from_dict(GOOD_SPEC)
    folder = ResultsFolder(tmp_path / "tiny", log=lambda line: None)
    folder.record("tiny", spec, yaml.safe_dump(GOOD_SPEC))
    edit_json(folder.path / "sweep.json", lambda s: {**s, "trials": [
        {**t, "config": {**t["config"], "noise_count": "lots"}} for t in s["trials"]]})
    with pytest.raises(SweepError, match="its trial s000-none-shared holds a trial config that is not allowed "
                                         r"\(noise_count: 'lots' is not allowed"):
        folder.added_by(spec)


DAMAGED_SEQUENTIAL = [{"design": {"family": "x"}}, {"design": {"family": [], "seeds": "a"}, "waves": 5},
                      {"design": 3}, {"design": {"seeds": [6], "boundaries_t": [[2.0]]}, "stopped": None,
                                      "waves": [{"look": 1, "seeds": 6, "tests": [{"claim": "claim1"}]}]}]


@pytest.mark.parametrize("record", DAMAGED_SEQUENTIAL)
def test_a_damaged_sequential_record_is_left_out_of_the_report_with_a_warning(tmp_path, record):
    root = write_sweep(tmp_path / "sweep", seeds=3, arms=ARMS[:2])
    edit_json(root / "sweep.json", lambda s: {**s, "sequential": record})
    results = load_results(root)  # was: KeyError or TypeError while the report judged or rendered it
    assert results.sequential is None and any("sequential record is not used" in w for w in results.warnings)


@pytest.mark.parametrize("record", DAMAGED_SEQUENTIAL)
def test_waves_refuse_a_damaged_sequential_record_in_one_line(tmp_path, record):
    import argparse

    from sublim.cli.waves import run_in_waves

    spec = SweepSpec.from_dict({"name": "waves", "seeds": [0, 1, 2], "arms": [{"mitigation": "none"}],
                                "settings": {"epochs": 3, "noise_count": 8192}})
    folder = ResultsFolder(tmp_path / "waves", log=lambda line: None)
    folder.record("waves", spec, "name: waves\n")
    edit_json(folder.path / "sweep.json", lambda s: {**s, "sequential": record})
    with pytest.raises(SweepError, match="sequential record is damaged") as refused:
        run_in_waves(argparse.Namespace(max_seeds=9, wave=3), spec, folder, lambda *wave: None, log=lambda line: None)
    assert "\n" not in str(refused.value)


# --- 2 and 3. no value from a folder becomes a path or markup ------------------------------------------------------

@pytest.mark.parametrize("text", HOSTILE, ids=["parent", "absolute", "nul", "long", "markup"])
def test_hostile_strings_in_every_field_write_nothing_outside_out_and_no_markup(tmp_path, text):
    """Every string of sweep.json and of each summary.json (but the trial ids, and the configs of all but two
    trials, which would leave nothing to report) holds `text`; the axes too."""
    root = write_sweep(tmp_path / "sweep", seeds=4, arms=ARMS[:2])
    trial_ids = [t["trial_id"] for t in json.loads((root / "sweep.json").read_text())["trials"]]
    in_sweep, in_summary = trial_ids[0], trial_ids[1]  # their configs hold `text` too: invalid trials

    def sweep_json(s: dict) -> dict:
        s = {**hostile(s, text, keep=("trials",)), "trials": [
            hostile(t, text, keep=("trial_id",) if t["trial_id"] == in_sweep else ("trial_id", "config"))
            for t in s["trials"]]}
        s["spec"] = {**s["spec"], "axes": {"hidden": [256, text]}, "description": text}
        return s

    edit_json(root / "sweep.json", sweep_json)
    for trial_id in trial_ids:
        edit_json(root / "trials" / trial_id / "summary.json", lambda s, t=trial_id: hostile(
            {**s, "versions": {"torch": "2", text[:20]: "x"}, "ran_on": {"device": "cpu"}}, text,
            keep=() if t == in_summary else ("config",)))
    out = tmp_path / "out"
    before = tree(tmp_path, out)
    files = build_report(root, out, mediation_sims=20)
    assert tree(tmp_path, out) == before and not Path("/tmp/sublim-absolute-outside").exists()
    for path in out.rglob("*"):
        assert re.fullmatch(r"[A-Za-z0-9._=+@-]+", path.name) and len(path.name) < 100, path
    assert_inert_markdown(files.markdown.read_text())
    html = files.html.read_text()
    assert "\x00" not in html and "<img src=\"http" not in html
    assert set(re.findall(r'<a href="([^"]+)"', html)) <= {"tables/tests.csv", "tables/arms.csv"}
    trials = load_results(root).trials.set_index("trial_id")
    assert trials.at[in_sweep, "status"] == "invalid" and trials.at[in_summary, "status"] == "invalid"


@pytest.mark.parametrize("text", HOSTILE, ids=["parent", "absolute", "nul", "long", "markup"])
def test_hostile_strings_in_a_run_folders_summary_write_nothing_outside_out(tmp_path, text):
    root = write_sweep(tmp_path / "sweep", seeds=1, arms=ARMS[:1])
    run = root / "trials" / "t0_none_0_shared"
    edit_json(run / "summary.json", lambda s: hostile({**s, "versions": {"torch": "2"}, "ran_on": {"device": "cpu"}},
                                                      text, keep=("config",)))
    out = tmp_path / "out"
    before = tree(tmp_path, out)
    files = build_report(run, out, mediation_sims=20)
    assert tree(tmp_path, out) == before
    assert all(re.fullmatch(r"[A-Za-z0-9._=+@-]+", path.name) for path in out.rglob("*"))
    assert_inert_markdown(files.markdown.read_text())


@pytest.mark.parametrize("text", HOSTILE, ids=["parent", "absolute", "nul", "long", "markup"])
def test_a_figure_is_named_by_a_stem_that_stays_in_its_folder(tmp_path, text):
    """The second guard: a level's label, whatever it holds, names a file inside the figures folder only."""
    folder = tmp_path / "report" / "figures"
    from matplotlib.figure import Figure

    drawn = figures.draw(f"gain_vs_alignment-{text}", Figure, folder)
    written = list(folder.iterdir())
    assert len(written) == 1 and written[0].parent == folder and drawn == {"file": f"figures/{written[0].name}"}
    assert re.fullmatch(r"[A-Za-z0-9._=+@-]{1,80}\.png", written[0].name)
    assert sorted(p.name for p in tmp_path.rglob("*")) == sorted(["report", "figures", written[0].name])
    assert file_stem("hidden=1024-lr=0.001") == "hidden=1024-lr=0.001"  # a plain label keeps its name
    assert file_stem("a/b") != file_stem("a_b")  # distinct labels, distinct files


def test_markdown_text_keeps_the_reports_own_syntax_and_breaks_any_other():
    assert inert_markdown("0.0080 [0.0067, 0.0094] **supported** `tables/tests.csv`") == (
        "0.0080 [0.0067, 0.0094] **supported** `tables/tests.csv`")
    assert inert_markdown("a\n[x]: u\x00 ![i](u) [a][b] <b>") == "a [x]\\: u ![i]\\(u) [a]\\[b] &lt;b>"


# --- 4. every read bounded and never blocking, spec files included -------------------------------------------------

def make_fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


@pytest.mark.parametrize("make", [
    lambda tmp: Path("/dev/zero"),
    lambda tmp: make_fifo(tmp / "fifo.yaml"),
    lambda tmp: tmp,
])
def test_a_spec_that_is_no_regular_file_is_refused_in_one_line_without_reading(tmp_path, capsys, make):
    start = time.monotonic()
    code, err = cli_error(["sweep", make(tmp_path), "--dry-run"], capsys)
    assert_one_line(code, err, "sweep")
    assert "is not a regular file" in err and time.monotonic() - start < 60


def test_a_huge_spec_is_refused_in_one_line_without_reading_it(tmp_path, capsys):
    spec = tmp_path / "huge.yaml"
    with open(spec, "wb") as file:
        file.truncate(MAX_SPEC_BYTES * 200)  # sparse: nothing on disk
    code, err = cli_error(["sweep", spec, "--dry-run"], capsys)
    assert_one_line(code, err, "sweep")
    assert f"is larger than {MAX_SPEC_BYTES:,} bytes" in err


def test_a_linked_spec_is_read(tmp_path):
    target = tmp_path / "real.yaml"
    target.write_text(yaml.safe_dump(GOOD_SPEC))
    (tmp_path / "link.yaml").symlink_to(target)
    assert SweepSpec.load(tmp_path / "link.yaml").name == "tiny"


def test_an_mnist_file_far_larger_than_mnist_is_refused_without_reading_it(tmp_path):
    from sublim.trainable import DataError, load_mnist
    from sublim.core.mnist import RAW_FILES

    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in RAW_FILES:
        with open(raw / name, "wb") as file:
            file.truncate(1 << 28)  # sparse: nothing on disk
    with pytest.raises(DataError, match="train-images-idx3-ubyte is larger than .* bytes; not read"):
        load_mnist(tmp_path)


# --- 5. every OS error one line at the command line, nothing written lost ------------------------------------------

LONG = "n" * 300


def test_a_name_too_long_is_one_line_for_every_command(tmp_path, capsys):
    root = write_sweep(tmp_path / "sweep", seeds=3, arms=ARMS[:2])
    spec = tmp_path / "tiny.yaml"
    spec.write_text(yaml.safe_dump(GOOD_SPEC))
    for argv, command in [
        (["report", root, "--out", tmp_path / LONG], "report"),
        (["report", tmp_path / LONG], "report"),
        (["run", "--out", tmp_path / LONG, "--epochs", "1"], "run"),
        (["sweep", spec, "--storage", tmp_path / LONG], "sweep"),
        (["sweep", tmp_path / f"{LONG}.yaml", "--dry-run"], "sweep"),
        (["run", "--data-dir", tmp_path / LONG, "--out", tmp_path / "run", "--epochs", "1"], "run"),
    ]:
        code, err = cli_error(argv, capsys)
        assert_one_line(code, err, command)
        assert "longer than the file system allows" in err or "no such" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sweep", "tiny.yaml"]


@pytest.mark.skipif(not Path("/proc/self").exists(), reason="needs Linux's /proc")
def test_an_output_folder_under_proc_is_refused_before_any_work_in_one_line(tmp_path, capsys):
    """Permissions say /proc is writable (to root); only a probe tells that nothing can be created there."""
    spec = tmp_path / "tiny.yaml"
    spec.write_text(yaml.safe_dump(GOOD_SPEC))
    root = write_sweep(tmp_path / "sweep", seeds=3, arms=ARMS[:2])
    for argv, command in [(["sweep", spec, "--storage", "/proc", "--data-dir", tmp_path], "sweep"),
                          (["run", "--out", "/proc/sublim-run", "--data-dir", tmp_path / "nowhere"], "run"),
                          (["report", root, "--out", "/proc/sublim-report"], "report")]:
        code, err = cli_error(argv, capsys)
        assert_one_line(code, err, command)
        assert "/proc is not writable" in err or "/proc: " in err, err
    assert not (root / "report").exists()


@pytest.mark.parametrize("number, words", [(errno.EROFS, "read-only file system"),
                                            (errno.EACCES, "permission denied"),
                                            (errno.ENOTDIR, "is a file, not a folder")])
def test_an_os_error_while_continuing_a_sweep_is_one_line_and_loses_nothing(tmp_path, capsys, monkeypatch, number,
                                                                            words):
    """A results folder on read-only storage (or one the user may not write): its files are as they were."""
    spec = tmp_path / "tiny.yaml"
    spec.write_text(yaml.safe_dump(GOOD_SPEC))
    folder = ResultsFolder(tmp_path / "results" / "tiny", log=lambda line: None)
    folder.record("tiny", SweepSpec.from_dict(GOOD_SPEC), spec.read_text())
    before = tree(tmp_path, tmp_path / "none")

    def refuse(path, *args, **kwargs):
        raise OSError(number, os.strerror(number), str(path))

    monkeypatch.setattr(core_files.tempfile, "mkstemp", lambda dir, **kw: refuse(Path(dir) / "x"))
    code, err = cli_error(["sweep", spec, "--storage", tmp_path / "results", "--resume", "--data-dir", tmp_path],
                          capsys)
    assert_one_line(code, err, "sweep")
    assert words in err and str(folder.path) in err
    assert tree(tmp_path, tmp_path / "none") == before


def test_os_error_lines_name_the_path_and_what_went_wrong():
    line = core_files.os_error_line(OSError(errno.ENAMETOOLONG, "File name too long", "/a/" + "b\n" * 200))
    assert line.endswith(": a name in this path is longer than the file system allows (255 bytes)")
    assert "\n" not in line and len(line) < 300
    assert core_files.os_error_line(OSError(errno.EIO, "Input/output error", "/x")) == "/x: input/output error"


# --- 7. outputs never replace what sublim did not write -------------------------------------------------------------

@pytest.mark.parametrize("name", ["trace.parquet", "summary.json", "diverged.json"])
def test_sublim_run_refuses_to_overwrite_any_output_without_force(tmp_path, capsys, name):
    out = tmp_path / "mine"
    out.mkdir()
    (out / name).write_bytes(b"the user's")
    code, err = cli_error(["run", "--out", out, "--epochs", "1", "--data-dir", tmp_path / "nowhere"], capsys)
    assert_one_line(code, err, "run")
    assert f"already holds a {name}; pass --force" in err and (out / name).read_bytes() == b"the user's"


def test_a_sweep_never_writes_into_a_folder_of_files_it_did_not_write(tmp_path, capsys):
    spec = tmp_path / "tiny.yaml"
    spec.write_text(yaml.safe_dump(GOOD_SPEC))
    theirs = tmp_path / "results" / "tiny"
    theirs.mkdir(parents=True)
    (theirs / "spec.yaml").write_text("their spec")
    (theirs / "notes.txt").write_text("their notes")
    code, err = cli_error(["sweep", spec, "--storage", tmp_path / "results", "--data-dir", tmp_path], capsys)
    assert_one_line(code, err, "sweep")
    assert "holds notes.txt and no sweep.json" in err
    assert sorted(p.name for p in theirs.iterdir()) == ["notes.txt", "spec.yaml"]
    assert (theirs / "spec.yaml").read_text() == "their spec"


# --- 8. fail before work -------------------------------------------------------------------------------------------

def test_a_noise_set_the_machine_cannot_hold_is_refused_before_data_or_teacher(tmp_path, capsys):
    code, err = cli_error(["run", "--noise-count", "1000000000", "--out", tmp_path / "run", "--data-dir",
                           tmp_path / "no-mnist-here"], capsys)  # MNIST is never looked for
    assert_one_line(code, err, "run")
    assert "--noise-count 1000000000" in err and "of memory" in err and not (tmp_path / "run").exists()
    assert TrialConfig(noise_count=10**9).memory_bytes > 1000 * TrialConfig().memory_bytes


def test_a_sweep_whose_trials_the_machine_cannot_hold_is_refused_before_ray(tmp_path, capsys):
    spec = tmp_path / "big.yaml"
    spec.write_text(yaml.safe_dump({**GOOD_SPEC, "settings": {"noise_count": 10**9}}))
    code, err = cli_error(["sweep", spec, "--storage", tmp_path / "results", "--data-dir", tmp_path], capsys)
    assert_one_line(code, err, "sweep")
    assert "noise_count 1000000000" in err and "of memory" in err and not (tmp_path / "results").exists()


def test_a_sweep_in_which_every_trial_diverged_ends_with_its_closing_paragraph_and_exit_2(tmp_path, capsys,
                                                                                         monkeypatch):
    spec = tmp_path / "tiny.yaml"
    spec.write_text(yaml.safe_dump({**GOOD_SPEC, "seeds": [0, 1]}))
    monkeypatch.setattr(sweep_cli, "check_local_resources", lambda *a: None)
    monkeypatch.setattr(sweep_cli, "run", lambda *a: SweepOutcome(
        folder=tmp_path / "results" / "tiny", total=2, finished=0, diverged=["s000-none-shared", "s001-none-shared"],
        failed=[], teachers=2, seconds=3.0))
    assert cli.main(["sweep", str(spec), "--storage", str(tmp_path / "results")]) == 2
    out = capsys.readouterr().out
    assert "2 trial(s) diverged" in out and out.rstrip().endswith("nothing to report.")
    assert "sublim report" not in out


def test_waves_in_which_every_trial_diverged_stop_with_a_reason(tmp_path):
    import argparse

    from sublim.cli.waves import run_in_waves
    from sublim.sweeps.spec import SweepSpec as Spec

    folder = ResultsFolder(tmp_path / "waves", log=lambda line: None)
    spec = Spec.from_dict({"name": "waves", "seeds": [0, 1, 2], "arms": [{"mitigation": "none"}],
                           "settings": {"epochs": 3, "noise_count": 8192}})

    def all_diverge(wave_spec, text):
        folder.record(wave_spec.name, wave_spec, text)
        for trial in wave_spec.trials:
            target = folder.trial_dir(trial.trial_id)
            target.mkdir(parents=True, exist_ok=True)
            (target / "diverged.json").write_text(json.dumps({
                "model": "student", "step": 1, "quantity": "loss", "message": "the student diverged at step 1",
                "config": trial.config.to_dict()}))

    record = run_in_waves(argparse.Namespace(max_seeds=9, wave=3), spec, folder, all_diverge, log=lambda line: None)
    assert record["stopped"].startswith("nothing to judge after wave 1: ") and "no completed trial" in record["stopped"]
    assert folder.sequential()["stopped"] == record["stopped"]


# --- 9. messages: one plain sentence each --------------------------------------------------------------------------

def test_a_yaml_error_with_a_nul_byte_is_one_line(tmp_path, capsys):
    spec = tmp_path / "nul.yaml"
    spec.write_bytes(b"name: a\x00b\n")
    code, err = cli_error(["sweep", spec, "--dry-run"], capsys)
    assert_one_line(code, err, "sweep")
    assert err.endswith("not valid YAML: character 0x0000 at position 7 is not allowed in YAML text\n")


def test_summary_without_a_config_says_so_in_a_plain_sentence(tmp_path):
    root = write_sweep(tmp_path / "sweep", seeds=3, arms=ARMS[:1])
    victim = root / "trials" / "t0_none_0_shared"
    edit_json(victim / "summary.json", lambda s: {k: v for k, v in s.items() if k != "config"})
    trials = load_results(root).trials.set_index("trial_id")
    assert trials.at["t0_none_0_shared", "error"] == ("summary.json holds no trial config, while sweep.json records "
                                                      "one for this trial")


def test_a_library_message_of_several_sentences_and_lines_is_cut_to_its_first():
    torch_message = ("Weights only load failed. In PyTorch 2.6, we changed the default.\n\tOption (1): ...\n"
                     "Check the documentation.")
    assert first_sentence(torch_message) == "Weights only load failed"
    assert one_line("a\nb\r\nc\x00\x1b[31m") == "a b c[31m"

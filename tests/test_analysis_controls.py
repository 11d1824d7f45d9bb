"""The controls beyond the paper, on planted truth: non-inferiority of the distillation loss (equivalent
within the margin, clearly worse, and its one-sided error rate at the margin), seeds needed for 80%
power against a direct computation and a simulation, the within-shared regression with arm effects
against a pooled one biased by the control, per-layer alignment, and update alignment; then a whole
synthetic sweep with none, projection@1, projection@2 and placebo@1 through `build_report`."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from sublim import cli
from sublim.analysis import build_report, load_results, report, stats
from sublim.analysis.answers import Refused
from sublim.analysis.errors import Refusal
from test_analysis_report import assert_table_numbers_in_stats, write_sweep
from test_analysis_stats import covered, table

LOSS = 1e-3  # the order of the final distillation loss the issue reports


def loss_table(rng: np.random.Generator, cost: float, seeds: int = 8, noise: float = 2e-6,
               seed_sd: float = 2e-4) -> pd.DataFrame:
    """none/shared and projection@1/shared final distillation losses: a large seed effect, removed by pairing."""
    rows = []
    for seed in range(seeds):
        base = LOSS + rng.normal(0, seed_sd)
        rows += [{"seed": seed, "final_distill_loss": base + rng.normal(0, noise)},
                 {"seed": seed, "mitigation": "projection", "strength": 1.0,
                  "final_distill_loss": base + cost + rng.normal(0, noise)}]
    return table(rows)


# --- non-inferiority -------------------------------------------------------------------------------------

def test_equivalent_within_margin_is_non_inferior_even_when_a_difference_test_flags_it():
    rng = np.random.default_rng(11)
    frame = loss_table(rng, cost=6e-6)  # the case: 6e-6 more, in a loss of order 1e-3
    difference = stats.paired(frame, "projection@1/shared", "none/shared", "final_distill_loss").difference
    assert difference.ci_low > 0  # the old difference test reads this as "projection slows distillation"
    result = stats.noninferiority(frame, "projection@1/shared", 0.05)
    assert result.noninferior and result.upper < result.margin and result.p < 0.05
    assert result.margin == pytest.approx(0.05 * result.mean_reference)
    assert result.difference == pytest.approx(difference.mean)


def test_clearly_worse_is_not_non_inferior():
    rng = np.random.default_rng(12)
    verdicts = [stats.noninferiority(loss_table(rng, cost=0.2 * LOSS), "projection@1/shared", 0.05).noninferior
                for _ in range(20)]
    assert not any(verdicts)


def test_non_inferiority_matches_a_one_sided_t_test_by_hand():
    frame = loss_table(np.random.default_rng(13), cost=1e-5, noise=2e-5)
    result = stats.noninferiority(frame, "projection@1/shared", 0.02)
    pivot = frame.pivot_table(index="seed", columns="arm", values="final_distill_loss")
    x = (pivot["projection@1/shared"] - pivot["none/shared"]).to_numpy()
    margin = 0.02 * pivot["none/shared"].mean()
    se = x.std(ddof=1) / math.sqrt(len(x))
    t = (x.mean() - margin) / se
    assert result.t == pytest.approx(t, rel=1e-10)
    assert result.p == pytest.approx(scipy_stats.t.cdf(t, len(x) - 1), rel=1e-10)
    assert result.upper == pytest.approx(x.mean() + scipy_stats.t.ppf(0.95, len(x) - 1) * se, rel=1e-10)
    assert result.cohens_d == pytest.approx((margin - x.mean()) / x.std(ddof=1))


def test_at_the_margin_non_inferiority_is_declared_at_most_alpha_of_the_time():
    """A true difference exactly at the margin is the null: one-sided alpha = 5% false declarations."""
    rng = np.random.default_rng(14)
    datasets, declared = 400, 0
    for _ in range(datasets):
        frame = loss_table(rng, cost=0.05 * LOSS, noise=3e-5, seed_sd=0.0)
        declared += stats.noninferiority(frame, "projection@1/shared", 0.05).noninferior
    assert declared / datasets <= 0.09  # 0.05 expected; the margin uses the estimated mean, adding a little noise


def test_non_inferiority_refuses_what_it_cannot_judge():
    few = loss_table(np.random.default_rng(15), cost=0.0, seeds=2)
    assert stats.attempt(stats.noninferiority, few, "projection@1/shared", 0.05) == Refused(
        "needs at least 3 seeds with a finite final_distill_loss in both projection@1/shared and none/shared, has 2")
    only_none = table([{"seed": s, "final_distill_loss": LOSS} for s in range(4)])
    assert "needs completed trials of arm projection@1/shared" in stats.attempt(
        stats.noninferiority, only_none, "projection@1/shared", 0.05).reason


# --- seeds needed ----------------------------------------------------------------------------------------

def smallest_n_by_hand(d: float, alternative: str) -> int:
    """The fewest units whose t-test reaches 80% power at alpha 0.05, from the noncentral t directly."""
    for n in range(3, 10_000):
        df, nc = n - 1, d * math.sqrt(n)
        if alternative == "two-sided":
            c = scipy_stats.t.ppf(0.975, df)
            power = scipy_stats.nct.sf(c, df, nc) + scipy_stats.nct.cdf(-c, df, nc)
        else:
            power = scipy_stats.nct.sf(scipy_stats.t.ppf(0.95, df), df, nc)
        if power >= 0.8:
            return n
    raise AssertionError("not reached")


@pytest.mark.parametrize("d, alternative", [(0.5, "two-sided"), (-0.8, "two-sided"), (1.3, "two-sided"),
                                            (0.6, "larger"), (2.5, "larger")])
def test_seeds_needed_matches_a_direct_power_computation(d, alternative):
    result = stats.seeds_needed(5, d, alternative)
    assert result.seeds_needed == smallest_n_by_hand(abs(d), alternative)
    assert result.power == 0.8 and result.alpha == pytest.approx(0.05) and result.n == 5


def test_seeds_needed_reaches_80_percent_power_in_simulation():
    """Planted d = 0.7: at the seeds it asks for, paired t-tests of simulated seeds detect it about 80% of the
    time; one seed fewer falls short of what that many gives."""
    d, sims = 0.7, 4000
    needed = stats.seeds_needed(10, d).seeds_needed
    rng = np.random.default_rng(16)

    def simulated_power(n: int) -> float:
        x = rng.normal(d, 1.0, size=(sims, n))
        return float((scipy_stats.ttest_1samp(x, 0.0, axis=1).pvalue < 0.05).mean())

    at, below = simulated_power(needed), simulated_power(needed - 1)
    assert at >= 0.8 - 3 * math.sqrt(0.16 / sims)
    assert below < at and below < 0.8 + 3 * math.sqrt(0.16 / sims)


def test_seeds_needed_from_an_observed_test():
    rng = np.random.default_rng(17)
    test = stats.describe(rng.normal(0.004, 0.005, 6), "mean_alignment")
    entry = stats._power_of(stats.PrimaryTest("claim1", "mean alignment against 0", "none/shared", +1, test))
    assert entry.result.cohens_d == test.cohens_d and entry.result.n == 6
    assert entry.result.seeds_needed == smallest_n_by_hand(abs(test.cohens_d), "two-sided")
    assert 0 < entry.result.power_now < 1


def test_seeds_needed_refuses_a_null_or_hopeless_effect():
    with pytest.raises(Refusal, match="effect size is 0"):
        stats.seeds_needed(5, 0.0)
    with pytest.raises(Refusal, match="wrong side of the null"):
        stats.seeds_needed(5, -0.5, "larger")
    with pytest.raises(Refusal, match="more than 10,000 seeds"):
        stats.seeds_needed(5, 0.01)
    assert stats.seeds_needed(5, 40.0).seeds_needed == 3  # never below what a test needs
    refused = stats._power_of(stats.PrimaryTest("claim3", "x", "none/shared", +1, Refused("needs at least 3 trials, has 2")))
    assert refused.result == Refused("the test is refused: needs at least 3 trials, has 2")


# --- the regression within shared init ----------------------------------------------------------------

SLOPE = 40.0


def confounded_table(rng: np.random.Generator, seeds: int = 10) -> pd.DataFrame:
    """Within each shared-init arm, gain follows alignment with slope SLOPE from an intercept of 0.1;
    projection also lowers gain directly, and the independent-init control, near 0 alignment, gains
    nothing: 0.1 below the shared-init line there (the planted control offset)."""
    rows = []
    for seed in range(seeds):
        for mitigation, strength, init, level, offset in (("none", 0.0, "shared", 0.004, 0.0),
                                                           ("projection", 1.0, "shared", 0.003, -0.08),
                                                           ("none", 0.0, "independent", 0.0, None)):
            alignment = level + rng.normal(0, 0.001)
            gain = rng.normal(0, 0.005) + (0.0 if offset is None else 0.1 + offset + SLOPE * alignment)
            rows.append({"seed": seed, "mitigation": mitigation, "strength": strength, "student_init": init,
                         "mean_alignment": alignment, "trait_gain": gain})
    return table(rows)


def test_within_shared_regression_recovers_the_slope_the_pooled_one_misses():
    rng = np.random.default_rng(18)
    within_covers = pooled_covers = pooled_above = 0
    datasets = 25
    for _ in range(datasets):
        frame = confounded_table(rng)
        within = stats.within_shared_gain_on_alignment(frame)
        assert within.arms == ["none/shared", "projection@1/shared"] and within.n == 20 and within.seeds == 10
        within_covers += covered(within, SLOPE)
        pooled = stats.ols_gain_on_alignment(frame)
        pooled_covers += covered(pooled, SLOPE)
        pooled_above += pooled.slope > SLOPE
    assert within_covers >= 21  # 95% coverage: about 24 of 25
    assert pooled_covers <= 8 and pooled_above == datasets  # the control's offset steepens the pooled line


def test_within_shared_regression_leaves_out_arms_without_variation():
    rng = np.random.default_rng(19)
    frame = confounded_table(rng, seeds=6)
    flat = frame["arm"] == "projection@1/shared"
    frame.loc[flat, "mean_alignment"] = 0.003  # one value: no within-arm information
    fit = stats.within_shared_gain_on_alignment(frame)
    assert fit.arms == ["none/shared"] and fit.n == 6
    assert "needs at least" in stats.attempt(stats.within_shared_gain_on_alignment, frame.iloc[:4]).reason


# --- per layer and update alignment, from the traces ---------------------------------------------------

def traces(trials: int, layers: dict[str, float], update: float, epochs: int = 2, steps: int = 10,
           seed: int = 20) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Completed none/shared trials and their traces: each layer's alignment around its planted value."""
    rng = np.random.default_rng(seed)
    frames, rows = [], []
    for i in range(trials):
        n = epochs * steps
        frame = pd.DataFrame({"trial_id": f"t{i}", "arm": "none/shared", "seed": i, "step": np.arange(n),
                              "epoch": np.repeat(np.arange(1, epochs + 1), steps),
                              "update_alignment": update + rng.normal(0, 0.002, n),
                              "update_trait_change": rng.normal(-1e-6, 1e-7, n)})
        for layer, value in layers.items():
            frame[f"alignment_{layer}"] = value + rng.normal(0, 0.002, n)
        frames.append(frame)
        rows.append({"trial_id": f"t{i}", "seed": i, "trait_gain": 0.1 + rng.normal(0, 0.01),
                     "mean_update_alignment": float(frame["update_alignment"].mean()),
                     **{f"update_alignment_epoch_{e}": float(frame.loc[frame["epoch"] == e, "update_alignment"].mean())
                        for e in range(1, epochs + 1)}})
    return table(rows), pd.concat(frames, ignore_index=True)


def test_per_layer_alignment_is_each_trials_layer_mean_across_trials():
    planted = {"fc1": 0.0, "fc2": 0.001, "out": 0.006}
    completed, steps = traces(8, planted, update=0.002)
    result = stats.per_layer(stats.with_trace_metrics(completed, steps))["none/shared"]
    by_hand = steps.groupby("trial_id")["alignment_out"].mean()
    assert result["out"].mean == pytest.approx(by_hand.mean()) and result["out"].n == 8
    assert result["out"].ci_low > 0 and covered(result["fc1"], 0.0)
    table_rows = report._layer_table({"none/shared": result})
    assert list(table_rows["layer"]) == ["fc1", "fc2", "out"]
    assert table_rows.set_index("layer").at["out", "mean"] == pytest.approx(by_hand.mean())


def test_old_traces_without_the_new_columns_refuse_update_alignment_and_keep_the_rest():
    completed, steps = traces(5, {"fc1": 0.001, "fc2": 0.001, "out": 0.001}, update=0.002)
    old = steps.assign(update_alignment=np.nan, update_trait_change=np.nan)
    merged = stats.with_trace_metrics(completed.drop(columns="mean_update_alignment").assign(
        mean_update_alignment=np.nan), old)
    update = stats.update_alignment(merged).by_arm["none/shared"]
    assert update.mean_update_alignment == Refused("needs at least 3 trials with a finite mean_update_alignment, "
                                                   "has 0")
    assert update.positive_steps == Refused("needs update_alignment in the step traces, has none")
    assert isinstance(stats.per_layer(merged)["none/shared"]["out"], stats.MeanTest)


def test_update_alignment_counts_positive_steps_per_epoch_from_the_traces():
    completed, steps = traces(6, {"fc1": 0.0, "fc2": 0.0, "out": 0.0}, update=0.002)
    merged = stats.with_trace_metrics(completed, steps)
    update = stats.update_alignment(merged).by_arm["none/shared"]
    assert update.positive_steps.positive == int((steps["update_alignment"] > 0).sum())
    assert update.positive_steps.steps == len(steps)
    second = update.by_epoch.epochs[1].positive_steps
    assert second.positive == int((steps.loc[steps["epoch"] == 2, "update_alignment"] > 0).sum())
    assert update.by_epoch.epochs[0].test.mean == pytest.approx(completed["update_alignment_epoch_1"].mean())
    assert update.predicted_trait_loss_change.mean == pytest.approx(
        steps.groupby("trial_id")["update_trait_change"].sum().mean())


# --- a whole sweep with the controls ----------------------------------------------------------------

CONTROLS = [("none", 0.0, "shared"), ("none", 0.0, "independent"), ("projection", 1.0, "shared"),
            ("projection", 2.0, "shared"), ("placebo", 1.0, "shared")]


@pytest.fixture(scope="module")
def controls_report(tmp_path_factory):
    """Projection lowers alignment and with it the gain; placebo does not. projection@2 costs 20% of the
    distillation loss, projection@1 nothing; placebo nothing."""
    root = write_sweep(tmp_path_factory.mktemp("controls") / "controls", seeds=8, arms=CONTROLS,
                       projection_drop=0.0015, loss_noise=0.0005, loss_cost={"projection@2/shared": 0.02})
    return root, build_report(root, mediation_sims=50)


def test_controls_sweep_reports_every_new_section(controls_report):
    _, files = controls_report
    stats_json = json.loads(files.stats.read_text())
    for key in ("noninferiority", "per_layer", "power", "update_alignment"):
        assert key in stats_json, key
    assert set(stats_json["noninferiority"]) == {"projection@1/shared", "projection@2/shared", "placebo@1/shared"}
    assert set(stats_json["comparisons"]["placebo"]) == {"placebo@1/shared"}
    assert set(stats_json["per_layer"]["none/shared"]) == {"fc1", "fc2", "out"}
    assert "within_shared" in stats_json["regression"]
    assert set(stats_json["update_alignment"]) == {"by_arm", "regression"}
    assert stats_json["meta"]["margin"] == 0.05
    markdown = files.markdown.read_text()
    for heading in ("## Update alignment", "## Which layer carries the drive?", "## Seeds needed",
                    "| projection@1/shared | trait_gain | placebo@1/shared |"):
        assert heading in markdown
    assert {p.name for p in files.tables} >= {"per_layer.csv", "power.csv"}
    assert {p.name for p in files.figures} >= {"per_layer_alignment.png", "update_alignment_steps.png"}
    assert assert_table_numbers_in_stats(files) > 300


def test_controls_sweep_gets_the_planted_verdicts(controls_report):
    _, files = controls_report
    stats_json = json.loads(files.stats.read_text())
    noninferior = {arm: r["noninferior"] for arm, r in stats_json["noninferiority"].items()}
    assert noninferior == {"projection@1/shared": True, "projection@2/shared": False, "placebo@1/shared": True}
    claims = {claim["id"]: claim for claim in files.claims}
    assert claims["claim2"]["verdict"] == "partly supported"  # both suppress; projection@2 costs distillation
    assert "projection@1/shared" in claims["claim2"]["words"] and "non-inferior: no material cost" in \
        claims["claim2"]["words"]
    assert claims["referee"]["verdict"] == "supported"
    assert "Direction causal: placebo leaves acquisition intact where projection stops it." in \
        claims["referee"]["words"]
    within = stats_json["regression"]["within_shared"]
    assert within["arms"] == ["none/shared", "projection@1/shared", "projection@2/shared", "placebo@1/shared"]
    assert within["ci_low"] < 50.0 < within["ci_high"]  # GAIN_PER_ALIGNMENT, planted in every shared arm


def test_controls_sweep_power_rows(controls_report):
    _, files = controls_report
    rows = json.loads(files.stats.read_text())["power"]
    keys = [(row["claim"], row["test"], row["arm"]) for row in rows]
    assert ("claim2", "final_distill_loss non-inferiority", "projection@1/shared") in keys
    assert ("referee", "trait_gain of projection minus placebo", "placebo@1/shared") in keys
    assert [row["claim"] for row in rows][0] == "claim1" and rows[-1]["claim"] == "control"
    for row in rows:
        assert ("refused" in row) != ("seeds_needed" in row)
        if "seeds_needed" in row:
            assert row["seeds_needed"] >= 3 and 0 <= row["power_now"] <= 1
    worse = next(r for r in rows if r["arm"] == "projection@2/shared" and "non-inferiority" in r["test"])
    assert "wrong side of the null" in worse["refused"]
    power = pd.read_csv(files.folder / "tables" / "power.csv")
    assert len(power) == len(rows)


def test_old_results_folder_without_the_new_fields_still_reports(tmp_path):
    root = write_sweep(tmp_path / "old", seeds=4, arms=CONTROLS[:3])
    for folder in (root / "trials").iterdir():
        summary = json.loads((folder / "summary.json").read_text())
        del summary["mean_update_alignment"], summary["update_alignment_by_epoch"]
        (folder / "summary.json").write_text(json.dumps(summary))
        trace = pd.read_parquet(folder / "trace.parquet").drop(columns=["update_alignment", "update_trait_change"])
        trace.to_parquet(folder / "trace.parquet", index=False)
    assert (load_results(root).trials["status"] == "completed").all()
    files = build_report(root, mediation_sims=20)
    stats_json = json.loads(files.stats.read_text())
    warnings = " ".join(stats_json["data"]["warnings"])
    assert "summary.json 'mean_update_alignment' absent in 12 trial(s)" in warnings
    assert "trace column 'update_alignment' absent in 12 trial(s)" in warnings
    update = stats_json["update_alignment"]["by_arm"]["none/shared"]
    assert update["mean_update_alignment"]["refused"].startswith("needs at least 3 trials")
    assert "refused" in stats_json["figures"]["update_alignment_steps"]
    assert "mean" in stats_json["per_layer"]["none/shared"]["out"]
    assert "noninferior" in stats_json["noninferiority"]["projection@1/shared"]


def test_null_update_alignment_is_missing_not_invalid(tmp_path):
    root = write_sweep(tmp_path / "nulls", seeds=3, arms=CONTROLS[:1])
    path = root / "trials" / "t0_none_0_shared" / "summary.json"
    summary = json.loads(path.read_text())
    summary.update(mean_update_alignment=None, update_alignment_by_epoch=[None, None, None])
    path.write_text(json.dumps(summary))
    trials = load_results(root).trials.set_index("trial_id")
    assert trials.at["t0_none_0_shared", "status"] == "completed"
    assert math.isnan(trials.at["t0_none_0_shared", "mean_update_alignment"])


# --- sublim report --margin ------------------------------------------------------------------------------

@pytest.mark.parametrize("margin", ["0", "-0.05", "nan", "inf"])
def test_bad_margin_is_one_line_exit_2_before_any_work(tmp_path, monkeypatch, capsys, margin):
    root = write_sweep(tmp_path / "m", seeds=3, arms=CONTROLS[:1])
    monkeypatch.setattr(report, "load_results", lambda *a: pytest.fail("results read before --margin was checked"))
    with pytest.raises(SystemExit) as caught:
        cli.main(["report", str(root), "--margin", margin])
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "non-inferiority margin" in err
    assert not (root / "report").exists()


def test_margin_reaches_the_test(tmp_path):
    root = write_sweep(tmp_path / "m", seeds=4, arms=CONTROLS[:3])
    assert cli.main(["report", str(root), "--margin", "0.2", "--mediation-sims", "20"]) == 0
    stats_json = json.loads((root / "report" / "stats.json").read_text())
    assert stats_json["meta"]["margin"] == 0.2
    result = stats_json["noninferiority"]["projection@1/shared"]
    assert result["margin_fraction"] == 0.2 and result["margin"] == pytest.approx(0.2 * result["mean_reference"])

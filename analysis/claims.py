"""The protocol's four claims, the referee's objection and the init control, each judged from the
statistics: a verdict and a plain-words sentence carrying the numbers it rests on.

A verdict is "supported" only when the interval that tests it excludes the null in the claimed
direction; a refused statistic gives "undetermined" with its reason, never a guess.
"""

from __future__ import annotations

from .answers import (AlignmentByEpoch, CriticalPeriod, Estimate, MeanCI, MeanTest, MediationResult, NonInferiority,
                      Paired, PlaceboComparison, Refused, SimulatedEffect, Stats)
from .document import fmt
from .stats import BASELINE, CONFIDENCE, CONTROL

SUPPORTED, PARTLY, NOT_SUPPORTED, UNDETERMINED = "supported", "partly supported", "not supported", "undetermined"
CI = f"{CONFIDENCE:.0%} CI"
WEAK_COSINE = 0.1  # the literature's alignments are of order 1e-3 to 1e-2


def p_value(result: Estimate) -> str:
    """A p-value as printed; a simulated p of 0 as below the simulation's resolution."""
    if isinstance(result, SimulatedEffect) and result.p == 0:
        return f"p < {fmt(result.resolution)}"
    return f"p = {fmt(result.p)}"


def estimate(result: Estimate) -> str:
    """'value (95% CI low to high, p = ...)'; a descriptive mean has no p."""
    p = "" if isinstance(result, MeanCI) else f", {p_value(result)}"
    return f"{fmt(result.point)} ({CI} {fmt(result.ci_low)} to {fmt(result.ci_high)}{p})"


def _claim(id_: str, title: str, claim: str, statistic: str, verdict: str, words: str) -> dict[str, str]:
    return {"id": id_, "title": title, "claim": claim, "statistic": statistic, "verdict": verdict, "words": words}


def _combine(parts: list[tuple[str, str]]) -> tuple[str, str]:
    """One verdict from per-arm verdicts: all supported, some, none; refused arms do not count."""
    judged = [verdict for verdict, _ in parts if verdict != UNDETERMINED]
    words = " ".join(text for _, text in parts)
    if not judged:
        return UNDETERMINED, words
    if all(verdict == SUPPORTED for verdict in judged):
        return SUPPORTED, words
    if any(verdict in (SUPPORTED, PARTLY) for verdict in judged):
        return PARTLY, words
    return NOT_SUPPORTED, words


def _sustained(epochs: AlignmentByEpoch | Refused) -> tuple[str, str]:
    """The verdict on a positive mean alignment, from whether every epoch's interval lies above 0."""
    if isinstance(epochs, Refused) or epochs.sustained is None:
        reason = epochs.reason if isinstance(epochs, Refused) else "some epochs have too few trials"
        return PARTLY, f"Whether it holds in every epoch is undetermined ({reason})."
    if epochs.sustained:
        return SUPPORTED, f"The interval lies above 0 in all {epochs.epochs_tested} epochs: sustained through training."
    return PARTLY, (f"But the interval lies above 0 in only {epochs.epochs_positive} of {epochs.epochs_tested} "
                    "epochs: not sustained throughout.")


def alignment_positive(stats: Stats) -> dict[str, str]:
    verdict, words = UNDETERMINED, f"No completed trials in {BASELINE}."
    positivity = stats.positivity.get(BASELINE)
    if positivity is not None and isinstance(positivity.mean_alignment, Refused):
        words = f"The test of mean alignment in {BASELINE} is refused: {positivity.mean_alignment.reason}."
    elif positivity is not None:
        m, epochs, steps = positivity.mean_alignment, positivity.by_epoch, positivity.positive_steps
        words = (f"In {BASELINE}, the per-trial mean alignment is {estimate(m)} by t-test; "
                 f"Cohen's d = {fmt(m.cohens_d)}, n = {m.n} trials.")
        if not isinstance(steps, Refused):
            words += (f" A fraction {fmt(steps.fraction)} of {steps.steps} steps had positive alignment; "
                      f"{steps.trials_mostly_positive} of {steps.n} trials had mostly positive steps "
                      f"(sign test p = {fmt(steps.p_trials)}).")
        if m.ci_low <= 0:
            verdict = NOT_SUPPORTED
            words += " The interval includes or lies below 0: alignment is not shown to be positive."
        else:
            verdict, sustained = _sustained(epochs)
            size = "weak in absolute terms" if m.mean < WEAK_COSINE else "not weak"
            words += f" Positive, and {size}: a cosine of {fmt(m.mean)}, where 1 is full alignment. {sustained}"
    return _claim("claim1", "Claim 1: alignment stays weakly but consistently positive",
                  "Alignment between the distillation gradient and the trait gradient stays weakly but "
                  "consistently positive throughout multi-step training.",
                  f"Per-trial mean alignment against 0 in {BASELINE}: mean with {CI}, one-sample t-test, "
                  "Wilcoxon signed-rank test, Cohen's d; binomial tests of positive steps; the same per epoch "
                  "(sustained = the interval lies above 0 in every epoch).", verdict, words)


def _noninferiority_words(result: NonInferiority | Refused | None) -> tuple[bool | None, str]:
    """(non-inferior, or None when refused; the sentence) for one arm's final distillation loss."""
    if result is None:
        return None, "; its distillation-loss non-inferiority test was not computed."
    if isinstance(result, Refused):
        return None, f"; its distillation-loss non-inferiority test is refused: {result.reason}."
    bound = (f"its final distillation loss differs by {fmt(result.difference)} (one-sided {CONFIDENCE:.0%} upper "
             f"bound {fmt(result.upper)}, p = {fmt(result.p)}) against a margin of {fmt(result.margin)} "
             f"({fmt(result.margin_fraction)} of {result.reference}'s mean {fmt(result.mean_reference)})")
    verdict = ("non-inferior: no material cost to distillation" if result.noninferior
               else "not shown non-inferior: a cost to distillation is not ruled out")
    return result.noninferior, f"; {bound}: {verdict}."


def direction_causal(result: PlaceboComparison) -> bool | None:
    """Placebo's trait_gain not shown reduced against none/shared, while projection's is reduced against the
    placebo of its strength: the step's direction, not its size, carries the trait. None when either is refused."""
    gain, versus = result.trait_gain, result.projection_vs_placebo
    if isinstance(gain, Refused) or isinstance(versus, Refused):
        return None
    return bool(gain.difference.ci_high >= 0 and versus.difference.ci_high < 0)


def _placebo_words(result: PlaceboComparison, arm: str) -> str:
    """What a placebo arm did to trait_gain, and projection against it, in one or two sentences."""
    gain, versus = result.trait_gain, result.projection_vs_placebo
    words = (f"{arm}: refused: {gain.reason}." if isinstance(gain, Refused) else
             f"{arm} changes trait_gain by {estimate(gain.difference)} against {BASELINE}.")
    if isinstance(versus, Refused):
        return words + f" Projection against it is refused: {versus.reason}."
    return words + (f" {versus.arm} minus {arm} in trait_gain: {estimate(versus.difference)}, paired over "
                    f"{versus.difference.n} seeds.")


def _projection_part(arm: str, gain: Paired | Refused, noninferior: NonInferiority | Refused | None
                     ) -> tuple[str, str]:
    """One projection arm's verdict: suppression (trait_gain interval below 0) and non-inferior distillation."""
    if isinstance(gain, Refused):
        return UNDETERMINED, f"{arm}: the trait_gain comparison is refused: {gain.reason}."
    suppresses = gain.difference.ci_high < 0
    text = (f"{arm} changes trait_gain by {estimate(gain.difference)} against {BASELINE} ({fmt(gain.mean_arm)} vs "
            f"{fmt(gain.mean_reference)}, paired over {gain.difference.n} seeds)")
    fine, words = _noninferiority_words(noninferior)
    verdict = NOT_SUPPORTED if not suppresses else SUPPORTED if fine else PARTLY
    return verdict, text + words


def projection_suppresses(stats: Stats) -> dict[str, str]:
    parts = [_projection_part(arm, result.trait_gain, stats.noninferiority.get(arm))
             for arm, result in stats.comparisons.projection.items()]
    verdict, words = _combine(parts) if parts else (UNDETERMINED, "No completed shared-init projection trials.")
    placebo = [_placebo_words(result, arm) for arm, result in stats.comparisons.placebo.items()]
    if placebo:
        words += " Placebo (projection's step size in a random direction orthogonal to g_t): " + " ".join(placebo)
    margin = fmt(stats.meta.margin)
    return _claim("claim2", "Claim 2: projection suppresses acquisition without hurting distillation",
                  "Removing the trait-aligned component of the distillation gradient (projection) suppresses trait "
                  "acquisition without hurting distillation progress: alignment contributes causally.",
                  f"Paired by seed against {BASELINE}: difference in trait_gain (suppression = interval below 0, "
                  "t-test); final distillation loss non-inferior (the one-sided "
                  f"{CONFIDENCE:.0%} upper bound of the difference below a margin of {margin} × {BASELINE}'s mean, "
                  "one-sided paired t-test). Beside it, placebo arms against "
                  f"{BASELINE} and projection against placebo in trait_gain.", verdict, words)


def _critical_words(result: CriticalPeriod, test: MeanTest) -> tuple[str, str]:
    first, share = result.gain_by_epoch[0].gain, result.share_first_epoch
    later = "epoch 2" if result.epochs == 2 else f"the mean gain of epochs 2-{result.epochs}"
    verdict = SUPPORTED if test.ci_low > 0 else NOT_SUPPORTED
    return verdict, (f"In {BASELINE}, students gain {estimate(first)} test accuracy in epoch 1; epoch 1's gain minus "
                     f"{later} is {estimate(test)} by paired t-test over {test.n} trials. "
                     + (f"Epoch 1 holds a share {fmt(share)} of the total gain. " if share is not None else
                        "The total gain is not shown to be positive, so epoch 1's share of it is not given. ")
                     + ("Acquisition is fastest in the first epoch." if verdict == SUPPORTED
                        else "Epoch 1 is not shown to be faster than later epochs."))


def critical_period(stats: Stats) -> dict[str, str]:
    result = stats.critical_period.get(BASELINE, Refused(f"no completed trials in {BASELINE}"))
    test = result.first_minus_later if isinstance(result, CriticalPeriod) else result
    if isinstance(result, CriticalPeriod) and isinstance(test, MeanTest):
        verdict, words = _critical_words(result, test)
    else:
        verdict, words = UNDETERMINED, f"The epoch comparison in {BASELINE} is refused: {test.reason}."
    return _claim("claim3", "Claim 3: acquisition is fastest early (a critical period)",
                  "Trait acquisition is fastest early: a critical period in the first epoch.",
                  "Per-trial accuracy gained in each epoch; epoch 1's gain minus the mean gain of later epochs, "
                  f"paired within trial, with {CI} and t-test.", verdict, words)


def liminal_attenuates(stats: Stats) -> dict[str, str]:
    parts = []
    for arm, result in stats.comparisons.liminal.items():
        early, gain = result.alignment_epoch_1, result.gain_vs_zero
        if isinstance(early, Refused) or isinstance(gain, Refused):
            reason = (early if isinstance(early, Refused) else gain).reason
            parts.append((UNDETERMINED, f"{arm}: refused: {reason}."))
            continue
        attenuates, acquires = early.difference.ci_high < 0, gain.ci_low > 0
        verdict = {(True, True): SUPPORTED, (False, False): NOT_SUPPORTED}.get((attenuates, acquires), PARTLY)
        parts.append((verdict, (
            f"{arm}: epoch-1 alignment differs from {BASELINE} by {estimate(early.difference)}: "
            f"{'attenuated' if attenuates else 'not shown attenuated'}; trait_gain is {estimate(gain)}: "
            f"{'acquisition continues' if acquires else 'acquisition not shown'}.")))
    verdict, words = _combine(parts) if parts else (UNDETERMINED, "No completed shared-init liminal trials.")
    return _claim("claim4", "Claim 4: liminal training attenuates alignment early but does not stop acquisition",
                  "Liminal training attenuates alignment (early on) but does not stop acquisition.",
                  f"Per liminal strength: epoch-1 alignment minus {BASELINE}'s, paired by seed (attenuation = "
                  "interval below 0); trait_gain against 0 (acquisition continues = interval above 0).",
                  verdict, words)


def _mediation_words(kind: str, med: MediationResult) -> str:
    share = (f"proportion mediated {fmt(med.prop_mediated.estimate)}" if med.prop_mediated.interpretable else
             "proportion mediated not interpretable (total effect not distinguishable from 0)")
    return (f"Mediation ({kind}, strength 0 to {fmt(med.contrast_to)}): ACME {estimate(med.acme)}, "
            f"ADE {estimate(med.ade)}, total {estimate(med.total)}; {share}.")


def _direction_words(stats: Stats) -> tuple[list[bool], list[str]]:
    """Per placebo arm: is the direction causal (see `direction_causal`), and the sentence saying so."""
    found, parts = [], []
    for arm, result in stats.comparisons.placebo.items():
        causal = direction_causal(result)
        if causal is None:
            parts.append(_placebo_words(result, arm) + " Whether the direction is causal is undetermined.")
            continue
        found.append(causal)
        parts.append(_placebo_words(result, arm) + (
            " Direction causal: placebo leaves acquisition intact where projection stops it." if causal else
            " Direction not shown causal: placebo is not shown to leave acquisition intact where projection "
            "stops it."))
    return found, parts


def _fit_words(fits: tuple[tuple[object, str], ...]) -> list[str]:
    return [f"{label}: refused: {fit.reason}." if isinstance(fit, Refused) else
            f"{label}: trait_gain changes by {estimate(fit)} per unit of mean alignment, n = {fit.n}."
            for fit, label in fits]


def alignment_mediates(stats: Stats) -> dict[str, str]:
    within = stats.regression.within_shared
    relates = [] if isinstance(within, Refused) else [within.ci_low > 0]
    parts = _fit_words(((within, "Within shared init, arm fixed effects (OLS, HC3)"),))
    parts += ["Pooled over every arm, for reference:"] + _fit_words(
        ((stats.regression.ols, "OLS (HC3)"), (stats.regression.mixed, "mixed model (seed intercept)")))
    mediated = []
    for kind, med in stats.mediation.items():
        if isinstance(med, Refused):
            parts.append(f"Mediation ({kind}): refused: {med.reason}.")
            continue
        mediated.append(med.acme.ci_low > 0 or med.acme.ci_high < 0)
        parts.append(_mediation_words(kind, med))
    causal, direction = _direction_words(stats)
    parts += direction
    beyond = mediated + causal
    if not relates and not beyond:
        verdict = UNDETERMINED
    elif all(relates) and relates and any(beyond):
        verdict = SUPPORTED
    elif any(relates) or any(beyond):
        verdict = PARTLY
    else:
        verdict = NOT_SUPPORTED
    return _claim("referee", "Referee: is alignment more than a correlate of acquisition?",
                  "Alignment predicts acquisition, and mitigation changes acquisition through alignment (the "
                  "referee asks for explicit statistics, and for more than correlation behind the causal claim).",
                  "trait_gain ~ mean_alignment within shared-init trials with an intercept per arm (OLS, HC3 SEs: the "
                  "verdict's test), and pooled over all completed trials by OLS and by a mixed model with a random "
                  "intercept per seed; mediation strength → mean_alignment → trait_gain per mitigation (statsmodels "
                  "Mediation, seed fixed effects); placebo against projection (direction causal = placebo's "
                  "trait_gain not shown reduced against none/shared while projection's is reduced against placebo). "
                  "Supported = the within-shared slope's interval above 0 and either a mediated effect or a causal "
                  "direction.", verdict, " ".join(parts))


def init_control(stats: Stats) -> dict[str, str]:
    paired, control = stats.comparisons.shared_vs_independent, stats.comparisons.independent_gain
    if isinstance(paired, Refused):
        verdict, words = UNDETERMINED, f"The comparison is refused: {paired.reason}."
    else:
        diff = paired.difference
        verdict = SUPPORTED if diff.ci_low > 0 else NOT_SUPPORTED
        words = (f"Shared-init students gain {estimate(diff)} more test accuracy than independent-init ones "
                 f"(paired over {diff.n} seeds).")
        if not isinstance(control, Refused):
            words += f" Independent-init students gain {estimate(control)}."
    return _claim("control", "Control: transfer needs the shared initialization",
                  "Independent-init students do not acquire the trait; shared-init students do.",
                  f"trait_gain of {BASELINE} minus {CONTROL}, paired by seed; {CONTROL}'s trait_gain against 0.",
                  verdict, words)


def judge(stats: Stats) -> list[dict[str, str]]:
    """Every claim in report order."""
    return [check(stats) for check in (alignment_positive, projection_suppresses, critical_period,
                                       liminal_attenuates, alignment_mediates, init_control)]

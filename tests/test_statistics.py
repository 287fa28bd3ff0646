"""The report's statistics against hand-computed cases and against SciPy's own bootstrap and permutation test."""

import itertools
from fractions import Fraction

import numpy as np
import pytest

from pipeline.reporting.statistics import Interval, compare, mean_interval, percentile_interval, pooled, sign_flip_p_value

SAMPLES, PERMUTATIONS, SEED = 4000, 4000, 0


def test_a_sign_flip_of_three_equal_gains_is_exact_and_one_in_four():
    # 8 sign patterns; only +++ and --- reach |sum| = 3
    assert sign_flip_p_value([1.0, 1.0, 1.0], PERMUTATIONS, SEED) == (0.25, True)
    assert sign_flip_p_value([1.0, 0.0, 1.0, 0.0, 1.0], PERMUTATIONS, SEED) == (0.25, True)  # zeros flip to themselves
    assert sign_flip_p_value([0.0, 0.0, 0.0], PERMUTATIONS, SEED) == (1.0, True)
    assert sign_flip_p_value([2.0, -1.0], PERMUTATIONS, SEED) == (1.0, True)  # |2 - 1| is the smallest |sum| there is


def test_flipped_sums_equal_to_the_observed_one_but_for_rounding_count_as_reaching_it():
    decimals = ["0.1", "0.2", "-0.3", "0.4"]  # flipping 0.1, 0.2, -0.3 (sum 0) gives the sum again: 0.4 exactly, not in floats
    exact_sums = [abs(sum(s * Fraction(x) for s, x in zip(signs, decimals))) for signs in itertools.product((1, -1), repeat=4)]
    expected = sum(total >= exact_sums[0] for total in exact_sums) / 16
    assert sign_flip_p_value([float(x) for x in decimals], PERMUTATIONS, SEED) == (expected, True)


def test_many_differing_users_draw_sign_patterns_with_the_plus_one_correction():
    p, exact = sign_flip_p_value(np.ones(40), 999, SEED)  # 2^40 patterns: Monte Carlo; no draw reaches |sum| = 40
    assert not exact and p == 1 / 1000
    p, exact = sign_flip_p_value(np.r_[np.ones(20), -np.ones(20)], 999, SEED)  # sum 0: every draw reaches it
    assert not exact and p == 1.0
    assert sign_flip_p_value(np.ones(10), 1023, SEED)[1] is False and sign_flip_p_value(np.ones(10), 1024, SEED)[1] is True


def test_intervals_of_a_constant_are_zero_wide_and_intervals_hold_the_mean():
    assert mean_interval(np.full(50, 0.25), 0.95, SAMPLES, SEED) == Interval(0.25, 0.25)
    values = np.random.default_rng(1).random((3, 80))
    interval = mean_interval(values, 0.95, SAMPLES, SEED)
    assert values.mean() in interval and interval.high - interval.low > 0
    assert mean_interval(values, 0.95, SAMPLES, SEED) == interval  # seeded
    assert mean_interval(values, 0.5, SAMPLES, SEED).high < interval.high  # a lower confidence, a narrower interval


def test_seeds_are_resampled_before_users():
    # Two seeds, each constant over users: a replicate's mean is that of the seeds drawn, 0, 0.5 or 1 with
    # probability 1/4, 1/2, 1/4, so the 95% interval is [0, 1]; over users alone it would be zero-wide.
    values = np.array([np.zeros(30), np.ones(30)])
    assert mean_interval(values, 0.95, SAMPLES, SEED) == Interval(0.0, 1.0)
    assert mean_interval(values, 0.4, SAMPLES, SEED) == Interval(0.5, 0.5)


def test_percentile_interval_interpolates_as_numpy_and_keeps_infinite_ends():
    replicates = np.random.default_rng(2).random(100)
    interval = percentile_interval(replicates, 0.9)
    assert [interval.low, interval.high] == pytest.approx(np.percentile(replicates, [5, 95]), rel=1e-12)
    assert percentile_interval(np.array([1.0, 2.0, np.inf, np.inf]), 0.5) == Interval(1.75, np.inf)


def test_a_paired_comparison_pools_seeds_and_reports_difference_relative_and_p():
    baseline = np.array([[0.0, 1.0, 0.0, 1.0, 0.0, 0.0], [0.0, 1.0, 1.0, 1.0, 0.0, 0.0]])  # users' means 0, 1, .5, 1, 0, 0
    candidate = np.array([1.0, 1.0, 1.0, 1.0, 1.0, 0.0])
    assert pooled(baseline).tolist() == [0.0, 1.0, 0.5, 1.0, 0.0, 0.0]
    result = compare(candidate, baseline, 0.95, SAMPLES, PERMUTATIONS, SEED)
    assert result.difference == pytest.approx(5 / 6 - 2.5 / 6) and result.relative == pytest.approx(1.0)
    assert (result.users, result.differing, result.exact) == (6, 3, True)
    assert result.p_value == 0.25  # differences 1, 0.5, 1: only +++ and --- reach 2.5
    assert result.difference in result.difference_interval and result.relative in result.relative_interval
    assert compare(candidate, candidate, 0.95, SAMPLES, PERMUTATIONS, SEED).p_value == 1.0
    with pytest.raises(ValueError, match="same users"):
        compare(candidate, candidate[:3], 0.95, SAMPLES, PERMUTATIONS, SEED)


def test_a_baseline_of_zero_has_no_relative_difference_and_an_open_interval():
    result = compare([1.0, 0.0, 0.0], [0.0, 0.0, 0.0], 0.95, SAMPLES, PERMUTATIONS, SEED)
    assert np.isnan(result.relative) and result.relative_interval == Interval(0.0, np.inf)
    rare = compare([1.0] * 3 + [0.0] * 17, [1.0] + [0.0] * 19, 0.95, SAMPLES, PERMUTATIONS, SEED)
    assert rare.relative == pytest.approx(2.0) and rare.relative_interval.high == np.inf  # resamples without the one hit


try:
    import scipy.stats as scipy_stats
except ImportError:  # scipy comes with the dev extra
    scipy_stats = None
needs_scipy = pytest.mark.skipif(scipy_stats is None, reason="the comparison with SciPy needs scipy: pip install -e '.[dev]'")


@needs_scipy
@pytest.mark.parametrize("users", [6, 11])
def test_the_exact_p_value_equals_scipys_paired_permutation_test(users):
    rng = np.random.default_rng(users)
    candidate, baseline = rng.random(users).round(2), rng.random(users).round(2)
    baseline[0] = candidate[0]  # a tie: scipy flips it too, to no effect
    expected = scipy_stats.permutation_test(
        (candidate, baseline),
        lambda x, y, axis: np.mean(x - y, axis=axis),
        permutation_type="samples",
        vectorized=True,
        n_resamples=np.inf,
        alternative="two-sided",
    )
    result = compare(candidate, baseline, 0.95, SAMPLES, PERMUTATIONS, SEED)
    assert result.exact and result.p_value == pytest.approx(expected.pvalue, abs=1e-12)


@needs_scipy
def test_the_interval_agrees_with_scipys_percentile_bootstrap_within_monte_carlo_error():
    values = (np.random.default_rng(3).random(200) < 0.2).astype(float)  # a Recall@k column: 0 or 1 per user
    expected = scipy_stats.bootstrap(
        (values,), np.mean, method="percentile", n_resamples=20000, rng=np.random.default_rng(4)
    ).confidence_interval
    interval = mean_interval(values, 0.95, 20000, SEED)
    width = expected.high - expected.low
    assert interval.low == pytest.approx(expected.low, abs=0.05 * width)
    assert interval.high == pytest.approx(expected.high, abs=0.05 * width)
    difference = compare(values, np.zeros(200), 0.95, 20000, PERMUTATIONS, SEED).difference_interval
    assert difference.low == pytest.approx(expected.low, abs=0.05 * width)  # against a zero baseline: the same interval

"""bench/report/stats.py on cases computed by hand (t tables, Welch's formulas, Holm's steps)."""

from __future__ import annotations

import math

import pytest
from scipy import stats as sps

from bench.report.stats import average_ranks, compare_to_best, holm, mean_ci, ranks, welch_greater


def test_mean_ci_uses_students_t():
    # mean 2, s = 1, n = 3: t(0.975, 2) = 4.3027 (table), half-width 4.3027 / sqrt(3) = 2.4841
    mean, half, n = mean_ci([1.0, 2.0, 3.0])
    assert (mean, n) == (2.0, 3) and half == pytest.approx(2.4841, abs=1e-4)
    # n = 5, s = sqrt(2.5): t(0.975, 4) = 2.7764, half = 2.7764 * 1.5811 / 2.2361 = 1.9632
    assert mean_ci([1, 2, 3, 4, 5])[1] == pytest.approx(1.9632, abs=1e-4)
    mean, half, n = mean_ci([7.5])
    assert (mean, n) == (7.5, 1) and math.isnan(half)
    assert mean_ci([])[2] == 0


def test_welch_statistic_and_degrees_of_freedom_by_hand():
    # means 5 and 2, variances 1 and 1, n = 3 each: se = sqrt(2/3), t = 3 / 0.8165 = 3.6742,
    # df = (2/3)^2 / (2 * (1/3)^2 / 2) = 4
    t, df, p = welch_greater([4.0, 5.0, 6.0], [1.0, 2.0, 3.0])
    assert t == pytest.approx(3.6742, abs=1e-4) and df == pytest.approx(4.0)
    assert 0.005 < p < 0.025  # t(0.99, 4) = 3.747 > 3.674 > t(0.975, 4) = 2.776
    # unequal variances: a = [10, 12, 14, 16] (var 6.667), b = [9, 10] (var 0.5)
    # se^2 = 6.667/4 + 0.5/2 = 1.9167; t = (13 - 9.5) / 1.3844 = 2.5281
    # df = 1.9167^2 / (1.6667^2 / 3 + 0.25^2 / 1) = 3.6736 / 0.98843 = 3.7166
    t, df, p = welch_greater([10, 12, 14, 16], [9, 10])
    assert t == pytest.approx(2.5281, abs=1e-4) and df == pytest.approx(3.7166, abs=1e-3)
    ref = sps.ttest_ind([10, 12, 14, 16], [9, 10], equal_var=False, alternative="greater")  # an independent code
    assert p == pytest.approx(ref.pvalue) and t == pytest.approx(ref.statistic)


def test_welch_edge_cases():
    assert math.isnan(welch_greater([1.0], [0.0, 1.0])[2])  # one seed: no test
    assert welch_greater([2.0, 2.0], [1.0, 1.0])[2] == 0.0  # no spread, a above b: certain
    assert welch_greater([1.0, 1.0], [1.0, 1.0])[2] == 1.0


def test_holm_step_down_by_hand():
    # sorted 0.01, 0.03, 0.04 with m = 3: 0.03, 0.06, max(0.06, 0.04) = 0.06
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])  # capped at 1
    assert holm([0.2]) == pytest.approx([0.2])


def test_compare_to_best_marks_ties_and_losers():
    groups = {
        "a": [95.0, 95.5, 96.0],  # best
        "b": [95.2, 95.0, 96.1],  # overlaps a: not significantly worse
        "c": [80.0, 80.5, 79.5],  # far below: worse
        "d": [90.0],  # one seed: cannot be tested
    }
    marks = compare_to_best(groups)
    assert marks == {"a": "best", "b": "tied", "c": "worse", "d": "untested"}
    # lower is better (MSE): the smallest mean is best
    assert compare_to_best({"x": [0.1, 0.11, 0.09], "y": [0.5, 0.52, 0.51]}, higher_is_better=False) == {
        "x": "best", "y": "worse"}  # fmt: skip


def test_holm_can_turn_raw_wins_into_ties():
    """Two methods each significantly worse alone (raw p = 0.032 < 0.05) are not after Holm over both (0.063)."""
    best = [10.0, 10.5, 11.0, 10.2]
    close = [9.6, 10.1, 9.9, 9.7]
    assert welch_greater(best, close)[2] == pytest.approx(0.0317, abs=1e-4)
    assert compare_to_best({"best": best, "close": close}) == {"best": "best", "close": "worse"}
    both = compare_to_best({"best": best, "close": close, "twin": list(close)})
    assert both == {"best": "best", "close": "tied", "twin": "tied"}  # 2 x 0.0317 = 0.063 >= 0.05


def test_ranks_and_average_ranks():
    assert ranks({"a": 90.0, "b": 95.0, "c": 90.0}) == {"b": 1.0, "a": 2.5, "c": 2.5}
    assert ranks({"a": 0.2, "b": 0.1}, higher_is_better=False) == {"b": 1.0, "a": 2.0}
    table = {"d1": {"a": 90.0, "b": 95.0, "c": 80.0}, "d2": {"a": 0.1, "b": 0.3}}  # d2 is an MSE column
    avg = average_ranks(table, {"d1": True, "d2": False})
    assert avg == {"a": (1.5, 2), "b": (1.5, 2), "c": (3.0, 1)}  # a: (2 + 1) / 2; b: (1 + 2) / 2

"""The statistics of the report: intervals, which differences are real, and average ranks.

- `mean_ci`: mean and the half-width of its 95 % confidence interval, from Student's t with
  n - 1 degrees of freedom (seeds are few: a normal interval would be too narrow).
- `welch_greater`: one-sided Welch t-test that one method's mean is above another's (unequal
  variances; Welch-Satterthwaite degrees of freedom).
- `holm`: Holm's step-down adjustment of p-values, for the several comparisons of one column.
- `compare_to_best`: per column (dataset), the best method and every method not significantly
  worse than it: each other method is tested against the best (one-sided Welch), the p-values
  are Holm-adjusted over those comparisons, and a method whose adjusted p is >= alpha is "tied".
- `average_ranks`: each method's rank per dataset (1 = best, ties share the mean rank),
  averaged over the datasets it ran on (Demšar, JMLR 2006).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats as sps

ALPHA = 0.05
LEVEL = 0.95


def mean_ci(values: Sequence[float], level: float = LEVEL) -> tuple[float, float, int]:
    """(mean, half-width of the `level` confidence interval, n); the half-width is NaN for n < 2."""
    x = np.asarray(values, dtype=float)
    n = len(x)
    if n == 0:
        return math.nan, math.nan, 0
    if n == 1:
        return float(x[0]), math.nan, 1
    half = sps.t.ppf(0.5 + level / 2, n - 1) * x.std(ddof=1) / math.sqrt(n)
    return float(x.mean()), float(half), n


def welch_greater(a: Sequence[float], b: Sequence[float]) -> tuple[float, float, float]:
    """(t, degrees of freedom, p) for H1: mean(a) > mean(b). p is NaN when a side has fewer than 2 values.

    Both sides without spread: p = 0 when mean(a) > mean(b), else 1 (there is nothing to doubt).
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) < 2 or len(b) < 2:
        return math.nan, math.nan, math.nan
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    diff = a.mean() - b.mean()
    if va + vb == 0:
        return (math.inf if diff > 0 else -math.inf if diff < 0 else 0.0), math.nan, 0.0 if diff > 0 else 1.0
    t = diff / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    return float(t), float(df), float(sps.t.sf(t, df))


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values, in the input's order: the i-th smallest times (m - i + 1), kept monotone."""
    p = np.asarray(pvalues, dtype=float)
    order = np.argsort(p)
    m = len(p)
    adjusted = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return adjusted.tolist()


def compare_to_best(groups: dict[str, Sequence[float]], higher_is_better: bool = True,
                    alpha: float = ALPHA) -> dict[str, str]:  # fmt: skip
    """{name: "best" | "tied" | "worse" | "untested"} for one column of results (one list of seeds per name).

    "tied": not significantly worse than the best; "untested": the best or this one has fewer
    than 2 seeds, so no test can be made.
    """
    sign = 1.0 if higher_is_better else -1.0
    values = {k: [sign * float(v) for v in vs] for k, vs in groups.items() if len(vs)}
    if not values:
        return {}
    best = max(values, key=lambda k: np.mean(values[k]))
    others = [k for k in values if k != best]
    tests = {k: welch_greater(values[best], values[k])[2] for k in others}
    testable = [k for k in others if not math.isnan(tests[k])]
    adjusted = dict(zip(testable, holm([tests[k] for k in testable])))
    out = {best: "best"}
    for k in others:
        if k not in adjusted:
            out[k] = "untested"
        else:
            out[k] = "tied" if adjusted[k] >= alpha else "worse"
    return out


def ranks(values: dict[str, float], higher_is_better: bool = True) -> dict[str, float]:
    """1 = best; tied values share the mean of their ranks."""
    names = list(values)
    sign = -1.0 if higher_is_better else 1.0
    r = sps.rankdata([sign * values[k] for k in names], method="average")
    return dict(zip(names, (float(v) for v in r)))


def average_ranks(
    columns: dict[str, dict[str, float]], higher_is_better: dict[str, bool]
) -> dict[str, tuple[float, int]]:
    """{method: (mean rank over the datasets it ran on, number of those datasets)} from {dataset: {method: mean}}."""
    per_method: dict[str, list[float]] = {}
    for dataset, means in columns.items():
        finite = {k: v for k, v in means.items() if not math.isnan(v)}
        for method, r in ranks(finite, higher_is_better.get(dataset, True)).items():
            per_method.setdefault(method, []).append(r)
    return {m: (float(np.mean(rs)), len(rs)) for m, rs in per_method.items()}

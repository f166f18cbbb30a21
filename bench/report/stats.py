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

The report's marks use the paired procedure below (protocol 2): `compare_paired` (paired t-tests, with
the test set's sampling error where per-example results are stored, Holm over every pair),
`rank_intervals` (stratified bootstrap of the mean rank), `prob_improvement` and `paired_bootstrap`.
`welch_greater`, `compare_to_best` and `average_ranks` are the protocol-1 rules, kept for comparison
(tests/test_stats.py simulates both).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats as sps

from bench.run.store import decode_correct, encode_correct  # noqa: F401  (the report's readers use them here)

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


# -- paired comparisons (protocol 2) -------------------------------------------------------------------------
# At one seed every method sees the same split, the same test set and the same data order, so the
# comparison of two rows is made on their per-seed differences. The procedure that marks the table:
#
#   every pair of rows in the comparison family is tested with a two-sided paired t-test on the seeds
#   both rows have (scipy.stats.ttest_rel), the p-values of all k(k-1)/2 pairs are Holm-adjusted together,
#   and a row is "worse" when some row's mean is above it with an adjusted p < alpha.
#
# Why this one: a mark says "this row is below that row". Each mark is a claim about one pair, and
# Holm over every pair holds the family-wise error of all such claims at alpha whatever the true means
# (strong control), so it holds too when "the best" is picked from the data, which the old rule (test
# everyone against the best by its mean, Holm over k-1) did not: with k identical rows the best by mean
# is the luckiest, and the old rule marked some row in ~10 % of tables at a nominal 5 %. Hsu's MCB
# (k-1 comparisons against the unknown best) was considered: its subset of "could be best" rows covers
# the best with probability 1-alpha, but with tied true means its exclusions ("mu_i <= max mu_j") are
# true statements, so it does not bound the share of tables of identical methods that mark a row,
# which is what a reader of the marks takes them to say. A bootstrap max-statistic would be less
# conservative but is not exact at 3-10 seeds. The paired t-test's p-values are scipy's (tested).
#
# The test set's own sampling error: with per-example correctness in the run records (`test_correct`),
# the variance of a paired mean difference is the seeds' (s_d^2 / n) plus the test set's: the variance
# over test examples of the seed-averaged per-example difference, over N. Rows of runs written before
# records held it fall back to the seeds alone.

TIE_TOL = 1e-9  # means closer than this (relative) are equal: they share the bold


def test_set_var(a: np.ndarray, b: np.ndarray) -> float:
    """Sampling variance, in %^2, of the mean paired difference in accuracy that comes from the test set:
    a, b are (seeds, N) bool arrays of per-example correctness on the same test examples."""
    d = 100.0 * (a.astype(float) - b.astype(float)).mean(axis=0)  # per example, averaged over seeds
    return float(d.var(ddof=1) / d.size) if d.size > 1 else 0.0


def paired_t(a: Sequence[float], b: Sequence[float], extra_var: float = 0.0) -> tuple[float, float, float]:
    """(t, df, two-sided p) of the mean of a - b (paired by position). Without `extra_var` this is
    scipy.stats.ttest_rel; `extra_var` (the test set's sampling variance) adds to the variance of the mean.
    No spread at all: p = 1 when the difference is 0, NaN (nothing to judge by) otherwise; fewer than 2 pairs: NaN."""
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    n = len(d)
    if n < 2:
        return math.nan, math.nan, math.nan
    var = d.var(ddof=1) / n + extra_var
    mean = float(d.mean())
    if var <= 0:
        return (0.0, n - 1.0, 1.0) if mean == 0 else (math.copysign(math.inf, mean), n - 1.0, math.nan)
    t = mean / math.sqrt(var)
    return float(t), float(n - 1), float(2 * sps.t.sf(abs(t), n - 1))


def _common(x: dict, y: dict) -> list:
    return sorted(set(x) & set(y))


def compare_paired(groups: dict[str, dict[int, float]], higher_is_better: bool = True, alpha: float = ALPHA,
                   family: Sequence[str] | None = None,
                   correct: dict[str, dict[int, np.ndarray]] | None = None) -> tuple[dict[str, str], list[dict]]:  # fmt: skip
    """Marks of one column, and the tests behind them.

    groups: {row: {seed: value}}; family: the rows compared (default: all; the others get "reference");
    correct: {row: {seed: per-example bool vector}} where known. Marks: "best" (the highest mean of the
    family; equal means share it), "tied" (no row of the family is significantly above it), "worse",
    "untested" (fewer than 2 seeds shared with every other row). Tests: one dict per pair (row a above b).
    """
    sign = 1.0 if higher_is_better else -1.0
    rows = {k: v for k, v in groups.items() if len(v)}
    fam = [k for k in rows if family is None or k in family]
    means = {k: sign * float(np.mean(list(v.values()))) for k, v in rows.items()}
    tests = []
    for i, a in enumerate(fam):
        for b in fam[i + 1 :]:
            seeds = _common(rows[a], rows[b])
            extra = 0.0
            ca, cb = (correct or {}).get(a, {}), (correct or {}).get(b, {})
            if seeds and all(s in ca and s in cb for s in seeds):
                extra = test_set_var(np.stack([ca[s] for s in seeds]), np.stack([cb[s] for s in seeds]))
            d = np.array([rows[a][s] - rows[b][s] for s in seeds])
            n = len(d)
            var = d.var(ddof=1) / n + extra if n >= 2 else math.nan
            mean = float(d.mean()) if n else math.nan
            if n < 2 or (var <= 0 and mean != 0):
                t, p = math.nan, math.nan  # one seed, or no spread at all: nothing to judge a difference by
            elif var <= 0:
                t, p = 0.0, 1.0
            else:
                t, p = sign * mean / math.sqrt(var), None
            hi, lo = (a, b) if (sign * mean > 0 or (not sign * mean < 0 and means[a] >= means[b])) else (b, a)
            tests.append({"above": hi, "below": lo, "diff": abs(mean), "t": abs(t), "df": n - 1.0, "p": p, "n": n,
                          "test_set": extra > 0})  # fmt: skip
    todo = [x for x in tests if x["p"] is None]
    if todo:  # one vectorised call: scipy's t distribution is slow per scalar
        ps = 2 * sps.t.sf(np.array([x["t"] for x in todo]), np.array([x["df"] for x in todo]))
        for x, p in zip(todo, ps):
            x["p"] = float(p)
    testable = [x for x in tests if not math.isnan(x["p"])]
    for x, adj in zip(testable, holm([x["p"] for x in testable])):
        x["p_holm"] = adj
    for x in tests:
        x.setdefault("p_holm", math.nan)
        x["significant"] = x["p_holm"] < alpha
    marks = {k: "reference" for k in rows if k not in fam}
    if not fam:
        return marks, tests
    top = max(means[k] for k in fam)
    for k in fam:
        if abs(means[k] - top) <= TIE_TOL * max(1.0, abs(top)):
            marks[k] = "best"
        elif any(x["below"] == k and x["significant"] for x in tests):
            marks[k] = "worse"
        elif not any(x["n"] >= 2 and k in (x["above"], x["below"]) for x in tests):
            marks[k] = "untested"
        else:
            marks[k] = "tied"
    return marks, tests


def _rank_matrix(values: np.ndarray) -> np.ndarray:
    """values (rows, datasets), higher better -> ranks per dataset, 1 = best, ties averaged."""
    return np.column_stack([sps.rankdata(-values[:, j], method="average") for j in range(values.shape[1])])


def rank_intervals(columns: dict[str, dict[str, dict[int, float]]], higher_is_better: dict[str, bool],
                   reps: int = 2000, level: float = LEVEL, seed: int = 0) -> dict[str, tuple[float, float, float]]:  # fmt: skip
    """{row: (mean rank, low, high)} over the datasets every row has, with a stratified bootstrap interval
    (rliable, Agarwal et al. 2021): per dataset the seeds are resampled with replacement, the same draw for
    every row (they are paired), and the mean rank over datasets is recomputed. Empty when no dataset has every row."""
    rows = sorted(set.intersection(*(set(c) for c in columns.values()))) if columns else []
    datasets = [d for d in columns if rows and all(r in columns[d] for r in rows)]
    if not rows or not datasets:
        return {}
    rng = np.random.default_rng(seed)
    point = np.empty((len(rows), len(datasets)))
    boot = np.empty((reps, len(rows), len(datasets)))
    for j, d in enumerate(datasets):
        sign = 1.0 if higher_is_better.get(d, True) else -1.0
        seeds = sorted(set.intersection(*(set(columns[d][r]) for r in rows)))
        if not seeds:
            return {}
        x = sign * np.array([[columns[d][r][s] for s in seeds] for r in rows])  # rows x seeds
        point[:, j] = x.mean(1)
        draw = rng.integers(0, len(seeds), size=(reps, len(seeds)))
        boot[:, :, j] = x[:, draw].mean(2).T
    mean_rank = _rank_matrix(point).mean(1)
    boot_ranks = np.stack([_rank_matrix(b).mean(1) for b in boot])
    lo, hi = np.percentile(boot_ranks, [50 * (1 - level), 50 * (1 + level)], axis=0)
    return {r: (float(mean_rank[i]), float(lo[i]), float(hi[i])) for i, r in enumerate(rows)}


def prob_improvement(x: dict[int, float], y: dict[int, float], higher_is_better: bool = True) -> float:
    """P(X > Y) over paired seeds (a tie counts one half): how often this row beats the other at a seed."""
    seeds = _common(x, y)
    if not seeds:
        return math.nan
    sign = 1.0 if higher_is_better else -1.0
    wins = [1.0 if sign * (x[s] - y[s]) > 0 else 0.5 if x[s] == y[s] else 0.0 for s in seeds]
    return float(np.mean(wins))


def paired_bootstrap(x: dict[int, float], y: dict[int, float], cx: dict[int, np.ndarray] | None = None,
                     cy: dict[int, np.ndarray] | None = None, reps: int = 2000, level: float = LEVEL,
                     seed: int = 0) -> tuple[float, float, float]:  # fmt: skip
    """(mean of x - y, low, high): a percentile interval from resampling the shared seeds and, where per-example
    correctness is known for every seed, the test examples too (the same draw for both rows: paired)."""
    seeds = _common(x, y)
    if not seeds:
        return math.nan, math.nan, math.nan
    d = np.array([x[s] - y[s] for s in seeds])
    rng = np.random.default_rng(seed)
    draw = rng.integers(0, len(seeds), size=(reps, len(seeds)))
    if cx and cy and all(s in cx and s in cy for s in seeds):
        diff = 100.0 * (np.stack([cx[s] for s in seeds]).astype(float) - np.stack([cy[s] for s in seeds]))
        n = diff.shape[1]
        ex = rng.integers(0, n, size=(reps, n))
        # per replicate: resampled seeds x resampled examples; mean over both = mean over examples of the seed-mean
        per_example = np.stack([diff[draw[r]].mean(0) for r in range(reps)])  # reps x N
        boot = np.take_along_axis(per_example, ex, axis=1).mean(1)
    else:
        boot = d[draw].mean(1)
    lo, hi = np.percentile(boot, [50 * (1 - level), 50 * (1 + level)])
    return float(d.mean()), float(lo), float(hi)

"""The summary report from a fixed set of run records: one configuration per cell, CIs, significance, ranks, LaTeX."""

import pandas as pd

from bench.report.build import build_report
from bench.run import store
from bench.run.config import RunConfig, TrainConfig


def _record(method, dataset, seed, test, *, metric="accuracy", status="ok", tags=(), params=1000, **settings):
    train = TrainConfig(**settings.pop("train", {}))
    cfg = RunConfig(method, dataset, seed, model=settings.pop("model", {}), train=train, tags=tuple(tags))
    rec = {"run_id": cfg.run_id, "config": cfg.to_dict(), "method": method, "dataset": dataset, "seed": seed,
           "status": status, "tags": list(tags), "metric": metric}  # fmt: skip
    if status == "ok":
        rec.update({f"test_{metric}": test, f"val_{metric}": test - 1, f"train_{metric}": test + 1, "params": params})
    else:
        rec["error"] = "RuntimeError: boom"
    return rec


def _write(out, rows):
    for r in rows:
        store.write_run(out, r)


def _fixture(out):
    _write(out, [
        _record("alpha", "d1", 0, 90.0), _record("alpha", "d1", 1, 92.0), _record("alpha", "d1", 2, 94.0),
        _record("beta", "d1", 0, 80.0, params=50), _record("beta", "d1", 1, 0.0, status="failed"),
        _record("beta", "reg", 0, 0.25, metric="mse"), _record("beta", "reg", 1, 0.35, metric="mse"),
        _record("alpha", "reg", 0, 0.5, metric="mse"),
        _record("alpha", "d1", 0, 10.0, tags=["smoke"]),
    ])  # fmt: skip


def test_summary_cells_means_intervals_and_n(tmp_path):
    _fixture(tmp_path)
    lines = build_report(tmp_path)
    assert any(line.startswith("failed: beta on d1 (seed 1)") for line in lines)
    summary = pd.read_csv(tmp_path / "tables" / "summary.csv")
    alpha = summary[(summary.method == "alpha") & (summary.dataset == "d1") & summary.variant.isna()].iloc[0]
    assert (alpha["mean"], alpha["std"], alpha["n"]) == (92.0, 2.0, 3)
    assert abs(alpha["ci"] - 4.3027 * 2 / 3**0.5) < 1e-3  # t(0.975, 2) s / sqrt(n)
    beta = summary[(summary.method == "beta") & (summary.dataset == "d1")].iloc[0]
    assert beta["n"] == 1 and beta["mean"] == 80.0  # the failed seed is not averaged in
    md = (tmp_path / "tables" / "summary.md").read_text()
    assert "**92.00 ± 4.97 (3)**" in md  # best accuracy in bold, with its 95 % interval
    assert "**0.3000 ± 0.6353 (2)**" in md  # best (lowest) MSE in bold: t(0.975, 1) = 12.706
    assert "| 80.00 (1) " in md  # one seed: no interval, no test
    assert "alpha [smoke]" in md and "10.00 (1)" in md  # smoke runs are kept apart and marked
    assert "rank [95 % CI]" in md and "paired t-tests" in md
    index = (tmp_path / "REPORT.md").read_text()
    assert "Runs that did not finish (1)" in index and "failed: beta on d1 (seed 1)" in index
    assert (tmp_path / "plots" / "accuracy_vs_params.png").stat().st_size > 1000
    assert (tmp_path / "plots" / "accuracy_per_dataset.png").stat().st_size > 1000


def test_a_cell_holds_one_configuration(tmp_path):
    """Four seed-0 runs that differ in one setting each are four rows, labelled by the setting, not one cell."""
    _write(tmp_path, [
        _record("conv", "digits", 0, 97.0), _record("conv", "digits", 0, 60.0, train={"epochs": 2}),
        _record("conv", "digits", 0, 90.0, train={"lr": 0.01}), _record("conv", "digits", 0, 95.0, model={"kernel_size": 7}),
    ])  # fmt: skip
    build_report(tmp_path)
    summary = pd.read_csv(tmp_path / "tables" / "summary.csv", keep_default_na=False)
    cells = {(v, m) for v, m in zip(summary.variant, summary["mean"])}
    assert cells == {("", 97.0), ("epochs=2", 60.0), ("lr=0.01", 90.0), ("kernel_size=7", 95.0)}
    assert (summary.n == 1).all()
    md = (tmp_path / "tables" / "summary.md").read_text()
    assert "conv [epochs=2]" in md and "conv [lr=0.01]" in md and "conv [kernel_size=7]" in md


def test_significance_marks_and_average_rank(tmp_path):
    rows = []
    for seed, (a, b, c) in enumerate([(95.0, 95.2, 80.0), (95.5, 95.0, 80.5), (96.0, 96.1, 79.5)]):
        rows += [_record("a", "d1", seed, a), _record("b", "d1", seed, b), _record("c", "d1", seed, c)]
        rows += [_record("a", "d2", seed, 70.0 + seed), _record("b", "d2", seed, 50.0 + seed),
                 _record("c", "d2", seed, 60.0 + 0.5 * seed)]  # fmt: skip
    _write(tmp_path, rows)
    build_report(tmp_path)
    summary = pd.read_csv(tmp_path / "tables" / "summary.csv")
    marks = {(m, d): k for m, d, k in zip(summary.method, summary.dataset, summary.mark)}
    assert marks[("a", "d1")] == "best" and marks[("b", "d1")] == "tied" and marks[("c", "d1")] == "worse"
    assert marks[("a", "d2")] == "best" and marks[("c", "d2")] == "worse"
    md = (tmp_path / "tables" / "summary.md").read_text()
    assert "95.43 ± 1.46 (3) ≈" in md  # b on d1: not significantly worse than a
    lines = [line for line in md.splitlines() if line.startswith("| a ") or line.startswith("| b ")]
    assert lines[0].startswith("| a ") and "| 1.0 [1.0, " in lines[0]  # ranks 1 and 1: first row
    assert "| 2.5 [" in lines[1]  # b: rank 2 on d1, 3 on d2


def test_latex_is_booktabs_with_balanced_braces(tmp_path):
    _fixture(tmp_path)
    build_report(tmp_path)
    tex = (tmp_path / "tables" / "summary.tex").read_text()
    assert all(rule in tex for rule in (r"\toprule", r"\midrule", r"\bottomrule"))
    assert tex.count("{") == tex.count("}")
    assert r"\textbf{92.00 $\pm$ 4.97 (3)}" in tex
    assert r"d1 (acc \%)" in tex


def test_report_can_write_elsewhere(tmp_path):
    _fixture(tmp_path / "runs_here")
    build_report(tmp_path / "runs_here", tmp_path / "tables_there")
    assert (tmp_path / "tables_there" / "tables" / "summary.md").exists()
    assert not (tmp_path / "runs_here" / "tables").exists()


def test_empty_results_folder(tmp_path):
    assert "nothing to report" in build_report(tmp_path)[-1]


def _paired_table(out):
    """10 seeds on d1; a seed effect shared by all rows; `conv` 1 point below `a`; `b` equal to `a` on average;
    `logreg` (a reference model) far below."""
    import numpy as np

    rng = np.random.default_rng(0)
    rows = []
    for seed in range(10):
        shared = rng.normal()
        for method, shift in (("a", 0.0), ("b", 0.0), ("conv", -1.0), ("logreg", -30.0)):
            rows.append(_record(method, "d1", seed, round(95.0 + shared + shift + 0.1 * rng.normal(), 4)))
    _write(out, rows)


def test_conclusions_are_generated_from_the_paired_tests_and_the_readme_check_reads_them(tmp_path):
    from bench.report import conclusions

    _paired_table(tmp_path)
    build_report(tmp_path)
    text = (tmp_path / "tables" / "conclusions.md").read_text()
    assert "- **d1 (acc %)**: could be the best (no row significantly above): " in text
    best_line = next(line for line in text.splitlines() if "could be the best" in line)
    assert "a" in best_line and "b" in best_line and "conv" not in best_line
    assert "  - `a` > `conv` by " in text and "Holm over 3 pairs" in text  # logreg is not in the family
    assert "logreg" not in text
    md = (tmp_path / "tables" / "summary.md").read_text()
    assert "(65." in md or "(64." in md  # the reference row is shown, in brackets, unmarked
    assert "P(> conv)" in md and (tmp_path / "plots" / "paired_differences.png").stat().st_size > 1000
    readme = tmp_path / "README.md"
    readme.write_text("intro\n\n" + text.split("\n", 2)[2] + "\nmore\n")  # the generated block, quoted
    lines, ok = conclusions.check(readme, tmp_path / "tables")
    assert ok and lines[0].startswith("README claims that hold on this machine: ")
    readme.write_text(readme.read_text().replace("`a` > `conv`", "`conv` > `a`"))  # a claim the runs do not make
    lines, ok = conclusions.check(readme, tmp_path / "tables")
    assert not ok and any("does NOT hold: d1 (acc %): conv > a" in line for line in lines)
    assert any("new here (not in the README): d1 (acc %): a > conv" in line for line in lines)
    # with the reference models in the family, logreg is compared (and separated) too
    build_report(tmp_path, include_reference=True)
    assert "`logreg`" in (tmp_path / "tables" / "conclusions.md").read_text()


def test_a_far_off_row_does_not_set_the_paired_difference_scale():
    """One method 20 points below conv would squeeze the others' 1-point differences into a few pixels: the
    panel's scale holds the near rows (their seeds and intervals) and names the far one instead."""
    from bench.report.plots import difference_scale

    near = [(1.2, 0.8, 1.6, [0.9, 1.5]), (-0.8, -1.9, 0.3, [-2.5, 0.2]), (0.3, -0.2, 0.8, [0.0, 0.6])]
    far = (-20.0, -25.0, -15.0, [-30.0, -12.0])
    lim = difference_scale([*near, far])
    assert 2.5 <= lim < 12.0
    assert difference_scale(near) == lim  # the far row changes nothing

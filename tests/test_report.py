"""The report from a fixed set of run records: cells, means, stds, n, bold, LaTeX."""

import pandas as pd

from bench import store
from bench.config import RunConfig
from bench.report import build_report


def _record(method, dataset, seed, test, *, metric="accuracy", status="ok", tags=(), params=1000):
    cfg = RunConfig(method, dataset, seed, tags=tuple(tags))
    rec = {"run_id": cfg.run_id, "config": cfg.to_dict(), "method": method, "dataset": dataset, "seed": seed,
           "status": status, "tags": list(tags), "metric": metric}  # fmt: skip
    if status == "ok":
        rec.update({f"test_{metric}": test, f"val_{metric}": test - 1, f"train_{metric}": test + 1, "params": params})
    else:
        rec["error"] = "RuntimeError: boom"
    return rec


def _fixture(out):
    rows = [
        _record("alpha", "d1", 0, 90.0), _record("alpha", "d1", 1, 92.0), _record("alpha", "d1", 2, 94.0),
        _record("beta", "d1", 0, 80.0, params=50), _record("beta", "d1", 1, 0.0, status="failed"),
        _record("beta", "reg", 0, 0.25, metric="mse"), _record("beta", "reg", 1, 0.35, metric="mse"),
        _record("alpha", "reg", 0, 0.5, metric="mse"),
        _record("alpha", "d1", 0, 10.0, tags=["smoke"]),
    ]  # fmt: skip
    for r in rows:
        store.write_run(out, r)


def test_summary_cells_means_stds_and_n(tmp_path):
    _fixture(tmp_path)
    lines = build_report(tmp_path)
    assert any(line.startswith("failed: beta on d1 (seed 1)") for line in lines)
    summary = pd.read_csv(tmp_path / "tables" / "summary.csv")
    alpha = summary[(summary.method == "alpha") & (summary.dataset == "d1") & summary.variant.isna()].iloc[0]
    assert (alpha["mean"], alpha["std"], alpha["n"]) == (92.0, 2.0, 3)
    beta = summary[(summary.method == "beta") & (summary.dataset == "d1")].iloc[0]
    assert beta["n"] == 1 and beta["mean"] == 80.0  # the failed seed is not averaged in
    md = (tmp_path / "tables" / "summary.md").read_text()
    assert "**92.00 ± 2.00 (3)**" in md  # best accuracy in bold
    assert "**0.3000 ± 0.0707 (2)**" in md  # best (lowest) MSE in bold
    assert "alpha [smoke]" in md and "10.00 (1)" in md  # smoke runs are kept apart and marked
    assert (tmp_path / "plots" / "accuracy_vs_params.png").stat().st_size > 1000


def test_latex_is_booktabs_with_balanced_braces(tmp_path):
    _fixture(tmp_path)
    build_report(tmp_path)
    tex = (tmp_path / "tables" / "summary.tex").read_text()
    assert all(rule in tex for rule in (r"\toprule", r"\midrule", r"\bottomrule"))
    assert tex.count("{") == tex.count("}")
    assert r"\textbf{92.00 $\pm$ 2.00 (3)}" in tex
    assert r"d1 (acc \%)" in tex


def test_empty_results_folder(tmp_path):
    assert "nothing to report" in build_report(tmp_path)[-1]

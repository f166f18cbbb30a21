"""Paper tables, plots and REPORT.md from the fixed run files in tests/fixtures/runs/; reference CSV checks."""

import re
import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest

import bench.papers
from bench.base import UserError
from bench.papers import all_suites, all_tables, get_suite, papers
from bench.report.build import build_report
from bench.report.paper_tables import marks, row_of
from bench.report.reference import COLUMNS, load_reference, read_csv
from bench.report.tables import tex
from bench.run.grid import build_grid

FIXTURE = Path(__file__).parent / "fixtures" / "runs"


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    shutil.copytree(FIXTURE, out / "runs")
    lines = build_report(out)
    return out, lines


def _row(df: pd.DataFrame, row: str, metric: str = "accuracy") -> pd.Series:
    hit = df[(df["row"] == row) & (df["metric"] == metric)]
    assert len(hit) == 1, f"{row!r}/{metric}: {len(hit)} rows"
    return hit.iloc[0]


def test_table3_means_stds_n_and_published(report):
    out, _ = report
    t3 = pd.read_csv(out / "tables" / "flexconv-t3.csv")
    flex = _row(t3, "FlexNet-7")
    assert (flex.ours_mean, flex.ours_std, flex.ours_n) == (92.0, 1.0, 3)
    assert (flex.paper_value, flex.paper_std, flex.paper_n, flex.params) == (92.2, 0.1, 3, 671_650)
    assert flex["diff"] == pytest.approx(-0.2)
    conv = _row(t3, "FlexNet-7 with Conv k=3")
    assert (conv.ours_mean, conv.ours_n) == (89.5, 2) and conv.ours_std == pytest.approx(0.7071, abs=1e-4)
    assert _row(t3, "FlexNet-7 with N-Jet").ours_n == 0  # its only run failed: published number only
    assert _row(t3, "FlexNet-7 with dilated conv").ours_mean == 88.0  # our row, no published number
    md = (out / "tables" / "flexconv-t3.md").read_text()
    assert "| FlexNet-7 | 671,650 | 0.67M | **92.00 ± 1.00 (3)** | **92.2 ± 0.1 (3)** | -0.20 |" in md
    assert "| FlexNet-7 with Conv k=3 | 170,000 | 0.17M | 89.50 ± 0.71 (2) | 89.5 ± 0.3 (3) | +0.00 |" in md


def test_smoke_budget_and_changed_runs_are_marked_never_averaged_in(report):
    out, _ = report
    t3 = pd.read_csv(out / "tables" / "flexconv-t3.csv")
    assert _row(t3, "FlexNet-7 [budget 0.05]").ours_mean == 60.0
    assert _row(t3, "FlexNet-7 [epochs=5]").ours_mean == 70.0  # --epochs is not the paper's setting either
    assert _row(t3, "FlexNet-7 with Conv k=3 [smoke]").ours_mean == 30.0
    unmarked = t3[~t3["row"].str.contains(r"\[")]
    assert not unmarked["ours_mean"].isin([60.0, 70.0, 30.0, 99.0]).any()  # 99: a smoke-suite run, in no table
    assert set(t3["row"]) >= {"FlexNet-3", "FlexNet-5", "CIFARResNet-110"}  # every paper row, run or not


def test_crossres_table_source_ootb_delta_finetuned(report):
    out, _ = report
    t = pd.read_csv(out / "tables" / "crossres-shapes.csv")
    assert set(t["column"]) == {"shapes 16→32"}
    flex = {m: _row(t, "flexconv", m) for m in ("source", "ootb", "delta", "finetuned")}
    assert [flex[m].ours_mean for m in flex] == [81.0, 75.0, -6.0, 85.0]
    assert flex["delta"].ours_std == pytest.approx(2.8284, abs=1e-4) and flex["source"].ours_n == 2
    assert _row(t, "conv", "ootb").ours_mean == 50.0
    njet = _row(t, "njet", "ootb")  # its cross-resolution step failed: the source number stands
    assert (njet.ours_n, njet.ours_failed, _row(t, "njet", "source").ours_mean) == (0, 1, 70.0)
    md = (out / "tables" / "crossres-shapes.md").read_text()
    assert "| conv | 5,000 | 78.00 (1) | 50.00 (1) | -28.00 (1) | **85.00 (1)** |" in md
    assert "Paper" not in md.splitlines()[2]  # no published numbers: no Paper/Diff columns
    assert "| njet | 9,000 | 70.00 (1) | failed (1) | failed (1) | failed (1) |" in md


def _tabular_cells(line: str) -> int:
    """Columns a tabular row spans: cells split on unescaped &, a \\multicolumn{n} counting n."""
    cells = re.split(r"(?<!\\)&", line.removesuffix(r"\\").strip())
    return sum(int(m.group(1)) if (m := re.match(r"\s*\\multicolumn\{(\d+)\}", c)) else 1 for c in cells)


def _balanced(text: str) -> bool:
    depth = 0
    for ch in text.replace(r"\{", "").replace(r"\}", ""):
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if depth < 0:
            return False
    return depth == 0


@pytest.mark.parametrize("name", ["flexconv-t3", "crossres-shapes"])
def test_latex_compiles_as_is(report, name):
    tex = (report[0] / "tables" / f"{name}.tex").read_text()
    assert _balanced(tex) and tex.isascii()
    for rule in (r"\toprule", r"\midrule", r"\bottomrule"):
        assert tex.count(rule) == 1
    assert tex.count(r"\begin{") == tex.count(r"\end{") == 2
    spec = re.search(r"\\begin\{tabular\}\{(\w+)\}", tex).group(1)
    body = tex.split(r"\toprule")[1].split(r"\bottomrule")[0]
    rows = [line for line in body.splitlines() if line.rstrip().endswith(r"\\")]
    assert rows and all(_tabular_cells(r) == len(spec) for r in rows)
    if name == "flexconv-t3":
        assert r"\textbf{92.00 $\pm$ 1.00 (3)}" in tex and r"16$\to$32" not in tex


def test_latex_balance_check_catches_a_broken_table():
    assert not _balanced(r"\textbf{92.00") and not _balanced(r"}{") and _balanced(r"\{ \textbf{a}")


def test_plots_and_report_index(report):
    out, _ = report
    plots = {p.name for p in (out / "plots").glob("*.png")}
    assert {"flexconv-t3_accuracy_vs_params.png", "accuracy_vs_training_time.png", "kernel_sizes_flexconv.png",
            "kernels_flexconv.png", "crossres_drop.png", "training_curves_cifar10.png"} <= plots  # fmt: skip
    assert "kernel_sizes_conv.png" not in plots  # conv does not learn its size
    index = (out / "REPORT.md").read_text()
    assert "### FlexConv Table 3: CIFAR-10" in index and "| FlexNet-7 [budget 0.05] |" in index
    links = re.findall(r"\]\(([^)]+)\)", index)
    assert {f"plots/{p}" for p in plots} <= set(links)
    assert all((out / link).exists() for link in links)


def test_committed_reference_numbers():
    refs = load_reference()
    assert refs[("flexconv-t3", "FlexNet-7", "CIFAR-10", "accuracy")].value == 92.2
    gabor = refs[("flexconv-t4", "FlexNet-7 (gabor)", "CIFAR-10 16→32", "ootb")]
    assert (gabor.value, gabor.std, gabor.n, gabor.tag) == (82.7, 2.0, 5, "XLSX")
    assert not refs[("flexconv-t4", "FlexNet-7 (CKCNN SIREN)", "CIFAR-10 16→32", "source")].verified
    assert refs[("ckconv-seq", "CKCNN (1M)", "pMNIST", "accuracy")].value == 98.54


HEADER = ",".join(COLUMNS)
GOOD = "flexconv-t3,FlexNet-7,CIFAR-10,accuracy,92.2,0.1,3,670000,xlsx,XLSX,yes,"


def test_reference_missing_column_names_file_and_line(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text(HEADER.replace(",std", "") + "\n" + GOOD.replace(",0.1,", ",") + "\n")
    with pytest.raises(UserError, match=rf"{re.escape(str(path))}:1: missing column\(s\) std"):
        read_csv(path)


@pytest.mark.parametrize("bad, column", [("92.2", "value"), ("0.1", "std"), ("670000", "params")])
def test_reference_non_numeric_value_names_file_and_line(tmp_path, bad, column):
    path = tmp_path / "bad.csv"
    path.write_text(f"{HEADER}\n{GOOD}\n{GOOD.replace('FlexNet-7', 'FlexNet-5').replace(bad, 'n/a', 1)}\n")
    with pytest.raises(UserError, match=rf"{re.escape(str(path))}:3: column '{column}' must be a number, got 'n/a'"):
        load_reference(tmp_path)


def test_reference_duplicate_row_is_an_error(tmp_path):
    (tmp_path / "a.csv").write_text(f"{HEADER}\n{GOOD}\n")
    (tmp_path / "b.csv").write_text(f"{HEADER}\n{GOOD}\n")
    with pytest.raises(UserError, match=r"b\.csv:2: duplicate of .*a\.csv:2"):
        load_reference(tmp_path)


@pytest.mark.parametrize("table", [t for t in all_tables() if t.rows], ids=lambda t: t.key)
def test_every_paper_suite_run_lands_on_a_paper_row_unmarked(table):
    suite = get_suite(table.suite)
    grid = build_grid(suite, datasets_sel=[d for d in table.columns if d in suite.datasets] or list(table.columns))
    assert grid.runs
    row_methods = {r.method for r in table.rows}
    for cfg in (c for c in grid.runs if not table.others or c.method in row_methods):
        rec = {"config": cfg.to_dict(), "method": cfg.method, "dataset": cfg.dataset, "seed": cfg.seed,
               "tags": list(cfg.tags)}  # fmt: skip
        row = row_of(table, rec)
        assert row is not None, f"{cfg.method} {cfg.model} on {cfg.dataset}: no row of {table.key}"
        assert marks(rec, row, table.suite) == []


VARIANTS = [  # the README's commands for the variant rows: (suite, --set model.*, table, row)
    ("flexconv-cifar", {"arch": "flexnet5", "width": 22}, "flexconv-t3", "FlexNet-5"),
    ("flexconv-cifar", {"arch": "flexnet3"}, "flexconv-t3", "FlexNet-3"),
    ("flexconv-cifar", {"kernel_wd": 1e-5}, "flexconv-t3", "FlexNet-7 (wd 1e-5)"),
    ("flexconv-crossres", {"antialias": 0.0}, "flexconv-t4", "FlexNet-7 (no regularisation)"),
    ("flexconv-crossres", {"antialias_mask": True}, "flexconv-t4", "FlexNet-7 (gabor+mask)"),
    ("flexconv-seq", {"arch": "flextcn4"}, "flexconv-t1", "FlexTCN-4"),  # as the flextcn4 preset
]


@pytest.mark.parametrize("suite, model, key, label", VARIANTS)
def test_variant_rows_of_one_method_are_reached_with_set(suite, model, key, label):
    table = next(t for t in all_tables() if t.key == key)
    method = "ckconv" if suite == "ckconv-seq" else "flexconv"
    grid = build_grid(get_suite(suite), methods_sel=[method], datasets_sel=[next(iter(table.columns))], seeds=(0,),
                      overrides={"train": {}, "model": model, "data": {}})  # fmt: skip
    (cfg,) = grid.runs
    rec = {"config": cfg.to_dict(), "method": method, "dataset": cfg.dataset, "seed": 0, "tags": list(cfg.tags)}
    row = row_of(table, rec)
    assert row is not None and row.label == label and marks(rec, row, row.suite or suite) == []


def test_a_paper_is_one_file_that_the_catalogue_finds(tmp_path, monkeypatch):
    """A module dropped into bench/papers/ (here: a folder added to the package's path) brings its suite and its
    table, with nothing else to edit; a suite name that exists already is refused."""
    (tmp_path / "toy_paper.py").write_text(
        "from bench.papers import PaperTable, Row\nfrom bench.run.suite import Suite\n"
        "SUITES = (Suite(name='toy-paper', description='a toy', methods=('conv',), datasets=('digits',),"
        " tags=('suite:toy-paper',)),)\n"
        "TABLES = (PaperTable('toy-t1', 'Toy Table 1', 'toy-paper', {'digits': 'Digits'}, (Row('Conv', 'conv'),)),)\n"
    )
    monkeypatch.setattr(bench.papers, "__path__", [*bench.papers.__path__, str(tmp_path)])
    monkeypatch.delitem(sys.modules, "bench.papers.toy_paper", raising=False)
    try:
        assert get_suite("toy-paper").methods == ("conv",)
        assert [t.key for t in all_tables()][-1] == "toy-t1"  # its folder is the last on the path
        assert {"flexconv-cifar", "cpu"} <= set(all_suites())
        (tmp_path / "toy_paper.py").write_text("from bench.run.suites import SUITES\n")  # cpu's names again
        sys.modules.pop("bench.papers.toy_paper")
        with pytest.raises(ValueError, match="suite 'cpu' already exists"):
            all_suites()
    finally:
        sys.modules.pop("bench.papers.toy_paper", None)


def test_each_papers_published_numbers_are_in_the_file_named_after_it():
    """results/reference/<paper>.csv holds the published numbers of bench/papers/<paper>.py's tables, and only it."""
    folder = Path(__file__).parents[1] / "results" / "reference"
    for paper in papers():
        keys = {t.references or t.key for t in getattr(paper, "TABLES", ())}
        shown = {ref.table for path in folder.glob("*.csv") for ref in read_csv(path)} & keys
        own = {ref.table for ref in read_csv(folder / f"{paper.__name__.rsplit('.', 1)[1]}.csv")} if shown else set()
        assert shown <= own, f"{paper.__name__}: published numbers of {shown - own} are not in its own file"


def test_one_latex_escape_for_every_table():
    """tables.tex sets the summary's ≈ and the paper tables' symbols alike, after escaping LaTeX's specials."""
    assert tex("a_b ± 1 ≈ 2 → 3, Δ σ † – − × `x` 50%") == (
        r"a\_b $\pm$ 1 $\approx$ 2 $\to$ 3, $\Delta$ $\sigma$ $^\dagger$ -- - $\times$ x 50\%"
    )

"""`python run_all.py report`: every table, plot and REPORT.md, rebuilt from the run files alone.

Reads <out>/runs/*.json and writes <dest>/tables and <dest>/plots: the summary and cost tables
(summary.py), the tuning tables and sensitivity plots (tuning.py), the paper tables
(paper_tables.py, declared in bench/papers/), the plots (plots.py), and last the index that embeds them
(index.py). Tables are written by tables.py, plots styled by style.py.
"""

from __future__ import annotations

from pathlib import Path

from bench.report import conclusions, index, paper_tables, plots, tuning
from bench.report.summary import (
    CAPTION,
    IN_MEMORY,
    aggregate,
    cost_table,
    runs_frame,
    wide_table,
)
from bench.report.tables import marked_latex, marked_markdown
from bench.report.trials import selected_runs
from bench.run import store


def build_report(out: str | Path, dest: str | Path | None = None, include_reference: bool = False) -> list[str]:
    """Rebuild every table and plot from the runs in <out>/runs into <dest>/tables and <dest>/plots
    (dest defaults to out); returns lines to print. `include_reference`: the MNIST-1D paper's models join the
    comparison family of the marks (by default they are reported but not compared)."""
    out = Path(out)
    dest = out if dest is None else Path(dest)
    records, problems = store.load_runs(out)
    lines = list(problems)
    if not records:
        return [*lines, f"no runs in {store.runs_dir(out)}: nothing to report"]
    df = runs_frame(records)
    # the summary of a folder with searches holds the selected trials only, never every trial (tables/trials.md)
    shown = [r for r in records if not (r.get("config") or {}).get("search")] + selected_runs(records)
    main = runs_frame(shown) if len(shown) < len(records) else df
    tables_dir, plots_dir = dest / "tables", dest / "plots"
    tables_dir.mkdir(parents=True, exist_ok=True)
    plots_dir.mkdir(parents=True, exist_ok=True)
    df.drop(columns=["error", "settings", "test_correct"]).to_csv(tables_dir / "runs.csv", index=False)
    agg = aggregate(main, include_reference)
    agg.drop(columns=IN_MEMORY).to_csv(tables_dir / "summary.csv", index=False)
    cells, marks = wide_table(agg, include_reference)
    written = [tables_dir / "runs.csv", tables_dir / "summary.csv"]
    if not cells.empty:
        (tables_dir / "summary.md").write_text(marked_markdown(cells, marks) + "\n\n" + CAPTION + "\n")
        (tables_dir / "summary.tex").write_text(marked_latex(cells, marks, CAPTION))
        written += [tables_dir / "summary.md", tables_dir / "summary.tex", *cost_table(agg, tables_dir)]
        written += conclusions.write(agg, tables_dir, include_reference)
    styles = plots.method_styles(r["method"] for r in records)  # one look per method in every plot
    written += tuning.build_tuning(records, tables_dir, plots_dir, styles)
    untuned = [r for r in records if not (r.get("config") or {}).get("search")]
    written += paper_tables.build_paper_tables(untuned, tables_dir)
    written += paper_tables.build_paper_tables(selected_runs(records), tables_dir, tuned=True)
    written += plots.build_plots(records, agg, plots_dir, styles, paper_tables.accuracy_vs_params)
    failed = df[df["status"] != "ok"]
    unfinished = [f"{r['status']}: {r['method']} on {r['dataset']} (seed {r['seed']}): {r['error']}"
                  for _, r in failed.iterrows()]  # fmt: skip
    lines += unfinished
    source = str(store.runs_dir(out)) + "/"
    written.append(index.write_index(dest, len(records), written, unfinished + problems, source))  # last: it embeds
    lines.append(f"report: {len(df)} runs ({len(df) - len(failed)} ok) -> " + ", ".join(str(p) for p in written))
    return lines

"""results/REPORT.md: one page that embeds every table and every plot the report wrote.

Paper tables first (in the papers' order), then every other Markdown table under tables/,
then every plot under plots/. Links are relative, so the page renders on GitHub as it is.
"""

from __future__ import annotations

from pathlib import Path


def write_index(out: str | Path, n_runs: int) -> Path:
    from bench.paper_tables import TABLES

    out = Path(out)
    tables, plots = out / "tables", out / "plots"
    lines = ["# LKSBench report", "",
             f"Rebuilt by `python run_all.py report` from the {n_runs} run files in `{out.name}/runs/`, without "
             "training. Every table is also in `tables/` as LaTeX (booktabs) and CSV.", ""]  # fmt: skip
    paper = [tables / f"{t.key}.md" for t in TABLES if (tables / f"{t.key}.md").exists()]
    if paper:
        lines += ["## Paper tables", ""]
        for md in paper:
            lines += [md.read_text().rstrip(), "", f"[LaTeX]({md.with_suffix('.tex').relative_to(out)}) · "
                      f"[CSV]({md.with_suffix('.csv').relative_to(out)})", ""]  # fmt: skip
    others = sorted(p for p in tables.glob("*.md") if p not in paper) if tables.exists() else []
    if others:
        lines += ["## All runs", ""]
        for md in others:
            lines += [f"### {md.stem}", "", md.read_text().rstrip(), ""]
    images = sorted(plots.glob("*.png")) if plots.exists() else []
    if images:
        lines += ["## Plots", ""]
        for png in images:
            lines += [f"### {png.stem}", "", f"![{png.stem}]({png.relative_to(out)})", ""]
    path = out / "REPORT.md"
    path.write_text("\n".join(lines))
    return path

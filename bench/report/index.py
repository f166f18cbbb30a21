"""results/REPORT.md: one page that embeds every table and every plot the report wrote.

Paper tables first (in the papers' order), then every other Markdown table, then every plot,
all from the files the report wrote in this pass, so nothing stale shows. Links are relative,
so the page renders on GitHub as it is.
"""

from __future__ import annotations

from pathlib import Path

from bench.papers import all_tables


def write_index(out: str | Path, n_runs: int, written: list[Path], problems: list[str] = (), source: str = "") -> Path:
    """Embed the tables (.md) and plots (.png) in `written`, the files this report pass wrote (none stale),
    after a list of the runs that failed, diverged or ran out of memory, and of unreadable run files."""
    out = Path(out)
    written = [Path(p) for p in written]
    lines = ["# LKSBench report", "",
             f"Rebuilt by `python run_all.py report` from the {n_runs} run files in `{source or out.name + '/runs/'}`, without "
             "training. Every table is also in `tables/` as LaTeX (booktabs) and CSV.", ""]  # fmt: skip
    if problems:
        lines += [f"## Runs that did not finish ({len(problems)})", "", *(f"- {p}" for p in problems), ""]
    tables = {p.stem: p for p in written if p.suffix == ".md"}
    paper = [tables.pop(t.key) for t in all_tables() if t.key in tables]
    if paper:
        lines += ["## Paper tables", ""]
        for md in paper:
            lines += [md.read_text().rstrip(), "", f"[LaTeX]({md.with_suffix('.tex').relative_to(out)}) · "
                      f"[CSV]({md.with_suffix('.csv').relative_to(out)})", ""]  # fmt: skip
    if tables:
        lines += ["## All runs", ""]
        for stem, md in sorted(tables.items()):
            lines += [f"### {stem}", "", md.read_text().rstrip(), ""]
    images = sorted(p for p in written if p.suffix == ".png")
    if images:
        lines += ["## Plots", ""]
        for png in images:
            lines += [f"### {png.stem}", "", f"![{png.stem}]({png.relative_to(out)})", ""]
    path = out / "REPORT.md"
    path.write_text("\n".join(lines))
    return path

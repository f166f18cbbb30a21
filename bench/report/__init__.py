"""Everything that reads run files and writes tables, plots and REPORT.md (statistics included).

`bench.report.build.build_report` is the entry point; the layers inside, lowest first: tables.py (the
table writer), style.py (the plot style), trials.py, stats.py, reference.py; summary.py; tuning.py,
paper_tables.py, plots.py, conclusions.py, index.py; build.py.
"""

"""Everything that reads run files and writes tables, plots and REPORT.md (statistics included).

`build_report` (bench/report/build.py) is the entry point; the package imports nothing itself, so
its modules import one another without a circle.
"""


def build_report(out, dest=None, include_reference: bool = False) -> list[str]:
    """bench.report.build.build_report: every table and plot from <out>/runs into <dest> (default: out)."""
    from bench.report.build import build_report as build

    return build(out, dest, include_reference)

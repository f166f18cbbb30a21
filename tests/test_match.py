"""--match params|flops: backbone widths scaled to a budget (bench/run/match.py)."""

from __future__ import annotations

import pytest

import datasets
from bench.base import UserError
from bench.papers import get_suite
from bench.run.grid import build_grid
from bench.run.match import apply_match, measure, parse_match


def grid(methods):
    return build_grid(get_suite("cpu"), methods_sel=methods, datasets_sel=["digits"], seeds=[0])


def test_parse_match():
    assert parse_match("params") == ("params", None)
    assert parse_match("flops=2e6") == ("flops", 2e6)
    for bad in ("width", "params=abc", "params=-3"):
        with pytest.raises(UserError):
            parse_match(bad)


@pytest.mark.parametrize("kind", ["params", "flops"])
def test_widths_are_matched_to_conv_and_marked(kind):
    runs = grid(["conv", "njet", "dau", "mlp"]).runs
    matched, lines = apply_match(runs, kind)
    by = {r.method: r for r in matched}
    task = datasets.get_entry("digits").card.task_for({})
    target = measure("conv", task, runs[0].model, kind)
    assert by["conv"].model["width"] == runs[0].model["width"]  # conv is its own target
    for name in ("njet", "dau"):
        width = by[name].model["width"]
        got = measure(name, task, by[name].model, kind)
        neighbours = [
            measure(name, task, {**by[name].model, "width": w}, kind) for w in (width - 1, width + 1) if w >= 1
        ]
        assert all(abs(got - target) <= abs(n - target) for n in neighbours), name  # the closest width
        assert f"matched-{kind}" in by[name].tags
    assert by["mlp"] == next(r for r in runs if r.method == "mlp")  # takes no width: untouched
    assert any("mlp" in line and "no width" in line for line in lines)
    assert {r.run_id for r in matched if r.method != "mlp"}.isdisjoint(r.run_id for r in runs)


def test_explicit_target_and_summary_mark():
    from bench.report.summary import runs_frame

    (run,) = apply_match(grid(["conv"]).runs, "params=20000")[0]
    task = datasets.get_entry("digits").card.task_for({})
    assert measure("conv", task, run.model, "params") == pytest.approx(20000, rel=0.1)
    record = {
        "run_id": run.run_id,
        "method": "conv",
        "dataset": "digits",
        "seed": 0,
        "status": "ok",
        "tags": list(run.tags),
    }
    assert runs_frame([record])["marks"].tolist() == ["params-matched"]


def test_cli_dry_run_prints_the_widths(capsys):
    from bench.cli import main

    assert (
        main(
            [
                "--suite",
                "cpu",
                "--methods",
                "conv,dau",
                "--datasets",
                "digits",
                "--seeds",
                "0",
                "--match",
                "params",
                "--dry-run",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "match params: dau on digits: width" in out and "2 runs" in out
    assert main(["--suite", "cpu", "--match", "bogus", "--dry-run"]) == 2

"""Kernel fitting (bench/run/kernel_fit.py): targets, budgets, the batched fit, the table and the CLI."""

from __future__ import annotations

import math

import pytest
import torch

from bench.report import kernel_fit as kf_report
from bench.run import kernel_fit as kf


@pytest.mark.parametrize("dim,n", [(1, 65), (2, 17)])
def test_targets_shape_and_range(dim, n):
    for name in kf.TARGETS:
        t = kf.make_target(name, dim, n)
        assert t.shape == (n,) * dim and t.dtype == torch.float32, name
        assert torch.isfinite(t).all() and t.min() >= -1.0 and t.max() <= 1.0, name
        assert float(t.max() - t.min()) > 0.5, name  # none is flat
    centre = (n // 2,) * dim
    g = kf.make_target("gaussian", dim, n)
    assert g[centre] == pytest.approx(1.0) and float(g.flatten()[0]) < 1e-5
    step = kf.make_target("constant", 1, n)
    assert (step[: n // 2] == 1).all() and (step[n // 2 :] == -1).all()
    saw = kf.make_target("sawtooth", dim, n)
    assert saw[(0,) * dim] == 0 and saw.flatten()[1] == 1
    if dim == 2:
        checker = kf.make_target("constant", 2, n)
        assert checker[0, 0] == 1 and checker[0, -1] == -1 and checker[-1, -1] == 1
        assert saw[1, 1] == 1 and saw[2, 2] == 0 and saw[2, 1] == 1
    assert torch.equal(kf.make_target("noise", dim, n), kf.make_target("noise", dim, n))  # fixed, not the run seed
    cam = kf.make_target("camera", dim, n)
    assert cam.std() > 0.1  # an image, not a constant


def test_every_net_is_near_the_budget():
    for dim, n in ((1, 64), (2, 17)):
        for net in kf.NETS:
            size = kf.size_for_budget(net, dim, n, 600)
            gen = kf.build_generator(net, dim, n, size)
            assert abs(gen.count() - 600) <= 0.1 * 600, (net, dim, gen.count())
            assert gen().shape == (n,) * dim


def test_fit_reduces_mse_on_an_easy_target():
    target = kf.make_target("gaussian", 1, 64)
    for net in ("siren", "relu", "smpconv"):
        gens = []
        for seed in (0, 1):
            torch.manual_seed(seed)
            gens.append(kf.build_generator(net, 1, 64, kf.size_for_budget(net, 1, 64, 400)))
        steps, curves = kf.fit_many(gens, [target, target], iters=60, lr=0.01, log_every=20)
        assert steps == [0, 20, 40, 60]
        assert (curves[:, -1] < 0.5 * curves[:, 0]).all(), (net, curves)
        with torch.no_grad():  # the fitted values went back into the generators
            assert (gens[0]() - target).square().mean() == pytest.approx(float(curves[0, -1]), rel=1e-4)


def test_batched_fit_moves_each_run_as_alone():
    """One Adam over the stacked runs with summed losses = each run with its own Adam."""
    targets = [kf.make_target("gaussian", 1, 32), kf.make_target("chirp", 1, 32)]

    def gens():
        out = []
        for seed in (3, 4):
            torch.manual_seed(seed)
            out.append(kf.build_generator("magnet", 1, 32, 6))
        return out

    _, together = kf.fit_many(gens(), targets, iters=15, lr=0.01, log_every=5)
    alone = [kf.fit_many([g], [t], iters=15, lr=0.01, log_every=5)[1][0] for g, t in zip(gens(), targets)]
    torch.testing.assert_close(together, torch.stack(alone), rtol=1e-4, atol=1e-7)


def test_table_writer_intervals_and_published_rows():
    rows = [dict(net=net, target="gaussian", dim=2, grid=33, seed=s, params=1000 + i, mse=m, psnr=p)
            for i, net in enumerate(("siren", "relu"))
            for s, (m, p) in enumerate(zip((0.01, 0.02, 0.03), (10.0, 12.0, 14.0) if net == "siren" else (5.0,) * 3))]  # fmt: skip
    rows.append(dict(net="siren", target="noise", dim=2, grid=33, seed=0, params=1000, mse=math.inf, psnr=-math.inf))
    rows.append(dict(net="relu", target="noise", dim=2, grid=33, seed=0, params=1001, mse=0.5, psnr=3.0))
    text = kf_report.table_markdown(rows, {**kf.DEFAULTS}, 12.0)
    half = 4.302653 * 2.0 / math.sqrt(3)  # t(0.975, 2) * std / sqrt(n)
    assert f"| gaussian | 12.00 ± {half:.2f} | 5.00 ± 0.00 |" in text
    assert "| noise | diverged | 3.00 |" in text
    assert "## 2D, grid 33x33" in text and "params: siren 1000, relu 1001" in text
    assert "38.77" in text and "Gabor f=1" in text  # results/reference/kernel_fit.csv beside ours


def test_cli_fit_writes_table_plot_and_csvs(tmp_path, capsys):
    from bench.cli import main

    out = tmp_path / "kf"
    rc = main(["fit", "--methods", "relu,s4d", "--datasets", "gaussian,sawtooth", "--seeds", "0-1", "--out", str(out),
               "--set", "iters=4", "--set", "n1=16", "--set", "n2=5", "--set", "log_every=2", "--quiet"])  # fmt: skip
    assert rc == 0, capsys.readouterr()
    for name in ("fits.csv", "curves.csv", "table.md", "curves.png"):
        assert (out / name).stat().st_size > 0
    fits = (out / "fits.csv").read_text().splitlines()
    assert len(fits) == 1 + 2 * 2 * 2 * 2  # nets x targets x dims x seeds
    assert main(["fit", "--datasets", "nope", "--out", str(out)]) == 2
    assert main(["fit", "--set", "bogus=1", "--out", str(out)]) == 2

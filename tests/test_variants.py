"""A suite's data-option variants (bench/run/suite.py Variant): one run per variant with its own data, model and
crossres settings, and one column per variant in the paper tables; CKConv's sampling-rate and missing-data suites."""

import math

import pandas as pd
import pytest

from bench.base import UserError
from bench.papers import all_tables, get_suite
from bench.report.paper_tables import build, build_paper_tables, marks, row_of
from bench.report.reference import load_reference
from bench.run.grid import build_grid
from bench.run.runner import DataCache, execute
from bench.run.suite import Suite, Variant

# dwromero/ckconv runs/README.md, the CharacterTrajectories and SpeechCommands (Raw) commands: (dropout,
# dropout_in, weight_decay (our kernel_wd), weight_dropout, kernelnet_omega_0) per drop_rate / sr_train
CT_DROP = {0.3: (0.2, 0.0, 0.0, 0.0, 17.243982444546685), 0.5: (0.0, 0.0, 1e-4, 0.0, 11.997102427300288),
           0.7: (0.1, 0.0, 0.0, 0.0, 4.237433943113986)}  # fmt: skip
SC_DROP = {0.3: (0.1, 0.0, 1e-4, 0.0, 35.655229877794035), 0.5: (0.0, 0.0, 1e-4, 0.0, 31.700745675276966),
           0.7: (0.1, 0.1, 0.0, 0.1, 23.29255834358289)}  # fmt: skip
CT_SR = {1: (0.1, 0.0, 0.0, 0.0, 21.44961185481323), 2: (0.1, 0.0, 0.0, 0.0, 21.44961185481323),
         4: (0.1, 0.0, 0.0, 0.0, 21.44961185481323), 8: (0.1, 0.0, 0.0, 0.0, 12.589391905289371)}  # fmt: skip
SC_SR = {sr: (0.0, 0.0, 1e-4, 0.0, 39.450608806633795) for sr in (1, 2, 4, 8)}
KEYS = ("dropout", "dropout_in", "kernel_wd", "weight_dropout", "omega_0")


def _record(cfg, accuracy: float) -> dict:
    return {"config": cfg.to_dict(), "method": cfg.method, "dataset": cfg.dataset, "seed": cfg.seed,
            "tags": list(cfg.tags), "status": "ok", "test_accuracy": accuracy, "params": 1000}  # fmt: skip


@pytest.mark.parametrize("suite, option, official", [
    ("ckconv-missing", "drop_rate", {"char_trajectories": CT_DROP, "sc_raw": SC_DROP}),
    ("ckconv-sr", "sr", {"char_trajectories": CT_SR, "sc_raw": SC_SR}),
])  # fmt: skip
def test_ckconv_variants_are_the_commands_one_run_each(suite, option, official):
    runs = build_grid(get_suite(suite), seeds=(0,)).runs
    got = {(c.dataset, c.data[option]): c for c in runs}
    assert len(got) == len(runs) == sum(len(v) for v in official.values())  # one run per variant, no other
    for dataset, settings in official.items():
        for value, expected in settings.items():
            cfg = got[(dataset, value)]
            hp = {k: cfg.model.get(k, 0.0) for k in KEYS}  # absent: the method's default 0
            assert all(math.isclose(hp[k], v) for k, v in zip(KEYS, expected)), (dataset, value, hp)
            assert cfg.model["width"] == 30 and cfg.model["weight_norm"] is True
            assert cfg.train.batch_size == 32 and cfg.train.epochs == (300 if dataset == "sc_raw" else 200)
            assert (cfg.train.lr, cfg.train.patience, cfg.train.stop_patience) == (1e-3, 21, 100)  # plateau 20
            assert sum(t.startswith("variant:") for t in cfg.tags) == 1
    assert len({c.run_id for c in build_grid(get_suite(suite), seeds=(0, 1)).runs}) == 2 * len(runs)


def test_ckconv_crossrate_pairs_train_at_one_rate_and_test_at_another():
    runs = build_grid(get_suite("ckconv-crossrate"), seeds=(0,)).runs
    pairs = {(c.dataset, c.data["sr"], c.crossres["target"]): c for c in runs}
    expected = {(d, a, b) for d in ("char_trajectories", "sc_raw") for a, b in ((1, 2), (1, 4), (1, 8), (2, 1), (4, 1),
                                                                                 (8, 1))}  # fmt: skip
    assert set(pairs) == expected and len(runs) == len(expected)
    for (dataset, sr, _), cfg in pairs.items():  # each trained under the command of its training rate
        official = dict(zip(KEYS, (CT_SR if dataset == "char_trajectories" else SC_SR)[sr]))
        assert math.isclose(cfg.model["omega_0"], official["omega_0"]) and cfg.crossres["finetune_epochs"] == 0
    assert [t for t in pairs[("char_trajectories", 2, 1)].tags if t.startswith("variant:")] == ["variant:CT 1/2→1"]


def test_variants_expand_under_the_users_settings_and_leave_plain_suites_alone():
    variants = (Variant("A", {"drop_rate": 0.3}, {"dropout": 0.3}), Variant("B", {"drop_rate": 0.5}))
    plain = Suite("t", "t", methods=("conv", "ckconv"), datasets=("mnist1d",), seeds=(0, 1), data={"mnist1d": {"length": 40}},
                  model_by_dataset={"mnist1d": {"dropout": 0.1}}, tags=("suite:t",))  # fmt: skip
    before = [c.run_id for c in build_grid(plain).runs]
    varied = Suite(**{**plain.__dict__, "variants": {"mnist1d": variants}})
    runs = build_grid(varied).runs
    assert len(runs) == 2 * len(before)
    a = [c for c in runs if "variant:A" in c.tags]
    assert {c.data["drop_rate"] for c in a} == {0.3} and {c.data["length"] for c in runs} == {40}
    assert {c.model["dropout"] for c in a} == {0.3}  # the variant's model settings over the suite's
    assert {c.model["dropout"] for c in runs if "variant:B" in c.tags} == {0.1}
    assert [c.run_id for c in build_grid(Suite(**{**plain.__dict__, "variants": {}})).runs] == before
    user = build_grid(varied, overrides={"train": {}, "model": {"dropout": 0.0}, "data": {}}).runs
    assert {c.model["dropout"] for c in user} == {0.0}  # the user's --set wins
    budget = build_grid(varied, budget=0.5).runs[0]
    assert budget.tags == ("suite:t", "variant:A", "budget")
    with pytest.raises(UserError, match="variant 'C': dataset 'mnist1d' has no option 'colour'"):
        build_grid(Suite(**{**plain.__dict__, "variants": {"mnist1d": (Variant("C", {"colour": 1}),)}}))


def test_each_variant_is_its_own_column_in_the_suites_order():
    table = next(t for t in all_tables() if t.key == "missing-mnist1d")
    runs = build_grid(get_suite("missing-mnist1d"), methods_sel=["conv", "njet"], seeds=(0, 1)).runs
    rate = {"MNIST-1D 0 %": 0.0, "MNIST-1D 30 %": 0.3, "MNIST-1D 50 %": 0.5, "MNIST-1D 70 %": 0.7}
    records = [_record(c, 90 - 100 * c.data.get("drop_rate", 0.0) + c.seed) for c in runs]
    built = build(table, records[::-1], {})
    assert [col for col, _ in built.columns] == list(rate)
    for label, r in rate.items():
        for row in ("conv", "njet"):
            assert sorted(built.cells[(row, label, "accuracy")].values) == pytest.approx(
                [90 - 100 * r + s for s in (0, 1)]
            )


def test_the_summary_gives_each_variant_a_column_not_a_row():
    from bench.report.summary import aggregate, runs_frame

    runs = build_grid(get_suite("missing-mnist1d"), methods_sel=["conv", "njet"], seeds=(0, 1)).runs
    records = [{**_record(c, 90 - 100 * c.data.get("drop_rate", 0.0) + c.seed), "run_id": c.run_id} for c in runs]
    agg = aggregate(runs_frame(records))
    assert sorted(agg["dataset"]) == sorted(["MNIST-1D 0 %", "MNIST-1D 30 %", "MNIST-1D 50 %", "MNIST-1D 70 %"] * 2)
    assert set(agg["variant"]) == {""}  # one row per method: the rate is the column, not a setting of the row
    conv = agg[agg["method"] == "conv"].set_index("dataset")["mean"]
    assert conv["MNIST-1D 70 %"] == pytest.approx(20.5) and conv["MNIST-1D 0 %"] == pytest.approx(90.5)


def test_ckconv_missing_table_stands_beside_neural_cdes_numbers_unmarked():
    table = next(t for t in all_tables() if t.key == "ckconv-missing")
    runs = build_grid(get_suite("ckconv-missing"), seeds=(0,)).runs
    records = [_record(c, 50 + 10 * c.data["drop_rate"]) for c in runs]
    for rec in records:
        assert row_of(table, rec).label == "CKCNN (100k)" and marks(rec, row_of(table, rec), table.suite) == []
    built = build(table, records, load_reference())
    cols = [col for col, _ in built.columns]
    assert cols == ["CT 30 %", "CT 50 %", "CT 70 %", "SC raw 30 %", "SC raw 50 %", "SC raw 70 %"]
    assert built.cells[("CKCNN (100k)", "CT 50 %", "accuracy")].values == [55.0]
    assert (
        built.ref("NCDE", "CT 70 %", "accuracy").value == 99.4 and built.ref("NCDE", "SC raw 30 %", "accuracy") is None
    )


def test_a_ct_variant_run_on_fake_files_lands_in_its_column(tmp_path):
    from test_datasets_fake import fake_char_trajectories

    fake_char_trajectories(tmp_path)
    grid = build_grid(get_suite("ckconv-missing"), datasets_sel=["char_trajectories"], seeds=(0,), budget=0.005)
    (cfg,) = [c for c in grid.runs if "variant:CT 50 %" in c.tags]
    record = execute(cfg, "cpu", DataCache(tmp_path), progress=False)
    assert record["status"] == "ok", record.get("error")
    build_paper_tables([record], tmp_path / "tables")
    table = pd.read_csv(tmp_path / "tables" / "ckconv-missing.csv")
    ours = table[table["ours_n"] > 0]
    assert list(ours["column"]) == ["CT 50 %"] and list(ours["row"]) == ["CKCNN (100k) [budget 0.005]"]
    assert ours["ours_mean"].iloc[0] == pytest.approx(record["test_accuracy"])
    assert "| CT 50 % acc. (%) Ours |" in (tmp_path / "tables" / "ckconv-missing.md").read_text()

    grid = build_grid(get_suite("ckconv-crossrate"), datasets_sel=["char_trajectories"], seeds=(0,), budget=0.005)
    (cfg,) = [c for c in grid.runs if "variant:CT 1/2→1" in c.tags]
    record = execute(cfg, "cpu", DataCache(tmp_path), progress=False)
    assert record["status"] == "ok" and "error" not in record["crossres"], record.get("error")
    build_paper_tables([record], tmp_path / "tables")
    table = pd.read_csv(tmp_path / "tables" / "ckconv-crossrate.csv")
    ours = table[table["ours_n"] > 0].set_index("metric")
    assert set(table["column"]) == {"CT 1/2→1"}  # the variant's label, no second arrow
    assert ours["ours_mean"]["ootb"] == pytest.approx(record["crossres"]["ootb"])
